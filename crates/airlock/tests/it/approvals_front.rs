//! A reset through the Airbyte-compatible front when resets wait for
//! approval, with the official Python SDK (issue 19, point 4): refused in
//! Airbyte's words with the approval's URL until another person approves,
//! then carried out exactly once; on SQLite and Postgres.

use crate::front_writes::service_account_front;
use crate::harness::Grant;
use crate::support::{self, Db, both_backends, reliable_connections, uuid};

async fn a_pre_approval_is_used_once_through_the_front(db: Db) {
    let stack = service_account_front(
        db,
        &[("ci-editor", "team-editor")],
        vec![
            Grant::on_claim("editor", "roles", "team-editor"),
            Grant::role("admin"),
            Grant::role("approver"),
        ],
    )
    .with_dev_idp()
    .approving_resets()
    .start()
    .await;
    let connection = stack
        .add_connection(reliable_connections("analytics", 1, 1))
        .await;
    let out = support::run_python(
        "front_approvals.py",
        &[
            ("AIRLOCK_URL", format!("{}/api/public/v1", stack.base)),
            ("EDITOR_ID", "ci-editor".to_owned()),
            ("EDITOR_SECRET", crate::front_writes::secret("ci-editor")),
            ("APPROVER_TOKEN", stack.client.token("approver")),
            ("CONNECTION_ID", connection.clone()),
        ],
    )
    .await;
    assert!(out.contains("front approvals ok"), "{out}");

    // Exactly one reset reached Airbyte; its grant's use is in the trail.
    assert_eq!(
        stack.sim.sim.counters().jobs_created_for(uuid(&connection)),
        1,
        "{out}"
    );
    let (status, page) = stack.get("/v1/audit?action=approvals.use", "admin").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    let uses = page["data"].as_array().expect("records");
    assert_eq!(uses.len(), 1, "{page:#}");
    assert_eq!(uses[0]["channel"], "front", "{page:#}");
    assert_eq!(uses[0]["principal"]["subject"], "ci-editor", "{page:#}");
    stack.stop().await;
}

both_backends!(a_pre_approval_is_used_once_through_the_front);
