//! A cap on concurrent requests per identity, so one caller (a runaway
//! script, a looping agent) cannot take every worker: beyond the cap it gets
//! 429 with `Retry-After`, and everyone else is served as usual.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Entries kept before idle ones are forgotten.
const PRUNE_ABOVE: usize = 10_000;

/// Concurrent requests in flight, per identity.
#[derive(Debug)]
pub struct IdentityLimiter {
    max: usize,
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl IdentityLimiter {
    /// At most `max` requests at once per identity (0 turns the cap off).
    pub fn new(max: usize) -> Self {
        Self {
            max,
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A permit for one more request of `identity`, held until dropped;
    /// `None` when the identity is at its cap.
    pub fn try_acquire(&self, identity: &str) -> Option<Option<OwnedSemaphorePermit>> {
        if self.max == 0 {
            return Some(None);
        }
        let semaphore = {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if map.len() > PRUNE_ABOVE {
                let max = self.max;
                map.retain(|_, s| s.available_permits() < max);
            }
            Arc::clone(
                map.entry(identity.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.max))),
            )
        };
        semaphore.try_acquire_owned().ok().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_each_identity_separately_and_frees_on_drop() {
        let limiter = IdentityLimiter::new(2);
        let a1 = limiter.try_acquire("a").expect("first");
        let _a2 = limiter.try_acquire("a").expect("second");
        assert!(limiter.try_acquire("a").is_none(), "third is over the cap");
        assert!(
            limiter.try_acquire("b").is_some(),
            "others are not affected"
        );
        drop(a1);
        assert!(
            limiter.try_acquire("a").is_some(),
            "a finished request frees a place"
        );
        assert!(
            IdentityLimiter::new(0).try_acquire("a").is_some(),
            "0 turns the cap off"
        );
    }
}
