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
//!    forwarded;
//! 3. the reference is resolved (a job to its connection, a source to its
//!    workspace, a connection through the catalog) and the policy decides:
//!    no grant anywhere is 403, out of scope looks like not found (404);
//! 4. the request goes to Airbyte with Airlock's own credential (the
//!    caller's `Authorization` never leaves Airlock) and Airbyte's answer
//!    comes back unchanged (for a finished job, the answer Airbyte gave
//!    last, kept by `finished` for `[front] finished_jobs_cache_secs`);
//!    lists are filtered item by item ([`lists`]);
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
mod error;
mod finished;
mod lists;
mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{any, get};
use serde_json::Value;
use uuid::Uuid;

pub use crate::config::front::{FrontConfig, ServiceAccountConfig, TokenAuthMethod};
pub use accounts::AccountsError;
pub use classify::{Listing, ResourceRef, classify, job_permission};

use self::accounts::Accounts;
use self::error::{FrontError, from_airbyte, json_response};
use self::finished::FinishedAnswers;
use self::token::Exchange;
use crate::config::Config;
use crate::connections::ConnectionInfo;
use crate::identity::{IssuerConfig, KeySource, StaticKeySource};
use crate::jobs::{Channel, JobType};
use crate::policy::{Permission, Resource, WorkspaceResource};
use crate::store::front::{Recorded, StartedJob};
use crate::web::Caller;
use crate::web::auth::action_of;
use crate::web::{AppState, RequestId};

/// Where Airbyte's public API is served.
pub const PUBLIC_PREFIX: &str = "/api/public/v1";

/// Largest body the front reads (Airbyte's bodies are small JSON documents).
const MAX_BODY_BYTES: usize = crate::web::MAX_BODY_BYTES;

/// Job ids remembered with their connection before the memory is cleared.
const JOB_CACHE_CAPACITY: usize = 50_000;

/// Service-account secrets checked at once: each check costs the hash's
/// iterations of CPU, so a flood of token requests queues instead of
/// taking every core.
const CONCURRENT_SECRET_CHECKS: usize = 2;

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
    secret_checks: tokio::sync::Semaphore,
}

impl Front {
    /// The front `config` describes: reads (or generates) the service
    /// accounts' signing key.
    pub fn from_config(
        config: &Config,
        lookup_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, AccountsError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // A redirect could carry the caller's credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AccountsError::HttpClient(e.to_string()))?;
        Ok(Self {
            accounts: Accounts::from_config(config, lookup_env)?,
            exchange: Exchange::from_config(config),
            http,
            jobs: Mutex::new(HashMap::new()),
            finished: FinishedAnswers::new(Duration::from_secs(
                config.front.finished_jobs_cache_secs,
            )),
            secret_checks: tokio::sync::Semaphore::new(CONCURRENT_SECRET_CHECKS),
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

    /// A permit to check one service-account secret.
    pub(crate) async fn secret_check(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.secret_checks.acquire().await.ok()
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
/// request ids and the body limit).
pub fn router(app: AppState, front: Arc<Front>) -> Router {
    Router::new()
        .route("/api/public/v1/health", get(health))
        .route("/api/public/v1/applications/token", any(token_endpoint))
        .route("/v1/applications/token", any(token_endpoint))
        .route("/applications/token", any(token_endpoint))
        .route("/api/public/v1/{*path}", any(public))
        .route("/api/v1/connections/get", any(dagster_connection))
        .route("/api/v1/{*path}", any(configuration_api))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery))
        .with_state(FrontState { app, front })
}

/// The front's part of the OpenAPI document.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;

    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(
            health,
            token_endpoint,
            public,
            dagster_connection,
            configuration_api,
            jwks,
            discovery
        ),
        components(schemas(FrontError))
    )]
    struct FrontDoc;

