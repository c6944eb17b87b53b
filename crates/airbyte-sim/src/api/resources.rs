//! Workspaces, sources, destinations, connections and tags: list and get, with the
//! public API's JSON shapes (what the official SDK 1.0.1 requires to parse them).

use std::sync::Arc;

use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::error::{ApiError, json_response};
use crate::api::paging::{Query, origin, page, window};
use crate::state::{Shared, read};
use crate::world::{Actor, Connection, ConnectionStatus, Schedule, Tag, Workspace, World};

impl Shared {
    /// The `resource-not-found` error, with the configured status.
    pub(crate) fn not_found(&self, resource_type: &'static str, id: impl ToString) -> ApiError {
        ApiError::NotFound {
            status: axum::http::StatusCode::from_u16(self.config.not_found_status)
                .unwrap_or(axum::http::StatusCode::NOT_FOUND),
            resource_type,
            id: id.to_string(),
        }
    }
}

/// Parses a path id the way the framework binds it: a bad one is a 400.
pub(crate) fn path_uuid(raw: &str, name: &str, path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::Binding {
        path: path.to_owned(),
        message: format!(
            "Failed to convert argument [{name}] for value [{raw}] due to: Invalid UUID string: {raw}"
        ),
    })
}

fn ok(body: impl serde::Serialize) -> Response {
    json_response(axum::http::StatusCode::OK, body)
}

pub(crate) fn workspace_json(w: &Workspace) -> Value {
    let off = json!({"email": {"enabled": false}, "webhook": {"enabled": false}});
    json!({
        "workspaceId": w.id,
        "name": w.name,
        "dataResidency": w.data_residency,
        "notifications": {
            "failure": {"email": {"enabled": true}, "webhook": {"enabled": false}},
            "success": off,
            "connectionUpdate": {"email": {"enabled": true}, "webhook": {"enabled": false}},
            "connectionUpdateActionRequired": {"email": {"enabled": true}, "webhook": {"enabled": false}},
            "syncDisabled": {"email": {"enabled": true}, "webhook": {"enabled": false}},
            "syncDisabledWarning": {"email": {"enabled": true}, "webhook": {"enabled": false}},
        },
    })
}

pub(crate) fn actor_json(a: &Actor, kind: &str) -> Value {
    // Airbyte returns the stored (masked) configuration, which names its
    // connector type: the OpenAPI document's configuration unions are
    // discriminated on `sourceType` / `destinationType` (each variant
    // requires its own constant), and the official SDK cannot parse a
    // destination without it.
    let mut configuration = a.configuration.clone();
    if let Some(map) = configuration.as_object_mut() {
        map.entry(format!("{kind}Type"))
            .or_insert_with(|| json!(a.actor_type));
    }
    json!({
        format!("{kind}Id"): a.id,
        "name": a.name,
        format!("{kind}Type"): a.actor_type,
        "definitionId": a.definition_id,
        "workspaceId": a.workspace_id,
        "configuration": configuration,
        "createdAt": a.created_at,
    })
}

pub(crate) fn tag_json(t: &Tag) -> Value {
    json!({
        "tagId": t.id,
        "name": t.name,
        "color": t.color,
        "workspaceId": t.workspace_id,
    })
}

pub(crate) fn schedule_json(s: &Schedule) -> Value {
    match s {
        Schedule::Manual => json!({"scheduleType": "manual"}),
        Schedule::Cron { cron, .. } => json!({"scheduleType": "cron", "cronExpression": cron}),
        Schedule::Basic { every, unit } => json!({
            "scheduleType": "basic",
            "basicTiming": format!("Every {every} {unit}"),
        }),
    }
}

pub(crate) fn connection_json(c: &Connection, world: &World) -> Value {
    let streams: Vec<Value> = c
        .streams
        .iter()
        .filter(|s| s.selected)
        .map(|s| {
            let mut v = json!({
                "name": s.name,
                "syncMode": s.public_sync_mode(),
                "cursorField": s.cursor_field,
                "primaryKey": s.primary_key,
            });
            if let Some(ns) = &s.namespace {
                v["namespace"] = json!(ns);
            }
            v
        })
        .collect();
    let tags: Vec<Value> = c
        .tag_ids
        .iter()
        .filter_map(|id| world.tag(*id))
        .map(tag_json)
        .collect();
    let mut v = json!({
        "connectionId": c.id,
        "name": c.name,
        "sourceId": c.source_id,
        "destinationId": c.destination_id,
        "workspaceId": c.workspace_id,
        "status": c.status.as_str(),
        "schedule": schedule_json(&c.schedule),
        "dataResidency": world.workspace(c.workspace_id).map_or("auto", |w| w.data_residency.as_str()),
        "nonBreakingSchemaUpdatesBehavior": "ignore",
        "namespaceDefinition": c.namespace_definition,
        "configurations": {"streams": streams},
        "createdAt": c.created_at,
        "tags": tags,
    });
    if let Some(format) = &c.namespace_format {
        v["namespaceFormat"] = json!(format);
    }
    if !c.prefix.is_empty() {
        v["prefix"] = json!(c.prefix);
    }
    v
}

