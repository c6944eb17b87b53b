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
use airlock::identity::{KeySource, StaticKeySource};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The built-in roles, each granted everywhere to tokens whose `roles`
/// claim names it (the development provider's clients carry one each).
pub const ROLES: [&str; 5] = ["reader", "runner", "editor", "admin", "auditor"];

/// Airlock's configuration as TOML: one grant per built-in role on the
/// `roles` claim, `[jobs]` and `[[issuers]]` as given (already TOML).
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
         [airbyte]\nurl = \"{}\"\nclient_id = \"{client_id}\"\nclient_secret = \"{client_secret}\"\ntimeout_secs = {airbyte_timeout_secs}\n\n\
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
    /// Fast jobs (the simulator runs a thousand times faster than life),
    /// one-second tracking and short backoff.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            sim: SimConfig {
                time_scale: 0.001,
                ..SimConfig::default()
            },
            jobs: "poll_interval_secs = 1\nbackoff_base_secs = 1\nbackoff_max_secs = 2\nbusy_retry_secs = 1\nlease_secs = 5".to_owned(),
            airbyte_timeout_secs: 5,
        }
    }
}

/// The simulator, the identity provider and Airlock, running in-process.
#[derive(Debug)]
pub struct Stack {
    pub sim: RunningSim,
    pub idp: DevIdp,
    /// Airlock's root URL, `http://127.0.0.1:PORT`.
    pub base: String,
    pub storage_url: String,
    pub http: reqwest::Client,
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
        Self {
            sim,
            idp,
            base,
            storage_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client"),
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
        self.wait_job(id, Duration::from_secs(60), |job| is_terminal(job))
            .await
    }

    /// Every job of a connection, newest first (an admin's view).
    pub async fn jobs_of(&self, connection: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, body) = self
                .get(
                    &format!("/v1/jobs?connection={connection}&limit=200{cursor}"),
                    "admin",
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            all.extend(body["data"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return all,
            }
        }
    }

    /// Adds connections to the simulator (`POST /_sim/connections`) and
    /// makes Airlock's catalog learn them; returns their ids.
    pub async fn add_connections(&self, request: Value) -> Vec<String> {
        let added = sim_add_connections(&self.http, &self.sim, request).await;
        let ids: Vec<String> = added["connection_ids"]
            .as_array()
            .expect("connection ids")
            .iter()
            .map(|id| id.as_str().expect("an id").to_owned())
            .collect();
        // Resolving an unknown id refreshes the catalog.
        if let Some(first) = ids.first() {
            let (status, body) = self.get(&format!("/v1/connections/{first}"), "admin").await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        ids
    }
}

/// Sends a request; the status and the body as JSON (`Null` when empty).
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

/// `POST /_sim/connections`: the simulator's answer.
pub async fn sim_add_connections(
    http: &reqwest::Client,
    sim: &RunningSim,
    request: Value,
) -> Value {
    let response = http
        .post(format!("{}/connections", sim.admin_url()))
        .json(&request)
        .send()
        .await
        .expect("the simulator answers");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("JSON")
}

/// Connections whose syncs always succeed, take `secs` seconds (before the
/// simulator's time scale) and are never retried inside Airbyte.
pub fn reliable_connections(workspace: &str, count: u32, secs: u64) -> Value {
    json!({
        "workspace": workspace,
        "count": count,
        "failure_rate": 0.0,
        "attempt_failure_rate": 0.0,
        "duration_secs": [secs, secs],
    })
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