    let mut doc = FrontDoc::openapi();
    // One handler serves the token exchange under three paths.
    if let Some(item) = doc.paths.paths.get("/applications/token").cloned() {
        for (path, suffix) in [
            ("/v1/applications/token", "v1"),
            ("/api/public/v1/applications/token", "public"),
        ] {
            let mut item = item.clone();
            if let Some(operation) = item.post.as_mut() {
                operation.operation_id = Some(format!("token_endpoint_{suffix}"));
            }
            doc.paths.paths.insert(path.to_owned(), item);
        }
    }
    doc
}

fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| RequestId::from_header(None).0, |id| id.0.clone())
}

fn finish(result: Result<Response, FrontError>, request_id: &str) -> Response {
    result.unwrap_or_else(|error| error.into_response_with(request_id))
}

async fn read_body(body: Body) -> Result<Bytes, FrontError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| FrontError::PayloadTooLarge)
}

/// A connection as the policy sees it.
fn workspace_resource(state: &FrontState, id: &str) -> Resource {
    Resource::Workspace(WorkspaceResource {
        id: id.to_owned(),
        name: state
            .catalog()
            .snapshot()
            .workspace_name(id)
            .map(str::to_owned),
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
/// Only the content negotiation headers of the caller go along (never its
/// `Authorization`), with the request id for correlation.
pub(crate) async fn forward(
    state: &FrontState,
    parts: &Parts,
    path_and_query: &str,
    body: Vec<u8>,
) -> Result<airbyte_client::RawResponse, FrontError> {
    let mut headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
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
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/public/v1/{path}",
    tag = "airbyte-compatible",
    summary = "Airbyte's public API, identity-checked",
    description = "Same paths and bodies as Airbyte's public API (camelCase): the request is \
        authorized with the caller's own token, then forwarded with Airlock's credential and \
        Airbyte's answer returned unchanged; lists are filtered to what the caller may see. \
        Routes the front does not know are refused with 403, never forwarded.",
    params(("path" = String, Path,
        description = "The rest of the Airbyte path, e.g. `jobs` or `connections/{connectionId}` \
            (may span several segments)")),
    request_body(content = Option<Object>, content_type = "application/json",
        description = "Airbyte's request body, where the route takes one"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Airbyte's answer, unchanged", body = Object),
        (status = 400, description = "Malformed request", body = FrontError),
        (status = 401, description = "No valid bearer token", body = FrontError),
        (status = 403, description = "Not permitted, or a route the front does not serve", body = FrontError),
        (status = 404, description = "Not found, or outside the caller's scope", body = FrontError),
        (status = 502, description = "Airbyte failed", body = FrontError),
        (status = 503, description = "The database is down", body = FrontError),
        (status = 504, description = "Airbyte did not answer in time", body = FrontError),
    )
)]
async fn public(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, body) = request.into_parts();
    let result = serve_public(&state, &parts, body).await;
    finish(result, &request_id)
}

async fn serve_public(
    state: &FrontState,
    parts: &Parts,
    body: Body,
) -> Result<Response, FrontError> {
    let path = parts
        .uri
        .path()
        .strip_prefix(PUBLIC_PREFIX)
        .unwrap_or_default();
    let caller = caller::authenticate(state, parts).await?;
    let Some((permission, reference)) = classify(&parts.method, path) else {
        caller
            .deny(
                state,
                "front.route",
                &Resource::Global,
                "route_not_served",
                "403",
            )
            .await;
        return Err(FrontError::Forbidden);
    };
    let body = read_body(body).await?;
    if reference == ResourceRef::NewJob {
        return create_job(state, &caller, parts, &body).await;
    }
    caller.require_somewhere(state, permission).await?;
    let reads = matches!(
        permission,
        Permission::ConnectionsRead | Permission::JobsRead
    );
    let audited = !reads || state.config().audit.record_reads;
    let detail = || serde_json::json!({"method": parts.method.as_str(), "path": path});
    if let ResourceRef::List(listing) = reference {
        let response = lists::list(state, &caller, listing, parts).await?;
        if audited {
            let outcome = response.status().as_u16().to_string();
            caller
                .record(
                    state,
                    &action_of(permission),
                    None,
                    &Resource::Global,
                    outcome,
                    Some(detail()),
                )
                .await;
        }
        return Ok(response);
    }
    let suffix = parts
        .uri
        .path_and_query()
        .map_or(path, |pq| pq.as_str())
        .strip_prefix(PUBLIC_PREFIX)
        .unwrap_or(path)
        .to_owned();
    // A body the front read to authorize is forwarded as it read it, so that
    // Airbyte cannot read a different one (duplicate keys).
    let mut forwarded_body = body.to_vec();
    let (resource, decision, fetched) = match reference {
        ResourceRef::Connection(id) => {
            let connection = resolve_connection(state, id).await?;
            let resource = connection.resource();
            let decision = caller::authorize(
                &caller,
                state,
                permission,
                &resource,
                "connection",
                &connection.id,
            )
            .await?;
            (resource, decision, None)
        }
        ResourceRef::Job(id) => {
            let connection = resolve_job(state, id).await?;
            let resource = connection.resource();
            let decision = caller::authorize(
                &caller,
                state,
                permission,
                &resource,
                "job",
                &id.to_string(),
            )
            .await?;
            (resource, decision, None)
        }
        ResourceRef::Workspace(id) => {
            let id = id.hyphenated().to_string();
            let resource = workspace_resource(state, &id);
            let decision = authorize_workspace(state, &caller, permission, &resource, &id).await?;
            (resource, decision, None)
        }
        ResourceRef::Source(id) | ResourceRef::Destination(id) => {
            let kind = if matches!(reference, ResourceRef::Source(_)) {
                "sources"
            } else {
                "destinations"
            };
            let (workspace, raw) = match locate(state, parts, kind, id).await? {
                Located::In(workspace, raw) => (workspace, raw),
                Located::Refused(raw) => return Ok(raw_response(raw)),
            };
            let resource = workspace_resource(state, &workspace);
            let decision = caller::authorize(
                &caller,
                state,
                permission,
                &resource,
                &kind[..kind.len() - 1],
                &id.to_string(),
            )
            .await?;
            (
                resource,
                decision,
                (parts.method == Method::GET).then_some(raw),
            )
        }
        ResourceRef::Streams => {
            let pairs = lists::query_pairs(parts);
            let source = lists::single(&pairs, "sourceId")?
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| FrontError::BadRequest("sourceId must be a UUID".to_owned()))?;
            let workspace = match locate(state, parts, "sources", source).await? {
                Located::In(workspace, _) => workspace,
                Located::Refused(raw) => return Ok(raw_response(raw)),
            };
            let resource = workspace_resource(state, &workspace);
            let decision = caller::authorize(
                &caller,
                state,
                permission,
                &resource,
                "source",
                &source.to_string(),
            )
            .await?;
            (resource, decision, None)
        }
        ResourceRef::NewInWorkspace | ResourceRef::NewConnection => {
            let (object, bytes) = json_body(&body)?;
            forwarded_body = bytes;
            let workspace = if reference == ResourceRef::NewConnection {
                let source = uuid_field(&object, "sourceId")?;
                match locate(state, parts, "sources", source).await? {
                    Located::In(workspace, _) => workspace,
                    Located::Refused(raw) => return Ok(raw_response(raw)),
                }
            } else {
                uuid_field(&object, "workspaceId")?.hyphenated().to_string()
            };
            let resource = workspace_resource(state, &workspace);
            let decision = caller::authorize(
                &caller,
                state,
                permission,
                &resource,
                "workspace",
                &workspace,
            )
            .await?;
            (resource, decision, None)
        }
        ResourceRef::Global => {
            let decision = caller::authorize(
                &caller,
                state,
                permission,
                &Resource::Global,
                "workspace",
                "",
            )
            .await?;
            (Resource::Global, decision, None)
        }
        ResourceRef::List(_) | ResourceRef::NewJob => {
            return Err(FrontError::Internal(anyhow::anyhow!("handled above")));
        }
    };
    // `GET /jobs/{id}` of a job Airbyte has finished: its kept answer.
    let job_read = match reference {
        ResourceRef::Job(id)
            if permission == Permission::JobsRead && parts.uri.query().is_none() =>
        {
            Some(id)
        }
        _ => None,
    };
    let finished = &state.front().finished;
    let kept = job_read.and_then(|id| finished.get(id, &parts.headers));
    let (status, response) = match (kept, fetched) {
        (Some(answer), _) => (
            StatusCode::OK,
            airbyte_response(
                StatusCode::OK,
                answer.content_type.as_deref(),
                Body::from(answer.body),
            ),
        ),
        (None, Some(raw)) => (raw.status, raw_response(raw)),
        (None, None) => {
            let raw = forward(state, parts, &suffix, forwarded_body).await?;
            let status = raw.status;
            let response = if let Some(id) = job_read {
                let body = Bytes::from(raw.body);
                finished.offer(id, status, raw.content_type.as_deref(), &body);
                airbyte_response(status, raw.content_type.as_deref(), Body::from(body))
            } else {
                raw_response(raw)
            };
            (status, response)
        }
    };
    if audited {
        let mut outcome = status.as_u16().to_string();
        if let ResourceRef::Job(id) = reference {
            outcome = format!("{outcome} (Airbyte job {id})");
        }
        caller
            .record(
                state,
                &action_of(permission),
                Some(&decision),
                &resource,
                outcome,
                Some(detail()),
            )
            .await;
    }
    Ok(response)
}

