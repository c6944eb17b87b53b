//! Four-eyes approvals: an action that throws data away (a reset) waits
//! until another person agrees.
//!
//! An [`Approval`] is a request for one [`Action`] (a permission, a
//! connection, a job type) by its requester. People with
//! `approvals:decide` approve or deny it ([`rules::decide`]); once enough
//! have approved (`min_approvals`), it is a grant the requester may use
//! once ([`rules::use_grant`]) within `grant_ttl_secs`. A request nobody
//! decides expires after `request_ttl_secs` ([`rules::expire`]). The rules
//! are pure functions over the model; the store applies them under a
//! compare-and-set, so two decisions racing cannot both win.

pub mod config;
pub mod rules;
pub mod view;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::identity::Principal;
use crate::jobs::{Channel, JobId, JobType};
use crate::policy::Permission;

pub use config::ApprovalsConfig;
pub use rules::Refusal;

/// Airlock's id of an approval request: a UUIDv7, so ids sort by creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApprovalId(String);

impl ApprovalId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ApprovalId {
    type Err = String;

    /// Accepts only the canonical UUID text, so a path segment that is not
    /// an approval id never reaches the database.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed =
            uuid::Uuid::parse_str(s).map_err(|_| format!("`{s}` is not an approval id"))?;
        Ok(Self(parsed.hyphenated().to_string()))
    }
}

impl fmt::Display for ApprovalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What waits: the permission it needs, on which connection, as which job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub permission: Permission,
    pub connection_id: String,
    pub job_type: JobType,
}

/// Someone who requests or decides, as the policy knows them: the issuer
/// and subject say who it is (two parties are the same person when both
/// match); kind and client id are kept for the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub issuer: String,
    pub subject: String,
    /// `user` or `service`.
    pub kind: String,
    pub client_id: Option<String>,
}

impl Party {
    /// The party a verified principal is.
    pub fn of(principal: &Principal) -> Self {
        Self {
            issuer: principal.issuer.clone(),
            subject: principal.subject.clone(),
            kind: principal.kind.as_str().to_owned(),
            client_id: principal.client_id.clone(),
        }
    }

    /// Whether both are the same identity (issuer and subject).
    pub fn same_as(&self, other: &Party) -> bool {
        self.issuer == other.issuer && self.subject == other.subject
    }
}

/// Where a request is in its life: `pending` → `approved` → `used`, or
/// `denied`, or `expired` (undecided in time, or approved and not used in
/// time), or `withdrawn` (the job waiting for it was cancelled). Only
/// `pending` can be decided; only `approved` can be used. A request made
/// with its job is used by that job the moment it is approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
    Used,
    Withdrawn,
}

impl ApprovalState {
    /// Every state, in life order.
    pub const ALL: [ApprovalState; 6] = [
        Self::Pending,
        Self::Approved,
        Self::Denied,
        Self::Expired,
        Self::Used,
        Self::Withdrawn,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Used => "used",
            Self::Withdrawn => "withdrawn",
        }
    }
}

impl fmt::Display for ApprovalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown approval state `{s}`"))
    }
}

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Deny,
}

impl Verdict {
    /// `approve` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }
}

/// One person's decision on a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub decider: Party,
    pub verdict: Verdict,
    /// Why; required to deny.
    pub reason: Option<String>,
    /// Through which door it was decided.
    pub channel: Channel,
    /// Unix ms.
    pub at: i64,
}

/// A request for an action that waits for approval, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub id: ApprovalId,
    pub action: Action,
    pub requester: Party,
    /// Through which door it was requested.
    pub channel: Channel,
    /// What the requester said it is for, if anything.
    pub reason: Option<String>,
    /// The job waiting for it, if the request came with one.
    pub job_id: Option<JobId>,
    pub state: ApprovalState,
    /// Decisions in the order they were taken.
    pub decisions: Vec<Decision>,
    /// How many different people must approve.
    pub min_approvals: u32,
    /// Unix ms.
    pub requested_at: i64,
    /// When a pending request expires (unix ms).
    pub expires_at: i64,
    /// When it was approved (unix ms).
    pub approved_at: Option<i64>,
    /// Until when the approval may be used (unix ms).
    pub grant_expires_at: Option<i64>,
    /// When the approval was used (unix ms).
    pub used_at: Option<i64>,
    /// Bumped by every change: the store's compare-and-set token.
    pub version: i64,
}

/// What a new request is made of (the rest follows from the settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApproval {
    pub action: Action,
    pub requester: Party,
    pub channel: Channel,
    pub reason: Option<String>,
    pub job_id: Option<JobId>,
}

impl Approval {
    /// A pending request made at `now` (unix ms) under `config`.
    pub fn request(new: NewApproval, config: &ApprovalsConfig, now: i64) -> Self {
        Self {
            id: ApprovalId::generate(),
            action: new.action,
            requester: new.requester,
            channel: new.channel,
            reason: new.reason,
            job_id: new.job_id,
            state: ApprovalState::Pending,
            decisions: Vec::new(),
            min_approvals: config.min_approvals.max(1),
            requested_at: now,
            expires_at: now.saturating_add(config.request_ttl_ms()),
            approved_at: None,
            grant_expires_at: None,
            used_at: None,
            version: 0,
        }
    }

    /// How many different people have approved.
    pub fn approvals(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Approve)
            .count()
    }
}

#[cfg(test)]
mod tests;
