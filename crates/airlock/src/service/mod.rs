//! The service layer: what a caller may do with connections and jobs, as
//! functions that take the caller (the access guard, [`Caller`]: who asks,
//! through which door) and domain types, and return a [`ServiceError`].
//! The doors parse their input, call one function and render its answer;
//! authorization, the audit record and the store's transaction happen here,
//! once, whichever door a request came through.
//!
//! - [`connections`]: finding a connection by id or slug, listing the ones
//!   a caller may read.
//! - [`jobs`]: triggers, reads, cancel and retry.
//! - [`approvals`]: the four-eyes gate of destructive triggers, and
//!   requests listed, read, approved and denied.
//! - [`started`]: recording a job Airbyte started for a caller through the
//!   front.
//!
//! [`Caller`]: crate::web::Caller

pub mod approvals;
pub mod connections;
pub mod jobs;
pub mod started;

use crate::web::auth::Refusal;
use airlock_store::StoreError;

/// Why a service refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The guard refused (logged and audited already).
    #[error("refused: {0:?}")]
    Refused(Refusal),
    /// No such thing, or one the caller may not see (ids cannot be probed).
    #[error("no such {0}")]
    NotFound(&'static str),
    /// The request asks for something that cannot be (400).
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with the resource's state (409).
    #[error("{0}")]
    Conflict(String),
    /// The four-eyes rules refuse it (403, with why: the requester deciding
    /// their own request, or a door that decides nothing).
    #[error("{0}")]
    FourEyes(String),
    /// A well-formed request that breaks a rule (422).
    #[error("{0}")]
    Unprocessable(String),
    /// A dependency (the database, Airbyte) is down.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen (a 500; its cause is logged).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Refusal> for ServiceError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}
