//! Typed models of the parts of Airbyte's public API that Airlock uses.
//!
//! Every model tolerates fields it does not know (servers add fields over time),
//! and every enum keeps values it does not know as `Unknown(String)` instead of
//! failing the call: Airbyte added the `queued` job status in 2026 and the older
//! SDKs crashed on it. Optional fields are `Option` or defaulted.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Declares a string enum that maps unknown wire values to `Unknown(String)`.
macro_rules! tolerant_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this client does not know, kept verbatim so nothing is lost.
            Unknown(String),
        }

        impl $name {
            /// The spelling on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $( if value.eq_ignore_ascii_case($wire) { return Self::$variant; } )+
                Self::Unknown(value.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Ok(Self::from(raw.as_str()))
            }
        }
    };
}

tolerant_enum! {
    /// Where a job is in its life; `Unknown` covers statuses added after this client.
    JobStatus {
        /// Accepted, waiting for a worker.
        Pending => "pending",
        /// Waiting in Airbyte's queue (servers since May 2026).
        Queued => "queued",
        /// An attempt is running.
        Running => "running",
        /// An attempt failed; more attempts follow.
        Incomplete => "incomplete",
        /// Finished without success.
        Failed => "failed",
        /// Finished successfully.
        Succeeded => "succeeded",
        /// Cancelled by someone.
        Cancelled => "cancelled",
    }
}

impl JobStatus {
    /// True once the job can no longer change: pollers stop here.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Failed | Self::Succeeded | Self::Cancelled)
    }

    /// True while the job occupies its connection (a new sync would get a 409).
    ///
    /// An `Unknown` status is neither active nor terminal, so a poller keeps
    /// polling rather than declaring an outcome it cannot read.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Queued | Self::Running | Self::Incomplete
        )
    }
}

tolerant_enum! {
    /// What a job does; `clear` behaves as `reset` on the server.
    JobType {
        /// Copy data from the source to the destination.
        Sync => "sync",
        /// Delete the destination's data and state.
        Reset => "reset",
        /// The newer name of `reset`.
        Clear => "clear",
        /// Re-read everything; the public API answers 422 to it.
        Refresh => "refresh",
    }
}

tolerant_enum! {
    /// Whether a connection runs on its schedule.
    ConnectionStatus {
        /// Runs on schedule and on demand.
        Active => "active",
        /// Paused.
        Inactive => "inactive",
        /// Deleted (seen only with `includeDeleted`).
        Deprecated => "deprecated",
    }
}

tolerant_enum! {
    /// How a connection is scheduled.
    ScheduleType {
        /// Only on demand.
        Manual => "manual",
        /// On a cron expression.
        Cron => "cron",
        /// Every fixed interval (`basicTiming`).
        Basic => "basic",
    }
}

/// A workspace: the unit that Airlock grants can be scoped to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// Airbyte's id of the workspace.
    pub workspace_id: Uuid,
    /// Human name.
    pub name: String,
    /// Region the data stays in, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_residency: Option<String>,
}

/// A source, so connection listings can name where data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Airbyte's id of the source.
    pub source_id: Uuid,
    /// Human name.
    pub name: String,
    /// Connector kind, such as `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// Workspace that owns it.
    pub workspace_id: Uuid,
}

/// A destination, so connection listings can name where data goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// Airbyte's id of the destination.
    pub destination_id: Uuid,
    /// Human name.
    pub name: String,
    /// Connector kind, such as `bigquery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_type: Option<String>,
    /// Workspace that owns it.
    pub workspace_id: Uuid,
}

/// When a connection runs on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Manual, cron or basic.
    pub schedule_type: ScheduleType,
    /// The cron expression of a `cron` schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_expression: Option<String>,
    /// The interval of a `basic` schedule, such as `Every 24 HOURS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_timing: Option<String>,
}

/// An Airbyte tag on a connection; grants can be scoped to tagged connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    /// Airbyte's id of the tag.
    pub tag_id: Uuid,
    /// Its name, as grants refer to it (`tag:nightly`).
    pub name: String,
    /// Display colour, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Workspace the tag belongs to, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
}

/// A connection: what Airlock exposes as an endpoint and triggers jobs for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Airbyte's id of the connection.
    pub connection_id: Uuid,
    /// Human name (slugs derive from it).
    pub name: String,
    /// Where the data comes from.
    pub source_id: Uuid,
    /// Where the data goes.
    pub destination_id: Uuid,
    /// Workspace that owns it.
    pub workspace_id: Uuid,
    /// Active, inactive or deprecated; absent on a few old servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConnectionStatus>,
    /// When it runs on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Prefix of destination stream names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Tags; empty on servers that predate tags.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A job: one sync or reset of a connection, as Airbyte reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Airbyte's 64-bit job id.
    pub job_id: i64,
    /// Where the job is in its life.
    pub status: JobStatus,
    /// What it does.
    pub job_type: JobType,
    /// When it started, as the server wrote it (UTC); see [`Job::started_at`].
    #[serde(default)]
    pub start_time: String,
    /// The connection it runs for.
    pub connection_id: Uuid,
    /// Last change, present once finished; see [`Job::last_updated`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_at: Option<String>,
    /// ISO-8601 duration such as `PT8M12S`, absent while pending; see [`Job::elapsed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Bytes moved so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_synced: Option<i64>,
    /// Rows moved so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_synced: Option<i64>,
}