/// A workspace read is allowed by a grant on the workspace or on any of its
/// connections (so that callers can find what they may use); a change needs
/// the workspace itself.
async fn authorize_workspace(
    state: &FrontState,
    caller: &Caller,
    permission: Permission,
    resource: &Resource,
    id: &str,
) -> Result<crate::policy::Decision, FrontError> {
    if permission == Permission::ConnectionsRead {
        let policy = state.policy();
        let snapshot = state.catalog().snapshot();
        if let Some(decision) = snapshot
            .all()
            .iter()
            .filter(|c| c.workspace_id == id)
            .map(|c| policy.decide(&caller.principal, permission, &c.resource()))
            .find(|d| d.allowed)
        {
            return Ok(decision);
        }
    }
    caller::authorize(caller, state, permission, resource, "workspace", id).await
}

/// Where a source or destination lives, as Airbyte says.
enum Located {
    /// In this workspace; Airbyte's answer to the GET.
    In(String, airbyte_client::RawResponse),
    /// Airbyte refused the GET (other than "not found"): its answer.
    Refused(airbyte_client::RawResponse),
}

/// Asks Airbyte (with Airlock's credential) for `/{kind}/{id}` to learn its
/// workspace before deciding. Not found is Airlock's own 404, the same as
/// out of scope, so that the two cannot be told apart.
async fn locate(
    state: &FrontState,
    parts: &Parts,
    kind: &'static str,
    id: Uuid,
) -> Result<Located, FrontError> {
    let mut get = Parts::clone(parts);
    get.method = Method::GET;
    get.headers.remove(header::CONTENT_TYPE);
    let raw = forward(
        state,
        &get,
        &format!("/{kind}/{}", id.hyphenated()),
        Vec::new(),
    )
    .await?;
    let resource_type = if kind == "sources" {
        "source"
    } else {
        "destination"
    };
    let body: Value = serde_json::from_slice(&raw.body).unwrap_or(Value::Null);
    // Some servers say "not found" with a 400.
    if raw.status == StatusCode::NOT_FOUND || body["title"] == "resource-not-found" {
        return Err(FrontError::NotFound {
            resource_type,
            id: id.to_string(),
        });
    }
    if raw.status != StatusCode::OK {
        return Ok(Located::Refused(raw));
    }
    let workspace = body
        .get("workspaceId")
        .and_then(Value::as_str)
        .and_then(|w| Uuid::parse_str(w).ok())
        .ok_or_else(|| {
            tracing::warn!(kind, "Airbyte's answer names no workspace");
            FrontError::BadGateway("Airbyte")
        })?;
    Ok(Located::In(workspace.hyphenated().to_string(), raw))
}

