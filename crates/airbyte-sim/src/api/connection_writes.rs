//! The public API's writes of connections (`POST /connections`, `PATCH` and
//! `DELETE /connections/{id}`) and the stream catalog a new connection is
//! configured from (`GET /streams`). The rules are the world's
//! (`world::connections`); this file reads Airbyte's JSON into them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api::body::JsonBody;
use crate::api::error::{ApiError, json_response};
use crate::api::paging::Query;
use crate::api::resources::{connection_json, path_uuid};
use crate::api::writes::deleted;
use crate::state::{Shared, read, write};
use crate::world::{
    ActorKind, ConnectionChange, ConnectionStatus, NewConnection, Schedule, StreamChoice,
};

const SYNC_MODES: [&str; 4] = [
    "full_refresh_overwrite",
    "full_refresh_append",
    "incremental_append",
    "incremental_deduped_history",
];

/// `configurations.streams`, when the body has it.
fn stream_choices(body: &JsonBody) -> Result<Option<Vec<StreamChoice>>, ApiError> {
    let Some(configurations) = body.object("configurations")? else {
        return Ok(None);
    };
    let configurations = body.nested(configurations);
    let Some(streams) = configurations.typed::<Vec<serde_json::Map<String, Value>>>("streams")?
    else {
        return Ok(None);
    };
    streams
        .iter()
        .map(|stream| {
            let stream = body.nested(stream);
            Ok(StreamChoice {
                name: stream.required("name", stream.string("name")?)?,
                sync_mode: stream.one_of("syncMode", &SYNC_MODES)?,
                cursor_field: stream.typed("cursorField")?,
                primary_key: stream.typed("primaryKey")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()
        .map(Some)
}

/// `schedule`: `{"scheduleType": "manual"|"cron", "cronExpression"}`.
fn schedule(body: &JsonBody) -> Result<Option<Schedule>, ApiError> {
    let Some(schedule) = body.object("schedule")? else {
        return Ok(None);
    };
    let schedule = body.nested(schedule);
    let kind = schedule.required(
        "scheduleType",
        schedule.one_of("scheduleType", &["manual", "cron"])?,
    )?;
    Ok(Some(if kind == "cron" {
        Schedule::Cron {
            cron: schedule.string("cronExpression")?.unwrap_or_default(),
            timezone: "UTC".to_owned(),
        }
    } else {
        Schedule::Manual
    }))
}

fn status(body: &JsonBody) -> Result<Option<ConnectionStatus>, ApiError> {
    Ok(
        match body
            .one_of("status", &["active", "inactive", "deprecated"])?
            .as_deref()
        {
            Some("active") => Some(ConnectionStatus::Active),
            Some("inactive") => Some(ConnectionStatus::Inactive),
            Some(_) => Some(ConnectionStatus::Deprecated),
            None => None,
        },
    )
}

fn namespace_definition(body: &JsonBody) -> Result<Option<String>, ApiError> {
    body.one_of(
        "namespaceDefinition",
        &["source", "destination", "custom_format"],
    )
}

/// `POST /connections`.
pub(crate) async fn create_connection(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = JsonBody::parse(uri.path(), &body)?;
    let new = NewConnection {
        source_id: body.required("sourceId", body.uuid("sourceId")?)?,
        destination_id: body.required("destinationId", body.uuid("destinationId")?)?,
        name: body.string("name")?,
        streams: stream_choices(&body)?,
        schedule: schedule(&body)?.unwrap_or_default(),
        namespace_definition: namespace_definition(&body)?,
        namespace_format: body.string("namespaceFormat")?,
        prefix: body.string("prefix")?,
        status: status(&body)?,
    };
    let now = shared.now().div_euclid(1_000);
    let mut world = write(&shared.world);
    let id = world
        .create_connection(new, now)
        .map_err(|e| shared.edit_error(e))?;
    let c = world
        .connection(id)
        .ok_or_else(|| shared.not_found("connection", id))?;
    Ok(json_response(StatusCode::OK, connection_json(c, &world)))
}

/// `PATCH /connections/{connectionId}`.
pub(crate) async fn patch_connection(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "connectionId", uri.path())?;
    let body = JsonBody::parse(uri.path(), &body)?;
    let change = ConnectionChange {
        name: body.string("name")?,
        streams: stream_choices(&body)?,
        schedule: schedule(&body)?,
        namespace_definition: namespace_definition(&body)?,
        namespace_format: body.string("namespaceFormat")?,
        prefix: body.string("prefix")?,
        status: status(&body)?,
    };
    let mut world = write(&shared.world);
    world
        .update_connection(id, change)
        .map_err(|e| shared.edit_error(e))?;
    let c = world
        .connection(id)
        .ok_or_else(|| shared.not_found("connection", id))?;
    Ok(json_response(StatusCode::OK, connection_json(c, &world)))
}

/// `DELETE /connections/{connectionId}`: deprecated, its sync cancelled.
pub(crate) async fn delete_connection(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_uuid(&raw, "connectionId", uri.path())?;
    write(&shared.world)
        .delete_connection(id)
        .map_err(|e| shared.edit_error(e))?;
    shared.cancel_jobs_of(&[id]);
    Ok(deleted())
}

/// `GET /streams?sourceId=&destinationId=`: what the source discovers, as
/// `StreamProperties`.
pub(crate) async fn get_streams(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let source_id = q.uuid("sourceId")?.ok_or_else(|| ApiError::Binding {
        path: uri.path().to_owned(),
        message: "Required QueryValue [sourceId] not specified".to_owned(),
    })?;
    let destination_id = q.uuid("destinationId")?;
    q.bool("ignoreCache")?;
    let world = read(&shared.world);
    if world.actor(ActorKind::Source, source_id).is_none() {
        return Err(shared.not_found("source", source_id));
    }
    if let Some(id) = destination_id
        && world.actor(ActorKind::Destination, id).is_none()
    {
        return Err(shared.not_found("destination", id));
    }
    let streams: Vec<Value> = world
        .source_catalog(source_id)
        .iter()
        .map(|s| {
            let incremental = s.supported_sync_modes().contains(&"incremental");
            let modes: Vec<&str> = SYNC_MODES
                .iter()
                .copied()
                .filter(|m| incremental || m.starts_with("full_refresh"))
                .collect();
            let fields: Vec<Vec<&str>> = s.fields.keys().map(|f| vec![f.as_str()]).collect();
            json!({
                "streamName": s.name,
                "syncModes": modes,
                "defaultCursorField": s.cursor_field,
                "sourceDefinedCursorField": false,
                "sourceDefinedPrimaryKey": s.primary_key,
                "propertyFields": fields,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, streams))
}
