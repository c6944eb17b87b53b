//! Helpers shared by the integration tests: where the repository is, and the
//! external peers (Python packages, Node) that the tests drive.

use std::path::PathBuf;
use std::process::Command;

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

/// Airbyte's OpenAPI document, kept outside the repository in `../shared`.
pub fn airbyte_openapi() -> PathBuf {
    let candidates = [
        std::env::var_os("AIRBYTE_OPENAPI").map(PathBuf::from),
        Some(repo_root().join("../shared/airbyte/airbyte-api.openapi.yaml")),
        Some(PathBuf::from(
            "/work/shared/airbyte/airbyte-api.openapi.yaml",
        )),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .expect("Airbyte's OpenAPI document: set AIRBYTE_OPENAPI or keep ../shared/airbyte next to the repository")
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
// End-to-end stacks: the Airbyte simulator, the development identity provider
// and Airlock itself, each on a port of 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use airbyte_sim::{RunningSim, SimConfig};
use airlock::app::{App, Extras};
use airlock::config::Config;
use airlock::devidp::{self, DevIdp};
use airlock_domain::identity::{KeySource, StaticKeySource};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The built-in roles, each granted everywhere to tokens whose `roles`
/// claim names it (the development provider's clients carry one each).
pub const ROLES: [&str; 5] = ["reader", "runner", "editor", "admin", "auditor"];

/// Airlock's configuration as TOML: one grant per built-in role on the
/// `roles` claim, then `[jobs]` and `[[issuers]]` as given (TOML already).
pub fn airlock_toml(
    storage_url: &str,
    sim: &RunningSim,
    airbyte_timeout_secs: u64,
    jobs: &str,
    issuers: &str,
) -> String {
    let (client_id, client_secret) = sim.sim.credentials();
    let mut text = format!(
        "[storage]\nurl = \"{storage_url}\"\n\n\
         [airbyte]\nurl = \"{}\"\nclient_id = \"{client_id}\"\n\
         client_secret = \"{client_secret}\"\ntimeout_secs = {airbyte_timeout_secs}\n\n\
         [jobs]\n{jobs}\n\n[connections]\nrefresh_secs = 600\n\n{issuers}\n",
        sim.base_url()
    );
    for role in ROLES {
        text.push_str(&format!(
            "\n[[grants]]\nrole = \"{role}\"\nmatch = {{ claim = \"roles\", value = \"{role}\" }}\n"
        ));
    }
    text
}

/// Quick `[jobs]` settings: one-second tracking, short backoff and leases.
pub const FAST_JOBS: &str = "poll_interval_secs = 1\nbackoff_base_secs = 1\nbackoff_max_secs = 2\n\
    busy_retry_secs = 1\nlease_secs = 5\ndispatch_concurrency = 8";

/// What an end-to-end stack is made of.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub db: Db,
    pub sim: SimConfig,
    /// The body of `[jobs]`.
    pub jobs: String,
    pub airbyte_timeout_secs: u64,
}

impl StackOptions {
    /// Fast jobs (the simulator runs a thousand times faster than life)
    /// and [`FAST_JOBS`].
    pub fn new(db: Db) -> Self {
        Self {
            db,
            sim: SimConfig {
                time_scale: 0.001,
                ..SimConfig::default()
            },
            jobs: FAST_JOBS.to_owned(),
            airbyte_timeout_secs: 5,
        }
    }
}

/// The simulator, the identity provider and Airlock, running in-process.
#[derive(Debug)]
pub struct Stack {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    /// Airlock's API, signed in with the development provider's tokens.
    pub client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// Starts everything on a fresh database.
    pub async fn start(options: StackOptions) -> Self {
        let sim = airbyte_sim::spawn(options.sim)
            .await
            .expect("the simulator starts");
        let storage_url = fresh_database(options.db).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let idp = DevIdp::new(&base).expect("demo identity provider");
        let text = airlock_toml(
            &storage_url,
            &sim,
            options.airbyte_timeout_secs,
            &options.jobs,
            "",
        );
        let config = Config::from_toml("test", &text, &[]).expect("valid configuration");
        let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(idp.key_set()));
        let extras = Extras {
            issuers: vec![(idp.issuer_config(), source)],
            routes: Some(axum::Router::new().nest(devidp::MOUNT, idp.router())),
            clock: None,
            replica: Some(format!("test-{}", uuid::Uuid::new_v4().simple())),
        };
        let app = App::build(config, extras).await.expect("Airlock builds");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async move {
            let _ = stopped.await;
        }));
        let http = http_client();
        let client = Client {
            http: http.clone(),
            base,
            idp,
        };
        Self {
            sim,
            http,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops Airlock, then the simulator.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("Airlock ran");
        }
    }

    /// Adds connections to the simulator (`POST /_sim/connections`) and
    /// makes Airlock's catalog learn them.
    pub async fn add_connections(&self, request: Value) -> Added {
        let added = sim_add_connections(&self.http, &self.sim, request).await;
        // Resolving an unknown id refreshes the catalog.
        if let Some(first) = added.connection_ids.first() {
            let (status, body) = self.get(&format!("/v1/connections/{first}"), "admin").await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        added
    }

    /// Adds one connection; returns its id.
    pub async fn add_connection(&self, request: Value) -> String {
        self.add_connections(request).await.connection_ids.remove(0)
    }
}

