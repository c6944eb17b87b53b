//! Airlock's services: what runs on the domain and the store, with no HTTP
//! server and no configuration file.
//!
//! The modules, lowest layer first (ARCHITECTURE.md has the table of which
//! may use which; a test holds the code to it):
//! - [`airbyte`]: `[airbyte]`, the settings of Airlock's own Airbyte client.
//! - [`memo`]: a value worked out at most once per period.
//! - [`metrics`]: a small Prometheus registry and the families Airlock keeps.
//! - [`queue`]: the job queue at work, the dispatcher and the tracker.
//! - [`connections`]: the catalog of Airbyte's connections.
//! - [`webhooks`]: job events POSTed to receivers.

pub mod airbyte;
pub mod connections;
pub mod memo;
pub mod metrics;
pub mod queue;
pub mod webhooks;
