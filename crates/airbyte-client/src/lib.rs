//! A resilient client for Airbyte's public API, as Airlock needs it.
//!
//! A tour, in the order a request flows:
//!
//! - [`client`]: [`AirbyteClient`], built from a [`ClientConfig`]. Typed calls
//!   (`list_connections`, `create_job`, `get_job`, `cancel_job`, ...), pagers that
//!   follow pages safely, and [`AirbyteClient::send_raw`] for the Airbyte-compatible
//!   front. Every call runs through one attempt loop: credential, timeout, send,
//!   then the rules below. One tracing span per call (method, route template,
//!   status, attempt, latency); never a token, a URL with credentials or a body.
//! - [`auth`]: the configured [`Auth`] and the token manager, which turns client
//!   credentials into bearer tokens, refreshes them ahead of expiry with a single
//!   request however many calls wait, and drops a token on a 401 so the call can be
//!   sent once more with a fresh one.
//! - [`retry`]: which failures are retried ([`RetryPolicy`], jittered exponential
//!   backoff) and which make a non-idempotent call ambiguous.
//! - [`error`]: the typed [`Error`]: auth, not found, conflicts recognised from
//!   Airbyte's 409 bodies, rate limits, upstream failures, ambiguous outcomes,
//!   timeouts, transport, invalid responses, refused requests.
//! - [`models`]: the typed answers ([`Connection`], [`Job`], [`Page`], ...), tolerant
//!   of new fields and of enum values this client does not know yet.
//! - [`clock`]: the clock token expiry is judged by, swappable in tests.
//! - [`observe`]: [`CallObserver`], an optional hook told about every exchange
//!   (route template, status, latency, attempt) and token refresh, for metrics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), airbyte_client::Error> {
//! use airbyte_client::{AirbyteClient, Auth, ClientConfig, JobType, ListParams};
//!
//! let url = "http://localhost:8000/api/public/v1".parse().expect("a URL");
//! let auth = Auth::ClientCredentials {
//!     client_id: "id".into(),
//!     client_secret: "secret".into(),
//! };
//! let client = AirbyteClient::new(ClientConfig::new(url, auth))?;
//! for connection in client.list_all_connections(&ListParams::default()).await? {
//!     let job = client.create_job(connection.connection_id, JobType::Sync).await?;
//!     println!("{} started job {}", connection.name, job.job_id);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod clock;
pub mod error;
pub mod models;
pub mod observe;
pub mod retry;
mod transport;

pub use auth::Auth;
pub use client::{AirbyteClient, ClientConfig, Pages, RawResponse};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ConflictKind, Error, Problem, Result};
pub use models::{
    Connection, ConnectionStatus, Destination, Job, JobFilter, JobOrder, JobStatus, JobType,
    ListParams, Page, Schedule, ScheduleType, Source, Tag, Workspace,
};
pub use observe::{CallObserver, TraceContext};
pub use retry::RetryPolicy;

/// The HTTP vocabulary of [`AirbyteClient::send_raw`], re-exported so callers need
/// not depend on the same HTTP crate version.
pub use http::{HeaderMap, Method, StatusCode};
pub use url::Url;
