//! The simulator's own control API under `/_sim` (no authentication, never faulted):
//! faults, counters, the clock, token expiry, bulk connections, a job dump and a
//! summary of the world. JSON in snake_case, as it is not Airbyte's.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::error::json_response;
use crate::clock::{Millis, format_utc};
use crate::counters::Counters;
use crate::faults::Faults;
use crate::jobs::{JobFilter, JobKind, Origin};
use crate::state::{Shared, lock, read, write};
use crate::world::BulkAdd;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/faults", get(get_faults).put(put_faults))
        .route("/_sim/counters", get(get_counters))
        .route("/_sim/counters/reset", post(reset_counters))
        .route("/_sim/expire-tokens", post(expire_tokens))
        .route("/_sim/advance", post(advance))
        .route("/_sim/clock", get(clock))
        .route("/_sim/connections", post(add_connections))
        .route("/_sim/jobs", get(list_jobs))
        .route("/_sim/world", get(world))
        .with_state(shared)
}

fn bad_request(message: String) -> Response {
    json_response(StatusCode::BAD_REQUEST, json!({"error": message}))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(read(&shared.faults).clone()).into_response()
}

async fn put_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let faults: Faults = match parse(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    if let Err(e) = faults.validate() {
        return bad_request(e);
    }
    shared.set_faults(faults);
    axum::Json(read(&shared.faults).clone()).into_response()
}

async fn get_counters(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&shared.counters).clone()).into_response()
}

async fn reset_counters(State(shared): State<Arc<Shared>>) -> Response {
    *lock(&shared.counters) = Counters::default();
    axum::Json(Counters::default()).into_response()
}

async fn expire_tokens(State(shared): State<Arc<Shared>>) -> Response {
    let expired = lock(&shared.tokens).expire_all();
    axum::Json(json!({"expired": expired})).into_response()
}

fn clock_json(now: Millis) -> Value {
    json!({"now": format_utc(now), "now_ms": now})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    seconds: f64,
}

async fn advance(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: Advance = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    if !(req.seconds.is_finite() && req.seconds >= 0.0 && req.seconds <= 10.0 * 365.0 * 86_400.0) {
        return bad_request("seconds must be between 0 and ten years".to_owned());
    }
    let now = shared
        .clock
        .advance((req.seconds * 1_000.0).round() as Millis);
    axum::Json(clock_json(now)).into_response()
}

async fn clock(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(clock_json(shared.now())).into_response()
}

async fn add_connections(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: BulkAdd = match parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let added = write(&shared.world).add_bulk(&req);
    let (workspace_id, ids) = match added {
        Ok(x) => x,
        Err(e) => return bad_request(e),
    };
    let mut job_ids = Vec::new();
    if req.start_syncs {
        for &id in &ids {
            if let Ok(view) = shared.start_job(id, JobKind::Sync, Origin::Admin) {
                job_ids.push(view.id);
            }
        }
    }
    axum::Json(json!({
        "workspace_id": workspace_id,
        "connection_ids": ids,
        "job_ids": job_ids,
    }))
    .into_response()
}

async fn list_jobs(State(shared): State<Arc<Shared>>) -> Response {
    let now = shared.now();
    let views = lock(&shared.jobs).list(&JobFilter::default(), now);
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    let data: Vec<Value> = views
        .iter()
        .map(|v| {
            *by_status.entry(v.status.as_str()).or_default() += 1;
            json!({
                "id": v.id,
                "connection_id": v.connection_id,
                "workspace_id": v.workspace_id,
                "type": v.kind.as_str(),
                "status": v.status.as_str(),
                "origin": v.origin,
                "attempts": v.attempts,
                "created_at": format_utc(v.created),
                "updated_at": format_utc(v.updated),
                "rows_synced": v.rows,
                "bytes_synced": v.bytes,
            })
        })
        .collect();
    axum::Json(json!({"total": data.len(), "by_status": by_status, "data": data})).into_response()
}

async fn world(State(shared): State<Arc<Shared>>) -> Response {
    let world = read(&shared.world);
    let workspaces: Vec<Value> = world
        .workspaces
        .iter()
        .map(|w| json!({"id": w.id, "name": w.name}))
        .collect();
    let connections: Vec<Value> = world
        .connections
        .iter()
        .map(|c| {
            let tags: Vec<&str> = c
                .tag_ids
                .iter()
                .filter_map(|t| world.tag(*t))
                .map(|t| t.name.as_str())
                .collect();
            json!({
                "id": c.id,
                "name": c.name,
                "workspace_id": c.workspace_id,
                "status": c.status.as_str(),
                "schedule": c.schedule.kind(),
                "tags": tags,
            })
        })
        .collect();
    let tags: Vec<Value> = world
        .tags
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "workspace_id": t.workspace_id}))
        .collect();
    axum::Json(json!({"workspaces": workspaces, "connections": connections, "tags": tags}))
        .into_response()
}
