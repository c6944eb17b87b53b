//! The whole HTTP surface, assembled: the operations endpoints
//! (`/healthz`, `/readyz`, `/metrics`), the documentation (`/openapi.json`,
//! `/docs`), Airlock's API, the Airbyte-compatible front, `/mcp` and the
//! console. Each door brings its own routes (`web::routes::Routes`, each
//! also its part of the document); this module only puts them side by
//! side.

pub mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};

use crate::console::Console;
use crate::front::Front;
use crate::mcp::McpConfig;
use crate::web::routes::{Routes, route};
use crate::web::{self, AppState};

/// Every route of Airlock, with middleware.
pub fn router(
    state: &AppState,
    front: Arc<Front>,
    console: Arc<Console>,
    mcp: &McpConfig,
) -> Router {
    let doors = Routes::<AppState>::new()
        .route(route!(healthz))
        .route(route!(readyz))
        .route(route!(metrics))
        .merge(crate::api::routes())
        .with_state(state.clone())
        .merge(crate::front::routes(state.clone(), front));
    let mcp = crate::mcp::routes(state.clone(), mcp);
    let console = crate::console::routes(state.clone(), console);
    let docs = openapi::routes([&doors, &mcp, &console]);
    doors
        .merge(docs)
        .wrap(|routes| web::layered(routes, state.clone()))
        .merge(mcp)
        .merge(console)
        .into_router()
}

/// The process is up. Says nothing about its dependencies (see `/readyz`).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process is up",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// Prometheus metrics in the text format. Unauthenticated, like the health
/// checks: it names route templates, permissions and states, never ids,
/// subjects or secrets; its database figures are reused for
/// [`web::RECENT_FOR`], so scrapes cannot load the database.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let figures = state.store_figures().await;
    let body = airlock_services::metrics::render(state.metrics(), &figures);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            airlock_services::metrics::CONTENT_TYPE,
        )],
        body,
    )
}

/// What `/readyz` found.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Readiness {
    /// Every check passed.
    ready: bool,
    checks: ReadinessChecks,
    issuers: Vec<IssuerReadiness>,
}

/// Each dependency's check.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct ReadinessChecks {
    database: bool,
    airbyte: bool,
    /// Every issuer's keys are loaded.
    issuer_keys: bool,
}

/// One identity provider's signing keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct IssuerReadiness {
    issuer: String,
    keys_loaded: bool,
}

/// Ready to serve: the database answers, Airbyte answers, and every issuer's
/// keys are loaded. Says which check failed. The database's and Airbyte's
/// answers are reused for [`web::RECENT_FOR`].
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the database, Airbyte and the issuers' keys",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; `checks` says which failed", body = Readiness),
    )
)]
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.database_up().await;
    let airbyte = state.airbyte_up().await;
    let issuers: Vec<IssuerReadiness> = state
        .authenticator()
        .readiness()
        .into_iter()
        .map(|r| IssuerReadiness {
            issuer: r.issuer,
            keys_loaded: r.ready,
        })
        .collect();
    let keys = state.authenticator().is_ready();
    let ready = database && airbyte && keys;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        checks: ReadinessChecks {
            database,
            airbyte,
            issuer_keys: keys,
        },
        issuers,
    };
    (status, Json(body))
}
