//! `[jobs]`: how the queue dispatches, retries and tracks.

use std::time::Duration;

use crate::settings::InvalidKey;
use serde::{Deserialize, Serialize};

/// Queue settings, all with defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Airbyte jobs tried per Airlock job (a failed sync or a failed start
    /// counts); a trigger may ask for fewer or more, up to 10.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter.
    pub backoff_base_secs: u64,
    /// Longest retry delay.
    pub backoff_max_secs: u64,
    /// How long a dispatcher owns a job it is starting before another may
    /// take over (renewed by heartbeats while Airbyte answers).
    pub lease_secs: u64,
    /// How often Airbyte is asked what became of running jobs.
    pub poll_interval_secs: u64,
    /// How many jobs one replica starts at once.
    pub dispatch_concurrency: usize,
    /// How long to wait before asking Airbyte again when it says a sync is
    /// already running on the connection.
    pub busy_retry_secs: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base_secs: 10,
            backoff_max_secs: 600,
            lease_secs: 60,
            poll_interval_secs: 5,
            dispatch_concurrency: 4,
            busy_retry_secs: 5,
        }
    }
}

impl JobsConfig {
    /// Largest `max_attempts` a request may ask for.
    pub const MAX_ATTEMPTS_CAP: u32 = 10;

    /// The delay before attempt `attempts + 1`, without jitter.
    pub fn backoff(&self, attempts: i64) -> Duration {
        let exponent = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
        let base = self.backoff_base_secs.saturating_mul(1u64 << exponent);
        Duration::from_secs(base.min(self.backoff_max_secs))
    }

    /// Checks the values make sense; errors name the key.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if self.max_attempts == 0 || self.max_attempts > Self::MAX_ATTEMPTS_CAP {
            return Err(InvalidKey::new(
                "jobs.max_attempts",
                format!("must be 1 to {}", Self::MAX_ATTEMPTS_CAP),
            ));
        }
        if self.lease_secs < 5 {
            return Err(InvalidKey::new("jobs.lease_secs", "must be at least 5"));
        }
        if self.poll_interval_secs == 0 {
            return Err(InvalidKey::new(
                "jobs.poll_interval_secs",
                "must be at least 1",
            ));
        }
        if self.dispatch_concurrency == 0 {
            return Err(InvalidKey::new(
                "jobs.dispatch_concurrency",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = JobsConfig {
            backoff_base_secs: 10,
            backoff_max_secs: 100,
            ..JobsConfig::default()
        };
        let secs: Vec<u64> = (0..6).map(|a| config.backoff(a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 100, 100]);
        assert_eq!(config.backoff(1_000).as_secs(), 100);
    }
}
