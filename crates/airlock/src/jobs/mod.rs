//! Jobs: what a trigger becomes, how it is handed to Airbyte exactly once,
//! and how its state is followed until it ends.
//!
//! - [`model`]: the job, its states and ids.
//! - [`config`]: `[jobs]`, retries, leases and poll intervals.
//! - [`dispatcher`]: claims queued jobs and starts them in Airbyte.
//! - [`tracker`]: follows Airbyte's jobs per workspace until they end.
//! - [`view`]: the job's shape for users, shared by every channel.

pub mod config;
pub mod dispatcher;
pub mod model;
pub mod tracker;
pub mod view;

pub use config::JobsConfig;
pub use model::{Channel, Job, JobId, JobState, JobType, NewJob};
