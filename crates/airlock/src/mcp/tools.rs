//! The tools: their names, the permission each needs, their schemas and
//! annotations, and the one API request each one makes.
//!
//! Annotations are static hints, chosen to be true of every call:
//!
//! | tool | permission | readOnly | destructive | idempotent |
//! | --- | --- | --- | --- | --- |
//! | `list_connections`, `get_connection` | `connections:read` | yes | no | yes |
//! | `list_jobs`, `get_job` | `jobs:read` | yes | no | yes |
//! | `trigger_sync` | `jobs:sync` | no | no | no |
//! | `cancel_job` | `jobs:cancel` | no | no | yes |
//! | `reset_connection` | `jobs:reset` | no | **yes** | no |
//!
//! A sync runs the connection as its owners configured it, the work Airbyte's
//! own scheduler does; it deletes nothing that a scheduled run would not.
//! It is not idempotent: each call queues a job, unless the agent passes an
//! `idempotency_key` (then a retried call returns the first job). A cancel
//! removes no data or configuration (what Airbyte committed stays, and the
//! job can be retried); asking twice has the effect of asking once. A reset
//! clears the connection's data in the destination: destructive. Every tool
//! works within Airlock and Airbyte, a closed world (`openWorldHint: false`).

use std::str::FromStr;
use std::sync::Arc;

use axum::http::Method;
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use rmcp::schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use super::McpError;
use airlock_domain::policy::Permission;

/// The longest `wait_seconds` (the API's `?wait=` cap, 15 minutes).
const MAX_WAIT_SECONDS: u32 = 15 * 60;

/// Every tool Airlock offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolName {
    ListConnections,
    GetConnection,
    TriggerSync,
    GetJob,
    ListJobs,
    CancelJob,
    ResetConnection,
}

