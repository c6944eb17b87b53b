//! Four-eyes approvals end to end (issue 19), on SQLite and Postgres: a
//! reset waits for a second person, and nothing reaches Airbyte (the
//! simulator's counters) until someone other than the requester, within
//! their scope and not through `/mcp`, approves it; denied and expired
//! requests end their jobs without Airbyte; break glass is audited; every
//! record is in the chain, which verifies.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Grant, Harness, Stack};
use crate::support::{Db, both_backends, id_of, reliable_connections, send, uuid};

/// `POST path` as `role` with a JSON body.
async fn post_json(stack: &Stack, path: &str, role: &str, body: Value) -> (StatusCode, Value) {
    send(stack.request(Method::POST, path, Some(role)).json(&body)).await
}

/// A reset of `connection` by `role` that must wait; returns the job and
/// its approval's id.
async fn awaiting_reset(stack: &Stack, connection: &str, role: &str) -> (Value, String) {
    let (status, job) = post_json(
        stack,
        &format!("/v1/connections/{connection}/reset"),
        role,
        json!({"reason": "the schema changed upstream"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["state"], "awaiting_approval", "{job:#}");
    assert_eq!(job["approval"]["state"], "pending", "{job:#}");
    let approval = job["approval"]["id"].as_str().expect("an approval id");
    assert_eq!(
        job["links"]["approval"],
        format!("/v1/approvals/{approval}"),
        "{job:#}"
    );
    (job.clone(), approval.to_owned())
}

/// The audit records of `action`, as an auditor lists them.
async fn records(stack: &Stack, action: &str) -> Vec<Value> {
    let (status, page) = stack
        .get(&format!("/v1/audit?action={action}&limit=500"), "admin")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

/// Checks the whole audit chain verifies.
async fn chain_verifies(stack: &Stack) {
    let store = stack.store().await;
    let report = airlock_store::audit::verify_store(&store, &[])
        .await
        .expect("verify");
    assert_eq!(report.broken, None, "{report:?}");
}

async fn a_reset_waits_until_another_person_approves_it(db: Db) {
    let stack = Harness::fast(db).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let (job, approval) = awaiting_reset(&stack, &connection, "editor").await;
    let id = id_of(&job);

    // Nothing goes to Airbyte while it waits.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(stack.job(&id).await["state"], "awaiting_approval");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        0
    );

    // The requester sees it, and cannot decide it.
    let (status, mine) = stack.get("/v1/approvals", "editor").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    assert_eq!(mine["data"][0]["id"], approval.as_str(), "{mine}");
    assert_eq!(mine["data"][0]["reason"], "the schema changed upstream");
    let approve = format!("/v1/approvals/{approval}/approve");
    let (status, refused) = post_json(&stack, &approve, "editor", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "four_eyes", "{refused}");
    // Someone who may not decide gets nothing either.
    let (status, _) = post_json(&stack, &approve, "runner", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = stack.get("/v1/approvals", "runner").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]), "{list}");

    // The approver's inbox has it; approving it queues the job.
    let (status, inbox) = stack.get("/v1/approvals?state=pending", "approver").await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    assert_eq!(inbox["data"][0]["id"], approval.as_str(), "{inbox}");
    assert_eq!(inbox["data"][0]["requester"]["subject"], "editor");
    let (status, decided) = post_json(
        &stack,
        &approve,
        "approver",
        json!({"reason": "looks right"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["state"], "used", "{decided:#}");
    assert_eq!(decided["job_id"], id.as_str());
    assert_eq!(decided["decisions"][0]["decider"]["subject"], "approver");
    assert_eq!(decided["decisions"][0]["verdict"], "approve");

    // A decided request cannot be decided again.
    let (status, again) = post_json(&stack, &approve, "admin", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let deny = format!("/v1/approvals/{approval}/deny");
    let (status, _) = post_json(&stack, &deny, "admin", json!({"reason": "late"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let done = stack.wait_terminal(&id).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["approval"]["state"], "used", "{done:#}");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        1
    );

    // The request, the decision and the job's release are linked records.
    for action in ["approvals.request", "approvals.approve", "approvals.use"] {
        let found = records(&stack, action).await;
        assert!(
            found
                .iter()
                .any(|r| r["job_id"] == id.as_str()
                    && r["detail"]["approval_id"] == approval.as_str()),
            "{action}: {found:#?}"
        );
    }
    let refusals = records(&stack, "approvals.approve").await;
    assert!(
        refusals
            .iter()
            .any(|r| r["decision"] == "deny" && r["reason"] == "own_request"),
        "{refusals:#?}"
    );
    chain_verifies(&stack).await;
    stack.stop().await;
}

async fn an_admin_cannot_approve_their_own_reset(db: Db) {
    let stack = Harness::fast(db).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let (job, approval) = awaiting_reset(&stack, &connection, "admin").await;
    let (status, refused) = post_json(
        &stack,
        &format!("/v1/approvals/{approval}/approve"),
        "admin",
        json!({"reason": "I am the admin"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["code"], "four_eyes");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("own request")),
        "{refused}"
    );
    let (status, denied) = post_json(
        &stack,
        &format!("/v1/approvals/{approval}/deny"),
        "admin",
        json!({"reason": "changed my mind"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    assert_eq!(stack.job(&id_of(&job)).await["state"], "awaiting_approval");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        0
    );
    stack.stop().await;
}

async fn denied_and_expired_resets_never_reach_airbyte(db: Db) {
    let stack = Harness::fast(db).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;

    // Denied: a reason is required, then the job ends rejected.
    let (job, approval) = awaiting_reset(&stack, &connection, "editor").await;
    let deny = format!("/v1/approvals/{approval}/deny");
    let (status, problem) = post_json(&stack, &deny, "approver", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(stack.job(&id_of(&job)).await["state"], "awaiting_approval");
    let (status, decided) = post_json(
        &stack,
        &deny,
        "approver",
        json!({"reason": "not during the audit"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["state"], "denied");
    let rejected = stack.job(&id_of(&job)).await;
    assert_eq!(rejected["state"], "rejected", "{rejected:#}");
    assert_eq!(rejected["approval"]["state"], "denied");
    assert!(rejected["finished_at"].is_string(), "{rejected:#}");
    assert!(
        rejected["error"]
            .as_str()
            .is_some_and(|e| e.contains("not during the audit")),
        "{rejected:#}"
    );

    // Expired: nobody decides; past its time (the store is asked with a
    // clock a day ahead) the job ends expired.
    let (job, approval) = awaiting_reset(&stack, &connection, "editor").await;
    let store = stack.store().await;
    let day_later = stack.state.now_ms() + 86_400_000 + 1;
    let expired = store.expire_approvals(day_later).await.expect("expire");
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].id.as_str(), approval);
    let ended = stack.job(&id_of(&job)).await;
    assert_eq!(ended["state"], "expired", "{ended:#}");
    assert_eq!(ended["approval"]["state"], "expired");
    let (status, late) = post_json(
        &stack,
        &format!("/v1/approvals/{approval}/approve"),
        "approver",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");

    // Cancelled while it waits: the request is withdrawn.
    let (job, approval) = awaiting_reset(&stack, &connection, "editor").await;
    let (status, cancelled) = stack
        .post(&format!("/v1/jobs/{}/cancel", id_of(&job)), "editor")
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled:#}");
    assert_eq!(cancelled["approval"]["state"], "withdrawn");
    let (_, request) = stack
        .get(&format!("/v1/approvals/{approval}"), "approver")
        .await;
    assert_eq!(request["state"], "withdrawn", "{request}");

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        0
    );
    assert_eq!(records(&stack, "approvals.expire").await.len(), 1);
    chain_verifies(&stack).await;
    stack.stop().await;
}

async fn approvers_decide_only_within_their_scope(db: Db) {
    let stack = Harness::fast(db)
        .approving_resets()
        .without_role_grants()
        .grant(Grant::role("admin"))
        .grant(Grant::role("editor"))
        .grant(Grant::role("approver").workspaces(&["analytics"]))
        .start()
        .await;
    let inside = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let outside = stack
        .add_connection(reliable_connections("finance", 1, 1))
        .await;
    let (_, theirs) = awaiting_reset(&stack, &outside, "editor").await;
    let (inside_job, ours) = awaiting_reset(&stack, &inside, "editor").await;

    // Out of scope: not listed, not shown, not decided (as if missing).
    let (_, inbox) = stack.get("/v1/approvals", "approver").await;
    let listed: Vec<&str> = inbox["data"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(listed, vec![ours.as_str()], "{inbox}");
    let (status, _) = stack
        .get(&format!("/v1/approvals/{theirs}"), "approver")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post_json(
        &stack,
        &format!("/v1/approvals/{theirs}/approve"),
        "approver",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // In scope: decided.
    let (status, decided) = post_json(
        &stack,
        &format!("/v1/approvals/{ours}/approve"),
        "approver",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let done = stack.wait_terminal(&id_of(&inside_job)).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(stack.sim.sim.counters().jobs_created_for(uuid(&outside)), 0);
    stack.stop().await;
}

async fn break_glass_needs_its_permission_and_a_reason(db: Db) {
    let stack = Harness::fast(db)
        .approving_resets()
        .extra("[roles.breakglass]\npermissions = [\"approvals:bypass\"]\n")
        .grant(Grant::on_claim("breakglass", "roles", "admin"))
        .start()
        .await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let reset = format!("/v1/connections/{connection}/reset");

    // Without approvals:bypass, asking to break glass is refused.
    let (status, _) = post_json(&stack, &reset, "editor", json!({"bypass_reason": "now"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // With it and a reason: queued at once, audited as a bypass.
    let (status, job) = post_json(
        &stack,
        &reset,
        "admin",
        json!({"bypass_reason": "incident 4711: corrupt rows"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["state"], "queued", "{job:#}");
    assert_eq!(job["approval"], Value::Null);
    let done = stack.wait_terminal(&id_of(&job)).await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    let all = records(&stack, "approvals.bypass").await;
    let (bypasses, refused): (Vec<Value>, Vec<Value>) =
        all.into_iter().partition(|r| r["decision"] == "allow");
    assert_eq!(bypasses.len(), 1, "{bypasses:#?}");
    assert_eq!(refused.len(), 1, "the editor's attempt: {refused:#?}");
    assert_eq!(refused[0]["principal"]["subject"], "editor", "{refused:#?}");
    assert_eq!(bypasses[0]["job_id"], job["id"]);
    assert_eq!(
        bypasses[0]["detail"]["bypass_reason"],
        "incident 4711: corrupt rows"
    );
    chain_verifies(&stack).await;
    stack.stop().await;
}

async fn a_pre_approval_is_used_once_by_its_requester(db: Db) {
    let stack = Harness::fast(db).approving_resets().start().await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let ask = json!({"connection": connection, "type": "reset", "reason": "nightly rebuild"});
    let (status, request) = post_json(&stack, "/v1/approvals", "editor", ask.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["state"], "pending");
    assert_eq!(request["job_id"], Value::Null);
    let id = request["id"].as_str().expect("an id").to_owned();
    // Asking again answers the open request.
    let (status, again) = post_json(&stack, "/v1/approvals", "editor", ask).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], id.as_str());

    let (status, granted) = post_json(
        &stack,
        &format!("/v1/approvals/{id}/approve"),
        "approver",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(granted["state"], "approved");
    assert!(granted["grant_expires_at"].is_string(), "{granted}");

    // Someone else's reset does not use it; the requester's does, once.
    let reset = format!("/v1/connections/{connection}/reset");
    let (_, admins) = stack.post(&reset, "admin").await;
    assert_eq!(admins["state"], "awaiting_approval", "{admins}");
    let (status, first) = stack.post(&reset, "editor").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["state"], "queued", "{first:#}");
    assert_eq!(first["approval"]["id"], id.as_str());
    assert_eq!(first["approval"]["state"], "used");
    let (_, second) = stack.post(&reset, "editor").await;
    assert_eq!(second["state"], "awaiting_approval", "{second:#}");
    let (_, used) = stack.get(&format!("/v1/approvals/{id}"), "editor").await;
    assert_eq!(used["state"], "used", "{used}");
    assert_eq!(used["job_id"], first["id"]);
    chain_verifies(&stack).await;
    stack.stop().await;
}

async fn the_expiry_loop_ends_a_request_nobody_decides(db: Db) {
    let stack = Harness::fast(db)
        .extra("[approvals]\nrequire = [\"jobs:reset\"]\nrequest_ttl_secs = 1\n")
        .start()
        .await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let (job, _) = awaiting_reset(&stack, &connection, "editor").await;
    // The loop looks every few seconds; the job ends without anyone asking.
    let ended = stack
        .wait_job(&id_of(&job), std::time::Duration::from_secs(20), |j| {
            j["state"] == "expired"
        })
        .await;
    assert_eq!(ended["approval"]["state"], "expired", "{ended:#}");
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        0
    );
    stack.stop().await;
}

both_backends!(
    a_reset_waits_until_another_person_approves_it,
    the_expiry_loop_ends_a_request_nobody_decides,
    an_admin_cannot_approve_their_own_reset,
    denied_and_expired_resets_never_reach_airbyte,
    approvers_decide_only_within_their_scope,
    break_glass_needs_its_permission_and_a_reason,
    a_pre_approval_is_used_once_by_its_requester,
);
