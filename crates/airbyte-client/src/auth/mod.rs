//! How Airlock proves itself to Airbyte: the configured [`Auth`], and the
//! `token` manager that turns client credentials into bearer tokens.

pub(crate) mod token;

use std::fmt;

use base64::Engine as _;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};
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
    pub(crate) async fn authorize(&self, headers: &mut HeaderMap) -> Result<Option<u64>> {
        let (value, generation) = match self {
            Self::None => return Ok(None),
            Self::Bearer(token) => (bearer(token.expose_secret())?, None),
            Self::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose_secret());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                (credential(format!("Basic {encoded}"))?, None)
            }
            Self::Tokens(manager) => {
                let token = manager.token().await?;
                (
                    bearer(token.secret.expose_secret())?,
                    Some(token.generation),
                )
            }
        };
        headers.insert(AUTHORIZATION, value);
        Ok(generation)
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

fn bearer(token: &str) -> Result<HeaderValue> {
    credential(format!("Bearer {token}"))
}

/// An `authorization` value, marked sensitive so that no header dump shows it.
/// The error does not quote it.
fn credential(text: String) -> Result<HeaderValue> {
    let mut value = HeaderValue::try_from(text).map_err(|_| {
        Error::InvalidInput("the Airbyte credential cannot be sent in a header".to_owned())
    })?;
    value.set_sensitive(true);
    Ok(value)
}
