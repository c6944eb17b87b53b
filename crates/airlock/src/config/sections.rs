//! The small sections: `[server]`, `[storage]`, `[connections]`,
//! `[audit]`, `[mcp]`, `[telemetry]` and `[console]`, with their defaults
//! and checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::secret::SecretSource;

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

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