/// A stack is used through its Airlock client: `stack.sync(...)`.
impl std::ops::Deref for Stack {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// An HTTP client for Airlock that signs in with the development identity
/// provider's tokens, one role per call.
#[derive(Debug, Clone)]
pub struct Client {
    pub http: reqwest::Client,
    /// Airlock's root URL.
    pub base: String,
    pub idp: DevIdp,
}

impl Client {
    /// A signed token of the development provider for `role`.
    pub fn token(&self, role: &str) -> String {
        self.idp.token_for(role).expect("a demo client")
    }

    /// A request to Airlock as `role` (`None`: without a token).
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        role: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match role {
            Some(role) => request.bearer_auth(self.token(role)),
            None => request,
        }
    }

    /// `POST path` as `role`; the status and the JSON body.
    pub async fn post(&self, path: &str, role: &str) -> (StatusCode, Value) {
        send(self.request(reqwest::Method::POST, path, Some(role))).await
    }

    /// `GET path` as `role`; the status and the JSON body.
    pub async fn get(&self, path: &str, role: &str) -> (StatusCode, Value) {
        send(self.request(reqwest::Method::GET, path, Some(role))).await
    }

    /// `POST /v1/connections/{connection}/sync{query}` as a runner.
    pub async fn sync(&self, connection: &str, query: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/v1/connections/{connection}/sync{query}"),
            "runner",
        )
        .await
    }

    /// A sync that must be accepted (202); returns the job's id.
    pub async fn accepted_sync(&self, connection: &str) -> String {
        let (status, job) = self.sync(connection, "").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        id_of(&job)
    }

    /// A job as an admin sees it.
    pub async fn job(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/jobs/{id}"), "admin").await;
        assert_eq!(status, StatusCode::OK, "GET /v1/jobs/{id}: {body}");
        body
    }

    /// Polls a job until `done` holds; panics with its last state after
    /// `within` (a generous deadline, not a timing assertion).
    pub async fn wait_job(
        &self,
        id: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let job = self.job(id).await;
            if done(&job) {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} did not get there; last seen: {job:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a job until it is in a terminal state.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        self.wait_job(id, Duration::from_secs(60), is_terminal)
            .await
    }

    /// Every job (or every job of one connection), newest first, as an
    /// admin sees them, following `next_cursor`.
    pub async fn jobs(&self, connection: Option<&str>) -> Vec<Value> {
        let filter = connection.map_or(String::new(), |c| format!("&connection={c}"));
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, body) = self
                .get(&format!("/v1/jobs?limit=200{filter}{cursor}"), "admin")
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            all.extend(body["data"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    }

    /// The job's timeline from `GET /v1/jobs/{id}/events`, read until the
    /// server ends the stream (after a terminal state): `(seq, state, at)`.
    pub async fn events(&self, id: &str) -> Vec<(i64, String, i64)> {
        let mut response = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/jobs/{id}/events"),
                Some("reader"),
            )
            .send()
            .await
            .expect("the event stream opens");
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        let mut text = String::new();
        let read = async {
            while let Some(chunk) = response.chunk().await.expect("the stream reads") {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(Duration::from_secs(60), read)
            .await
            .expect("the event stream ends after a terminal state");
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|data| {
                let event: Value = serde_json::from_str(data.trim()).expect("JSON event");
                let at = time::OffsetDateTime::parse(
                    event["at"].as_str().expect("at"),
                    &time::format_description::well_known::Rfc3339,
                )
                .expect("an RFC 3339 time");
                (
                    event["seq"].as_i64().expect("seq"),
                    event["state"].as_str().expect("state").to_owned(),
                    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("ms"),
                )
            })
            .collect()
    }
}

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
        Some("succeeded" | "failed" | "cancelled")
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

// ---------------------------------------------------------------------------
// Processes: `airlock serve` as a child process, the development identity
// provider on its own port (a real issuer, found through discovery), and
// what the queue tests assert on what they leave behind.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::Mutex;

/// The log line of the replica that starts polling Airbyte (the tracker
/// election's winner).
pub const TRACKS_AIRBYTE: &str = "this replica now tracks Airbyte jobs";

/// `airlock serve` as a child process: its address is read from its log
/// (JSON lines on stderr), which is kept for assertions.
pub struct Served {
    child: Child,
    pub client: Client,
    /// Every log line so far, parsed.
    log: Arc<Mutex<Vec<Value>>>,
}

impl Served {
    /// Starts `airlock serve --config config` on a free port and waits
    /// until it listens; `idp` signs the client's tokens.
    pub fn start(config: &std::path::Path, idp: &DevIdp) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock"))
            .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .arg("--config")
            .arg(config)
            .env("AIRLOCK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("airlock serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (found, address) = std::sync::mpsc::channel();
        let kept = Arc::clone(&log);
        // Reads the log to its end, so that the child never blocks on it.
        std::thread::spawn(move || {
            let mut found = Some(found);
            let mut seen = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    seen.push(line);
                    continue;
                };
                if event["message"] == "airlock listening"
                    && let (Some(sender), Some(addr)) = (found.take(), event["addr"].as_str())
                {
                    let _ = sender.send(Ok(addr.to_owned()));
                }
                if found.is_some() {
                    seen.push(line);
                }
                kept.lock().expect("log").push(event);
            }
            if let Some(sender) = found {
                let _ = sender.send(Err(seen.join("\n")));
            }
        });
        let addr = match address.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(log)) => panic!("airlock serve ended before listening:\n{log}"),
            Err(error) => panic!("airlock serve did not listen: {error}"),
        };
        Self {
            child,
            client: Client {
                http: http_client(),
                base: format!("http://{addr}"),
                idp: idp.clone(),
            },
            log,
        }
    }

    /// The process id (for `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many log lines so far carry `message`.
    pub fn logged(&self, message: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|event| event["message"] == message)
            .count()
    }

    /// The log lines of level `level` (`ERROR`, `WARN`...) so far.
    pub fn log_at(&self, level: &str) -> Vec<Value> {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|event| event["level"] == level)
            .cloned()
            .collect()
    }

    /// Resident memory in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is alive");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Sends a signal (`TERM`, `HUP`...) with the system's `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `bound` for the process to exit; its status, or `None`
    /// if it is still running.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + bound;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration file for `airlock serve` in a directory of its own,