/// A JSON object body, and the bytes to forward (as the front read it).
fn json_body(body: &[u8]) -> Result<(serde_json::Map<String, Value>, Vec<u8>), FrontError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => {
            let bytes = serde_json::to_vec(&object)
                .map_err(|e| FrontError::Internal(anyhow::Error::new(e)))?;
            Ok((object, bytes))
        }
        _ => Err(FrontError::BadRequest(
            "The request body must be a JSON object".to_owned(),
        )),
    }
}

fn uuid_field(object: &serde_json::Map<String, Value>, name: &str) -> Result<Uuid, FrontError> {
    object
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| FrontError::BadRequest(format!("{name} must be a UUID")))
}

/// A connection by Airbyte id, through the catalog (refreshed once when
/// unknown).
async fn resolve_connection(state: &FrontState, id: Uuid) -> Result<ConnectionInfo, FrontError> {
    let id = id.hyphenated().to_string();
    match state.catalog().resolve(&id).await {
        Ok(Some(found)) if found.id == id => Ok(found),
        Ok(_) => Err(FrontError::NotFound {
            resource_type: "connection",
            id,
        }),
        Err(error) => {
            tracing::warn!(error = %error, "cannot list Airbyte connections");
            Err(FrontError::BadGateway("Airbyte"))
        }
    }
}

