//! Airbyte's HTTP surface: the public API under `/api/public/v1` and the one
//! Configuration API route under `/api/v1`, wrapped in fault injection and, where
//! Airbyte requires it, bearer authentication.

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod config_api;
pub(crate) mod connection_writes;
pub(crate) mod error;
pub(crate) mod faults;
pub(crate) mod jobs;
pub(crate) mod paging;
pub(crate) mod resources;
pub(crate) mod writes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::connection_writes as cw;
use crate::api::error::framework_error;
use crate::state::Shared;

/// The Airbyte routes, faults layer included, state applied.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let auth = || from_fn_with_state(shared.clone(), auth::require_bearer);
    let protected = Router::new()
        .route(
            "/workspaces",
            get(resources::list_workspaces).post(writes::create_workspace),
        )
        .route(
            "/workspaces/{workspaceId}",
            get(resources::get_workspace)
                .patch(writes::update_workspace)
                .delete(writes::delete_workspace),
        )
        .route(
            "/sources",
            get(resources::list_sources).post(writes::create_source),
        )
        .route(
            "/sources/{sourceId}",
            get(resources::get_source)
                .patch(writes::patch_source)
                .put(writes::put_source)
                .delete(writes::delete_source),
        )
        .route(
            "/destinations",
            get(resources::list_destinations).post(writes::create_destination),
        )
        .route(
            "/destinations/{destinationId}",
            get(resources::get_destination)
                .patch(writes::patch_destination)
                .put(writes::put_destination)
                .delete(writes::delete_destination),
        )
        .route(
            "/connections",
            get(resources::list_connections).post(cw::create_connection),
        )
        .route(
            "/connections/{connectionId}",
            get(resources::get_connection)
                .patch(cw::patch_connection)
                .delete(cw::delete_connection),
        )
        .route("/streams", get(cw::get_streams))
        .route("/tags", get(resources::list_tags))
        .route("/jobs", get(jobs::list_jobs).post(jobs::create_job))
        .route("/jobs/{jobId}", get(jobs::get_job).delete(jobs::cancel_job))
        .route_layer(auth());
    let public = Router::new()
        .route("/health", get(health))
        .route("/applications/token", post(auth::issue_token))
        .merge(protected);
    let config = Router::new()
        .route("/connections/get", post(config_api::get_connection))
        .route_layer(auth());
    Router::new()
        .nest("/api/public/v1", public)
        .nest("/api/v1", config)
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(shared.clone(), faults::layer))
        .with_state(shared)
}

/// `GET /health`: no authentication, a short text.
async fn health() -> Response {
    let mut response = (StatusCode::OK, "Successful operation").into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

async fn unknown_route(req: Request) -> Response {
    framework_error(
        StatusCode::NOT_FOUND,
        "Not Found",
        req.uri().path(),
        &["Page Not Found"],
    )
}

async fn method_not_allowed(req: Request) -> Response {
    let message = format!(
        "Method [{}] not allowed for URI [{}]",
        req.method(),
        req.uri().path()
    );
    framework_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        req.uri().path(),
        &[&message],
    )
}
