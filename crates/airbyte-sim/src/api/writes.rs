//! The public API's writes of workspaces, sources and destinations: create
//! (200 with the object), `PATCH`/`PUT` (200 with the object), delete (204,
//! no body); an unknown id is Airbyte's `resource-not-found`. The rules are
//! the world's (`world::edit`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::body::JsonBody;
use crate::api::error::{ApiError, json_response};
use crate::api::resources::{actor_json, path_uuid, workspace_json};
use crate::state::{Shared, write};
use crate::world::{ActorChange, ActorKind, EditError, NewActor};

impl Shared {
    /// The answer to a refused write.
    pub(crate) fn edit_error(&self, error: EditError) -> ApiError {
        match error {
            EditError::NotFound { resource_type, id } => self.not_found(resource_type, id),
            EditError::Invalid(message) => ApiError::BadRequest(message),
        }
    }

    fn now_secs(&self) -> i64 {
        self.now().div_euclid(1_000)
    }
}

fn ok(body: serde_json::Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// `204 No Content`, what Airbyte answers a delete.
pub(crate) fn deleted() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /workspaces` `{"name"}`.
pub(crate) async fn create_workspace(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = JsonBody::parse(uri.path(), &body)?;
    let name = body.required("name", body.string("name")?)?;
    body.uuid("organizationId")?;
    let mut world = write(&shared.world);
    Ok(ok(workspace_json(world.create_workspace(name))))
}

/// `PATCH /workspaces/{workspaceId}` `{"name"}`.
pub(crate) async fn update_workspace(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "workspaceId", uri.path())?;
    let body = JsonBody::parse(uri.path(), &body)?;
    let name = body.required("name", body.string("name")?)?;
    let mut world = write(&shared.world);
    world
        .rename_workspace(id, name)
        .map_err(|e| shared.edit_error(e))?;
    let workspace = world
        .workspace(id)
        .ok_or_else(|| shared.not_found("workspace", id))?;
    Ok(ok(workspace_json(workspace)))
}

/// `DELETE /workspaces/{workspaceId}`: the workspace and all it holds.
pub(crate) async fn delete_workspace(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "workspaceId", uri.path())?;
    let connections = write(&shared.world)
        .delete_workspace(id)
        .map_err(|e| shared.edit_error(e))?;
    shared.cancel_jobs_of(&connections);
    Ok(deleted())
}

/// The part of a create that names the connector: `definitionId`, or the
/// configuration's `sourceType` / `destinationType`; neither is a 422.
fn new_actor(kind: ActorKind, body: &JsonBody) -> Result<NewActor, ApiError> {
    let name = body.required("name", body.string("name")?)?;
    let workspace_id = body.required("workspaceId", body.uuid("workspaceId")?)?;
    let configuration = body.required("configuration", body.object("configuration")?)?;
    let definition_id = body.uuid("definitionId")?;
    let type_key = format!("{}Type", kind.as_str());
    let actor_type = configuration
        .get(&type_key)
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if actor_type.is_none() && definition_id.is_none() {
        return Err(ApiError::Unprocessable(format!(
            "{type_key} must be specified in configuration or definitionId must be provided"
        )));
    }
    Ok(NewActor {
        name,
        workspace_id,
        actor_type,
        definition_id,
        configuration: serde_json::Value::Object(configuration.clone()),
    })
}

fn create_actor(
    shared: &Shared,
    kind: ActorKind,
    path: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body = JsonBody::parse(path, body)?;
    let new = new_actor(kind, &body)?;
    let now = shared.now_secs();
    let mut world = write(&shared.world);
    let actor = world
        .create_actor(kind, new, now)
        .map_err(|e| shared.edit_error(e))?;
    Ok(ok(actor_json(actor, kind.as_str())))
}

fn update_actor(
    shared: &Shared,
    kind: ActorKind,
    path: &str,
    raw: &str,
    body: &[u8],
    replace: bool,
) -> Result<Response, ApiError> {
    let id = path_uuid(raw, &format!("{}Id", kind.as_str()), path)?;
    let body = JsonBody::parse(path, body)?;
    let name = body.string("name")?;
    let configuration = body.object("configuration")?.cloned();
    let (name, configuration) = if replace {
        (
            Some(body.required("name", name)?),
            Some(body.required("configuration", configuration)?),
        )
    } else {
        (name, configuration)
    };
    let change = ActorChange {
        name,
        configuration: configuration.map(serde_json::Value::Object),
        replace,
    };
    let mut world = write(&shared.world);
    let actor = world
        .update_actor(kind, id, change)
        .map_err(|e| shared.edit_error(e))?;
    Ok(ok(actor_json(actor, kind.as_str())))
}

fn delete_actor(
    shared: &Shared,
    kind: ActorKind,
    path: &str,
    raw: &str,
) -> Result<Response, ApiError> {
    let id = path_uuid(raw, &format!("{}Id", kind.as_str()), path)?;
    let connections = write(&shared.world)
        .delete_actor(kind, id)
        .map_err(|e| shared.edit_error(e))?;
    shared.cancel_jobs_of(&connections);
    Ok(deleted())
}

/// `POST /sources`.
pub(crate) async fn create_source(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_actor(&shared, ActorKind::Source, uri.path(), &body)
}

/// `POST /destinations`.
pub(crate) async fn create_destination(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    create_actor(&shared, ActorKind::Destination, uri.path(), &body)
}

/// `PATCH /sources/{sourceId}`.
pub(crate) async fn patch_source(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    update_actor(&shared, ActorKind::Source, uri.path(), &raw, &body, false)
}

/// `PUT /sources/{sourceId}`.
pub(crate) async fn put_source(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    update_actor(&shared, ActorKind::Source, uri.path(), &raw, &body, true)
}

/// `DELETE /sources/{sourceId}`.
pub(crate) async fn delete_source(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    delete_actor(&shared, ActorKind::Source, uri.path(), &raw)
}

/// `PATCH /destinations/{destinationId}`.
pub(crate) async fn patch_destination(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    update_actor(
        &shared,
        ActorKind::Destination,
        uri.path(),
        &raw,
        &body,
        false,
    )
}

/// `PUT /destinations/{destinationId}`.
pub(crate) async fn put_destination(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    update_actor(
        &shared,
        ActorKind::Destination,
        uri.path(),
        &raw,
        &body,
        true,
    )
}

/// `DELETE /destinations/{destinationId}`.
pub(crate) async fn delete_destination(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    delete_actor(&shared, ActorKind::Destination, uri.path(), &raw)
}