/// The connection of an Airbyte job: remembered, recorded in the job
/// table, or asked of Airbyte (then remembered).
async fn resolve_job(state: &FrontState, job_id: i64) -> Result<ConnectionInfo, FrontError> {
    let front = state.front();
    let not_found = || FrontError::NotFound {
        resource_type: "job",
        id: job_id.to_string(),
    };
    let connection_id = match front.job_connection(job_id) {
        Some(id) => id,
        None => {
            let id = match state.store().get_job_by_airbyte_id(job_id).await? {
                Some(job) => job.connection_id,
                None => match state.airbyte().get_job(job_id).await {
                    Ok(job) => job.connection_id.hyphenated().to_string(),
                    Err(error) if is_not_found(&error) => return Err(not_found()),
                    Err(error) => return Err(from_airbyte(&error, "")),
                },
            };
            front.remember_job(job_id, &id);
            id
        }
    };
    let id = Uuid::parse_str(&connection_id).map_err(|_| not_found())?;
    // A job of a connection Airlock does not know is hidden like any other.
    resolve_connection(state, id)
        .await
        .map_err(|error| match error {
            FrontError::NotFound { .. } => not_found(),
            other => other,
        })
}

/// Airbyte's "not found" (a 404, or a 400 with the same body on some servers).
fn is_not_found(error: &airbyte_client::Error) -> bool {
    matches!(error, airbyte_client::Error::NotFound { .. })
        || error.problem().is_some_and(|p| p.is("resource-not-found"))
}

/// `POST /jobs`: decided on the body's connection and job type; a job
/// Airbyte accepts is recorded with channel `front`.
async fn create_job(
    state: &FrontState,
    caller: &Caller,
    parts: &Parts,
    body: &[u8],
) -> Result<Response, FrontError> {
    let (object, bytes) = json_body(body)?;
    let job_type = object
        .get("jobType")
        .and_then(Value::as_str)
        .ok_or_else(|| FrontError::BadRequest("jobType is required".to_owned()))?;
    let permission = job_permission(job_type)
        .ok_or_else(|| FrontError::BadRequest(format!("Unsupported jobType: {job_type}")))?;
    caller.require_somewhere(state, permission).await?;
    let connection_id = uuid_field(&object, "connectionId")?;
    let connection = resolve_connection(state, connection_id).await?;
    let resource = connection.resource();
    let decision = caller::authorize(
        caller,
        state,
        permission,
        &resource,
        "connection",
        &connection.id,
    )
    .await?;
    let raw = forward(state, parts, "/jobs", bytes).await?;
    let action = action_of(permission);
    if raw.status != StatusCode::OK {
        caller
            .record(
                state,
                &action,
                Some(&decision),
                &resource,
                raw.status.as_u16().to_string(),
                None,
            )
            .await;
        return Ok(raw_response(raw));
    }
    match serde_json::from_slice::<airbyte_client::Job>(&raw.body) {
        Ok(job) => record_started(state, caller, &connection, &job, &action, &decision).await,
        Err(error) => {
            tracing::warn!(request_id = %caller.request_id.0, error = %error, "cannot read the job Airbyte started");
            caller
                .record(
                    state,
                    &action,
                    Some(&decision),
                    &resource,
                    "200 (unreadable)".to_owned(),
                    None,
                )
                .await;
        }
    }
    Ok(raw_response(raw))
}

