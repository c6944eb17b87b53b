//! The client commands of the `airlock` binary against an in-process
//! Airlock (simulated Airbyte, development identity provider): what a
//! person sees, and the exit codes scripts rely on.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Harness, Stack};
use crate::support::{Db, reliable_connections};

/// Runs `airlock ARGS` against the stack as `role` (no token when `None`).
pub(crate) async fn airlock(stack: &Stack, role: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command
        .args(args)
        .env("AIRLOCK_URL", &stack.base)
        .env_remove("AIRLOCK_TOKEN")
        .env("NO_COLOR", "1");
    if let Some(role) = role {
        command.env("AIRLOCK_TOKEN", stack.token(role));
    }
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("the binary runs")
}

pub(crate) fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The slug Airlock gave a connection.
pub(crate) async fn slug_of(stack: &Stack, id: &str) -> String {
    let (status, connection) = stack.get(&format!("/v1/connections/{id}"), "admin").await;
    assert_eq!(status, StatusCode::OK, "{connection}");
    connection["slug"].as_str().expect("a slug").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_commands_drive_a_running_airlock() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let id = stack
        .add_connection(reliable_connections("analytics", 1, 2))
        .await;
    let slug = slug_of(&stack, &id).await;

    // A runner syncs and follows the job to its end: exit 0, states shown.
    let output = airlock(&stack, Some("runner"), &["sync", &slug, "--wait"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    for state in ["queued", "succeeded"] {
        assert!(stdout.contains(state), "{state} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("pending") || stdout.contains("running"),
        "Airbyte's start is shown:\n{stdout}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("job ") && last.contains("succeeded"),
        "{stdout}"
    );

    // A reader may not: a clear 403 with its request id, and exit 2.
    let output = airlock(&stack, Some("reader"), &["sync", &slug]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("Forbidden (HTTP 403, forbidden)"),
        "{stderr}"
    );
    assert!(stderr.contains("request_id: "), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");

    // No token: 401, with a hint about AIRLOCK_TOKEN.
    let output = airlock(&stack, None, &["connections"]).await;
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("AIRLOCK_TOKEN"),
        "{stderr}"
    );

    // Listings: a table for people, JSON that parses for scripts.
    let output = airlock(&stack, Some("reader"), &["connections"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("SLUG"), "{stdout}");
    assert!(stdout.contains(&slug), "{stdout}");

    let output = airlock(&stack, Some("reader"), &["jobs", "--json"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let jobs: Value = serde_json::from_str(&stdout).expect("jobs --json is JSON");
    let data = jobs["data"].as_array().expect("a data list");
    assert_eq!(data.len(), 1, "{jobs:#}");
    assert_eq!(data[0]["state"], "succeeded");
    let job_id = data[0]["id"].as_str().expect("id").to_owned();

    let output = airlock(
        &stack,
        Some("reader"),
        &["jobs", "--connection", &slug, "--state", "succeeded"],
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("ID"), "{stdout}");
    assert!(
        stdout.contains(&job_id) && stdout.contains(&slug),
        "{stdout}"
    );

    let output = airlock(&stack, Some("reader"), &["job", &job_id]).await;
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("state        succeeded"), "{stdout}");

    // Cancelling or retrying a job that succeeded is a conflict, said so.
    for verb in ["cancel", "retry"] {
        let output = airlock(&stack, Some("runner"), &[verb, &job_id]).await;
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{verb}: {stderr}");
        assert!(stderr.contains("HTTP 409, conflict"), "{verb}: {stderr}");
    }

    // Usage errors are exit 2 too (clap's own).
    let output = airlock(&stack, Some("runner"), &["jobs", "--state", "done"]).await;
    assert_eq!(output.status.code(), Some(2));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_exits_1_and_retry_and_cancel_answer() {
    let stack = Harness::fast(Db::Sqlite).start().await;
    let failing = stack
        .add_connection(json!({
            "workspace": "analytics",
            "count": 1,
            "failure_rate": 1.0,
            "attempt_failure_rate": 0.0,
            "duration_secs": [1, 1],
        }))
        .await;
    let output = airlock(
        &stack,
        Some("runner"),
        &["sync", &failing, "--wait", "--json"],
    )
    .await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let job: Value = serde_json::from_str(&stdout).expect("the final job as JSON");
    assert_eq!(job["state"], "failed", "{job:#}");
    assert!(
        stderr.contains("failed"),
        "states go to stderr with --json: {stderr}"
    );
    let failed_id = job["id"].as_str().expect("id").to_owned();

    // Retry makes a new job; cancel stops it while it waits or runs.
    let output = airlock(&stack, Some("runner"), &["retry", &failed_id, "--json"]).await;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let retried: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(retried["retry_of"], failed_id.as_str());
    let retried_id = retried["id"].as_str().expect("id").to_owned();
    let output = airlock(&stack, Some("runner"), &["cancel", &retried_id]).await;
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.code() == Some(0) && stdout.starts_with("cancel requested: job"),
        "{stdout}\n{stderr}"
    );

    // Airlock not there: exit 2, saying where it looked.
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command
        .args(["connections"])
        .env("AIRLOCK_URL", "http://127.0.0.1:9")
        .env("AIRLOCK_TOKEN", "x");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("runs");
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot reach Airlock at http://127.0.0.1:9/"),
        "{stderr}"
    );
    stack.stop().await;
}

#[test]
fn policy_explain_says_why_a_groups_overage_matches_no_group_grant() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/entra.toml"
    );
    let dir = crate::harness::TempDir::new("airlock-overage");
    let claims = dir.path.join("claims.json");
    let tenant = "https://login.microsoftonline.com/7f0c1c7e-7a53-4b8e-9c7e-3d1c6f8a2b10/v2.0";
    let write = |extra: Value| {
        let mut all = json!({"iss": tenant, "oid": "u-1", "sub": "pairwise", "name": "Ada"});
        for (key, value) in extra.as_object().expect("object") {
            all[key] = value.clone();
        }
        std::fs::write(&claims, all.to_string()).expect("claims file");
    };
    let explain = || {
        let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["policy", "explain", "--config", example, "--claims"])
            .arg(&claims)
            .env("AIRBYTE_CLIENT_SECRET", "unused")
            .output()
            .expect("the binary runs");
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        stdout
    };
    // The example grants `reader` to a group: a member whose token has the
    // group is allowed to read.
    write(json!({"groups": ["0b8f8f3e-5b7d-4c1a-9b2e-6f4d3c2a1b00"]}));
    let member = explain();
    assert!(
        member.contains("connections:read   allow    grant:2:reader"),
        "{member}"
    );
    assert!(!member.contains("overage"), "{member}");
    // Over 200 groups, Entra sends a pointer to Microsoft Graph instead.
    write(json!({
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/u-1/getMemberObjects"}}
    }));
    let overage = explain();
    for expected in [
        "groups     - (incomplete: groups overage)",
        "Airlock does not fetch them from Microsoft Graph",
        "grants[2]  role reader  match group = \"0b8f8f3e-5b7d-4c1a-9b2e-6f4d3c2a1b00\"  cannot match: groups overage",
        "connections:read   deny     no_matching_grant",
    ] {
        assert!(overage.contains(expected), "{expected} missing:\n{overage}");
    }
    write(json!({"hasgroups": true}));
    assert!(explain().contains("cannot match: groups overage"));
}

#[tokio::test]
async fn explain_and_check_config_show_what_grant_names_are_bound_to() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/entra.toml"
    );
    let url = crate::support::fresh_database(Db::Sqlite).await;
    let store = airlock_store::Store::connect(&url).await.expect("store");
    store
        .bind_workspace("analytics", "ws-bound", 1)
        .await
        .expect("bound");
    let dir = crate::harness::TempDir::new("airlock-bound");
    let claims = dir.path.join("claims.json");
    let tenant = "https://login.microsoftonline.com/7f0c1c7e-7a53-4b8e-9c7e-3d1c6f8a2b10/v2.0";
    let pipeline = json!({"iss": tenant, "oid": "9a7e6d5c-4b3a-2f1e-0d9c-8b7a6f5e4d3c",
        "sub": "pairwise", "name": "Pipeline"});
    std::fs::write(&claims, pipeline.to_string()).expect("claims file");
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(args)
            .args(["--config", example])
            .env("AIRBYTE_CLIENT_SECRET", "unused")
            .env("AIRLOCK_STORAGE__URL", &url)
            .output()
            .expect("the binary runs");
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
        stdout
    };
    let claims = claims.display().to_string();
    let line = "grants[3]  workspace \"analytics\"  bound to workspace ws-bound";
    let explained = run(&["policy", "explain", "--claims", &claims]);
    assert!(explained.contains(line), "{explained}");
    let checked = run(&["check-config"]);
    assert!(checked.contains(&format!("#   {line}")), "{checked}");
    let offline = run(&["check-config", "--offline"]);
    assert!(!offline.contains("bound to"), "{offline}");
    let other = dir.path.join("other.json");
    let someone = json!({"iss": tenant, "oid": "u-2", "sub": "pairwise", "name": "Bo"});
    std::fs::write(&other, someone.to_string()).expect("claims file");
    let unselected = run(&[
        "policy",
        "explain",
        "--claims",
        &other.display().to_string(),
    ]);
    assert!(
        !unselected.contains("workspace \"analytics\""),
        "explain reports only the grants that select the principal: {unselected}"
    );
}
