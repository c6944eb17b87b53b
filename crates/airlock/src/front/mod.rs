//! The Airbyte-compatible front: Airbyte's public API under
//! `/api/public/v1`, the one Configuration API route Dagster reads
//! (`POST /api/v1/connections/get`) and Airbyte's token exchange, so that
//! Airflow, Dagster and the official SDK keep working when pointed at
//! Airlock, now with each caller's own identity and least privilege.
//!
//! A request's path:
//! 1. [`caller`] verifies the bearer token (401 otherwise);
//! 2. [`classify`] maps method and path to one permission and one resource
//!    reference; anything it does not know is refused (403), never
//!    forwarded; the query is parsed once ([`query`]: one that Airbyte
//!    could read another way is refused);
//! 3. the reference is resolved (a job to its connection, a source to its
//!    workspace, a connection through the catalog) and the policy decides:
//!    no grant anywhere is 403, out of scope looks like not found (404);
//!    so is every other resource the body or query names ([`references`]);
//! 4. the request goes to Airbyte with Airlock's own credential (the
//!    caller's `Authorization` never leaves Airlock), with the query and
//!    body as the front parsed them (re-encoded), and Airbyte's answer
//!    comes back unchanged (for a finished job, the answer Airbyte gave
//!    last, kept by `finished` for `[front] finished_jobs_cache_secs`);
//!    lists are filtered item by item ([`lists`]; an answer that cannot be
//!    filtered is a 502);
//!    jobs started here are recorded with channel `front` so the tracker
//!    follows them.
//!
//! The front's own refusals use Airbyte's error shape ([`error`]), not
//! problem+json, so Airbyte clients parse them.
//!
//! [`token`] exchanges client credentials: [`accounts`] (service accounts
//! whose tokens Airlock signs) first, then the identity provider.

pub mod accounts;
mod caller;
pub mod classify;
mod config;
mod error;
mod finished;
mod jobs;
mod lists;
mod provider;
mod public;
mod query;
mod references;
mod secrets;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::Value;
use uuid::Uuid;

pub use self::config::{FrontConfig, FrontSetup, ServiceAccountConfig, TokenAuthMethod, validate};
pub use accounts::AccountsError;
pub use classify::{Listing, ResourceRef, classify, job_permission};

use self::accounts::Accounts;
use self::error::{FrontError, from_airbyte, json_response};
use self::finished::FinishedAnswers;
use self::provider::Exchange;
use self::public::{is_not_found, resolve_connection};
use self::references::{json_body, uuid_field};
use crate::web::Caller;
use crate::web::auth::action_of;
use crate::web::routes::{Routes, route};
use crate::web::{AppState, RequestId};
use airlock_domain::identity::{IssuerConfig, KeySource, StaticKeySource};
use airlock_domain::policy::{Permission, Resource, WorkspaceResource};
use airlock_services::connections::ConnectionInfo;

/// Where Airbyte's public API is served.
pub const PUBLIC_PREFIX: &str = "/api/public/v1";

/// Largest body the front reads (Airbyte's bodies are small JSON documents).
const MAX_BODY_BYTES: usize = crate::web::MAX_BODY_BYTES;

/// Job ids remembered with their connection before the memory is cleared.
const JOB_CACHE_CAPACITY: usize = 50_000;

/// The front's own state: service accounts, where credentials are
/// exchanged, and what it remembers of Airbyte jobs.
#[derive(Debug)]
pub struct Front {
    accounts: Option<Accounts>,
    exchange: Option<Exchange>,
    http: reqwest::Client,
    /// Airbyte job id to connection id: a job's connection never changes.
    jobs: Mutex<HashMap<i64, String>>,
    /// Airbyte's answers about finished jobs.
    finished: FinishedAnswers,
    /// Bounds the CPU spent on service-account secrets.
    secret_checks: secrets::SecretChecks,
    /// `[front] public_url`: the base of page links.
    public_url: Option<String>,
}

