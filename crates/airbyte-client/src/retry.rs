//! When to send a request again, and how long to wait first.
//!
//! The rules, in one place:
//!
//! | failure                                   | idempotent call | non-idempotent call (`POST /jobs`) |
//! |-------------------------------------------|-----------------|------------------------------------|
//! | connect error (nothing was sent)          | retry           | retry                              |
//! | 429 (refused before processing)           | retry           | retry                              |
//! | 5xx except 501/505                        | retry           | [`Ambiguous`]                      |
//! | timeout or connection lost after sending  | retry           | [`Ambiguous`]                      |
//! | 401                                       | refresh token, send once more (both) | same            |
//!
//! A 5xx is ambiguous for a non-idempotent call because proxies answer 502/503/504
//! after the request reached Airbyte (Envoy's 503 "reset before headers", a gateway
//! timeout), and Airbyte itself answers 500 when it fails after writing the job.
//!
//! [`Ambiguous`]: crate::Error::Ambiguous

use std::time::Duration;

/// How many times and how patiently to retry calls that are safe to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Ceiling of the first backoff; doubles with each retry.
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries, for callers that handle retries themselves.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The ceiling of the wait before retry number `retry` (1-based):
    /// `base_delay * 2^(retry-1)`, capped at `max_delay`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        self.base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay)
    }

    /// The jittered wait before retry number `retry`: uniformly between half the
    /// ceiling and the ceiling, so callers that failed together do not retry together
    /// yet every wait keeps a floor.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
        half + Duration::from_micros(rand::random_range(0..=spread))
    }

    /// The wait before retry number `retry`, honouring a server's `Retry-After` up to
    /// `max_delay` (a longer wait belongs to the caller, not inside one call).
    pub(crate) fn wait(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.backoff(retry);
        match retry_after {
            Some(asked) => backoff.max(asked.min(self.max_delay)),
            None => backoff,
        }
    }
}

/// Whether sending a request twice is harmless, which decides what may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idempotency {
    /// Reads, token requests and job cancels: retried on 5xx, 429 and transport errors.
    Idempotent,
    /// Creates (`POST /jobs`, raw writes): retried only when the request provably did
    /// not take effect (connect error, 429, 401).
    NonIdempotent,
}

/// Whether a status answer may be retried under the given idempotency.
pub(crate) fn retryable_status(status: u16, idempotency: Idempotency) -> bool {
    match status {
        429 => true,
        501 | 505 => false,
        500..=599 => idempotency == Idempotency::Idempotent,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_and_cap() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
        };
        assert_eq!(policy.ceiling(1), Duration::from_millis(100));
        assert_eq!(policy.ceiling(2), Duration::from_millis(200));
        assert_eq!(policy.ceiling(3), Duration::from_millis(400));
        assert_eq!(policy.ceiling(4), Duration::from_millis(700));
        assert_eq!(policy.ceiling(64), Duration::from_millis(700));
    }

    #[test]
    fn backoff_stays_between_half_and_full_ceiling() {
        let policy = RetryPolicy::default();
        for retry in 1..6 {
            let ceiling = policy.ceiling(retry);
            for _ in 0..100 {
                let wait = policy.backoff(retry);
                assert!(
                    wait >= ceiling / 2 && wait <= ceiling,
                    "{wait:?} vs {ceiling:?}"
                );
            }
        }
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(zero.backoff(3), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let policy = RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.wait(1, Some(Duration::from_secs(60))),
            Duration::from_secs(2)
        );
        assert!(policy.wait(1, None) <= Duration::from_millis(10));
        assert!(policy.wait(1, Some(Duration::ZERO)) <= Duration::from_millis(10));
    }

    #[test]
    fn status_rules() {
        use Idempotency::*;
        assert!(retryable_status(503, Idempotent));
        assert!(!retryable_status(503, NonIdempotent));
        assert!(!retryable_status(500, NonIdempotent));
        assert!(retryable_status(429, NonIdempotent));
        assert!(!retryable_status(501, Idempotent));
        assert!(!retryable_status(404, Idempotent));
        assert!(!retryable_status(409, Idempotent));
    }
}
