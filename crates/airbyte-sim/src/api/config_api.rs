//! The one Configuration API route that Dagster reads before a sync:
//! `POST /api/v1/connections/get` `{"connectionId"}` → a `ConnectionRead`.
//!
//! The Configuration API is Airbyte's internal API: camelCase JSON like the
//! public one, but with its own vocabulary (`customformat`, `scheduleData`, a full
//! `syncCatalog` including unselected streams) and its own error body.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::error::json_response;
use crate::state::{Shared, read};
use crate::world::{Connection, Schedule};

/// The Configuration API's "known exception" body.
fn known_exception(status: StatusCode, message: String, class: &str) -> Response {
    json_response(
        status,
        json!({
            "message": message,
            "exceptionClassName": class,
            "exceptionStack": [],
            "rootCauseExceptionStack": [],
        }),
    )
}

fn connection_read(c: &Connection) -> Value {
    let streams: Vec<Value> = c
        .streams
        .iter()
        .map(|s| {
            let mut stream = json!({
                "name": s.name,
                "jsonSchema": s.json_schema(),
                "supportedSyncModes": s.supported_sync_modes(),
                "sourceDefinedCursor": false,
                "defaultCursorField": s.cursor_field,
                "sourceDefinedPrimaryKey": s.primary_key,
                "isResumable": true,
            });
            if let Some(ns) = &s.namespace {
                stream["namespace"] = json!(ns);
            }
            json!({
                "stream": stream,
                "config": {
                    "syncMode": s.sync_mode,
                    "cursorField": s.cursor_field,
                    "destinationSyncMode": s.destination_sync_mode,
                    "primaryKey": s.primary_key,
                    "aliasName": s.name,
                    "selected": s.selected,
                    "suggested": true,
                    "fieldSelectionEnabled": false,
                },
            })
        })
        .collect();
    let namespace_definition = match c.namespace_definition.as_str() {
        "custom_format" => "customformat",
        other => other,
    };
    let mut read = json!({
        "connectionId": c.id,
        "name": c.name,
        "namespaceDefinition": namespace_definition,
        "prefix": c.prefix,
        "sourceId": c.source_id,
        "destinationId": c.destination_id,
        "operationIds": [],
        "syncCatalog": {"streams": streams},
        "scheduleType": c.schedule.kind(),
        "status": c.status.as_str(),
        "geography": "auto",
        "breakingChange": false,
        "notifySchemaChanges": false,
        "notifySchemaChangesByEmail": false,
        "nonBreakingChangesPreference": "ignore",
        "backfillPreference": "disabled",
        "createdAt": c.created_at,
        "tags": [],
    });
    if let Some(format) = &c.namespace_format {
        read["namespaceFormat"] = json!(format);
    }
    match &c.schedule {
        Schedule::Manual => {}
        Schedule::Basic { every, unit } => {
            read["schedule"] = json!({"units": every, "timeUnit": unit});
            read["scheduleData"] = json!({"basicSchedule": {"timeUnit": unit, "units": every}});
        }
        Schedule::Cron { cron, timezone } => {
            read["scheduleData"] =
                json!({"cron": {"cronExpression": cron, "cronTimeZone": timezone}});
        }
    }
    read
}

/// `POST /api/v1/connections/get`
pub(crate) async fn get_connection(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let Ok(body) = parsed else {
        return known_exception(
            StatusCode::BAD_REQUEST,
            "Invalid JSON in the request body".to_owned(),
            "com.fasterxml.jackson.core.JsonParseException",
        );
    };
    let Some(raw) = body.get("connectionId").and_then(Value::as_str) else {
        return known_exception(
            StatusCode::BAD_REQUEST,
            "connectionId is required".to_owned(),
            "io.airbyte.commons.server.errors.BadObjectSchemaKnownException",
        );
    };
    let Ok(id) = Uuid::parse_str(raw) else {
        return known_exception(
            StatusCode::BAD_REQUEST,
            format!("Invalid UUID string: {raw}"),
            "io.airbyte.commons.server.errors.BadObjectSchemaKnownException",
        );
    };
    let world = read(&shared.world);
    match world.connection(id) {
        Some(c) => json_response(StatusCode::OK, connection_read(c)),
        None => known_exception(
            StatusCode::NOT_FOUND,
            format!("Could not find configuration for STANDARD_SYNC: {id}."),
            "io.airbyte.commons.server.errors.IdNotFoundKnownException",
        ),
    }
}
