//! The one test harness: a builder of what a test runs Airlock with (the
//! storage backend, Airbyte, identity providers, grants, extra
//! configuration) that either starts Airlock in the test process
//! ([`Harness::start`], a [`Stack`]) or writes its configuration for
//! `airlock serve` processes ([`Harness::deploy`], a [`Deployment`]).
//!
//! ```ignore
//! let stack = Harness::fast(Db::Sqlite)
//!     .grant(Grant::matching("auditor", "client_id", "reader"))
//!     .extra("[console]\nsession_ttl_secs = 120")
//!     .start()
//!     .await;
//! ```

mod client;
pub mod config;
mod process;
mod stack;

use airbyte_sim::{RunningSim, SimConfig};
use toml::{Table, Value};

pub use client::Client;
pub use config::{AirlockToml, Grant, Issuer, ROLES, fast_jobs, secret_env, secret_file};
pub use process::{IdpServer, Served, TempDir};
pub use stack::Stack;

use crate::support::{Db, fresh_database};

/// Where Airlock finds Airbyte.
#[derive(Debug, Clone)]
enum Airbyte {
    /// A simulator the harness starts (in-process stacks only).
    Spawn(SimConfig),
    /// One that is already running.
    At {
        url: String,
        client_id: String,
        client_secret: Value,
    },
}

/// Where Airlock keeps its state.
#[derive(Debug, Clone)]
enum Storage {
    /// A fresh database of this backend.
    Fresh(Db),
    /// This database URL.
    Url(String),
}

/// What Airlock runs with; see the module's documentation.
#[derive(Debug, Clone)]
pub struct Harness {
    storage: Storage,
    airbyte: Airbyte,
    airbyte_timeout_secs: Option<i64>,
    jobs: Option<Table>,
    catalog_refresh_secs: Option<i64>,
    dev_idp: bool,
    dev_issuer_keys: Table,
    role_grants: bool,
    grants: Vec<Grant>,
    issuers: Vec<Issuer>,
    entries: Vec<(String, Table)>,
    settings: Vec<(String, String, Value)>,
    extra: Vec<String>,
    front_public_url: bool,
    log_level: String,
    log_format: &'static str,
    env: Vec<(String, String)>,
}

impl Harness {
    /// A fresh database of `db`, a simulator with its defaults, a two-second
    /// Airbyte timeout, the development identity provider, and each built-in
    /// role granted on the `roles` claim (see [`ROLES`]).
    pub fn new(db: Db) -> Self {
        Self {
            storage: Storage::Fresh(db),
            airbyte: Airbyte::Spawn(SimConfig::default()),
            airbyte_timeout_secs: Some(2),
            jobs: None,
            catalog_refresh_secs: None,
            dev_idp: true,
            dev_issuer_keys: Table::new(),
            role_grants: true,
            grants: Vec::new(),
            issuers: Vec::new(),
            entries: Vec::new(),
            settings: Vec::new(),
            extra: Vec::new(),
            front_public_url: false,
            log_level: "info".to_owned(),
            log_format: "json",
            env: Vec::new(),
        }
    }

    /// [`Harness::new`] for job tests: a simulator a thousand times faster
    /// than life, [`fast_jobs`], a five-second Airbyte timeout, and a
    /// catalog that refreshes only when asked (every ten minutes).
    pub fn fast(db: Db) -> Self {
        Self::new(db)
            .sim(SimConfig {
                time_scale: 0.001,
                ..SimConfig::default()
            })
            .fast_jobs()
            .airbyte_timeout(5)
            .catalog_refresh(600)
    }

    /// The simulator an in-process stack starts.
    pub fn sim(mut self, config: SimConfig) -> Self {
        self.airbyte = Airbyte::Spawn(config);
        self
    }

    /// Airbyte is this running simulator (for deployments).
    pub fn airbyte(self, sim: &RunningSim) -> Self {
        let (client_id, client_secret) = sim.sim.credentials();
        self.airbyte_at(&sim.base_url(), &client_id, client_secret)
    }

    /// Airbyte's public API at `url`, with these client credentials (the
    /// secret may be a string, [`secret_env`] or [`secret_file`]).
    pub fn airbyte_at(mut self, url: &str, client_id: &str, secret: impl Into<Value>) -> Self {
        self.airbyte = Airbyte::At {
            url: url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: secret.into(),
        };
        self
    }

    /// `[airbyte] timeout_secs`.
    pub fn airbyte_timeout(mut self, secs: i64) -> Self {
        self.airbyte_timeout_secs = Some(secs);
        self
    }

    /// Leaves `[airbyte] timeout_secs` at Airlock's default.
    pub fn default_airbyte_timeout(mut self) -> Self {
        self.airbyte_timeout_secs = None;
        self
    }

    /// `[jobs]` as [`fast_jobs`].
    pub fn fast_jobs(mut self) -> Self {
        self.jobs = Some(fast_jobs());
        self
    }

