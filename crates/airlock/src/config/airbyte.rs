//! `[airbyte]`: where Airbyte is, and the credential Airlock uses there.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::secret::{Secret, SecretSource};

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
