//! How Airlock proves itself to Airbyte: the configured [`Auth`], and the
//! `token` manager that turns client credentials into bearer tokens.

pub(crate) mod token;

use std::fmt;

use reqwest::RequestBuilder;
use secrecy::{ExposeSecret, SecretString};

use crate::error::Result;
use token::TokenManager;

/// Airlock's credential for Airbyte. It never leaves the client: not in logs, not
/// in `Debug` output, not in error messages.
#[derive(Clone)]
pub enum Auth {
    /// An application's client credentials, exchanged at `{base_url}/applications/token`
    /// for short-lived bearer tokens (current Airbyte OSS, Enterprise and Cloud).
    ClientCredentials {
        /// The application's client id (not secret; shown in `Debug`).
        client_id: String,
        /// The application's client secret.
        client_secret: SecretString,
    },
    /// A fixed bearer token (refreshing it is someone else's job).
    Bearer(SecretString),
    /// HTTP Basic auth, as older OSS versions (0.50.x) take it.
    Basic {
        /// User name (not secret; shown in `Debug`).
        username: String,
        /// Password.
        password: SecretString,
    },
    /// No credentials, for servers behind a trusted proxy and for tests.
    None,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "[redacted]";
        match self {
            Self::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &REDACTED)
                .finish(),
            Self::Bearer(_) => f.debug_tuple("Bearer").field(&REDACTED).finish(),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &REDACTED)
                .finish(),
            Self::None => f.write_str("None"),
        }
    }
}

/// The configured credential, ready to be put on requests.
#[derive(Debug)]
pub(crate) enum Authenticator {
    None,
    Bearer(SecretString),
    Basic {
        username: String,
        password: SecretString,
    },
    Tokens(Box<TokenManager>),
}

impl Authenticator {
    /// Puts the credential on a request. Returns the generation of the token used,
    /// when it came from the token manager, so a 401 can invalidate exactly it.
    pub(crate) async fn authorize(
        &self,
        builder: RequestBuilder,
    ) -> Result<(RequestBuilder, Option<u64>)> {
        Ok(match self {
            Self::None => (builder, None),
            // reqwest marks these header values sensitive.
            Self::Bearer(token) => (builder.bearer_auth(token.expose_secret()), None),
            Self::Basic { username, password } => (
                builder.basic_auth(username, Some(password.expose_secret())),
                None,
            ),
            Self::Tokens(manager) => {
                let token = manager.token().await?;
                (
                    builder.bearer_auth(token.secret.expose_secret()),
                    Some(token.generation),
                )
            }
        })
    }

    /// Forgets the token of this generation after a 401, if it is still current.
    /// Returns whether a refresh is possible at all.
    pub(crate) fn invalidate(&self, generation: Option<u64>) -> bool {
        match (self, generation) {
            (Self::Tokens(manager), Some(generation)) => {
                manager.invalidate(generation);
                true
            }
            _ => false,
        }
    }
}