/// `GET /workspaces`
pub(crate) async fn list_workspaces(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let ids = q.uuids("workspaceIds")?;
    let include_deleted = q.bool("includeDeleted")?;
    let req = q.page()?;
    let world = read(&shared.world);
    let matching: Vec<&Workspace> = world
        .workspaces
        .iter()
        .filter(|w| ids.is_empty() || ids.contains(&w.id))
        .filter(|w| include_deleted || !w.deleted)
        .collect();
    let data: Vec<Value> = window(&matching, req)
        .iter()
        .map(|w| workspace_json(w))
        .collect();
    Ok(ok(page(data, req, &origin(&headers), &q)))
}

/// `GET /workspaces/{workspaceId}`
pub(crate) async fn get_workspace(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "workspaceId", uri.path())?;
    let world = read(&shared.world);
    let w = world
        .workspace(id)
        .ok_or_else(|| shared.not_found("workspace", id))?;
    Ok(ok(workspace_json(w)))
}

fn list_actors(
    shared: &Shared,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    kind: &str,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(uri);
    let ids = q.uuids("workspaceIds")?;
    let include_deleted = q.bool("includeDeleted")?;
    let req = q.page()?;
    let world = read(&shared.world);
    let list = if kind == "source" {
        &world.sources
    } else {
        &world.destinations
    };
    let matching: Vec<&Actor> = list
        .iter()
        .filter(|a| ids.is_empty() || ids.contains(&a.workspace_id))
        .filter(|a| include_deleted || !a.deleted)
        .collect();
    let data: Vec<Value> = window(&matching, req)
        .iter()
        .map(|a| actor_json(a, kind))
        .collect();
    Ok(ok(page(data, req, &origin(headers), &q)))
}

/// `GET /sources`
pub(crate) async fn list_sources(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    list_actors(&shared, &headers, &uri, "source")
}

/// `GET /destinations`
pub(crate) async fn list_destinations(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    list_actors(&shared, &headers, &uri, "destination")
}

/// `GET /sources/{sourceId}`
pub(crate) async fn get_source(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "sourceId", uri.path())?;
    let world = read(&shared.world);
    let a = world
        .source(id)
        .ok_or_else(|| shared.not_found("source", id))?;
    Ok(ok(actor_json(a, "source")))
}

/// `GET /destinations/{destinationId}`
pub(crate) async fn get_destination(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "destinationId", uri.path())?;
    let world = read(&shared.world);
    let a = world
        .destination(id)
        .ok_or_else(|| shared.not_found("destination", id))?;
    Ok(ok(actor_json(a, "destination")))
}

/// `GET /connections`: `workspaceIds`, `tagIds` (any of), `includeDeleted`, paging.
pub(crate) async fn list_connections(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let workspaces = q.uuids("workspaceIds")?;
    let tags = q.uuids("tagIds")?;
    let include_deleted = q.bool("includeDeleted")?;
    let req = q.page()?;
    let world = read(&shared.world);
    let matching: Vec<&Connection> = world
        .connections
        .iter()
        .filter(|c| workspaces.is_empty() || workspaces.contains(&c.workspace_id))
        .filter(|c| tags.is_empty() || c.tag_ids.iter().any(|t| tags.contains(t)))
        .filter(|c| include_deleted || c.status != ConnectionStatus::Deprecated)
        .collect();
    let data: Vec<Value> = window(&matching, req)
        .iter()
        .map(|c| connection_json(c, &world))
        .collect();
    Ok(ok(page(data, req, &origin(&headers), &q)))
}

/// `GET /connections/{connectionId}`
pub(crate) async fn get_connection(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "connectionId", uri.path())?;
    let world = read(&shared.world);
    let c = world
        .connection(id)
        .ok_or_else(|| shared.not_found("connection", id))?;
    Ok(ok(connection_json(c, &world)))
}

/// `GET /tags`: `{"data": [...]}`, filtered by `workspaceIds`.
pub(crate) async fn list_tags(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let workspaces = q.uuids("workspaceIds")?;
    let world = read(&shared.world);
    let data: Vec<Value> = world
        .tags
        .iter()
        .filter(|t| workspaces.is_empty() || workspaces.contains(&t.workspace_id))
        .map(tag_json)
        .collect();
    Ok(ok(json!({"data": data})).into_response())
}