impl Job {
    /// The start time parsed, or `None` when the server's spelling is not RFC 3339.
    pub fn started_at(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.start_time, &Rfc3339).ok()
    }

    /// The last update parsed, when present and RFC 3339.
    pub fn last_updated(&self) -> Option<OffsetDateTime> {
        self.last_updated_at
            .as_deref()
            .and_then(|raw| OffsetDateTime::parse(raw, &Rfc3339).ok())
    }

    /// The duration parsed, when present and in the `PnDTnHnMnS` form Airbyte writes.
    pub fn elapsed(&self) -> Option<Duration> {
        self.duration.as_deref().and_then(parse_iso8601_duration)
    }
}

/// Parses the subset of ISO-8601 durations Airbyte emits (`P1DT2H3M4.5S`).
fn parse_iso8601_duration(raw: &str) -> Option<Duration> {
    let rest = raw.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (rest, None),
    };
    let mut seconds = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for ch in part.chars() {
            if ch.is_ascii_digit() || ch == '.' || ch == ',' {
                number.push(if ch == ',' { '.' } else { ch });
                continue;
            }
            let (_, factor) = units.iter().find(|(unit, _)| *unit == ch)?;
            let value: f64 = number.parse().ok()?;
            seconds += value * factor;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    take(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(time) = time {
        take(time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// One page of a list answer. `next` is unreliable for paging (Airbyte sends it
/// even on a short last page), so the pagers stop on a short or empty page instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct Page<T> {
    /// The items of this page.
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    /// The server's link to the next page; `None` when absent or empty.
    #[serde(
        default,
        deserialize_with = "non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub next: Option<String>,
    /// The server's link to the previous page; `None` when absent or empty.
    #[serde(
        default,
        deserialize_with = "non_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous: Option<String>,
}

/// Reads an optional string, treating `""` and `null` as absent.
fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    Ok(raw.filter(|value| !value.is_empty()))
}

/// Filters for listing connections, workspaces, sources and destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// Only these workspaces (sent as repeated `workspaceIds`); empty means all.
    pub workspace_ids: Vec<Uuid>,
    /// Only connections carrying these tags (repeated `tagIds`); connections only.
    pub tag_ids: Vec<Uuid>,
    /// Include deleted items.
    pub include_deleted: Option<bool>,
    /// Page size (Airbyte: default 20, max 100).
    pub limit: Option<u32>,
    /// Items to skip.
    pub offset: Option<u32>,
}

impl ListParams {
    /// The query pairs, without paging, in the order Airbyte's SDK sends them.
    pub(crate) fn filter_query(&self, with_tags: bool) -> Vec<(&'static str, String)> {
        let mut query: Vec<(&'static str, String)> = self
            .workspace_ids
            .iter()
            .map(|id| ("workspaceIds", id.to_string()))
            .collect();
        if with_tags {
            query.extend(self.tag_ids.iter().map(|id| ("tagIds", id.to_string())));
        }
        if let Some(include) = self.include_deleted {
            query.push(("includeDeleted", include.to_string()));
        }
        query
    }
}

/// The orderings `GET /jobs` accepts (`orderBy=createdAt|DESC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobOrder {
    /// Oldest first (also the server's default).
    CreatedAtAsc,
    /// Newest first: what "find the latest run" wants.
    CreatedAtDesc,
    /// Least recently updated first.
    UpdatedAtAsc,
    /// Most recently updated first.
    UpdatedAtDesc,
}

impl JobOrder {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAtAsc => "createdAt|ASC",
            Self::CreatedAtDesc => "createdAt|DESC",
            Self::UpdatedAtAsc => "updatedAt|ASC",
            Self::UpdatedAtDesc => "updatedAt|DESC",
        }
    }
}

/// Filters for `GET /jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs of this connection.
    pub connection_id: Option<Uuid>,
    /// Page size (Airbyte: default 20, max 100).
    pub limit: Option<u32>,
    /// Jobs to skip.
    pub offset: Option<u32>,
    /// Only jobs of this type.
    pub job_type: Option<JobType>,
    /// Only these workspaces (repeated `workspaceIds`); empty means all.
    pub workspace_ids: Vec<Uuid>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Created at or after.
    pub created_at_start: Option<OffsetDateTime>,
    /// Created at or before.
    pub created_at_end: Option<OffsetDateTime>,
    /// Updated at or after.
    pub updated_at_start: Option<OffsetDateTime>,
    /// Updated at or before.
    pub updated_at_end: Option<OffsetDateTime>,
    /// Ordering; the server's default is oldest first.
    pub order_by: Option<JobOrder>,
}

impl JobFilter {
    /// The query pairs, without paging.
    pub(crate) fn filter_query(&self) -> Vec<(&'static str, String)> {
        let mut query: Vec<(&'static str, String)> = Vec::new();
        if let Some(id) = self.connection_id {
            query.push(("connectionId", id.to_string()));
        }
        if let Some(job_type) = &self.job_type {
            query.push(("jobType", job_type.as_str().to_owned()));
        }
        query.extend(
            self.workspace_ids
                .iter()
                .map(|id| ("workspaceIds", id.to_string())),
        );
        if let Some(status) = &self.status {
            query.push(("status", status.as_str().to_owned()));
        }
        let times = [
            ("createdAtStart", self.created_at_start),
            ("createdAtEnd", self.created_at_end),
            ("updatedAtStart", self.updated_at_start),
            ("updatedAtEnd", self.updated_at_end),
        ];
        for (key, value) in times {
            if let Some(formatted) = value.and_then(|at| at.format(&Rfc3339).ok()) {
                query.push((key, formatted));
            }
        }
        if let Some(order) = self.order_by {
            query.push(("orderBy", order.as_str().to_owned()));
        }
        query
    }
}

/// The body of `POST /jobs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobCreate<'a> {
    pub(crate) connection_id: Uuid,
    pub(crate) job_type: &'a JobType,
}

#[cfg(test)]
mod tests;
