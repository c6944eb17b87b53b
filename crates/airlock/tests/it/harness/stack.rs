//! The whole stack in one test process: the Airbyte simulator, the
//! development identity provider (real ES256 tokens, mounted next to
//! Airlock's routes) and Airlock on its database, serving on port 0.

use std::sync::Arc;

use airbyte_sim::RunningSim;
use airlock::app::{App, Extras};
use airlock::config::Config;
use airlock::devidp::{self, DevIdp};
use airlock_domain::identity::{KeySource, StaticKeySource};
use airlock_store::Store;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Airbyte, AirlockToml, Client, Harness};
use crate::support::{Added, http_client, sim_add_connections};

/// A running stack; [`Stack::stop`]ped (or dropped) at the end of a test.
/// It is used through its Airlock client: `stack.sync(...)`.
#[derive(Debug)]
pub struct Stack {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    /// Airlock's API, signed in with the development provider's tokens.
    pub client: Client,
    pub storage_url: String,
    /// The running app's state (policy reload, direct checks).
    pub state: airlock::web::AppState,
    /// The configuration the stack started with.
    pub config: AirlockToml,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Harness {
    /// Starts the simulator and Airlock in this process.
    pub async fn start(self) -> Stack {
        self.try_start().await.expect("Airlock builds")
    }

    /// Like [`Harness::start`], with Airlock's start-up error (the
    /// simulator and the database are the test's own and must work).
    pub async fn try_start(self) -> anyhow::Result<Stack> {
        let Airbyte::Spawn(sim_config) = &self.airbyte else {
            panic!("an in-process stack runs its own simulator: use .sim(...), not .airbyte(...)");
        };
        let sim = airbyte_sim::spawn(sim_config.clone())
            .await
            .expect("the simulator starts");
        let storage_url = self.storage().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let idp = DevIdp::new(&base).expect("demo identity provider");
        let (client_id, client_secret) = sim.sim.credentials();
        let airbyte = Airbyte::At {
            url: sim.base_url(),
            client_id,
            client_secret: client_secret.into(),
        };
        let config = self.render(&storage_url, &airbyte, None, Some(&base));
        let parsed = Config::from_toml("test", &config.text(), &[]).expect("valid configuration");
        let mut extras = Extras {
            replica: Some(format!("test-{}", uuid::Uuid::new_v4().simple())),
            ..Extras::default()
        };
        if self.dev_idp {
            let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(idp.key_set()));
            extras.issuers = vec![(idp.issuer_config(), source)];
            extras.routes = Some(axum::Router::new().nest(devidp::MOUNT, idp.router()));
        }
        let app = App::build(parsed, extras).await?;
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async move {
            let _ = stopped.await;
        }));
        let http = http_client();
        Ok(Stack {
            sim,
            client: Client {
                http: http.clone(),
                base,
                idp,
            },
            http,
            storage_url,
            state,
            config,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

impl Stack {
    /// A second handle on the stack's database.
    pub async fn store(&self) -> Store {
        Store::connect(&self.storage_url).await.expect("store")
    }

    /// Stops Airlock (finishing requests in flight); returns the simulator,
    /// which stops when dropped.
    pub async fn stop(mut self) -> RunningSim {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("Airlock ran");
        }
        self.sim
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

impl std::ops::Deref for Stack {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}
