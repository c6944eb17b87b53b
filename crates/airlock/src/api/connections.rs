//! `GET /v1/connections` and `GET /v1/connections/{ref}`: Airbyte's
//! connections, as far as the caller may see them.

use crate::web::params::Query;
use axum::extract::{Path, State};
use axum::response::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::service::connections;
use crate::web::problem::responses::{
    BadRequest, Forbidden, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use crate::web::{ApiError, AppState, Caller};
use airlock_domain::jobs::{Job, JobState, JobType};
use airlock_domain::policy::{Permission, Resource};
use airlock_services::connections::ConnectionInfo;
use airlock_store::jobs::JobFilter;

/// A connection as Airlock's API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Connection)]
pub(super) struct ConnectionView {
    /// Airbyte's connection id.
    id: String,
    /// A short unique name for URLs (derived from the name or set in config).
    slug: String,
    name: String,
    workspace_id: String,
    workspace_name: String,
    /// Names of its Airbyte tags.
    tags: Vec<String>,
    /// Airbyte's status (`active`, `inactive`, ...).
    status: String,
    /// Airbyte's schedule object, as Airbyte sent it.
    schedule: Value,
    /// The newest job (on `GET /v1/connections/{ref}`, and in lists with
    /// `include=last_job`; null otherwise).
    last_job: Option<LastJob>,
    /// With `include=permissions`: what the caller may do on this
    /// connection (`connections:read`, `jobs:read`, `jobs:sync`,
    /// `jobs:cancel`, `jobs:retry`, `jobs:reset`, `airbyte:write`,
    /// `approvals:decide`, `approvals:bypass`).
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Vec<&'static str>>,
    links: ConnectionLinks,
}

/// One item of `include` (the document's enum).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[expect(dead_code, reason = "it only describes the document")]
enum IncludeItem {
    LastJob,
    Permissions,
}

/// One item of `include` for one connection (the document's enum).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[expect(dead_code, reason = "it only describes the document")]
enum OneIncludeItem {
    Permissions,
}

/// What `include` may ask for.
#[derive(Debug, Clone, Copy, Default)]
struct Include {
    last_job: bool,
    permissions: bool,
}

impl Include {
    /// `last_job`, `permissions`, comma-separated.
    fn parse(text: Option<&str>) -> Result<Self, ApiError> {
        let mut include = Self::default();
        for item in text.unwrap_or_default().split(',').map(str::trim) {
            match item {
                "" => {}
                "last_job" => include.last_job = true,
                "permissions" => include.permissions = true,
                other => {
                    return Err(ApiError::invalid(
                        "include",
                        format!("`{other}` is neither last_job nor permissions"),
                    ));
                }
            }
        }
        Ok(include)
    }
}

/// The newest job of a connection, in short.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LastJob {
    id: String,
    #[serde(rename = "type")]
    job_type: JobType,
    state: JobState,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339; null while the job runs.
    finished_at: Option<String>,
}

/// Where to act on a connection.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConnectionLinks {
    #[serde(rename = "self")]
    this: String,
    sync: String,
    reset: String,
    jobs: String,
}

/// A page of connections (every visible one: `next_cursor` is always null).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ConnectionPage {
    data: Vec<ConnectionView>,
    next_cursor: Option<String>,
}

fn render(connection: &ConnectionInfo, last_job: Option<&Job>) -> ConnectionView {
    let base = format!("/v1/connections/{}", connection.slug);
    ConnectionView {
        id: connection.id.clone(),
        slug: connection.slug.clone(),
        name: connection.name.clone(),
        workspace_id: connection.workspace_id.clone(),
        workspace_name: connection.workspace_name.clone(),
        tags: connection.tags.clone(),
        status: connection.status.clone(),
        schedule: connection.schedule.clone(),
        last_job: last_job.map(|job| LastJob {
            id: job.id.to_string(),
            job_type: job.job_type,
            state: job.state,
            created_at: airlock_domain::jobs::view::rfc3339(job.created_at),
            finished_at: job.finished_at.map(airlock_domain::jobs::view::rfc3339),
        }),
        permissions: None,
        links: ConnectionLinks {
            this: base.clone(),
            sync: format!("{base}/sync"),
            reset: format!("{base}/reset"),
            jobs: format!("/v1/jobs?connection={}", connection.id),
        },
    }
}