/// removed when dropped.
pub struct ConfigFile {
    dir: PathBuf,
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn write(text: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("airlock-it-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("airlock.toml");
        std::fs::write(&path, text).expect("config written");
        Self { dir, path }
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The development identity provider served on its own port, as a real
/// issuer is: `serve` finds its keys through discovery. It can go away
/// and come back on the same port with the same keys.
pub struct IdpServer {
    pub idp: DevIdp,
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl IdpServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let idp = DevIdp::new(&format!("http://{addr}")).expect("identity provider");
        let mut server = Self {
            idp,
            addr,
            stop: None,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let routes = axum::Router::new().nest(devidp::MOUNT, self.idp.router());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, routes)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        }));
    }

    /// `[[issuers]]` trusting it (ES256 over plain HTTP, audience `airlock`);
    /// `extra` adds keys to the table.
    pub fn issuer_toml(&self, extra: &str) -> String {
        format!(
            "[[issuers]]\nissuer = \"{}\"\naudiences = [\"airlock\"]\nalgorithms = [\"ES256\"]\nallow_insecure_http = true\n{extra}\n",
            self.idp.issuer()
        )
    }

    /// Stops serving and closes its connections: the provider is gone.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Serves again on the same port, with the same keys.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the identity provider's port is free again");
        self.serve(listener);
    }
}

impl Drop for IdpServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

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
