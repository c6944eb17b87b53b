//! The simulator's configuration: one TOML table, every key optional.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use time::OffsetDateTime;

pub use crate::error::SimError;
use crate::faults::Faults;

/// How the simulator behaves: the TOML document it starts from (`airlock sim --config`).
///
/// Every key is optional; [`SimConfig::default`] documents the defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// The client id that `POST /applications/token` accepts. Default `"airlock-sim"`.
    pub client_id: String,
    /// The client secret that `POST /applications/token` accepts. Default `"airlock-sim-secret"`.
    pub client_secret: String,
    /// Lifetime of issued tokens in (simulated) seconds. Default 180, short so that
    /// expiry happens in tests; real servers use 900 today.
    pub token_lifetime_secs: u64,
    /// Seed for ids and job outcomes: the same seed gives the same world and the
    /// same job plans. Default `20_260_528`.
    pub seed: u64,
    /// Multiplier on simulated job durations (0.1 makes jobs ten times faster).
    /// Default 1.0.
    pub time_scale: f64,
    /// Path to a world fixture (TOML). Relative paths are resolved against the
    /// configuration file's directory. Default: the built-in world.
    pub world: Option<PathBuf>,
    /// When true, connections with a cron or basic schedule get syncs started by
    /// "Airbyte itself" now and then, so job lists look alive. Default false.
    pub scheduler: bool,
    /// When true, new jobs report `queued` for their first second, as servers since
    /// May 2026 do. Default false (jobs start `pending`).
    pub emit_queued: bool,
    /// When true, simulated time moves only through `POST /_sim/advance`.
    /// Default false (simulated time follows the wall clock, plus any advance).
    pub manual_clock: bool,
    /// Simulated time at start-up (RFC 3339). Default: now.
    #[serde(with = "time::serde::rfc3339::option")]
    pub start_time: Option<OffsetDateTime>,
    /// HTTP status for unknown resources (connection, job, workspace...). Default 404.
    /// Real servers answer 400 with the same `resource-not-found` body; set 400 to
    /// reproduce that.
    pub not_found_status: u16,
    /// Finished jobs to invent per connection at start-up, in the simulated past.
    /// Default 0 (an empty job history).
    pub history_jobs: u32,
    /// Faults injected from start-up; see [`Faults`]. Default: none.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            client_id: "airlock-sim".to_owned(),
            client_secret: "airlock-sim-secret".to_owned(),
            token_lifetime_secs: 180,
            seed: 20_260_528,
            time_scale: 1.0,
            world: None,
            scheduler: false,
            emit_queued: false,
            manual_clock: false,
            start_time: None,
            not_found_status: 404,
            history_jobs: 0,
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// Parses a configuration document; unknown keys are an error that names the key.
    pub fn from_toml_str(s: &str) -> Result<SimConfig, SimError> {
        let config: SimConfig = toml::from_str(s)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a configuration file; a relative `world` path is resolved against the
    /// file's directory.
    pub fn from_file(path: &Path) -> Result<SimConfig, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = SimConfig::from_toml_str(&text)?;
        if let Some(world) = &config.world
            && world.is_relative()
            && let Some(dir) = path.parent()
        {
            config.world = Some(dir.join(world));
        }
        Ok(config)
    }

    pub(crate) fn validate(&self) -> Result<(), SimError> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(SimError::Invalid(format!(
                "time_scale must be a positive number, got {}",
                self.time_scale
            )));
        }
        if self.token_lifetime_secs == 0 {
            return Err(SimError::Invalid(
                "token_lifetime_secs must be at least 1".to_owned(),
            ));
        }
        if !(400..=499).contains(&self.not_found_status) {
            return Err(SimError::Invalid(format!(
                "not_found_status must be a 4xx status, got {}",
                self.not_found_status
            )));
        }
        self.faults.validate().map_err(SimError::Invalid)
    }
}
