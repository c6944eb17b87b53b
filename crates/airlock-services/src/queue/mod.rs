//! The job queue at work: how a queued job is handed to Airbyte exactly
//! once, and how its state is followed until it ends.
//!
//! - [`dispatcher`]: claims queued jobs and starts them in Airbyte.
//! - [`tracker`]: follows Airbyte's jobs per workspace until they end.

pub mod dispatcher;
pub mod tracker;