impl ToolName {
    /// In the order `tools/list` shows them.
    pub const ALL: [Self; 7] = [
        Self::ListConnections,
        Self::GetConnection,
        Self::TriggerSync,
        Self::GetJob,
        Self::ListJobs,
        Self::CancelJob,
        Self::ResetConnection,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListConnections => "list_connections",
            Self::GetConnection => "get_connection",
            Self::TriggerSync => "trigger_sync",
            Self::GetJob => "get_job",
            Self::ListJobs => "list_jobs",
            Self::CancelJob => "cancel_job",
            Self::ResetConnection => "reset_connection",
        }
    }

    /// The permission without which the tool is not listed (and its calls
    /// are refused by the API).
    pub fn permission(self) -> Permission {
        match self {
            Self::ListConnections | Self::GetConnection => Permission::ConnectionsRead,
            Self::GetJob | Self::ListJobs => Permission::JobsRead,
            Self::TriggerSync => Permission::JobsSync,
            Self::CancelJob => Permission::JobsCancel,
            Self::ResetConnection => Permission::JobsReset,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::ListConnections => {
                "List the Airbyte connections you may read, with their id, slug, name, \
                 workspace, tags, status and schedule. Optionally filter by workspace or tag."
            }
            Self::GetConnection => {
                "Get one Airbyte connection by its id or slug, with its most recent job."
            }
            Self::TriggerSync => {
                "Start a sync of a connection (by id or slug). Returns the queued job; with \
                 wait_seconds, waits up to that long for the job to end and returns it then \
                 (check `state`: if it is not succeeded, failed or cancelled yet, follow it \
                 with get_job). Pass an idempotency_key to make retries safe: the same key \
                 returns the same job instead of starting another."
            }
            Self::GetJob => {
                "Get one job by id: its state (awaiting_approval, queued, starting, pending, \
                 running, succeeded, failed, cancelled, rejected, expired), attempts, rows and \
                 bytes synced, its approval request if it needed one, and error."
            }
            Self::ListJobs => {
                "List jobs you may read, newest first; filter by connection (id or slug) and \
                 state, page with limit and the next_cursor of the previous page."
            }
            Self::CancelJob => {
                "Cancel a job that has not ended: a queued job is dropped, a running one is \
                 cancelled in Airbyte. Data already committed stays; the job can be retried."
            }
            Self::ResetConnection => {
                "DESTRUCTIVE: reset a connection (by id or slug), clearing the data it synced \
                 into the destination; the next sync starts over. Returns the job; \
                 wait_seconds and idempotency_key work as for trigger_sync. Where resets wait \
                 for a second person (four eyes), the job's state is awaiting_approval and its \
                 `approval` names the pending request (`links.approval`): a person approves or \
                 denies it in Airlock's console or with `airlock approve`; nothing reaches \
                 Airbyte until then, and no tool here can approve. Give a `reason` for the \
                 approvers; follow the job with get_job (it ends rejected or expired if the \
                 request is denied or nobody decides in time)."
            }
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::ListConnections => "List connections",
            Self::GetConnection => "Get a connection",
            Self::TriggerSync => "Trigger a sync",
            Self::GetJob => "Get a job",
            Self::ListJobs => "List jobs",
            Self::CancelJob => "Cancel a job",
            Self::ResetConnection => "Reset a connection (clears its data)",
        }
    }

    fn annotations(self) -> ToolAnnotations {
        let (read_only, destructive, idempotent) = match self {
            Self::ListConnections | Self::GetConnection | Self::GetJob | Self::ListJobs => {
                (true, false, true)
            }
            Self::TriggerSync => (false, false, false),
            Self::CancelJob => (false, false, true),
            Self::ResetConnection => (false, true, false),
        };
        ToolAnnotations::with_title(self.title())
            .read_only(read_only)
            .destructive(destructive)
            .idempotent(idempotent)
            .open_world(false)
    }

    /// The tool as `tools/list` shows it.
    pub(super) fn definition(self) -> Tool {
        let tool = Tool::new(self.as_str(), self.description(), JsonObject::new())
            .with_title(self.title())
            .with_annotations(self.annotations());
        let tool = match self {
            Self::ListConnections => tool.with_input_schema::<ListConnectionsArgs>(),
            Self::GetConnection => tool.with_input_schema::<ConnectionArgs>(),
            Self::TriggerSync | Self::ResetConnection => tool.with_input_schema::<TriggerArgs>(),
            Self::GetJob | Self::CancelJob => tool.with_input_schema::<JobArgs>(),
            Self::ListJobs => tool.with_input_schema::<ListJobsArgs>(),
        };
        let output = match self {
            Self::ListConnections => list_schema(connection_schema()),
            Self::GetConnection => connection_schema(),
            Self::ListJobs => list_schema(job_schema()),
            Self::TriggerSync | Self::GetJob | Self::CancelJob | Self::ResetConnection => {
                job_schema()
            }
        };
        match output {
            Value::Object(schema) => tool.with_raw_output_schema(Arc::new(schema)),
            _ => tool,
        }
    }

    /// The API request that carries out a call with `arguments`.
    pub(super) fn request(self, arguments: JsonObject) -> Result<ApiCall, McpError> {
        let get = |path_and_query: String| ApiCall {
            method: Method::GET,
            path_and_query,
            idempotency_key: None,
        };
        let call = match self {
            Self::ListConnections => {
                let args: ListConnectionsArgs = parse(arguments)?;
                let query = query(&[("workspace", args.workspace), ("tag", args.tag)]);
                get(format!("/v1/connections{query}"))
            }
            Self::GetConnection => {
                let args: ConnectionArgs = parse(arguments)?;
                get(format!("/v1/connections/{}", segment(&args.connection)))
            }
            Self::TriggerSync | Self::ResetConnection => {
                let args: TriggerArgs = parse(arguments)?;
                if args.wait_seconds.is_some_and(|w| w > MAX_WAIT_SECONDS) {
                    return Err(McpError::InvalidArguments(format!(
                        "wait_seconds is at most {MAX_WAIT_SECONDS}"
                    )));
                }
                if let Some(key) = &args.idempotency_key
                    && (key.is_empty()
                        || key.len() > 255
                        || !key.bytes().all(|b| b.is_ascii_graphic()))
                {
                    return Err(McpError::InvalidArguments(
                        "idempotency_key must be 1 to 255 visible ASCII characters".to_owned(),
                    ));
                }
                let action = if self == Self::TriggerSync {
                    "sync"
                } else {
                    "reset"
                };
                let query = query(&[
                    ("wait", args.wait_seconds.map(|w| format!("{w}s"))),
                    ("if_running", args.if_running.map(|i| i.as_str().to_owned())),
                    ("reason", args.reason),
                ]);
                ApiCall {
                    method: Method::POST,
                    path_and_query: format!(
                        "/v1/connections/{}/{action}{query}",
                        segment(&args.connection)
                    ),
                    idempotency_key: args.idempotency_key,
                }
            }
            Self::GetJob => {
                let args: JobArgs = parse(arguments)?;
                get(format!("/v1/jobs/{}", segment(&args.job_id)))
            }
            Self::CancelJob => {
                let args: JobArgs = parse(arguments)?;
                ApiCall {
                    method: Method::POST,
                    path_and_query: format!("/v1/jobs/{}/cancel", segment(&args.job_id)),
                    idempotency_key: None,
                }
            }
            Self::ListJobs => {
                let args: ListJobsArgs = parse(arguments)?;
                let query = query(&[
                    ("connection", args.connection),
                    ("state", args.state.map(|s| s.as_str().to_owned())),
                    ("limit", args.limit.map(|l| l.to_string())),
                    ("cursor", args.cursor),
                ]);
                get(format!("/v1/jobs{query}"))
            }
        };
        Ok(call)
    }
}

impl FromStr for ToolName {
    type Err = McpError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| McpError::UnknownTool(name.chars().take(100).collect()))
    }
}