/// Filters of the connection list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only connections of this workspace (id or name).
    workspace: Option<String>,
    /// Only connections carrying this tag.
    tag: Option<String>,
    /// Extras, comma-separated: `last_job` (each connection's newest job),
    /// `permissions` (what the caller may do on each).
    #[param(inline, style = Form, explode = false, value_type = Option<Vec<IncludeItem>>)]
    include: Option<String>,
}

/// Options of one connection.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct GetQuery {
    /// `permissions`: what the caller may do on it (one connection always
    /// has its last job).
    #[param(inline, style = Form, explode = false, value_type = Option<Vec<OneIncludeItem>>)]
    include: Option<String>,
}

/// Lists the connections the caller may read.
#[utoipa::path(
    get,
    path = "/v1/connections",
    operation_id = "list_connections",
    tag = "connections",
    summary = "List the connections the caller may read",
    description = "Airbyte's connections that the caller's `connections:read` grants cover, \
        sorted by workspace and name.",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The connections", body = ConnectionPage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<ConnectionPage>, ApiError> {
    caller
        .require_somewhere(&state, Permission::ConnectionsRead)
        .await?;
    let include = Include::parse(query.include.as_deref())?;
    let snapshot = connections::catalog(&state).await?;
    let policy = state.policy();
    let visible: Vec<&ConnectionInfo> = snapshot
        .all()
        .iter()
        .filter(|c| {
            query
                .workspace
                .as_ref()
                .is_none_or(|w| *w == c.workspace_id || *w == c.workspace_name)
        })
        .filter(|c| query.tag.as_ref().is_none_or(|t| c.tags.contains(t)))
        .filter(|c| {
            policy.allows(
                &caller.principal,
                Permission::ConnectionsRead,
                &c.resource(),
            )
        })
        .collect();
    let mut visible = visible;
    visible.sort_by(|a, b| (&a.workspace_name, &a.name).cmp(&(&b.workspace_name, &b.name)));
    let last_jobs: std::collections::HashMap<String, Job> = if include.last_job {
        let ids: Vec<String> = visible.iter().map(|c| c.id.clone()).collect();
        state
            .store()
            .latest_jobs_of(&ids)
            .await?
            .into_iter()
            .map(|job| (job.connection_id.clone(), job))
            .collect()
    } else {
        std::collections::HashMap::new()
    };
    let data: Vec<ConnectionView> = visible
        .iter()
        .map(|c| {
            let mut view = render(c, last_jobs.get(&c.id));
            if include.permissions {
                view.permissions = Some(connections::permissions_on(&policy, &caller, c));
            }
            view
        })
        .collect();
    caller
        .read(&state, "connections.list", &Resource::Global)
        .await;
    Ok(Json(ConnectionPage {
        data,
        next_cursor: None,
    }))
}

/// One connection, with its last job.
#[utoipa::path(
    get,
    path = "/v1/connections/{reference}",
    operation_id = "get_connection",
    tag = "connections",
    summary = "One connection, with its last job",
    params(
        ("reference" = String, Path, description = "The Airbyte connection id or its slug"),
        GetQuery,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
    Query(query): Query<GetQuery>,
) -> Result<Json<ConnectionView>, ApiError> {
    caller
        .require_somewhere(&state, Permission::ConnectionsRead)
        .await?;
    let include = Include::parse(query.include.as_deref())?;
    if include.last_job {
        return Err(ApiError::invalid(
            "include",
            "a single connection always has its last_job",
        ));
    }
    let connection = connections::get(&state, &caller, &reference).await?;
    let last = state
        .store()
        .list_jobs(&JobFilter {
            connection_ids: Some(vec![connection.id.clone()]),
            limit: 1,
            ..JobFilter::default()
        })
        .await?;
    caller
        .read(&state, "connections.get", &connection.resource())
        .await;
    let mut view = render(&connection, last.first());
    if include.permissions {
        view.permissions = Some(connections::permissions_on(
            &state.policy(),
            &caller,
            &connection,
        ));
    }
    Ok(Json(view))
}
