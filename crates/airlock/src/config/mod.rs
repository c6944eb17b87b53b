//! Configuration: one TOML file, overridden by `AIRLOCK_*` environment
//! variables, then by command-line flags.
//!
//! Layers, lowest first: built-in defaults, the file, the environment. Every
//! table rejects unknown keys, and every error names the key it is about.
//! Secrets are [`SecretSource`]s until [`AirbyteConfig::auth`] (or another
//! subsystem) resolves them at start-up.
//!
//! Environment overrides use `__` between path segments:
//! `AIRLOCK_SERVER__LISTEN=0.0.0.0:8080`, `AIRLOCK_AIRBYTE__CLIENT_SECRET=...`,
//! `AIRLOCK_ISSUERS__0__AUDIENCES=["airlock"]`. A value that parses as a TOML
//! value (number, boolean, array, inline table) is taken as such; anything
//! else is a string. Variables without `__` (`AIRLOCK_URL`, `AIRLOCK_TOKEN`)
//! belong to the command line, not to the configuration.

pub mod front;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::front::{FrontConfig, ServiceAccountConfig};
use crate::identity::IssuerConfig;
use crate::jobs::JobsConfig;
use crate::policy::{GrantConfig, Policy, RoleConfig};
use crate::secret::{Secret, SecretSource};
use crate::webhooks::WebhookConfig;

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

/// `[console]`: the web console at `/console`. Which identity providers it
/// signs people in with is said per issuer (`console_client_id`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve `/console` at all.
    pub enabled: bool,
    /// The longest a session lives, in seconds (it also ends when the
    /// token it was made from expires).
    pub session_ttl_secs: u64,
    /// When the session cookie is `Secure`.
    pub cookie_secure: CookieSecure,
    /// `scheme://host[:port]` where browsers reach Airlock: the base of the
    /// login's `redirect_uri` and the origin state-changing requests must
    /// come from. Default: `[front] public_url`, else the request's `Host`.
    pub public_url: Option<String>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            session_ttl_secs: 8 * 3600,
            cookie_secure: CookieSecure::Auto,
            public_url: None,
        }
    }
}

/// When the console's cookies carry `Secure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    /// When the console's public URL is `https`, or the request came over
    /// TLS (a proxy in front says so with `X-Forwarded-Proto: https`).
    #[default]
    Auto,
    Always,
    Never,
}

impl ConsoleConfig {
    /// The longest session, in milliseconds.
    pub fn session_ttl_ms(&self) -> i64 {
        i64::try_from(self.session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=30 * 24 * 3600).contains(&self.session_ttl_secs) {
            return Err(ConfigError::invalid(
                "console.session_ttl_secs",
                "must be between 60 and 2592000 (30 days)",
            ));
        }
        if let Some(url) = &self.public_url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let valid = rest.is_some_and(|host| {
                let host = host.trim_end_matches('/');
                !host.is_empty() && !host.contains(['/', '?', '#', '@', ' '])
            });
            if !valid {
                return Err(ConfigError::invalid(
                    "console.public_url",
                    format!("`{url}` is not scheme://host[:port] (http or https, no path)"),
                ));
            }
        }
        Ok(())
    }
}

/// `[telemetry]`: OpenTelemetry traces of requests, dispatches and Airbyte
/// calls, POSTed as OTLP/HTTP JSON. Logs are set by flags, not here.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans
    /// go to `{otlp_endpoint}/v1/traces`. Absent: no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// The share of traces kept, from 0.0 to 1.0, decided at each root span.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "airlock".to_owned(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::invalid(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http(s) URL"),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::invalid(
                "telemetry.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }
}

/// `[audit]`: what the trail records beyond decisions and changes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record successful reads too (every list and get), not only denials
    /// and changes.
    pub record_reads: bool,
    /// Signs exported checkpoints (HMAC-SHA256) so they cannot be forged.
    pub checkpoint_key: Option<SecretSource>,
}

