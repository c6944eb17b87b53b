//! The MCP server, driven by the official MCP Python SDK: over streamable
//! HTTP at `/mcp`, and over stdio through `airlock mcp`. Tools follow the
//! caller's permissions, calls are carried out (and refused, and audited)
//! by the API with channel `mcp`.

use airbyte_sim::SimConfig;
use airlock_domain::audit::Record;
use airlock_store::audit::AuditFilter;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Harness, Stack};
use crate::support::{Db, reliable_connections, run_python, sim_add_connections};

/// A stack whose syncs end in well under a second, and one connection
/// whose syncs succeed (known to Airlock's catalog).
async fn stack_with_connection() -> (Stack, String) {
    let sim = SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    };
    let stack = Harness::new(Db::Sqlite).sim(sim).fast_jobs().start().await;
    let added = sim_add_connections(
        &stack.http,
        &stack.sim,
        reliable_connections("analytics", 1, 30),
    )
    .await;
    let connection = added.connection_ids[0].clone();
    // Resolving an unknown id refreshes the catalog.
    let response = stack
        .http
        .get(stack.url(&format!("/v1/connections/{connection}")))
        .bearer_auth(stack.token("admin"))
        .send()
        .await
        .expect("Airlock answers");
    assert_eq!(response.status(), StatusCode::OK);
    (stack, connection)
}

/// The JSON report a script prints last.
fn report(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no report ({e}):\n{stdout}"))
}

async fn records(stack: &Stack) -> Vec<Record> {
    stack
        .store()
        .await
        .audit_records(&AuditFilter {
            ascending: true,
            limit: 10_000,
            ..AuditFilter::default()
        })
        .await
        .expect("audit records")
}

/// The one record of `request_id`, which must be an `mcp` denial of `action`.
fn denial<'a>(records: &'a [Record], request_id: &str, action: &str) -> &'a Record {
    let of_request: Vec<&Record> = records
        .iter()
        .filter(|r| r.entry.origin.request_id.as_deref() == Some(request_id))
        .collect();
    assert_eq!(of_request.len(), 1, "{of_request:#?}");
    let record = of_request[0];
    assert_eq!(record.entry.channel, "mcp", "{record:#?}");
    assert_eq!(record.entry.decision, "deny", "{record:#?}");
    assert_eq!(record.entry.action, action, "{record:#?}");
    assert_eq!(record.entry.outcome.as_deref(), Some("403"), "{record:#?}");
    record
}

/// The sync's trail names the channel it came through.
fn assert_sync_allowed_on_mcp(records: &[Record], job_id: &str) {
    assert!(
        records
            .iter()
            .any(|r| r.entry.job_id.as_deref() == Some(job_id)
                && r.entry.action == "jobs.sync"
                && r.entry.decision == "allow"
                && r.entry.channel == "mcp"),
        "no mcp record of job {job_id}"
    );
}

fn tokens(stack: &Stack, roles: &[&str]) -> Vec<(String, String)> {
    roles
        .iter()
        .map(|role| (format!("TOKEN_{}", role.to_uppercase()), stack.token(role)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_lists_tools_by_role_runs_syncs_and_audits_denials() {
    let (stack, connection) = stack_with_connection().await;
    let mut env = vec![
        ("AIRLOCK_URL", stack.base.clone()),
        ("CONNECTION", connection.clone()),
    ];
    let roles = tokens(&stack, &["reader", "runner", "editor"]);
    env.extend(roles.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let out = report(&run_python("mcp_http.py", &env).await);

    let records = records(&stack).await;
    let reader = denial(
        &records,
        out["denied_request_id"].as_str().expect("id"),
        "jobs.sync",
    );
    assert_eq!(reader.entry.actor.subject.as_deref(), Some("reader"));
    let runner = denial(
        &records,
        out["reset_denied"].as_str().expect("id"),
        "jobs.reset",
    );
    assert_eq!(runner.entry.actor.subject.as_deref(), Some("runner"));
    assert_sync_allowed_on_mcp(&records, out["job_id"].as_str().expect("job id"));
    // The door refused a foreign Host and a foreign Origin, and a missing token.
    for reason in ["host_not_allowed", "origin_not_allowed"] {
        assert!(
            records.iter().any(|r| r.entry.channel == "mcp"
                && r.entry.action == "mcp.connect"
                && r.entry.reason.as_deref() == Some(reason)),
            "no record of {reason}"
        );
    }
    assert!(records.iter().any(|r| r.entry.channel == "mcp"
        && r.entry.action == "authenticate"
        && r.entry.decision == "deny"));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_stdio_acts_as_the_token_against_a_running_airlock() {
    let (stack, connection) = stack_with_connection().await;
    let mut env = vec![
        ("AIRLOCK_BIN", env!("CARGO_BIN_EXE_airlock").to_owned()),
        ("AIRLOCK_URL", stack.base.clone()),
        ("CONNECTION", connection.clone()),
    ];
    let roles = tokens(&stack, &["reader", "runner"]);
    env.extend(roles.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let out = report(&run_python("mcp_stdio.py", &env).await);

    let records = records(&stack).await;
    let reader = denial(
        &records,
        out["denied_request_id"].as_str().expect("id"),
        "jobs.sync",
    );
    assert_eq!(reader.entry.actor.subject.as_deref(), Some("reader"));
    assert_sync_allowed_on_mcp(&records, out["job_id"].as_str().expect("job id"));
    stack.stop().await;
}

async fn an_agent_requests_a_reset_and_cannot_approve_it(db: Db) {
    let stack = Harness::fast(db).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let mut env = vec![
        ("AIRLOCK_URL", stack.base.clone()),
        ("CONNECTION", connection.clone()),
    ];
    let roles = tokens(&stack, &["editor", "approver"]);
    env.extend(roles.iter().map(|(k, v)| (k.as_str(), v.clone())));
    let out = report(&run_python("mcp_approvals.py", &env).await);
    let job_id = out["job_id"].as_str().expect("job id");
    let approval = out["approval_id"].as_str().expect("approval id");

    // The request came through /mcp and waits; nothing reached Airbyte.
    let (_, request) = stack
        .get(&format!("/v1/approvals/{approval}"), "approver")
        .await;
    assert_eq!(request["channel"], "mcp", "{request}");
    assert_eq!(request["reason"], "the agent saw corrupt rows", "{request}");
    assert_eq!(stack.job(job_id).await["state"], "awaiting_approval");
    let created = stack
        .sim
        .sim
        .counters()
        .jobs_created_for(crate::support::uuid(&connection));
    assert_eq!(created, 0);

    // A person approves it; the job runs.
    let (status, decided) = stack
        .post(&format!("/v1/approvals/{approval}/approve"), "approver")
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let done = stack.wait_terminal(job_id).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    stack.stop().await;
}

crate::support::both_backends!(an_agent_requests_a_reset_and_cannot_approve_it);
