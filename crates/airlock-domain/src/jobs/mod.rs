//! Jobs, the domain: what a trigger becomes, its states and ids, and its
//! shape for users. The queue that runs them sits above, in `queue`.
//!
//! - [`model`]: the job, its states and ids, and Airbyte's statuses mapped
//!   to them.
//! - [`config`]: `[jobs]`, retries, leases and poll intervals.
//! - [`view`]: the job's shape for users, shared by every channel.

pub mod config;
pub mod model;
pub mod view;

pub use config::JobsConfig;
pub use model::{Channel, Job, JobId, JobState, JobType, NewJob, map_status};
