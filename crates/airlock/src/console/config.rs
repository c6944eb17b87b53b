//! `[console]`: the web console's own section.

use serde::{Deserialize, Serialize};

use crate::web::session::CookieSecure;
use airlock_domain::settings::InvalidKey;

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

impl ConsoleConfig {
    /// The longest session, in milliseconds.
    pub fn session_ttl_ms(&self) -> i64 {
        i64::try_from(self.session_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    pub fn validate(&self) -> Result<(), InvalidKey> {
        if !(60..=30 * 24 * 3600).contains(&self.session_ttl_secs) {
            return Err(InvalidKey::new(
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
                return Err(InvalidKey::new(
                    "console.public_url",
                    format!("`{url}` is not scheme://host[:port] (http or https, no path)"),
                ));
            }
        }
        Ok(())
    }
}