/// One request to Airlock's own API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiCall {
    pub method: Method,
    /// Path segments percent-encoded: an argument cannot change the route.
    pub path_and_query: String,
    /// Sent as `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(arguments: JsonObject) -> Result<T, McpError> {
    serde_json::from_value(Value::Object(arguments))
        .map_err(|e| McpError::InvalidArguments(e.to_string()))
}

/// A path segment, percent-encoded but for unreserved characters.
fn segment(text: &str) -> String {
    use std::fmt::Write;
    text.bytes()
        .fold(String::with_capacity(text.len()), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _infallible = write!(out, "%{b:02X}");
            }
            out
        })
}

/// `?a=1&b=2` of the pairs that have a value, or nothing.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in pairs {
        if let Some(value) = value {
            serializer.append_pair(key, value);
            any = true;
        }
    }
    if any {
        format!("?{}", serializer.finish())
    } else {
        String::new()
    }
}

// Arguments. Doc comments become the schema's descriptions.

/// Filters of `list_connections`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
struct ListConnectionsArgs {
    /// Only connections of this workspace (its id or name).
    workspace: Option<String>,
    /// Only connections carrying this Airbyte tag.
    tag: Option<String>,
}

/// One connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
struct ConnectionArgs {
    /// The connection's Airbyte id or its slug (as list_connections shows).
    connection: String,
}

/// What to do when the connection already has an unfinished job.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "lowercase")]
enum IfRunning {
    /// Queue the new job after it (the default).
    Queue,
    /// Return the unfinished job instead of starting another.
    Attach,
    /// Refuse.
    Reject,
}

impl IfRunning {
    fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Attach => "attach",
            Self::Reject => "reject",
        }
    }
}

/// A sync or reset of one connection.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
struct TriggerArgs {
    /// The connection's Airbyte id or its slug.
    connection: String,
    /// Wait up to this many seconds (at most 900) for the job to end before
    /// answering; without it, answer at once with the queued job.
    #[schemars(range(min = 0, max = 900))]
    wait_seconds: Option<u32>,
    /// A key of your choosing (1 to 255 visible ASCII characters): calling
    /// again with the same key returns the same job instead of a new one.
    #[schemars(length(min = 1, max = 255))]
    idempotency_key: Option<String>,
    /// When the connection already has an unfinished job: `queue` (default),
    /// `attach` to it, or `reject`.
    if_running: Option<IfRunning>,
    /// Why (a reset that waits for approval shows it to the approvers); at
    /// most 1,000 characters.
    #[schemars(length(max = 1000))]
    reason: Option<String>,
}

/// One job.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
struct JobArgs {
    /// The job's id (the `id` of a job returned by another tool).
    job_id: String,
}

/// A job state, for filtering.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(rename_all = "snake_case")]
enum JobStateArg {
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

impl JobStateArg {
    fn as_str(self) -> &'static str {
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
}

/// Filters and paging of `list_jobs`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
#[serde(deny_unknown_fields)]
struct ListJobsArgs {
    /// Only jobs of this connection (its Airbyte id or slug).
    connection: Option<String>,
    /// Only jobs in this state.
    state: Option<JobStateArg>,
    /// How many jobs, 1 to 200 (default 50).
    #[schemars(range(min = 1, max = 200))]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

// Output schemas: what the API returns, loosely (more fields may come).

const JOB_STATES: [&str; 10] = [
    "awaiting_approval",
    "queued",
    "starting",
    "pending",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "rejected",
    "expired",
];

fn job_schema() -> Value {
    json!({
        "type": "object",
        "description": "A job of Airlock's queue.",
        "properties": {
            "id": {"type": "string"},
            "connection_id": {"type": "string"},
            "workspace_id": {"type": "string"},
            "type": {"type": "string", "enum": ["sync", "reset"]},
            "state": {"type": "string", "enum": JOB_STATES},
            "airbyte_job_id": {"type": ["integer", "null"]},
            "attempts": {"type": "integer"},
            "requested_by": {"type": "string"},
            "channel": {"type": "string"},
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
            "finished_at": {"type": ["string", "null"]},
            "rows_synced": {"type": ["integer", "null"]},
            "bytes_synced": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "approval": {
                "type": ["object", "null"],
                "description": "The approval request the job waits for (or waited for).",
                "properties": {"id": {"type": "string"}, "state": {"type": "string"}},
            },
            "links": {"type": "object"},
        },
        "required": ["id", "connection_id", "type", "state"],
    })
}

fn connection_schema() -> Value {
    json!({
        "type": "object",
        "description": "An Airbyte connection as Airlock shows it.",
        "properties": {
            "id": {"type": "string"},
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "workspace_id": {"type": "string"},
            "workspace_name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "status": {"type": "string"},
            "schedule": {},
            "last_job": {"type": ["object", "null"]},
            "links": {"type": "object"},
        },
        "required": ["id", "slug", "name", "workspace_id"],
    })
}

fn list_schema(item: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": item},
            "next_cursor": {"type": ["string", "null"]},
        },
        "required": ["data"],
    })
}

#[cfg(test)]
mod tests;