/// `[mcp]`: the MCP server at `/mcp`. Its tools act with the caller's own
/// token and policy; these keys only say which `Host` and `Origin` headers
/// it answers, so that a web page cannot reach a local Airlock through DNS
/// rebinding (refused with 403).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpConfig {
    /// `Host` values served: `name` (any port) or `name:port`; `"*"` serves
    /// any host (only behind a proxy that checks it). Loopback by default.
    pub allowed_hosts: Vec<String>,
    /// Browser origins served, `scheme://host:port` (`:*` for any port);
    /// `"*"` serves any. Requests without an `Origin` header (agents that
    /// are not browsers) are always served. Loopback pages by default.
    pub allowed_origins: Vec<String>,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: ["localhost", "127.0.0.1", "::1"]
                .map(str::to_owned)
                .to_vec(),
            allowed_origins: ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// How Airlock presents Airbyte's connections.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Slugs set by hand, by Airbyte connection id (others derive from names).
    pub slugs: BTreeMap<String, String>,
    /// How often the connection list is fetched again from Airbyte, in seconds.
    pub refresh_secs: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            slugs: BTreeMap::new(),
            refresh_secs: 30,
        }
    }
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Requests one identity may have in flight at once; beyond, 429 with
    /// `Retry-After` (0: no cap).
    pub max_concurrent_per_identity: usize,
    /// Seconds a client may take to send a request body (slow senders get 408).
    pub body_timeout_secs: u64,
    /// Seconds a connection may wait for a request's headers: a client that
    /// stalls mid-header, or a kept-alive connection idle this long, is
    /// closed.
    pub header_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_concurrent_per_identity: 64,
            body_timeout_secs: 10,
            header_timeout_secs: 30,
        }
    }
}

/// Where jobs, idempotency keys and the audit trail are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://user@host/db`.
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://airlock.db".to_owned(),
        }
    }
}

/// How Airlock reaches Airbyte, and with which credential.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AirbyteConfig {
    /// The public API base, ending in `/api/public/v1` (or Cloud's `/v1`).
    pub url: String,
    /// The Configuration API base; defaults to `/api/v1` next to `url`.
    pub config_api_url: Option<String>,
    /// Client credentials of an Airbyte application.
    pub client_id: Option<String>,
    pub client_secret: Option<SecretSource>,
    /// A static bearer token instead of client credentials.
    pub token: Option<SecretSource>,
    /// HTTP basic auth (Airbyte OSS 0.50.x) instead of client credentials.
    pub username: Option<String>,
    pub password: Option<SecretSource>,
    /// Timeout of one call to Airbyte, in seconds.
    pub timeout_secs: u64,
}

impl Default for AirbyteConfig {
    fn default() -> Self {
        Self {
            url: "http://localhost:8000/api/public/v1".to_owned(),
            config_api_url: None,
            client_id: None,
            client_secret: None,
            token: None,
            username: None,
            password: None,
            timeout_secs: 30,
        }
    }
}

