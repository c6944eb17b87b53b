//! Helpers shared by the integration tests: where the repository is, the
//! external peers (Python packages, Node, Postgres) that the tests drive,
//! and calls and checks that many tests repeat. Airlock itself is started
//! by [`crate::harness`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use airbyte_sim::RunningSim;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Client;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The Python interpreter with the test packages (`scripts/test` makes it).
/// A missing interpreter fails the test loudly: it is part of the suite.
pub fn python() -> PathBuf {
    let path = std::env::var_os("AIRLOCK_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test, which installs the Python test packages",
        path.display()
    );
    path
}

/// Prometheus's `promtool`: `AIRLOCK_TEST_PROMTOOL`, else the one
/// `scripts/test` unpacks into `.tools/bin`, else `promtool` on PATH.
pub fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("AIRLOCK_TEST_PROMTOOL") {
        return PathBuf::from(path);
    }
    let unpacked = repo_root().join(".tools/bin/promtool");
    if unpacked.exists() {
        return unpacked;
    }
    PathBuf::from("promtool")
}

/// Fails unless `promtool check metrics` finds nothing to say about
/// `exposition` (Prometheus's text format, as `/metrics` serves it).
pub fn assert_promtool_is_silent(exposition: &str) {
    use std::io::Write as _;
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("promtool could not start ({error}): run scripts/test, which unpacks it into .tools/bin")
        });
    child
        .stdin
        .take()
        .expect("promtool's input")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{exposition}"
    );
}

/// A child process (`airlock demo`, ...) killed when the test ends, however
/// it ends.
pub struct KilledOnDrop(pub std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The folder shared next to the repository: `../shared` beside its root.
pub fn shared_dir() -> PathBuf {
    repo_root()
        .parent()
        .expect("the repository root has a parent")
        .join("shared")
}

/// Airbyte's OpenAPI document: `AIRBYTE_OPENAPI`, or
/// `airbyte/airbyte-api.openapi.yaml` in [`shared_dir`]. A missing document
/// fails the test, naming the path looked for.
pub fn airbyte_openapi() -> PathBuf {
    let path = std::env::var_os("AIRBYTE_OPENAPI").map_or_else(
        || shared_dir().join("airbyte/airbyte-api.openapi.yaml"),
        PathBuf::from,
    );
    assert!(
        path.is_file(),
        "Airbyte's OpenAPI document is missing: no file at {} (keep ../shared/airbyte next to the repository, or set AIRBYTE_OPENAPI)",
        path.display()
    );
    path
}

/// Runs a Python test script with `env`, and fails with its output unless it
/// exits 0. Returns its standard output.
pub async fn run_python(script: &str, env: &[(&str, String)]) -> String {
    let mut command = Command::new(python());
    command.arg(repo_root().join("tests/python").join(script));
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// Where the integration tests find Postgres (the machine's, by default).
pub fn postgres_admin_url() -> String {
    std::env::var("AIRLOCK_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The storage backends every queue test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Set once per test process, before it creates any database.
static LEFTOVERS_DROPPED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Drops the test databases earlier runs left on the shared server, so they
/// do not pile up across sessions. A database still in use (another test
/// process) cannot be dropped, and is left alone.
async fn drop_leftover_databases(conn: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE datname LIKE 'airlock\\_test\\_%'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names {
        if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            let _in_use = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name}"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// A fresh, empty database of `kind`; the Postgres one is a new database
/// on the machine's server. A missing Postgres fails the test: it is part
/// of the suite, not optional.
pub async fn fresh_database(kind: Db) -> String {
    let name = format!("airlock_test_{}", uuid::Uuid::new_v4().simple());
    match kind {
        Db::Sqlite => {
            let dir = std::env::temp_dir().join("airlock-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}", dir.join(format!("{name}.db")).display())
        }
        Db::Postgres => {
            use sqlx::Connection;
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                panic!("Postgres is required for these tests ({admin}): {e}. Start it or set AIRLOCK_TEST_POSTGRES.")
            });
            LEFTOVERS_DROPPED
                .get_or_init(|| drop_leftover_databases(&mut conn))
                .await;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base)
                .to_owned();
            format!("{base}/{name}")
        }
    }
}

// ---------------------------------------------------------------------------
// Talking to Airlock and the simulator, and what the queue tests assert on
// what they leave behind.

/// The log line of the replica that starts polling Airbyte (the tracker
/// election's winner).
pub const TRACKS_AIRBYTE: &str = "this replica now tracks Airbyte jobs";

/// A fresh HTTP client for tests (generous timeout: `?wait=` holds answers).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(90))
        .build()
        .expect("HTTP client")
}

/// Sends a request; the status and the body as JSON (a JSON string when
/// it is not JSON, `Null` when empty).
pub async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("Airlock answers");
    let status = response.status();
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
    };
    (status, body)
}