    /// `[connections] refresh_secs`.
    pub fn catalog_refresh(mut self, secs: i64) -> Self {
        self.catalog_refresh_secs = Some(secs);
        self
    }

    /// This database (such as a proxy's address) instead of a fresh one.
    pub fn storage_url(mut self, url: &str) -> Self {
        self.storage = Storage::Url(url.to_owned());
        self
    }

    /// No development identity provider: tokens come from elsewhere.
    pub fn without_dev_idp(mut self) -> Self {
        self.dev_idp = false;
        self
    }

    /// The development identity provider after all (after a builder that
    /// left it out).
    pub fn with_dev_idp(mut self) -> Self {
        self.dev_idp = true;
        self
    }

    /// Another key of the development provider's `[[issuers]]` entry (for
    /// deployments, where it is configured like any issuer).
    pub fn dev_issuer_key(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.dev_issuer_keys.insert(key.to_owned(), value.into());
        self
    }

    /// No grant per built-in role: only those given with [`Harness::grant`].
    pub fn without_role_grants(mut self) -> Self {
        self.role_grants = false;
        self
    }

    /// One more `[[grants]]` entry.
    pub fn grant(mut self, grant: Grant) -> Self {
        self.grants.push(grant);
        self
    }

    /// One more `[[issuers]]` entry.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// One more entry of another array of tables (`service_accounts`,
    /// `webhooks`...).
    pub fn entry(mut self, array: &str, entry: Table) -> Self {
        self.entries.push((array.to_owned(), entry));
        self
    }

    /// Sets `key` of the table `[section]` (after the harness's own keys).
    pub fn set(mut self, section: &str, key: &str, value: impl Into<Value>) -> Self {
        self.settings
            .push((section.to_owned(), key.to_owned(), value.into()));
        self
    }

    /// TOML text merged into the configuration last (see
    /// [`AirlockToml::merge_text`]).
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push(toml.to_owned());
        self
    }

    /// Resets wait for another person's approval (`[approvals] require =
    /// ["jobs:reset"]`), as `airlock demo` sets it.
    pub fn approving_resets(self) -> Self {
        self.extra("[approvals]\nrequire = [\"jobs:reset\"]\n")
    }

    /// `[front] public_url` is the stack's own URL (in-process stacks).
    pub fn front_public_url(mut self) -> Self {
        self.front_public_url = true;
        self
    }

    /// `AIRLOCK_LOG` of `airlock serve` processes (`info` by default).
    pub fn log_level(mut self, level: &str) -> Self {
        level.clone_into(&mut self.log_level);
        self
    }

    /// `airlock serve` processes write text logs (JSON lines otherwise).
    pub fn text_logs(mut self) -> Self {
        self.log_format = "text";
        self
    }

    /// An environment variable of `airlock serve` processes.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The database URL: the given one, or a fresh database.
    async fn storage(&self) -> String {
        match &self.storage {
            Storage::Fresh(db) => fresh_database(*db).await,
            Storage::Url(url) => url.clone(),
        }
    }

    /// The configuration for `storage_url`, Airbyte at `airbyte`, issuers
    /// `first` before the others, and `base` as Airlock's own URL.
    fn render(
        &self,
        storage_url: &str,
        airbyte: &Airbyte,
        first: Option<Issuer>,
        base: Option<&str>,
    ) -> AirlockToml {
        let mut config = AirlockToml::default();
        config.set("storage", "url", storage_url);
        let Airbyte::At {
            url,
            client_id,
            client_secret,
        } = airbyte
        else {
            panic!("render needs Airbyte's address");
        };
        config.set("airbyte", "url", url.as_str());
        config.set("airbyte", "client_id", client_id.as_str());
        config.set("airbyte", "client_secret", client_secret.clone());
        if let Some(secs) = self.airbyte_timeout_secs {
            config.set("airbyte", "timeout_secs", secs);
        }
        if let Some(jobs) = &self.jobs {
            config.set_all("jobs", jobs);
        }
        if let Some(secs) = self.catalog_refresh_secs {
            config.set("connections", "refresh_secs", secs);
        }
        if self.front_public_url {
            let base = base.expect("the front's public URL is an in-process stack's own");
            config.set("front", "public_url", base);
        }
        for issuer in first.into_iter().chain(self.issuers.iter().cloned()) {
            config.push("issuers", issuer.into_table());
        }
        let roles = ROLES
            .iter()
            .filter(|_| self.role_grants)
            .map(|r| Grant::role(r));
        for grant in roles.chain(self.grants.iter().cloned()) {
            config = config.with_grant(grant);
        }
        for (array, entry) in &self.entries {
            config.push(array, entry.clone());
        }
        for (section, key, value) in &self.settings {
            config.set(section, key, value.clone());
        }
        for text in &self.extra {
            config.merge_text(text);
        }
        config
    }
}
