//! `airbyte:write` through the Airbyte-compatible front, end to end: the
//! official Python SDK creates, renames and deletes a source, a destination
//! and a connection in front of the simulator, with service accounts; a
//! caller without the permission is refused before Airbyte hears of it, and
//! Airlock's catalog follows each change.

use airbyte_sim::SimConfig;
use serde_json::Value;

use crate::harness::{Grant, Harness, Stack};
use crate::support::{self, Db};

/// The service accounts: `(client id, role claim)`; secrets are `<id>-secret`.
const ACCOUNTS: [(&str, &str); 2] = [("ci-editor", "team-editor"), ("ci-runner", "team-runner")];

pub(crate) use crate::front::secret;

/// Airlock's front before a simulator with a manual clock, with service
/// accounts (`(client id, role claim)`, secrets `<id>-secret`) and `grants`.
pub(crate) fn service_account_front(
    db: Db,
    accounts: &[(&str, &str)],
    grants: Vec<Grant>,
) -> Harness {
    let mut harness = Harness::new(db)
        .sim(SimConfig {
            manual_clock: true,
            // Airlock's own Airbyte token must not expire while the tests
            // move the simulated clock: any 401 at the simulator would then
            // be a forwarded caller token.
            token_lifetime_secs: 30 * 86_400,
            ..SimConfig::default()
        })
        .airbyte_timeout(5)
        .catalog_refresh(600)
        .front_public_url()
        .without_dev_idp()
        .without_role_grants();
    if matches!(db, Db::Postgres) {
        // Service accounts on Postgres sign with a key kept sealed in the
        // database.
        harness = harness.set("front", "signing_key_secret", "front-writes-test-seal");
    }
    for grant in grants {
        harness = harness.grant(grant);
    }
    for (client, role) in accounts {
        let hash =
            airlock_domain::secret::hash::hash_secret(&secret(client), 10_000).expect("hash");
        let mut account = toml::Table::new();
        account.insert("client_id".to_owned(), (*client).into());
        account.insert("secret_hash".to_owned(), hash.into());
        account.insert("roles".to_owned(), vec![*role].into());
        harness = harness.entry("service_accounts", account);
    }
    harness
}

/// The editor and the runner, granted in `analytics` only.
fn harness(db: Db) -> Harness {
    service_account_front(
        db,
        &ACCOUNTS,
        vec![
            Grant::on_claim("editor", "roles", "team-editor").workspaces(&["analytics"]),
            Grant::on_claim("runner", "roles", "team-runner").workspaces(&["analytics"]),
        ],
    )
}

/// The simulator's world, as its admin API shows it.
pub(crate) async fn sim_world(stack: &Stack) -> Value {
    let (status, world) =
        support::send(stack.http.get(format!("{}/world", stack.sim.admin_url()))).await;
    assert!(status.is_success(), "{world}");
    world
}

/// The id of the first workspace called `name`.
pub(crate) fn workspace_id(world: &Value, name: &str) -> String {
    world["workspaces"]
        .as_array()
        .expect("workspaces")
        .iter()
        .find(|w| w["name"] == name)
        .and_then(|w| w["id"].as_str())
        .expect("the workspace")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_writes_need_airbyte_write_and_the_catalog_follows_them() {
    let stack = harness(Db::Sqlite).start().await;
    let world = sim_world(&stack).await;
    let analytics = workspace_id(&world, "analytics");
    let api = format!("{}/api/public/v1", stack.base);
    let out = support::run_python(
        "front_writes.py",
        &[
            ("AIRLOCK_URL", api),
            ("EDITOR_ID", "ci-editor".to_owned()),
            ("EDITOR_SECRET", secret("ci-editor")),
            ("RUNNER_ID", "ci-runner".to_owned()),
            ("RUNNER_SECRET", secret("ci-runner")),
            ("WORKSPACE_ID", analytics.clone()),
            ("OTHER_WORKSPACE_ID", workspace_id(&world, "marketing")),
        ],
    )
    .await;
    assert!(out.contains("front writes ok"), "{out}");

    // Only the editor's writes in its own workspace reached Airbyte: one
    // source, one destination, one connection, one rename of each, and the
    // deletes.
    let counters = stack.sim.sim.counters();
    for (route, expected) in [
        ("POST /sources", 1),
        ("POST /destinations", 1),
        ("POST /connections", 1),
        ("PATCH /connections/{connectionId}", 1),
        ("PATCH /sources/{sourceId}", 1),
        ("DELETE /connections/{connectionId}", 1),
        ("DELETE /sources/{sourceId}", 1),
        ("DELETE /destinations/{destinationId}", 1),
    ] {
        assert_eq!(counters.requests_to(route), expected, "{route}: {out}");
    }
    let connection = out
        .lines()
        .find_map(|l| l.strip_prefix("connection: "))
        .expect("the connection line");
    let world = sim_world(&stack).await;
    let stored = world["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .find(|c| c["id"] == connection)
        .expect("the simulator keeps the deleted connection");
    assert_eq!(stored["name"], "Orders nightly", "{stored}");
    assert_eq!(stored["status"], "deprecated", "{stored}");
    assert_eq!(stored["workspace_id"], analytics.as_str(), "{stored}");
    stack.stop().await.shutdown().await;
}
