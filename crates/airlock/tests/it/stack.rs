//! The whole stack in one test process: the Airbyte simulator, the demo
//! identity provider (real ES256 tokens) and Airlock on a fresh database,
//! serving on port 0.

use std::sync::Arc;

use airbyte_sim::{RunningSim, SimConfig};
use airlock::app::{App, Extras};
use airlock::config::Config;
use airlock::devidp::{self, DevIdp};
use airlock_domain::identity::{KeySource, StaticKeySource};
use airlock_store::Store;
use axum::Router;
use tokio::sync::oneshot;

use crate::support::{Db, fresh_database};

/// A running stack; dropped or [`Stack::stop`]ped at the end of a test.
pub struct Stack {
    pub sim: RunningSim,
    pub idp: DevIdp,
    /// `http://127.0.0.1:PORT` of Airlock.
    pub base: String,
    pub storage_url: String,
    pub http: reqwest::Client,
    /// The running app's state (policy reload, direct checks).
    pub state: airlock::web::AppState,
    /// The configuration text the stack started with.
    pub config_text: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Configuration text for a stack: one grant per built-in role on the
/// `roles` claim (as in the demo), then `extra` appended.
pub fn config_text(storage_url: &str, sim: &RunningSim, extra: &str) -> String {
    let (id, secret) = sim.sim.credentials();
    let mut text = format!(
        "[storage]\nurl = \"{storage_url}\"\n\n[airbyte]\nurl = \"{}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\ntimeout_secs = 2\n\n",
        sim.base_url()
    );
    text.push_str(extra);
    for role in ["reader", "runner", "editor", "admin", "auditor"] {
        text.push_str(&format!(
            "\n[[grants]]\nrole = \"{role}\"\nmatch = {{ claim = \"roles\", value = \"{role}\" }}\n"
        ));
    }
    text
}

impl Stack {
    /// Starts a stack on a fresh database of `db`; `extra` is TOML added to
    /// the configuration (tables other than storage/airbyte/grants).
    pub async fn start(db: Db, sim_config: SimConfig, extra: &str) -> Self {
        let sim = airbyte_sim::spawn(sim_config)
            .await
            .expect("simulator starts");
        let storage_url = fresh_database(db).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let idp = DevIdp::new(&base).expect("demo idp");
        let text = config_text(&storage_url, &sim, extra);
        let config = Config::from_toml("test", &text, &[]).expect("valid config");
        let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(idp.key_set()));
        let extras = Extras {
            issuers: vec![(idp.issuer_config(), source)],
            routes: Some(Router::new().nest(devidp::MOUNT, idp.router())),
            ..Extras::default()
        };
        let app = App::build(config, extras).await.expect("app builds");
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            sim,
            idp,
            base,
            storage_url,
            http: reqwest::Client::new(),
            state,
            config_text: text,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A bearer token for a demo client (`reader`, `runner`, `editor`,
    /// `admin`, `auditor`, `agent`).
    pub fn token(&self, client: &str) -> String {
        self.idp.token_for(client).expect("a demo client")
    }

    /// Airlock's URL for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A second handle on the stack's database.
    pub async fn store(&self) -> Store {
        Store::connect(&self.storage_url).await.expect("store")
    }

    /// Stops Airlock (finishing requests in flight) and the simulator.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("server ran");
        }
    }
}
