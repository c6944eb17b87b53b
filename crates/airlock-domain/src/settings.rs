//! What every configuration section shares: the one error a section's
//! check returns, naming the key it is about.
//!
//! Each module owns its section (`[jobs]` is `jobs::JobsConfig`, `[mcp]` is
//! `mcp::McpConfig`, ...) and checks it; `config` only composes them.

/// A value the configuration may not hold, named by its dotted path
/// (`jobs.max_attempts`, `issuers[0].audiences`, `webhooks[2].url`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    /// Where, as the user writes it in the file.
    pub key: String,
    /// What is wrong there.
    pub message: String,
}

impl InvalidKey {
    /// The error about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Refuses 0 for a count of seconds that must be at least one.
pub fn at_least_one_sec(key: &str, secs: u64) -> Result<(), InvalidKey> {
    if secs == 0 {
        return Err(InvalidKey::new(key, "must be at least 1"));
    }
    Ok(())
}

/// Refuses anything but an `http://` or `https://` URL.
pub fn http_url(key: &str, value: &str) -> Result<(), InvalidKey> {
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(InvalidKey::new(
            key,
            format!("`{value}` is not an http(s) URL"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_the_key_first() {
        let error = InvalidKey::new("jobs.lease_secs", "must be at least 5");
        assert_eq!(error.to_string(), "jobs.lease_secs: must be at least 5");
        assert!(at_least_one_sec("server.body_timeout_secs", 0).is_err());
        assert!(at_least_one_sec("server.body_timeout_secs", 1).is_ok());
        assert_eq!(
            http_url("airbyte.url", "ftp://x").unwrap_err().message,
            "`ftp://x` is not an http(s) URL"
        );
        assert!(http_url("airbyte.url", "https://x").is_ok());
    }
}