/// Airbyte credentials after their secrets were read.
#[derive(Debug, Clone)]
pub enum AirbyteAuth {
    ClientCredentials {
        client_id: String,
        client_secret: Secret,
    },
    Bearer(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    None,
}

impl AirbyteConfig {
    /// The call timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Resolves the one credential the file gives (reading `env` or `file`
    /// secrets), or explains which keys conflict or are missing.
    pub fn auth(
        &self,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AirbyteAuth, ConfigError> {
        let resolve = |key: &str, source: &SecretSource| {
            source
                .resolve(lookup_env)
                .map_err(|message| ConfigError::invalid(format!("airbyte.{key}"), message))
        };
        let methods = [
            self.client_id.is_some() || self.client_secret.is_some(),
            self.token.is_some(),
            self.username.is_some() || self.password.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(ConfigError::invalid(
                "airbyte",
                "give one of client_id/client_secret, token, or username/password",
            ));
        }
        match (self, &self.client_id, &self.client_secret) {
            (_, Some(id), Some(secret)) => {
                return Ok(AirbyteAuth::ClientCredentials {
                    client_id: id.clone(),
                    client_secret: resolve("client_secret", secret)?,
                });
            }
            (_, Some(_), None) => {
                return Err(ConfigError::invalid(
                    "airbyte.client_secret",
                    "missing (client_id is set)",
                ));
            }
            (_, None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "airbyte.client_id",
                    "missing (client_secret is set)",
                ));
            }
            _ => {}
        }
        if let Some(token) = &self.token {
            return Ok(AirbyteAuth::Bearer(resolve("token", token)?));
        }
        match (&self.username, &self.password) {
            (Some(username), Some(password)) => Ok(AirbyteAuth::Basic {
                username: username.clone(),
                password: resolve("password", password)?,
            }),
            (Some(_), None) => Err(ConfigError::invalid(
                "airbyte.password",
                "missing (username is set)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "airbyte.username",
                "missing (password is set)",
            )),
            (None, None) => Ok(AirbyteAuth::None),
        }
    }
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
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// A semantic error about one key, named by its dotted path.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
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

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        self.jobs
            .validate()
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        WebhookConfig::validate_all(&self.webhooks)
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        for (id, slug) in &self.connections.slugs {
            if slug.is_empty()
                || !slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(ConfigError::invalid(
                    format!("connections.slugs.{id}"),
                    "a slug is lowercase letters, digits and `-`",
                ));
            }
        }
        for (key, secs) in [
            ("server.body_timeout_secs", self.server.body_timeout_secs),
            (
                "server.header_timeout_secs",
                self.server.header_timeout_secs,
            ),
            ("connections.refresh_secs", self.connections.refresh_secs),
        ] {
            if secs == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        let url = &self.storage.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::invalid(
                "storage.url",
                format!("`{url}` is neither sqlite:PATH nor postgres://..."),
            ));
        }
        for (key, value) in [
            ("airbyte.url", Some(&self.airbyte.url)),
            (
                "airbyte.config_api_url",
                self.airbyte.config_api_url.as_ref(),
            ),
        ] {
            if let Some(value) = value
                && !(value.starts_with("http://") || value.starts_with("https://"))
            {
                return Err(ConfigError::invalid(
                    key,
                    format!("`{value}` is not an http(s) URL"),
                ));
            }
        }
        if self.airbyte.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "airbyte.timeout_secs",
                "must be at least 1",
            ));
        }
        crate::identity::validate_issuers(&self.issuers)
            .map_err(|e| ConfigError::invalid(e.key, e.message))?;
        self.policy()
            .map_err(|e| ConfigError::invalid(e.key(), e.message()))?;
        front::validate(self).map_err(|(key, message)| ConfigError::invalid(key, message))?;
        crate::host_gate::validate("mcp", &self.mcp.allowed_hosts, &self.mcp.allowed_origins)
            .map_err(|(key, message)| ConfigError::invalid(key, message))?;
        self.telemetry.validate()?;
        self.console.validate()?;
        Ok(())
    }

    /// The policy of `[roles]` and `[[grants]]`, the grants' issuers checked
    /// against `[[issuers]]`.
    pub fn policy(&self) -> Result<Policy, crate::policy::PolicyError> {
        Policy::for_issuers(&self.roles, &self.grants, &self.issuers)
    }

    /// The configuration as TOML, secrets redacted: what `check-config` prints.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// Applies `AIRLOCK_A__B__C=value` variables to `table`; returns the names of
/// the variables applied, for error messages.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let mut applied = Vec::new();
    let mut vars: Vec<_> = env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && name.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::Env {
                var: name.clone(),
                message: "empty path segment".to_owned(),
            });
        }
        let value = parse_env_value(raw);
        set_path(table, &path, value).map_err(|message| ConfigError::Env {
            var: name.clone(),
            message,
        })?;
        applied.push(name.clone());
    }
    Ok(applied)
}

/// A TOML value when the text is one (`8080`, `true`, `["a", "b"]`), else a string.
fn parse_env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match probe.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("empty path")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    let child = table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    set_in_value(child, first, rest, value)
}

