//! The audit trail: exactly the expected records for a scripted session,
//! tamper evidence through `airlock audit verify`, and no secret anywhere.

use std::process::Command;

use airlock_domain::audit::{self, Entry, Record};
use airlock_store::Store;
use airlock_store::audit::AuditFilter;
use serde_json::Value;

use crate::harness::{AirlockToml, Harness, Stack};
use crate::support::{Db, fresh_database};

const UA: &str = "audit-test/1.0";

async fn call(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    request_id: &str,
) -> (u16, Value) {
    let mut request = stack
        .http
        .request(method, stack.url(path))
        .header("x-request-id", request_id)
        .header("user-agent", UA);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The records a request wrote, by request id.
fn of_request<'a>(records: &'a [Record], request_id: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.entry.origin.request_id.as_deref() == Some(request_id))
        .collect()
}

async fn scripted_session_writes_exactly_the_expected_records(db: Db) {
    let stack = Harness::new(db).start().await;
    let runner = stack.token("runner");
    let reader = stack.token("reader");
    let issuer = stack.idp.issuer().to_owned();

    let (status, job) = call(
        &stack,
        reqwest::Method::POST,
        "/v1/connections/postgres-snowflake/sync",
        Some(&runner),
        "req-sync",
    )
    .await;
    assert_eq!(status, 202, "{job}");
    let (status, _) = call(
        &stack,
        reqwest::Method::POST,
        "/v1/connections/postgres-snowflake/sync",
        Some(&reader),
        "req-denied",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &stack,
        reqwest::Method::POST,
        "/v1/connections/postgres-snowflake/sync",
        None,
        "req-anon",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = call(
        &stack,
        reqwest::Method::GET,
        "/v1/audit",
        Some(&reader),
        "req-audit-denied",
    )
    .await;
    assert_eq!(status, 403);
    let job_id = job["id"].as_str().expect("job id").to_owned();
    let path = format!("/v1/jobs/{job_id}/cancel");
    let (status, cancelled) = call(
        &stack,
        reqwest::Method::POST,
        &path,
        Some(&runner),
        "req-cancel",
    )
    .await;
    assert_eq!(status, 202, "{cancelled}");
    // A job the dispatcher already handed to Airbyte is cancelled there
    // first: wait for the state (a generous deadline, not a timing check).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, seen) = call(
            &stack,
            reqwest::Method::GET,
            &format!("/v1/jobs/{job_id}"),
            Some(&runner),
            "req-wait",
        )
        .await;
        assert_eq!(status, 200, "{seen}");
        if seen["state"] == "cancelled" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} was not cancelled; last seen: {seen:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let store = stack.store().await;
    let records = store
        .audit_records(&AuditFilter {
            ascending: true,
            limit: 1000,
            ..AuditFilter::default()
        })
        .await
        .expect("records");

    let connection = job["connection_id"]
        .as_str()
        .expect("connection")
        .to_owned();
    let workspace = job["workspace_id"].as_str().expect("workspace").to_owned();
    let runner_actor = audit::Actor {
        issuer: Some(issuer.clone()),
        subject: Some("runner".into()),
        kind: Some("service".into()),
        client_id: Some("runner".into()),
    };
    let origin = |id: &str| audit::Origin {
        request_id: Some(id.into()),
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some(UA.into()),
    };

    let sync = of_request(&records, "req-sync");
    assert_eq!(sync.len(), 1, "{sync:#?}");
    assert_eq!(
        sync[0].entry,
        Entry {
            origin: origin("req-sync"),
            actor: runner_actor.clone(),
            channel: "api".into(),
            action: "jobs.sync".into(),
            workspace_id: Some(workspace.clone()),
            connection_id: Some(connection.clone()),
            job_id: Some(job_id.clone()),
            airbyte_job_id: None,
            decision: "allow".into(),
            reason: Some("grant:1:runner".into()),
            outcome: Some("queued".into()),
            detail: Some(serde_json::json!({"if_running": "queue", "max_attempts": 3})),
        }
    );

    let denied = of_request(&records, "req-denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].entry.decision, "deny");
    assert_eq!(denied[0].entry.action, "jobs.sync");
    assert_eq!(denied[0].entry.outcome.as_deref(), Some("403"));
    assert_eq!(denied[0].entry.actor.subject.as_deref(), Some("reader"));
    assert_eq!(denied[0].entry.reason.as_deref(), Some("no_grant_anywhere"));

    let anonymous = of_request(&records, "req-anon");
    assert_eq!(anonymous.len(), 1, "{anonymous:#?}");
    assert_eq!(
        (
            anonymous[0].entry.action.as_str(),
            anonymous[0].entry.decision.as_str(),
            anonymous[0].entry.reason.as_deref()
        ),
        ("authenticate", "deny", Some("missing_token"))
    );
    assert_eq!(anonymous[0].entry.actor, audit::Actor::default());

    let audit_denied = of_request(&records, "req-audit-denied");
    assert_eq!(audit_denied.len(), 1);
    assert_eq!(audit_denied[0].entry.action, "audit.read");

    let cancel = of_request(&records, "req-cancel");
    assert_eq!(cancel.len(), 1, "{cancel:#?}");
    assert_eq!(cancel[0].entry.action, "jobs.cancel");
    assert_eq!(cancel[0].entry.job_id.as_deref(), Some(job_id.as_str()));
    assert_eq!(cancel[0].entry.decision, "allow");

    // Every state the job went through is recorded, by Airlock itself.
    let states: Vec<&str> = records
        .iter()
        .filter(|r| {
            r.entry.action == "job.state" && r.entry.job_id.as_deref() == Some(job_id.as_str())
        })
        .filter_map(|r| r.entry.outcome.as_deref())
        .collect();
    assert!(states.contains(&"cancelled"), "{states:?}");
    assert!(
        records
            .iter()
            .all(|r| r.entry.action != "job.state" || r.entry.decision == "system")
    );

    // An auditor reads the trail through the API, filtered by job.
    let auditor = stack.token("auditor");
    let (status, page) = call(
        &stack,
        reqwest::Method::GET,
        &format!("/v1/audit?job={job_id}"),
        Some(&auditor),
        "req-audit",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let listed = page["data"].as_array().expect("data");
    assert!(
        listed
            .iter()
            .any(|r| r["action"] == "jobs.sync" && r["request_id"] == "req-sync"),
        "{page}"
    );
    assert!(listed.iter().all(|r| r["job_id"] == job_id.as_str()));

    // Nothing in the trail is out of chain.
    let report = airlock_store::audit::verify_store(&store, &[])
        .await
        .expect("verify");
    assert_eq!(report.broken, None);
    stack.stop().await;
}

/// A trail of `n` records in a fresh SQLite database, and a config naming it.
async fn trail(n: i64) -> (Store, std::path::PathBuf) {
    let url = fresh_database(Db::Sqlite).await;
    let store = Store::connect(&url).await.expect("store");
    for i in 1..=n {
        let entry = Entry {
            channel: "api".into(),
            action: "jobs.sync".into(),
            decision: "allow".into(),
            actor: audit::Actor {
                subject: Some(format!("user-{i}")),
                ..audit::Actor::default()
            },
            ..Entry::default()
        };
        store.append_audit(&entry, 1_000 + i).await.expect("append");
    }
    let dir = std::env::temp_dir().join(format!("airlock-audit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("airlock.toml");
    let mut text = AirlockToml::default();
    text.set("storage", "url", url.as_str());
    text.write(&config);
    (store, config)
}

fn verify(config: &std::path::Path, checkpoints: Option<&std::path::Path>) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_airlock"));
    command.args(["audit", "verify", "--config"]).arg(config);
    if let Some(file) = checkpoints {
        command.arg("--checkpoints").arg(file);
    }
    let output = command.output().expect("airlock runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn exec(store: &Store, sql: &'static str) {
    sqlx::query(sql)
        .execute(store.pool())
        .await
        .expect("tamper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untouched_trail_verifies() {
    let (_store, config) = trail(5).await;
    let (ok, out) = verify(&config, None);
    assert!(ok, "{out}");
    assert!(out.contains("intact: 5 records"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_field_is_named() {
    let (store, config) = trail(5).await;
    exec(
        &store,
        "UPDATE audit_log SET principal_subject = 'mallory' WHERE seq = 3",
    )
    .await;
    let (ok, out) = verify(&config, None);
    assert!(!ok, "{out}");
    assert!(
        out.contains("record 3: its content does not match its hash"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_record_is_named() {
    let (store, config) = trail(5).await;
    exec(&store, "DELETE FROM audit_log WHERE seq = 3").await;
    let (ok, out) = verify(&config, None);
    assert!(!ok, "{out}");
    assert!(out.contains("record 4: does not follow record 2"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inserted_record_is_named() {
    let (store, config) = trail(5).await;
    // Make room at 3 and insert a forged record that chains correctly from 2.
    exec(
        &store,
        "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 3",
    )
    .await;
    exec(
        &store,
        "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 103",
    )
    .await;
    let previous = store
        .audit_records(&AuditFilter {
            after_seq: Some(1),
            ascending: true,
            limit: 1,
            ..AuditFilter::default()
        })
        .await
        .expect("record 2")
        .remove(0);
    let mut forged = Record {
        seq: 3,
        at: previous.at,
        entry: Entry {
            channel: "api".into(),
            action: "jobs.reset".into(),
            decision: "allow".into(),
            ..Entry::default()
        },
        prev_hash: previous.hash.clone(),
        hash: String::new(),
    };
    forged.hash = forged.compute_hash();
    sqlx::query(
        "INSERT INTO audit_log (seq, at, channel, action, decision, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(forged.seq)
    .bind(forged.at)
    .bind("api")
    .bind("jobs.reset")
    .bind("allow")
    .bind(&forged.prev_hash)
    .bind(&forged.hash)
    .execute(store.pool())
    .await
    .expect("insert");
    let (ok, out) = verify(&config, None);
    assert!(!ok, "{out}");
    assert!(out.contains("record 4"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_records_are_named() {
    let (store, config) = trail(5).await;
    exec(&store, "UPDATE audit_log SET seq = 100 WHERE seq = 2").await;
    exec(&store, "UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
    exec(&store, "UPDATE audit_log SET seq = 3 WHERE seq = 100").await;
    let (ok, out) = verify(&config, None);
    assert!(!ok, "{out}");
    assert!(out.contains("record 2"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_is_caught_by_a_checkpoint() {
    let (store, config) = trail(5).await;
    let dir = config.parent().expect("dir");
    let checkpoints = dir.join("checkpoints.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "checkpoint", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(&checkpoints)
        .status()
        .expect("checkpoint runs");
    assert!(status.success());
    let (ok, out) = verify(&config, Some(&checkpoints));
    assert!(ok, "{out}");
    exec(&store, "DELETE FROM audit_log WHERE seq = 5").await;
    exec(&store, "UPDATE audit_head SET seq = 4").await;
    let (ok, out) = verify(&config, None);
    assert!(
        ok,
        "without a checkpoint, a clean truncation is invisible: {out}"
    );
    let (ok, out) = verify(&config, Some(&checkpoints));
    assert!(!ok, "{out}");
    assert!(out.contains("checkpoint at record 5"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_json_lines_from_a_position() {
    let (_store, config) = trail(4).await;
    let output = Command::new(env!("CARGO_BIN_EXE_airlock"))
        .args(["audit", "export", "--from", "2", "--config"])
        .arg(&config)
        .output()
        .expect("export runs");
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let seqs: Vec<i64> = lines
        .iter()
        .map(|l| l["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(seqs, [3, 4]);
    assert!(
        lines
            .iter()
            .all(|l| l["hash"].as_str().is_some_and(|h| h.len() == 64))
    );
}

crate::support::both_backends!(scripted_session_writes_exactly_the_expected_records);
