//! Where keys come from: the [`KeySource`] trait, its errors, and the fixed
//! [`StaticKeySource`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use super::KeySet;

/// A boxed future, so that [`KeySource`] works behind `dyn`.
pub type KeyFuture<'a> = Pin<Box<dyn Future<Output = Result<KeySet, KeySourceError>> + Send + 'a>>;

/// Where an issuer's keys come from: its JWKS endpoint in production, a
/// fixed set for the demo identity provider and tests.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// Fetches the current key set.
    fn fetch(&self) -> KeyFuture<'_>;
}

/// Why fetching a key set failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySourceError {
    /// The provider could not be reached or did not answer in time.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// What was fetched.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The provider answered with an error status.
    #[error("{url} answered {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not what was asked for.
    #[error("{url}: {reason}")]
    Invalid {
        /// What was fetched.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A key set that never changes: the demo identity provider's, or a test's.
#[derive(Debug, Clone)]
pub struct StaticKeySource {
    keys: KeySet,
}

impl StaticKeySource {
    /// Serves `keys` on every fetch.
    pub fn new(keys: KeySet) -> Self {
        Self { keys }
    }
}

impl KeySource for StaticKeySource {
    fn fetch(&self) -> KeyFuture<'_> {
        let keys = self.keys.clone();
        Box::pin(async move { Ok(keys) })
    }
}