fn set_in_value(
    node: &mut toml::Value,
    name: &str,
    rest: &[String],
    value: toml::Value,
) -> Result<(), String> {
    match node {
        toml::Value::Table(t) => set_path(t, rest, value),
        toml::Value::Array(items) => {
            let (index, deeper) = rest.split_first().ok_or("empty path")?;
            let i: usize = index
                .parse()
                .map_err(|_| format!("`{name}` is a list: expected an index, found `{index}`"))?;
            if i > items.len() {
                return Err(format!(
                    "`{name}` has {} entries: index {i} would leave a gap",
                    items.len()
                ));
            }
            if i == items.len() {
                items.push(toml::Value::Table(toml::Table::new()));
            }
            if deeper.is_empty() {
                items[i] = value;
                Ok(())
            } else {
                set_in_value(&mut items[i], index, deeper, value)
            }
        }
        _ => Err(format!("`{name}` is not a table")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_load_without_a_file() {
        let config = Config::load(None, &[]).expect("defaults are valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.storage.url, "sqlite://airlock.db");
        assert!(matches!(
            config.airbyte.auth(&|_| None),
            Ok(AirbyteAuth::None)
        ));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::from_toml(
            "t.toml",
            "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n",
            &[],
        )
        .expect_err("typo must fail")
        .to_string();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("t.toml"), "{err}");

        let err = Config::from_toml("t.toml", "[serverz]\n", &[])
            .expect_err("unknown table")
            .to_string();
        assert!(err.contains("serverz"), "{err}");
    }

    #[test]
    fn env_overrides_win_and_are_typed() {
        let config = Config::from_toml(
            "t.toml",
            "[airbyte]\ntimeout_secs = 5\n",
            &env(&[
                ("AIRLOCK_AIRBYTE__TIMEOUT_SECS", "7"),
                ("AIRLOCK_SERVER__LISTEN", "0.0.0.0:9000"),
                ("AIRLOCK_URL", "http://ignored"),
                ("OTHER__THING", "x"),
            ]),
        )
        .expect("valid");
        assert_eq!(config.airbyte.timeout_secs, 7);
        assert_eq!(config.server.listen.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn unknown_env_override_is_named() {
        let err = Config::from_toml("t.toml", "", &env(&[("AIRLOCK_SERVER__LISTN", "x")]))
            .expect_err("typo")
            .to_string();
        assert!(err.contains("listn"), "{err}");
        assert!(err.contains("AIRLOCK_SERVER__LISTN"), "{err}");
    }

    #[test]
    fn env_override_reaches_into_lists() {
        let config = Config::from_toml(
            "t.toml",
            "[[issuers]]\nissuer = \"https://a\"\n",
            &env(&[("AIRLOCK_ISSUERS__0__AUDIENCES", r#"["x", "y"]"#)]),
        )
        .expect("valid");
        assert_eq!(config.issuers[0].audiences, vec!["x", "y"]);
        let err = Config::from_toml("t.toml", "", &env(&[("AIRLOCK_ISSUERS__3__ISSUER", "x")]))
            .expect_err("gap")
            .to_string();
        assert!(err.contains("AIRLOCK_ISSUERS__3__ISSUER"), "{err}");
    }

    #[test]
    fn airbyte_credentials_resolve_and_conflicts_are_named() {
        let config = Config::from_toml(
            "t.toml",
            "[airbyte]\nclient_id = \"id\"\nclient_secret = { env = \"SECRET\" }\n",
            &[],
        )
        .expect("valid");
        let auth = config
            .airbyte
            .auth(&|name| (name == "SECRET").then(|| "s3cret".to_owned()))
            .expect("resolves");
        match auth {
            AirbyteAuth::ClientCredentials {
                client_id,
                client_secret,
            } => {
                assert_eq!(client_id, "id");
                assert_eq!(client_secret.expose(), "s3cret");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = config
            .airbyte
            .auth(&|_| None)
            .expect_err("unset env")
            .to_string();
        assert!(
            err.contains("airbyte.client_secret") && err.contains("SECRET"),
            "{err}"
        );

        let both = Config::from_toml(
            "t.toml",
            "[airbyte]\nclient_id = \"id\"\ntoken = \"t\"\n",
            &[],
        )
        .expect("parses");
        assert!(both.airbyte.auth(&|_| None).is_err());
    }

    #[test]
    fn redacted_output_hides_inline_secrets() {
        let config = Config::from_toml(
            "t.toml",
            "[airbyte]\nclient_id = \"id\"\nclient_secret = \"hunter2\"\n",
            &[],
        )
        .expect("valid");
        let printed = config.to_redacted_toml();
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn bad_values_are_named() {
        for (text, key) in [
            ("[storage]\nurl = \"mysql://x\"\n", "storage.url"),
            ("[airbyte]\nurl = \"ftp://x\"\n", "airbyte.url"),
            ("[airbyte]\ntimeout_secs = 0\n", "airbyte.timeout_secs"),
            ("[server]\nlisten = \"nope\"\n", "listen"),
            (
                "[telemetry]\notlp_endpoint = \"collector:4318\"\n",
                "telemetry.otlp_endpoint",
            ),
            (
                "[telemetry]\nsample_ratio = 1.5\n",
                "telemetry.sample_ratio",
            ),
            (
                "[telemetry]\nservice_name = \" \"\n",
                "telemetry.service_name",
            ),
            ("[telemetry]\notlp_endpont = \"http://x\"\n", "otlp_endpont"),
            (
                "[console]\nsession_ttl_secs = 5\n",
                "console.session_ttl_secs",
            ),
            (
                "[console]\npublic_url = \"https://a.example/console\"\n",
                "console.public_url",
            ),
            ("[console]\ncookie_secure = \"sometimes\"\n", "sometimes"),
            ("[console]\nenable = true\n", "enable"),
        ] {
            let err = Config::from_toml("t.toml", text, &[])
                .expect_err(text)
                .to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