/// What `POST /_sim/connections` made.
#[derive(Debug, Clone)]
pub struct Added {
    pub connection_ids: Vec<String>,
    /// The syncs started with them (`start_syncs`), as Airbyte job ids.
    pub job_ids: Vec<i64>,
}

/// `POST /_sim/connections`: what the simulator made.
pub async fn sim_add_connections(
    http: &reqwest::Client,
    sim: &RunningSim,
    request: Value,
) -> Added {
    let response = http
        .post(format!("{}/connections", sim.admin_url()))
        .json(&request)
        .send()
        .await
        .expect("the simulator answers");
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.expect("JSON");
    let list = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    Added {
        connection_ids: list("connection_ids")
            .iter()
            .map(|id| id.as_str().expect("an id").to_owned())
            .collect(),
        job_ids: list("job_ids")
            .iter()
            .map(|id| id.as_i64().expect("a job id"))
            .collect(),
    }
}

/// Connections whose syncs always succeed (no failed attempt inside
/// Airbyte either) and run `secs` seconds before the simulator's time scale.
pub fn reliable_connections(workspace: &str, count: u32, secs: u64) -> Value {
    json!({
        "workspace": workspace,
        "count": count,
        "failure_rate": 0.0,
        "attempt_failure_rate": 0.0,
        "duration_secs": [secs, secs],
    })
}

/// A client of the simulator's public API with its credentials (as
/// Airlock's own would be).
pub fn airbyte_client(sim: &RunningSim) -> airbyte_client::AirbyteClient {
    let (client_id, client_secret) = sim.sim.credentials();
    airbyte_client::AirbyteClient::new(airbyte_client::ClientConfig::new(
        sim.base_url().parse().expect("URL"),
        airbyte_client::Auth::ClientCredentials {
            client_id,
            client_secret: client_secret.into(),
        },
    ))
    .expect("client")
}

/// The connection id as the simulator's counters key it.
pub fn uuid(id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(id).expect("a UUID")
}

/// The `id` of a job as the API renders it.
pub fn id_of(job: &Value) -> String {
    job["id"].as_str().expect("a job id").to_owned()
}

/// True when a job (as the API renders it) will not change any more.
pub fn is_terminal(job: &Value) -> bool {
    matches!(
        job["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled" | "rejected" | "expired")
    )
}

/// Runs a test body on SQLite and on Postgres: `both_backends!(name, ...)`
/// makes `sqlite::name` and `postgres::name`, each calling `name(Db)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Db::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::support::Db::Postgres).await;
                }
            )*
        }
    };
}
pub(crate) use both_backends;

/// Polls `GET /v1/jobs` until every job in `ids` has ended; panics with
/// the stragglers after `within` (a generous deadline).
pub async fn wait_all_terminal(client: &Client, ids: &[String], within: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let jobs = client.jobs(None).await;
        let by_id: HashMap<String, &Value> = jobs.iter().map(|j| (id_of(j), j)).collect();
        let open: Vec<&&Value> = ids
            .iter()
            .filter_map(|id| by_id.get(id))
            .filter(|j| !is_terminal(j))
            .collect();
        if open.is_empty() && ids.iter().all(|id| by_id.contains_key(id)) {
            return jobs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} jobs never ended, e.g. {:#}",
            open.len(),
            open.first().map_or(Value::Null, |j| (**j).clone())
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every connection's jobs in Airlock are all `api` jobs that succeeded,
/// one per trigger, each with its own Airbyte job, and Airbyte created
/// exactly as many.
pub fn assert_exactly_once(
    jobs: &[Value],
    triggers: &HashMap<String, usize>,
    counters: &airbyte_sim::Counters,
) {
    for (connection, expected) in triggers {
        let mine: Vec<&Value> = jobs
            .iter()
            .filter(|j| j["connection_id"] == json!(connection))
            .collect();
        let channels: Vec<&str> = mine.iter().filter_map(|j| j["channel"].as_str()).collect();
        assert!(
            channels.iter().all(|c| *c == "api"),
            "{connection}: {channels:?}"
        );
        assert_eq!(mine.len(), *expected, "{connection}");
        for job in &mine {
            assert_eq!(job["state"], "succeeded", "{job:#}");
        }
        let mut airbyte_ids: Vec<i64> = mine
            .iter()
            .map(|j| j["airbyte_job_id"].as_i64().expect("an Airbyte job"))
            .collect();
        airbyte_ids.sort_unstable();
        airbyte_ids.dedup();
        assert_eq!(
            airbyte_ids.len(),
            *expected,
            "{connection}: shared Airbyte jobs"
        );
        assert_eq!(
            counters.jobs_created_for(uuid(connection)),
            u64::try_from(*expected).expect("small"),
            "{connection}: Airbyte jobs created"
        );
    }
}
