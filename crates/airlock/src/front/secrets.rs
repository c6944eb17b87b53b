//! Service-account secret checks that a flood cannot stall. Each check
//! costs the hash's iterations of CPU, so:
//! - at most [`CONCURRENT`] run at once, with at most [`MAX_WAITING`] more
//!   waiting, each for at most [`MAX_WAIT`]; beyond that the request is
//!   refused at once (429), instead of queueing until clients time out;
//! - a secret that verified is remembered (as an HMAC under a key made at
//!   start, never the secret) so that the right secret is answered without
//!   the hash, however many wrong ones are queued for the same client id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use airlock_domain::secret::hash::SecretHash;

/// Secret hashes computed at once.
pub(crate) const CONCURRENT: usize = 2;

/// Checks that may wait for a turn; more are refused at once.
pub(crate) const MAX_WAITING: usize = 16;

/// How long a check waits for its turn before it is refused.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(500);

/// No turn came: the caller should retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// The secret checks of one process.
pub(crate) struct SecretChecks {
    turns: Semaphore,
    waiting: AtomicUsize,
    /// Per client id, the HMAC of the secret that last verified.
    verified: Mutex<HashMap<String, hmac::Tag>>,
    key: hmac::Key,
}

impl std::fmt::Debug for SecretChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretChecks")
            .field("waiting", &self.waiting)
            .finish_non_exhaustive()
    }
}

impl SecretChecks {
    pub(crate) fn new() -> Self {
        let mut key = [0u8; 32];
        // The system's random source does not fail on Linux; a fixed key
        // would only make remembered tags guessable by someone who could
        // already read the process's memory.
        let _filled = SystemRandom::new().fill(&mut key);
        Self {
            turns: Semaphore::new(CONCURRENT),
            waiting: AtomicUsize::new(0),
            verified: Mutex::new(HashMap::new()),
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        }
    }

    fn message(client_id: &str, secret: &SecretString) -> Vec<u8> {
        let mut message = Vec::with_capacity(client_id.len() + 1 + secret.expose_secret().len());
        message.extend_from_slice(client_id.as_bytes());
        message.push(0);
        message.extend_from_slice(secret.expose_secret().as_bytes());
        message
    }

    /// Whether `secret` is the one that last verified for `client_id`
    /// (constant time; no hash computed).
    pub(crate) fn remembered(&self, client_id: &str, secret: &SecretString) -> bool {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified.get(client_id).is_some_and(|tag| {
            hmac::verify(&self.key, &Self::message(client_id, secret), tag.as_ref()).is_ok()
        })
    }

    /// Checks `secret` against `hash` when a turn comes in time; a secret
    /// that matches is remembered for `client_id`.
    pub(crate) async fn check(
        &self,
        client_id: &str,
        hash: &SecretHash,
        secret: &SecretString,
    ) -> Result<bool, Busy> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let turn = tokio::time::timeout(MAX_WAIT, self.turns.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(Ok(_turn)) = turn else {
            return Err(Busy);
        };
        let (hash, candidate) = (hash.clone(), secret.clone());
        let matches = tokio::task::spawn_blocking(move || hash.verify(candidate.expose_secret()))
            .await
            .unwrap_or(false);
        if matches {
            let tag = hmac::sign(&self.key, &Self::message(client_id, secret));
            self.verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(client_id.to_owned(), tag);
        }
        Ok(matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use std::sync::Arc;

    fn hash_of(secret: &str) -> SecretHash {
        airlock_domain::secret::hash::hash_secret(secret, 1_000)
            .expect("hash")
            .parse()
            .expect("parses")
    }

    #[tokio::test]
    async fn a_verified_secret_is_remembered_and_a_wrong_one_is_not() {
        let checks = SecretChecks::new();
        let hash = hash_of("right");
        let right = SecretString::from("right");
        let wrong = SecretString::from("wrong");
        assert!(!checks.remembered("ci", &right), "nothing verified yet");
        assert_eq!(checks.check("ci", &hash, &wrong).await, Ok(false));
        assert!(!checks.remembered("ci", &wrong));
        assert_eq!(checks.check("ci", &hash, &right).await, Ok(true));
        assert!(checks.remembered("ci", &right));
        assert!(!checks.remembered("ci", &wrong));
        assert!(
            !checks.remembered("other", &right),
            "bound to the client id"
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let checks = Arc::new(SecretChecks::new());
        // Hold every turn, so that checks must wait.
        let _held = checks
            .turns
            .acquire_many(u32::try_from(CONCURRENT).expect("small"))
            .await
            .expect("turns");
        let hash = hash_of("right");
        let waiters: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let (checks, hash) = (Arc::clone(&checks), hash.clone());
                tokio::spawn(async move {
                    checks
                        .check("ci", &hash, &SecretString::from("wrong"))
                        .await
                })
            })
            .collect();
        while checks.waiting.load(Ordering::Acquire) < MAX_WAITING {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            checks
                .check("ci", &hash, &SecretString::from("x"))
                .now_or_never(),
            Some(Err(Busy)),
            "the queue is full: refused without waiting"
        );
        for waiter in waiters {
            assert_eq!(waiter.await.expect("joined"), Err(Busy), "waited too long");
        }
    }
}
