//! Webhooks: job and approval events POSTed to receivers, signed, durable
//! and retried.
//!
//! Decoupled from the jobs themselves: the dispatcher and the tracker only
//! write `job_events` (as they do for the timeline), and every change of an
//! approval request writes `approval_events`. The [`Deliverer`] reads each
//! timeline's rows after its own persisted cursor and, in one transaction
//! with that cursor's move, inserts one delivery per event and interested
//! webhook, so a crash neither loses an event nor enqueues one twice. An
//! approval's events (`approval.requested`, `approval.approved`,
//! `approval.denied`, `approval.expired`) carry `approval` (the request as
//! `GET /v1/approvals/{id}` shows it) where a job's carry `job`; they are
//! sent only to webhooks that name them in `events`. It then sends due
//! deliveries, recording every attempt, and retries failures with jittered
//! exponential backoff up to the webhook's `max_attempts`.
//!
//! - [`config`]: `[[webhooks]]` (URL, secret, events, filters, limits).
//! - [`signature`]: the `Airlock-Signature` scheme, to sign and to verify.
//! - the cursor, delivery and attempt tables are `airlock_store::webhooks`.
//! - `payload`: what a receiver gets.
//! - `deliverer`: the loop.
//!
//! Each request carries `Airlock-Event` (`job.succeeded`,
//! `approval.approved`), `Airlock-Delivery`
//! (the same id on every attempt, for de-duplication) and `Airlock-Signature`
//! (`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`). Delivery
//! is at least once: a receiver that answers 2xx after the deadline may see
//! the delivery again.

pub mod config;
mod deliverer;
mod payload;
pub mod signature;

pub use config::{WebhookConfig, WebhookEvent};
pub use deliverer::{Deliverer, Directory, IdsOnly, PassReport, webhook_id};

use airlock_store::StoreError;

/// What can go wrong with webhooks.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A webhook's configuration cannot be used (its secret cannot be read).
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}