impl Front {
    /// The front `setup` describes: reads (or generates) the service
    /// accounts' signing key, unless `shared_key` is the one kept in the
    /// database (see [`accounts::shared_key_secret`]).
    pub fn from_config(
        setup: &FrontSetup<'_>,
        lookup_env: &dyn Fn(&str) -> Option<String>,
        shared_key: Option<&[u8]>,
    ) -> Result<Self, AccountsError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // A redirect could carry the caller's credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AccountsError::HttpClient(e.to_string()))?;
        Ok(Self {
            accounts: Accounts::from_config(setup, lookup_env, shared_key)?,
            exchange: Exchange::from_config(setup),
            http,
            jobs: Mutex::new(HashMap::new()),
            finished: FinishedAnswers::new(Duration::from_secs(
                setup.front.finished_jobs_cache_secs,
            )),
            secret_checks: secrets::SecretChecks::new(),
            public_url: setup.front.public_url.clone(),
        })
    }

    /// Airlock's own issuer, to add to the authenticator, when service
    /// accounts are configured.
    pub fn issuer(&self) -> Option<(IssuerConfig, Arc<dyn KeySource>)> {
        self.accounts.as_ref().map(|accounts| {
            let source: Arc<dyn KeySource> = Arc::new(StaticKeySource::new(accounts.key_set()));
            (accounts.issuer_config(), source)
        })
    }

    pub(crate) fn accounts(&self) -> Option<&Accounts> {
        self.accounts.as_ref()
    }

    pub(crate) fn exchange(&self) -> Option<&Exchange> {
        self.exchange.as_ref()
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Service-account secret checks.
    pub(crate) fn secret_checks(&self) -> &secrets::SecretChecks {
        &self.secret_checks
    }

    fn remember_job(&self, job_id: i64, connection_id: &str) {
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if jobs.len() >= JOB_CACHE_CAPACITY {
            jobs.clear();
        }
        jobs.insert(job_id, connection_id.to_owned());
    }

    fn job_connection(&self, job_id: i64) -> Option<String> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job_id)
            .cloned()
    }
}

/// What the front's handlers share: the application's state and the
/// front's own (service accounts, token exchange, job memory).
#[derive(Debug, Clone)]
pub(crate) struct FrontState {
    app: AppState,
    front: Arc<Front>,
}

impl std::ops::Deref for FrontState {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.app
    }
}

impl FrontState {
    /// The front's own state.
    fn front(&self) -> Arc<Front> {
        Arc::clone(&self.front)
    }
}

/// The front's routes, to be merged into Airlock's router (which adds
/// request ids and the body limit). Most handlers answer every method:
/// Airbyte's clients get Airbyte's error shape, not the router's 405.
pub fn routes(app: AppState, front: Arc<Front>) -> Routes {
    // One handler serves the token exchange under three paths.
    let token = || route!(token_endpoint).any_method();
    Routes::<FrontState>::new()
        .route(route!(health))
        .route(token().at("/api/public/v1/applications/token", "token_endpoint_public"))
        .route(token().at("/v1/applications/token", "token_endpoint_v1"))
        .route(token())
        .route(route!(public::public).any_method())
        .route(route!(dagster_connection).any_method())
        .route(route!(configuration_api).any_method())
        .route(route!(jwks))
        .route(route!(discovery))
        .with_state(FrontState { app, front })
}

fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| RequestId::from_header(None).0, |id| id.0.clone())
}

/// The path the request was sent to, as Airbyte's framework names it in
/// a 401 (read only when an error is rendered).
fn path_of(parts: &Parts) -> &str {
    parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path(), |uri| uri.0.path())
}

fn finish(result: Result<Response, FrontError>, request_id: &str, parts: &Parts) -> Response {
    result.unwrap_or_else(|error| error.into_response_with(request_id, path_of(parts)))
}

async fn read_body(body: Body) -> Result<Bytes, FrontError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| FrontError::PayloadTooLarge)
}

/// A workspace as the policy sees it: its id and the grant names bound to
/// it (never its current Airbyte name).
fn workspace_resource(state: &FrontState, id: &str) -> Resource {
    Resource::Workspace(WorkspaceResource {
        id: id.to_owned(),
        names: state.catalog().snapshot().bound_names(id),
    })
}

