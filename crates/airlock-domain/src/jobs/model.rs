//! The job as users see it, and the small types it is made of.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Airlock's id of a job: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for JobId {
    type Err = String;

    /// Accepts only the canonical UUID text, so a path segment that is not
    /// a job id never reaches the database.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = uuid::Uuid::parse_str(s).map_err(|_| format!("`{s}` is not a job id"))?;
        Ok(Self(parsed.hyphenated().to_string()))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a job does in Airbyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Sync,
    Reset,
}

impl JobType {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Reset => "reset",
        }
    }
}

impl FromStr for JobType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sync" => Ok(Self::Sync),
            "reset" => Ok(Self::Reset),
            other => Err(format!("unknown job type `{other}`")),
        }
    }
}

/// Where a job is in its life.
///
/// `queued` (stored, waiting its turn) → `starting` (a dispatcher holds its
/// lease and is asking Airbyte) → `pending` / `running` (Airbyte has it) →
/// `succeeded` | `failed` | `cancelled`. A failed attempt with retries left
/// goes back to `queued` with a later `run_after`. An action that waits for
/// a second person (`[approvals]`) starts as `awaiting_approval`, and goes
/// to `queued` once approved, or ends `rejected` (denied) or `expired`
/// (nobody decided in time) without ever reaching Airbyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    AwaitingApproval,
    Queued,
    Starting,
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Rejected,
    Expired,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [Self; 10] = [
        Self::AwaitingApproval,
        Self::Queued,
        Self::Starting,
        Self::Pending,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Rejected,
        Self::Expired,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingApproval => "awaiting_approval",
            Self::Queued => "queued",
            Self::Starting => "starting",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Rejected | Self::Expired
        )
    }

    /// Airbyte has (or may have) a job for it.
    pub fn is_in_airbyte(self) -> bool {
        matches!(self, Self::Starting | Self::Pending | Self::Running)
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Through which door a request came in (kept on jobs and audit records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Airlock's own API.
    Api,
    /// The Airbyte-compatible front.
    Front,
    /// The MCP server.
    Mcp,
    /// The web console (a browser session).
    Console,
    /// The command line.
    Cli,
    /// Airbyte itself (its scheduler or UI), seen by the tracker.
    Airbyte,
}

impl Channel {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Front => "front",
            Self::Mcp => "mcp",
            Self::Console => "console",
            Self::Cli => "cli",
            Self::Airbyte => "airbyte",
        }
    }
}

impl FromStr for Channel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Api,
            Self::Front,
            Self::Mcp,
            Self::Console,
            Self::Cli,
            Self::Airbyte,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| format!("unknown channel `{s}`"))
    }
}

/// A job, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub connection_id: String,
    pub workspace_id: String,
    pub job_type: JobType,
    pub state: JobState,
    pub airbyte_job_id: Option<i64>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Unix ms before which the dispatcher leaves it alone.
    pub run_after: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// Set just before `POST /jobs` goes out: from then on, Airbyte may have
    /// a job for it, and whoever holds the lease next must reconcile first.
    pub start_requested_at: Option<i64>,
    pub cancel_requested: bool,
    /// The principal's subject.
    pub requested_by: String,
    /// The principal (issuer, subject, kind, client id) as JSON.
    pub requester: serde_json::Value,
    pub channel: Channel,
    pub retry_of: Option<JobId>,
    /// The approval request it waited for, when it needed one.
    pub approval_id: Option<String>,
    /// That request's state (`pending`, `used`, `denied`, `expired`,
    /// `withdrawn`), changed in the same transaction as the job.
    pub approval_state: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub rows_synced: Option<i64>,
    pub bytes_synced: Option<i64>,
    /// ISO-8601, as Airbyte reports it.
    pub duration: Option<String>,
    /// A short failure summary.
    pub error: Option<String>,
    /// The W3C `traceparent` of the request that queued it, when that
    /// request was traced: the dispatch's span links to it.
    pub trace_parent: Option<String>,
}

/// What a trigger asks for; the store fills in the rest.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub connection_id: String,
    pub workspace_id: String,
    pub job_type: JobType,
    pub max_attempts: i64,
    pub requested_by: String,
    pub requester: serde_json::Value,
    pub channel: Channel,
    pub retry_of: Option<JobId>,
    /// The W3C `traceparent` of the queuing request, when it was traced.
    pub trace_parent: Option<String>,
}

/// Airlock's state for an Airbyte status; `None` for a status this version
/// does not know (the job is left as it was).
pub fn map_status(status: &airbyte_client::JobStatus) -> Option<JobState> {
    use airbyte_client::JobStatus as S;
    match status {
        S::Pending | S::Queued => Some(JobState::Pending),
        S::Running | S::Incomplete => Some(JobState::Running),
        S::Succeeded => Some(JobState::Succeeded),
        S::Failed => Some(JobState::Failed),
        S::Cancelled => Some(JobState::Cancelled),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert_eq!("reset".parse::<JobType>(), Ok(JobType::Reset));
        assert!("clear".parse::<JobType>().is_err());
        assert_eq!("mcp".parse::<Channel>(), Ok(Channel::Mcp));
    }

    #[test]
    fn job_ids_are_canonical_uuids() {
        let id = JobId::generate();
        assert_eq!(id.as_str().parse::<JobId>().as_ref(), Ok(&id));
        assert!("../etc/passwd".parse::<JobId>().is_err());
        assert!("".parse::<JobId>().is_err());
        let upper = "0192F5A0-0000-7000-8000-000000000000"
            .parse::<JobId>()
            .expect("uuid");
        assert_eq!(upper.as_str(), "0192f5a0-0000-7000-8000-000000000000");
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = JobId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = JobId::generate();
        assert!(a < b);
    }
}
