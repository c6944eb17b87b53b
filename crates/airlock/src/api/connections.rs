//! `GET /v1/connections` and `GET /v1/connections/{ref}`: Airbyte's
//! connections, as far as the caller may see them.

use axum::extract::{Path, Query, State};
use axum::response::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState, Caller};
use crate::connections::ConnectionInfo;
use crate::jobs::Job;
use crate::policy::{ConnectionResource, Permission, Resource};
use crate::store::jobs::JobFilter;

/// The policy's view of a connection.
pub(super) fn resource_of(connection: &ConnectionInfo) -> Resource {
    Resource::Connection(ConnectionResource {
        id: connection.id.clone(),
        slug: connection.slug.clone(),
        workspace_id: connection.workspace_id.clone(),
        workspace_name: Some(connection.workspace_name.clone()),
        tags: connection.tags.clone(),
    })
}

/// Finds a connection by id or slug, refreshing the catalog once if needed.
pub(super) async fn resolve(state: &AppState, reference: &str) -> Result<ConnectionInfo, ApiError> {
    if reference.is_empty() || reference.len() > 200 {
        return Err(ApiError::NotFound("connection"));
    }
    match state.catalog().resolve(reference).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ApiError::NotFound("connection")),
        Err(error) => {
            tracing::warn!(error = %error, "cannot list Airbyte connections");
            Err(ApiError::Unavailable("Airbyte"))
        }
    }
}

fn render(connection: &ConnectionInfo, last_job: Option<&Job>) -> Value {
    let base = format!("/v1/connections/{}", connection.slug);
    json!({
        "id": connection.id,
        "slug": connection.slug,
        "name": connection.name,
        "workspace_id": connection.workspace_id,
        "workspace_name": connection.workspace_name,
        "tags": connection.tags,
        "status": connection.status,
        "schedule": connection.schedule,
        "last_job": last_job.map(|job| json!({
            "id": job.id,
            "type": job.job_type,
            "state": job.state,
            "created_at": super::jobs::rfc3339(job.created_at),
            "finished_at": job.finished_at.map(super::jobs::rfc3339),
        })),
        "links": {
            "self": base,
            "sync": format!("{base}/sync"),
            "reset": format!("{base}/reset"),
            "jobs": format!("/v1/jobs?connection={}", connection.id),
        },
    })
}

/// Filters of the connection list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only connections of this workspace (id or name).
    workspace: Option<String>,
    /// Only connections carrying this tag.
    tag: Option<String>,
}

/// Lists the connections the caller may read.
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    caller
        .require_somewhere(&state, Permission::ConnectionsRead)
        .await?;
    let mut snapshot = state.catalog().snapshot();
    if snapshot.fetched_at == 0 {
        snapshot = state.catalog().refresh().await.map_err(|error| {
            tracing::warn!(error = %error, "cannot list Airbyte connections");
            ApiError::Unavailable("Airbyte")
        })?;
    }
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
                &resource_of(c),
            )
        })
        .collect();
    let mut visible = visible;
    visible.sort_by(|a, b| (&a.workspace_name, &a.name).cmp(&(&b.workspace_name, &b.name)));
    let data: Vec<Value> = visible.iter().map(|c| render(c, None)).collect();
    caller
        .read(&state, "connections.list", &Resource::Global)
        .await;
    Ok(Json(json!({"data": data, "next_cursor": null})))
}

/// One connection, with its last job.
pub(super) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller
        .require_somewhere(&state, Permission::ConnectionsRead)
        .await?;
    let connection = resolve(&state, &reference).await?;
    caller
        .authorize(
            &state,
            Permission::ConnectionsRead,
            &resource_of(&connection),
        )
        .await?;
    let last = state
        .store()
        .list_jobs(&JobFilter {
            connection_ids: Some(vec![connection.id.clone()]),
            limit: 1,
            ..JobFilter::default()
        })
        .await
        .map_err(super::jobs::store_error)?;
    caller
        .read(&state, "connections.get", &resource_of(&connection))
        .await;
    Ok(Json(render(&connection, last.first())))
}
