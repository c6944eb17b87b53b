//! Configuration: one TOML file, overridden by `AIRLOCK_*` environment
//! variables, then by command-line flags.
//!
//! Layers, lowest first: built-in defaults, the file, the environment. Every
//! table rejects unknown keys, and every error names the key it is about.
//! Secrets are [`SecretSource`](airlock_domain::secret::SecretSource)s until [`AirbyteConfig::auth`] (or another
//! subsystem) resolves them at start-up.
//!
//! Environment overrides use `__` between path segments:
//! `AIRLOCK_SERVER__LISTEN=0.0.0.0:8080`, `AIRLOCK_AIRBYTE__CLIENT_SECRET=...`,
//! `AIRLOCK_ISSUERS__0__AUDIENCES=["airlock"]`. A value that parses as a TOML
//! value (number, boolean, array, inline table) is taken as such; anything
//! else is a string. Variables without `__` (`AIRLOCK_URL`, `AIRLOCK_TOKEN`)
//! belong to the command line, not to the configuration.

mod env;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::env::apply_env_overrides;
use crate::console::ConsoleConfig;
use crate::front::{FrontConfig, FrontSetup, ServiceAccountConfig};
use crate::mcp::McpConfig;
use crate::server::ServerConfig;
use crate::telemetry::TelemetryConfig;
use crate::web::session::Site;
use airlock_domain::approvals::ApprovalsConfig;
use airlock_domain::audit::AuditConfig;
use airlock_domain::identity::IssuerConfig;
use airlock_domain::jobs::JobsConfig;
use airlock_domain::policy::{GrantConfig, Policy, RoleConfig};
use airlock_domain::settings::InvalidKey;
use airlock_services::airbyte::AirbyteConfig;
use airlock_services::connections::ConnectionsConfig;
use airlock_services::webhooks::WebhookConfig;
use airlock_store::StorageConfig;

/// The whole configuration file, one struct per subsystem.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub airbyte: AirbyteConfig,
    /// The identity providers whose tokens Airlock accepts.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// Custom roles, by name, next to the built-in ones.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// Who gets which role, where.
    #[serde(default)]
    pub grants: Vec<GrantConfig>,
    #[serde(default)]
    pub jobs: JobsConfig,
    #[serde(default)]
    pub connections: ConnectionsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Four-eyes approvals: which actions wait for a second person.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// Receivers of job events.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// The Airbyte-compatible front: token exchange, Airlock's own issuer.
    #[serde(default)]
    pub front: FrontConfig,
    /// Clients whose credentials Airlock checks and whose tokens it signs.
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountConfig>,
    /// The MCP server at `/mcp`: which hosts and browser origins may reach it.
    #[serde(default)]
    pub mcp: McpConfig,
    /// Traces over OTLP: off unless `otlp_endpoint` is set.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The web console at `/console`: sessions and their cookie.
    #[serde(default)]
    pub console: ConsoleConfig,
}

/// What can be wrong with a configuration; every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error(transparent)]
    Invalid(#[from] InvalidKey),
}

/// The prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "AIRLOCK_";

impl Config {
    /// Loads the file at `path` (or the defaults when `None`), then applies
    /// the `AIRLOCK_*__*` overrides found in `env`, then validates.
    pub fn load(path: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let (origin, text) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                (path.display().to_string(), text)
            }
            None => ("defaults".to_owned(), String::new()),
        };
        Self::from_toml(&origin, &text, env)
    }

    /// Like [`Config::load`], from text already read. `origin` names the
    /// text in error messages.
    pub fn from_toml(
        origin: &str,
        text: &str,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: origin.to_owned(),
                    message: e.to_string(),
                })?;
        let overrides = apply_env_overrides(&mut table, env)?;
        // Parse the user's own text when nothing was overridden, so that
        // errors point at the user's lines.
        let config: Config = if overrides.is_empty() {
            toml::from_str(text)
        } else {
            toml::from_str(&table.to_string())
        }
        .map_err(|e| ConfigError::Parse {
            origin: if overrides.is_empty() {
                origin.to_owned()
            } else {
                format!("{origin} with {}", overrides.join(", "))
            },
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: each section checks itself, the
    /// policy and the front against the issuers.
    fn validate(&self) -> Result<(), InvalidKey> {
        self.server.validate()?;
        self.storage.validate()?;
        self.airbyte.validate()?;
        airlock_domain::identity::validate_issuers(&self.issuers)?;
        self.policy()?;
        self.jobs.validate()?;
        self.approvals.validate()?;
        self.connections.validate()?;
        WebhookConfig::validate_all(&self.webhooks)?;
        crate::front::validate(&self.front_setup())?;
        self.mcp.validate()?;
        self.telemetry.validate()?;
        self.console.validate()
    }

    /// What the front is built from.
    pub fn front_setup(&self) -> FrontSetup<'_> {
        FrontSetup {
            front: &self.front,
            accounts: &self.service_accounts,
            issuers: &self.issuers,
            listen: self.server.listen,
            shared_storage: self.storage.is_shared(),
        }
    }

    /// How browsers see Airlock: `[console] public_url`, else `[front]
    /// public_url`; `[console] cookie_secure`.
    pub fn site(&self) -> Site {
        Site {
            public_url: self
                .console
                .public_url
                .clone()
                .or_else(|| self.front.public_url.clone()),
            cookie_secure: self.console.cookie_secure,
        }
    }

    /// The policy of `[roles]` and `[[grants]]`, the grants' issuers checked
    /// against `[[issuers]]`.
    pub fn policy(&self) -> Result<Policy, InvalidKey> {
        Policy::for_issuers(&self.roles, &self.grants, &self.issuers)
    }

    /// The configuration as TOML, secrets redacted: what `check-config` prints.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