/// Airbyte's answer as the caller gets it: status, content type and body
/// unchanged.
pub(crate) fn raw_response(raw: airbyte_client::RawResponse) -> Response {
    airbyte_response(
        raw.status,
        raw.content_type.as_deref(),
        Body::from(raw.body),
    )
}

fn airbyte_response(status: StatusCode, content_type: Option<&str>, body: Body) -> Response {
    let mut response = (status, body).into_response();
    if let Some(value) = content_type.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
        .extensions_mut()
        .insert(crate::web::request_id::PassThrough);
    response
}

/// Sends `method path_and_query` to Airbyte with Airlock's credential.
/// Only the caller's `Accept` goes along (never its `Authorization`), with
/// the request id for correlation; a body is the JSON the front parsed and
/// re-encoded, and is labelled as such.
pub(crate) async fn forward(
    state: &FrontState,
    parts: &Parts,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<airbyte_client::RawResponse, FrontError> {
    let mut headers = HeaderMap::new();
    if let Some(value) = parts.headers.get(header::ACCEPT) {
        headers.insert(header::ACCEPT, value.clone());
    }
    if !body.is_empty() {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(crate::web::request_id::X_REQUEST_ID.clone(), value);
    }
    state
        .airbyte()
        .send_raw(parts.method.clone(), path_and_query, &headers, body)
        .await
        .map_err(|error| from_airbyte(&error, &request_id))
}

/// `/api/public/v1/...`: every route of Airbyte's public API.
/// `GET /api/public/v1/health`: no authentication, like Airbyte's.
#[utoipa::path(
    get,
    path = "/api/public/v1/health",
    tag = "airbyte-compatible",
    summary = "Airbyte's health check (no authentication)",
    responses(
        (status = 200, description = "Airbyte answers", body = String, content_type = "text/plain"),
        (status = 502, description = "Airbyte does not answer", body = FrontError),
    )
)]
async fn health(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    // Unauthenticated: Airbyte's answer is reused for a moment.
    if state.airbyte_up().await {
        let mut response = (StatusCode::OK, "Successful operation").into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    } else {
        FrontError::BadGateway("Airbyte").into_response_with(&request_id, request.uri().path())
    }
}

/// `POST /applications/token` and its aliases.
#[utoipa::path(
    post,
    path = "/applications/token",
    tag = "airbyte-compatible",
    summary = "Exchange client credentials for a token",
    description = "Airbyte's client-credentials exchange: a service account's credentials get \
        a token Airlock signs, anyone else's go to the identity provider. Also served at \
        `/v1/applications/token` and `/api/public/v1/applications/token`.",
    request_body(content(
        (token::Fields = "application/json"),
        (token::Fields = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "A token", body = token::Issued),
        (status = 400, description = "Wrong or missing credentials", body = FrontError),
        (status = 405, description = "A method other than POST (`Allow: POST`)", body = FrontError),
        (status = 429, description = "Too many failed requests from this address or for this \
            client id in the window, or too many secret checks waiting; retry after `Retry-After` \
            seconds", body = FrontError),
        (status = 502, description = "The identity provider failed", body = FrontError),
    )
)]
async fn token_endpoint(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, body) = request.into_parts();
    let result = async {
        if parts.method != Method::POST {
            return Err(FrontError::MethodNotAllowed("POST"));
        }
        let body = read_body(body).await?;
        token::exchange(&state, &parts, &body, &request_id).await
    }
    .await;
    finish(result, &request_id, &parts)
}

// The handler reads the field itself (Airbyte's 400 when it is not a
// UUID); this type only describes it.
/// The body of Airbyte's Configuration API `connections/get`.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "it only describes the document")]
struct ConnectionIdRequestBody {
    #[schema(
        rename = "connectionId",
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    connection_id: String,
}

