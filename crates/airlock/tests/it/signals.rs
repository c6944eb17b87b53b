//! Signals to a running `airlock serve`: SIGHUP reloads roles and grants
//! (a broken file is refused and the old policy stays); SIGTERM stops it
//! within a bound even with requests held open, releasing job leases.

use std::time::Duration;

use airbyte_sim::{RunningSim, SimConfig};
use reqwest::StatusCode;

use crate::harness::{Grant, Harness};
use crate::support::Db;

/// `airlock serve` on SQLite with quick jobs, in front of `sim`.
fn harness(sim: &RunningSim) -> Harness {
    Harness::fast(Db::Sqlite).airbyte(sim).airbyte_timeout(2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_grants_and_refuses_a_broken_file() {
    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("simulator");
    let deployment = harness(&sim).deploy().await;
    let served = deployment.serve();
    let auditor_reads_jobs = || async {
        let (status, _) = served.client.get("/v1/audit", "reader").await;
        status
    };
    assert_eq!(auditor_reads_jobs().await, StatusCode::FORBIDDEN);

    // A grant added to the file takes effect on SIGHUP.
    let config = deployment.config.clone();
    deployment.rewrite(&config.clone().with_grant(Grant::matching(
        "auditor",
        "client_id",
        "reader",
    )));
    served.signal("HUP");
    let mut status = StatusCode::FORBIDDEN;
    for _ in 0..100 {
        status = auditor_reads_jobs().await;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, StatusCode::OK, "the reloaded grant is in force");
    assert_eq!(served.logged_within("policy reloaded", 1).await, 1);

    // A broken file is refused; the policy in force stays.
    deployment.rewrite(&config.with_grant(Grant::matching("nobody", "sub", "x")));
    served.signal("HUP");
    for _ in 0..100 {
        if served.logged("policy reload refused; keeping the current policy") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        served.logged("policy reload refused; keeping the current policy"),
        1
    );
    assert_eq!(
        auditor_reads_jobs().await,
        StatusCode::OK,
        "the previous policy stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_grace_period_with_requests_held_open() {
    // A stopped clock: jobs never end, so `?wait=` holds the request.
    let sim = airbyte_sim::spawn(SimConfig {
        manual_clock: true,
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let deployment = harness(&sim).deploy().await;
    let mut served = deployment.serve();
    let held = {
        let client = served.client.clone();
        tokio::spawn(async move { client.sync("jira-bigquery", "?wait=15m").await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    served.signal("TERM");
    let bound = airlock::app::SHUTDOWN_GRACE + Duration::from_secs(10);
    let status = tokio::task::block_in_place(|| served.wait_exit(bound));
    let status = status.expect("airlock exited within the grace period and its bound");
    assert!(status.success(), "a clean exit: {status}");
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_log_lines_held_for_their_interval_are_written_when_serve_stops() {
    let sim = airbyte_sim::spawn(SimConfig::default())
        .await
        .expect("simulator");
    // An interval no step below waits out: only the stop writes the lines.
    let deployment = harness(&sim)
        .extra("[server]\nrequest_log_flush_ms = 10000\n")
        .deploy()
        .await;
    let mut served = deployment.serve();
    for _ in 0..3 {
        served.client.get("/v1/jobs", "reader").await;
    }
    // A line that is not the request log's is written at once meanwhile.
    served.signal("HUP");
    assert_eq!(served.logged_within("policy reloaded", 1).await, 1);
    assert_eq!(served.logged("request"), 0, "the request lines are held");

    served.signal("TERM");
    let bound = airlock::app::SHUTDOWN_GRACE + Duration::from_secs(10);
    let status = tokio::task::block_in_place(|| served.wait_exit(bound));
    assert!(status.expect("airlock exited").success());
    assert!(
        served.logged_within("request", 3).await >= 3,
        "the stop wrote the held request lines"
    );
}
