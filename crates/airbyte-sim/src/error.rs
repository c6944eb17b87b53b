//! What can go wrong while configuring or building a simulator: the one error type
//! of the model layer (configuration, world fixture), public as
//! `airbyte_sim::SimError` and `airbyte_sim::config::SimError`.

use std::path::PathBuf;

/// Everything that can go wrong while configuring or building a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration or fixture file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration TOML is malformed or names an unknown key.
    #[error("invalid simulator configuration: {0}")]
    Config(#[from] toml::de::Error),
    /// The world fixture is malformed or inconsistent (dangling reference, bad value).
    #[error("invalid world fixture: {0}")]
    World(String),
    /// A configuration value is out of range.
    #[error("invalid simulator configuration: {0}")]
    Invalid(String),
}