/// `POST /api/v1/connections/get`: the Configuration API route Dagster
/// reads before a sync (connections:read on that connection).
#[utoipa::path(
    post,
    path = "/api/v1/connections/get",
    tag = "airbyte-compatible",
    summary = "Airbyte's Configuration API `connections/get` (for Dagster)",
    description = "Needs `connections:read` on the connection. Other Configuration API routes \
        are refused.",
    request_body(content = ConnectionIdRequestBody, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Airbyte's connection configuration", body = Object),
        (status = 400, description = "Malformed request", body = FrontError),
        (status = 401, description = "No valid bearer token (the body of Airbyte's web framework)",
            body = error::FrameworkUnauthorized),
        (status = 403, description = "Not permitted, or a route the front does not serve", body = FrontError),
        (status = 404, description = "Not found, or outside the caller's scope", body = FrontError),
        (status = 502, description = "Airbyte failed", body = FrontError),
        (status = 503, description = "The database is down", body = FrontError),
        (status = 504, description = "Airbyte did not answer in time", body = FrontError),
    )
)]
async fn dagster_connection(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, body) = request.into_parts();
    let result = async {
        let caller = caller::authenticate(&state, &parts).await?;
        if parts.method != Method::POST {
            caller
                .deny(
                    &state,
                    "front.route",
                    &Resource::Global,
                    "route_not_served",
                    "403",
                )
                .await;
            return Err(FrontError::Forbidden);
        }
        let permission = Permission::ConnectionsRead;
        caller.require_somewhere(&state, permission).await?;
        let (object, _) = json_body(&read_body(body).await?)?;
        let connection = resolve_connection(&state, uuid_field(&object, "connectionId")?).await?;
        caller::authorize(
            &caller,
            &state,
            permission,
            &connection.resource(),
            "connection",
            &connection.id,
        )
        .await?;
        let id = Uuid::parse_str(&connection.id).map_err(|e| FrontError::Internal(e.into()))?;
        match state.airbyte().get_connection_config(id).await {
            Ok(value) => Ok(json_response(
                StatusCode::OK,
                value.to_string().into_bytes(),
                None,
            )),
            Err(error) if is_not_found(&error) => Err(FrontError::NotFound {
                resource_type: "connection",
                id: connection.id,
            }),
            Err(error) => Err(from_airbyte(&error, &request_id)),
        }
    }
    .await;
    finish(result, &request_id, &parts)
}

/// Every other Configuration API route: refused (after authentication),
/// never forwarded.
#[utoipa::path(
    post,
    path = "/api/v1/{*path}",
    tag = "airbyte-compatible",
    summary = "Any other Configuration API route: refused",
    params(("path" = String, Path, description = "The rest of the path (any)")),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token (the body of Airbyte's web framework)",
            body = error::FrameworkUnauthorized),
        (status = 403, description = "Always, after authentication", body = FrontError),
    )
)]
async fn configuration_api(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, _) = request.into_parts();
    let result = async {
        let caller = caller::authenticate(&state, &parts).await?;
        caller
            .deny(
                &state,
                "front.route",
                &Resource::Global,
                "route_not_served",
                "403",
            )
            .await;
        Err(FrontError::Forbidden)
    }
    .await;
    finish(result, &request_id, &parts)
}

/// `GET /.well-known/jwks.json`: the service accounts' signing key.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "service-accounts",
    summary = "The service accounts' public signing keys (JWKS)",
    responses(
        (status = 200, description = "A JSON Web Key Set", body = Object),
        (status = 404, response = crate::web::problem::responses::NotFound),
    )
)]
async fn jwks(State(state): State<FrontState>) -> Response {
    match state.front().accounts() {
        Some(accounts) => Json(accounts.jwks().clone()).into_response(),
        None => crate::web::ApiError::NotFound("issuer").into_response(),
    }
}

/// `GET /.well-known/openid-configuration`: Airlock as the issuer of
/// service-account tokens.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "service-accounts",
    summary = "OpenID discovery for Airlock as the issuer of service-account tokens",
    responses(
        (status = 200, description = "The discovery document", body = Object),
        (status = 404, response = crate::web::problem::responses::NotFound),
    )
)]
async fn discovery(State(state): State<FrontState>) -> Response {
    match state.front().accounts() {
        Some(accounts) => Json(accounts.discovery()).into_response(),
        None => crate::web::ApiError::NotFound("issuer").into_response(),
    }
}
