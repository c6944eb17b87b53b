//! `[airbyte]`: where Airbyte is, and the credential Airlock uses there;
//! the settings of Airlock's own Airbyte client.

use std::sync::Arc;
use std::time::Duration;

use airbyte_client::{Auth, CallObserver, ClientConfig, Url};
use serde::{Deserialize, Serialize};

use airlock_domain::secret::{Secret, SecretSource};
use airlock_domain::settings::{self, InvalidKey};

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
    /// Checks the URLs and the timeout; errors name the key.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        settings::http_url("airbyte.url", &self.url)?;
        if let Some(url) = &self.config_api_url {
            settings::http_url("airbyte.config_api_url", url)?;
        }
        settings::at_least_one_sec("airbyte.timeout_secs", self.timeout_secs)
    }

    /// The client's settings: the URLs, the timeout and the resolved
    /// credential; `observer` (the metrics) is told about every call.
    pub fn client_config(
        &self,
        lookup_env: &dyn Fn(&str) -> Option<String>,
        observer: Option<Arc<dyn CallObserver>>,
    ) -> Result<ClientConfig, InvalidKey> {
        let auth = match self.auth(lookup_env)? {
            AirbyteAuth::ClientCredentials {
                client_id,
                client_secret,
            } => Auth::ClientCredentials {
                client_id,
                client_secret: client_secret.to_secret_string(),
            },
            AirbyteAuth::Bearer(token) => Auth::Bearer(token.to_secret_string()),
            AirbyteAuth::Basic { username, password } => Auth::Basic {
                username,
                password: password.to_secret_string(),
            },
            AirbyteAuth::None => Auth::None,
        };
        let parse = |key: &str, url: &str| {
            Url::parse(url).map_err(|e| InvalidKey::new(key, format!("`{url}`: {e}")))
        };
        let mut config = ClientConfig::new(parse("airbyte.url", &self.url)?, auth);
        config.timeout = self.timeout();
        config.observer = observer;
        if let Some(url) = &self.config_api_url {
            config.config_api_url = Some(parse("airbyte.config_api_url", url)?);
        }
        Ok(config)
    }

    /// The call timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// Resolves the one credential the file gives (reading `env` or `file`
    /// secrets), or explains which keys conflict or are missing.
    pub fn auth(
        &self,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AirbyteAuth, InvalidKey> {
        let resolve = |key: &str, source: &SecretSource| {
            source
                .resolve(lookup_env)
                .map_err(|message| InvalidKey::new(format!("airbyte.{key}"), message))
        };
        let methods = [
            self.client_id.is_some() || self.client_secret.is_some(),
            self.token.is_some(),
            self.username.is_some() || self.password.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(InvalidKey::new(
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
                return Err(InvalidKey::new(
                    "airbyte.client_secret",
                    "missing (client_id is set)",
                ));
            }
            (_, None, Some(_)) => {
                return Err(InvalidKey::new(
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
            (Some(_), None) => Err(InvalidKey::new(
                "airbyte.password",
                "missing (username is set)",
            )),
            (None, Some(_)) => Err(InvalidKey::new(
                "airbyte.username",
                "missing (password is set)",
            )),
            (None, None) => Ok(AirbyteAuth::None),
        }
    }
}
