//! A value worked out at most once per period, however many ask for it at
//! once: what the unauthenticated endpoints (`/metrics`, the health checks)
//! read through, so that a flood of them costs one database query or one
//! call to Airbyte per period, not one per request.

use std::future::Future;
use std::time::{Duration, Instant};

/// The last value and when it was worked out.
#[derive(Debug)]
pub struct Memo<T> {
    ttl: Duration,
    slot: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> Memo<T> {
    /// Values are reused for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// The value, worked out by `compute` unless one younger than the
    /// period is kept. Callers that arrive while it is being worked out
    /// wait for it and share it.
    pub async fn get<F, Fut>(&self, compute: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, value)) = slot.as_ref()
            && at.elapsed() < self.ttl
        {
            return value.clone();
        }
        let value = compute().await;
        *slot = Some((Instant::now(), value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_callers_share_one_computation_until_it_is_old() {
        let memo = Arc::new(Memo::new(Duration::from_millis(200)));
        let computed = Arc::new(AtomicUsize::new(0));
        let callers: Vec<_> = (0..50)
            .map(|_| {
                let (memo, computed) = (Arc::clone(&memo), Arc::clone(&computed));
                tokio::spawn(async move {
                    memo.get(|| async {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        computed.fetch_add(1, Ordering::SeqCst)
                    })
                    .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.expect("joined"), 0, "all share the first");
        }
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let next = memo
            .get(|| async { computed.fetch_add(1, Ordering::SeqCst) })
            .await;
        assert_eq!(next, 1, "worked out again once old");
    }
}