/// Records a job Airbyte accepted. A failure is logged, not answered: the
/// job runs, and an error would make the caller start another; the tracker
/// records it as Airbyte's own at worst.
async fn record_started(
    state: &FrontState,
    caller: &Caller,
    connection: &ConnectionInfo,
    job: &airbyte_client::Job,
    action: &str,
    decision: &crate::policy::Decision,
) {
    state.front().remember_job(job.job_id, &connection.id);
    let job_type = match job.job_type {
        airbyte_client::JobType::Sync => JobType::Sync,
        airbyte_client::JobType::Reset | airbyte_client::JobType::Clear => JobType::Reset,
        _ => return,
    };
    let Some(job_state) = crate::jobs::map_status(&job.status) else {
        return;
    };
    let requester = caller.requester();
    let started = StartedJob {
        connection_id: &connection.id,
        workspace_id: &connection.workspace_id,
        job_type,
        airbyte_job_id: job.job_id,
        state: job_state,
        requested_by: &caller.principal.subject,
        requester: &requester,
        channel: Channel::Front,
    };
    let entry = caller.entry(action, decision);
    match state
        .store()
        .insert_started_job(&started, state.now_ms(), &entry)
        .await
    {
        Ok(Recorded::ConnectionBusy) => tracing::warn!(
            request_id = %caller.request_id.0,
            airbyte_job_id = job.job_id,
            connection_id = %connection.id,
            "Airbyte started a job while Airlock thinks another is active on the connection"
        ),
        Ok(_) => tracing::info!(
            request_id = %caller.request_id.0,
            subject = %caller.principal.subject,
            airbyte_job_id = job.job_id,
            "job started through the front"
        ),
        Err(error) => {
            tracing::error!(
                request_id = %caller.request_id.0,
                airbyte_job_id = job.job_id,
                error = %error,
                "cannot record a job started through the front"
            );
            // The start must still be in the trail, if the database lets it.
            let mut entry = entry;
            entry.connection_id = Some(connection.id.clone());
            entry.workspace_id = Some(connection.workspace_id.clone());
            entry.airbyte_job_id = Some(job.job_id);
            entry.outcome = Some("started; not recorded".to_owned());
            state.audit(&entry).await;
        }
    }
}

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
    if state.airbyte().health().await.is_ok() {
        let mut response = (StatusCode::OK, "Successful operation").into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    } else {
        FrontError::BadGateway("Airbyte").into_response_with(&request_id)
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
        (status = 502, description = "The identity provider failed", body = FrontError),
    )
)]
async fn token_endpoint(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, body) = request.into_parts();
    let result = async {
        if parts.method != Method::POST {
            return Err(FrontError::BadRequest("Use POST".to_owned()));
        }
        let body = read_body(body).await?;
        token::exchange(&state, &parts.headers, &body, &request_id).await
    }
    .await;
    finish(result, &request_id)
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
    request_body(content = Object, content_type = "application/json",
        description = "`{\"connectionId\": \"<uuid>\"}`"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Airbyte's connection configuration", body = Object),
        (status = 400, description = "Malformed request", body = FrontError),
        (status = 401, description = "No valid bearer token", body = FrontError),
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
    finish(result, &request_id)
}

/// Every other Configuration API route: refused (after authentication),
/// never forwarded.
#[utoipa::path(
    post,
    path = "/api/v1/{path}",
    tag = "airbyte-compatible",
    summary = "Any other Configuration API route: refused",
    params(("path" = String, Path, description = "The rest of the path (any)")),
    security(("bearer" = [])),
    responses(
        (status = 401, description = "No valid bearer token", body = FrontError),
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
    finish(result, &request_id)
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
