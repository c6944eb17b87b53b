//! The per-issuer cache of keys: refreshed when stale, refetched on an
//! unknown `kid` at most once per cooldown, the last good keys kept when
//! the provider is unreachable.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use jsonwebtoken::Algorithm;

use super::super::config::IssuerConfig;
use super::{KeySet, KeySource, KeySourceError, Selection};
use crate::clock::Clock;

/// The state of one issuer's keys, for `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// How many usable keys are loaded (0 before the first good fetch).
    pub keys: usize,
    /// When the current keys were fetched, in Unix milliseconds.
    pub loaded_at_ms: Option<i64>,
    /// Why the latest fetch failed, when it did.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct KeyState {
    keys: Option<Arc<KeySet>>,
    /// Bumped whenever the keys really change.
    generation: u64,
    /// Unix milliseconds of the last good fetch and of the last attempt.
    loaded_at: Option<i64>,
    attempted_at: Option<i64>,
    last_error: Option<String>,
}

/// What the cache answers for a token's `kid` and `alg`.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    Found { keys: Arc<KeySet>, generation: u64 },
    Incompatible,
    Unknown,
    Unavailable,
}

/// One issuer's keys, refreshed every `refresh_every`, refetched on an
/// unknown `kid` at most once per `cooldown`.
#[derive(Debug)]
pub(crate) struct KeyCache {
    issuer: String,
    source: Arc<dyn KeySource>,
    refresh_every: Duration,
    cooldown: Duration,
    state: RwLock<KeyState>,
    fetching: tokio::sync::Mutex<()>,
}

fn elapsed(since: Option<i64>, now_ms: i64) -> Option<Duration> {
    since.map(|t| Duration::from_millis(u64::try_from(now_ms.saturating_sub(t)).unwrap_or(0)))
}

impl KeyCache {
    pub(crate) fn new(config: &IssuerConfig, source: Arc<dyn KeySource>) -> Self {
        Self {
            issuer: config.issuer.clone(),
            source,
            refresh_every: config.jwks_refresh(),
            cooldown: config.unknown_kid_cooldown(),
            state: RwLock::new(KeyState::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn cooled_down(&self, now: i64) -> bool {
        elapsed(self.read().attempted_at, now).is_none_or(|e| e >= self.cooldown)
    }

    fn is_stale(&self, now: i64) -> bool {
        let stale = elapsed(self.read().loaded_at, now).is_none_or(|e| e >= self.refresh_every);
        stale && self.cooled_down(now)
    }

    fn current(&self) -> (Option<Arc<KeySet>>, u64) {
        let state = self.read();
        (state.keys.clone(), state.generation)
    }

    /// The current generation of the keys, to tell whether a verified
    /// token's key may have gone.
    pub(crate) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Finds the key for `kid`/`alg`, fetching when there are no keys yet,
    /// when they are stale, or when `kid` is unknown (once per cooldown).
    pub(crate) async fn lookup(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        clock: &dyn Clock,
    ) -> KeyLookup {
        if self.current().0.is_none() {
            self.fetch_if_cooled_down(clock).await;
        } else {
            self.refresh_if_stale_nowait(clock).await;
        }
        let (keys, generation) = self.current();
        let Some(keys) = keys else {
            return KeyLookup::Unavailable;
        };
        match keys.select(kid, alg) {
            Selection::Found(_) => KeyLookup::Found { keys, generation },
            Selection::Incompatible => KeyLookup::Incompatible,
            Selection::Unknown => {
                if !self.fetch_if_cooled_down(clock).await {
                    return KeyLookup::Unknown;
                }
                let (keys, generation) = self.current();
                match keys {
                    Some(keys) => match keys.select(kid, alg) {
                        Selection::Found(_) => KeyLookup::Found { keys, generation },
                        Selection::Incompatible => KeyLookup::Incompatible,
                        Selection::Unknown => KeyLookup::Unknown,
                    },
                    None => KeyLookup::Unavailable,
                }
            }
        }
    }

    /// Refreshes stale keys unless another request is fetching already:
    /// one request refreshes, the others go on with the keys they have.
    pub(crate) async fn refresh_if_stale_nowait(&self, clock: &dyn Clock) {
        if self.current().0.is_none() || !self.is_stale(clock.now_ms()) {
            return;
        }
        if let Ok(_guard) = self.fetching.try_lock()
            && self.is_stale(clock.now_ms())
        {
            // The outcome is recorded in the state and logged.
            let _ = self.fetch(clock).await;
        }
    }

    /// Fetches unless another fetch happened within the cooldown; waits
    /// for a fetch in progress. Returns whether this call fetched.
    async fn fetch_if_cooled_down(&self, clock: &dyn Clock) -> bool {
        let _guard = self.fetching.lock().await;
        if !self.cooled_down(clock.now_ms()) {
            return false;
        }
        let _ = self.fetch(clock).await;
        true
    }

    /// Fetches now, whatever the cooldown (start-up, the refresh loop).
    pub(crate) async fn refresh(&self, clock: &dyn Clock) -> Result<usize, KeySourceError> {
        let _guard = self.fetching.lock().await;
        self.fetch(clock).await
    }

    /// Fetches when the keys are stale (the refresh loop).
    pub(crate) async fn refresh_if_stale(&self, clock: &dyn Clock) {
        let _guard = self.fetching.lock().await;
        if self.is_stale(clock.now_ms()) {
            // The outcome is recorded in the state and logged.
            let _ = self.fetch(clock).await;
        }
    }

    /// Must be called with `fetching` held.
    async fn fetch(&self, clock: &dyn Clock) -> Result<usize, KeySourceError> {
        let result = self.source.fetch().await;
        let now = clock.now_ms();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.attempted_at = Some(now);
        match result {
            Ok(keys) => {
                let count = keys.len();
                let changed = state.keys.as_ref().is_none_or(|old| !old.same_keys(&keys));
                if changed {
                    state.generation += 1;
                    tracing::info!(issuer = %self.issuer, keys = count, kids = ?keys.kids(), "loaded the issuer's signing keys");
                }
                state.keys = Some(Arc::new(keys));
                state.loaded_at = Some(now);
                state.last_error = None;
                Ok(count)
            }
            Err(error) => {
                tracing::warn!(
                    issuer = %self.issuer,
                    error = %error,
                    kept_keys = state.keys.as_ref().map_or(0, |k| k.len()),
                    "cannot fetch the issuer's signing keys; keeping the last good ones"
                );
                state.last_error = Some(error.to_string());
                Err(error)
            }
        }
    }

    pub(crate) fn status(&self) -> KeyStatus {
        let state = self.read();
        KeyStatus {
            keys: state.keys.as_ref().map_or(0, |k| k.len()),
            loaded_at_ms: state.loaded_at,
            last_error: state.last_error.clone(),
        }
    }
}
