//! Airbyte's public API through the front: each request is classified,
//! its query parsed once (`query`), its resource found (the catalog, or
//! Airbyte for sources and destinations) and decided by the guard, and so
//! is every other resource its body or query names (`references`); then it
//! is forwarded with Airlock's credential, with the query and body as the
//! front parsed them, and Airbyte's answer returned unchanged.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{FrontError, from_airbyte};
use super::query::Query;
use super::references::{self, Named, body_of, uuid_field};
use super::{
    FrontState, PUBLIC_PREFIX, ResourceRef, airbyte_response, caller, classify, finish, forward,
    jobs, lists, raw_response, read_body, request_id_of, workspace_resource,
};
use crate::web::Caller;
use crate::web::auth::action_of;
use airlock_domain::policy::{Decision, Permission, Resource};
use airlock_services::connections::ConnectionInfo;

#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/public/v1/{*path}",
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
        (status = 401, description = "No valid bearer token (the body of Airbyte's web framework)",
            body = super::error::FrameworkUnauthorized),
        (status = 403, description = "Not permitted, or a route the front does not serve", body = FrontError),
        (status = 404, description = "Not found, or outside the caller's scope", body = FrontError),
        (status = 502, description = "Airbyte failed", body = FrontError),
        (status = 503, description = "The database is down", body = FrontError),
        (status = 504, description = "Airbyte did not answer in time", body = FrontError),
    )
)]
pub(super) async fn public(State(state): State<FrontState>, request: Request) -> Response {
    let request_id = request_id_of(&request);
    let (parts, body) = request.into_parts();
    let result = serve_public(&state, &parts, body).await;
    finish(result, &request_id, &parts)
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
    let (permission, reference) = route(state, &caller, parts, path).await?;
    let query = parse_query(state, &caller, parts).await?;
    let body = read_body(body).await?;
    // Branches most requests do not take, whose futures are the largest,
    // are boxed (here, below and in `main_target`): every request's future
    // would otherwise be as large as they are, moved whole from frame to
    // frame.
    if reference == ResourceRef::NewJob {
        return Box::pin(jobs::create_job(state, &caller, parts, &body)).await;
    }
    caller.require_somewhere(state, permission).await?;
    let reads = matches!(
        permission,
        Permission::ConnectionsRead | Permission::JobsRead
    );
    let audit = Audit {
        on: !reads || state.records_reads(),
        permission,
        method: &parts.method,
        path,
    };
    if let ResourceRef::List(listing) = reference {
        let response = Box::pin(lists::list(state, &caller, listing, parts, &query)).await?;
        let outcome = response.status().as_u16().to_string();
        audit
            .record(state, &caller, None, &Resource::Global, outcome)
            .await;
        return Ok(response);
    }
    let target = match target(state, parts, reference, &query, &body).await? {
        Step::Go(target) => target,
        Step::Answer(response) => return Ok(response),
    };
    let decision = decide(state, &caller, permission, reference, &target).await?;
    let Target {
        resource,
        fetched,
        body,
        ..
    } = target;
    let job_read = match reference {
        ResourceRef::Job(id) if permission == Permission::JobsRead && query.pairs().is_empty() => {
            Some(id)
        }
        _ => None,
    };
    let forwarded = query.after(path);
    let (status, response) = answer(state, parts, &forwarded, job_read, fetched, body).await?;
    if permission == Permission::AirbyteWrite && status.is_success() {
        Box::pin(catalog_follows(state)).await;
    }
    let mut outcome = status.as_u16().to_string();
    if let ResourceRef::Job(id) = reference {
        outcome = format!("{outcome} (Airbyte job {id})");
    }
    audit
        .record(state, &caller, Some(&decision), &resource, outcome)
        .await;
    Ok(response)
}

/// The request's query, parsed once; one that Airbyte could read otherwise
/// is refused (400, audited).
async fn parse_query(
    state: &FrontState,
    caller: &Caller,
    parts: &Parts,
) -> Result<Query, FrontError> {
    match Query::of(parts) {
        Ok(query) => Ok(query),
        Err(error) => {
            caller
                .deny(
                    state,
                    "front.request",
                    &Resource::Global,
                    "ambiguous_query",
                    "400",
                )
                .await;
            Err(error)
        }
    }
}

/// The one decision on what the request touches, then on every other
/// resource its body or query names (all must be allowed).
async fn decide(
    state: &FrontState,
    caller: &Caller,
    permission: Permission,
    reference: ResourceRef,
    target: &Target,
) -> Result<Decision, FrontError> {
    let (resource, kind, id) = (&target.resource, target.kind, target.id.as_str());
    let decision = match reference {
        ResourceRef::Workspace(_) => {
            authorize_workspace(state, caller, permission, resource, id).await?
        }
        _ => caller::authorize(caller, state, permission, resource, kind, id).await?,
    };
    references::authorize(state, caller, permission, &target.also).await?;
    Ok(decision)
}

/// After a configuration change Airbyte accepted (a connection created,
/// renamed or deleted, or one of its workspace, source or destination), the
/// catalog is listed again before the answer, so that the caller's next
/// request, and every decision after it, sees the change.
async fn catalog_follows(state: &FrontState) {
    if let Err(error) = state.catalog().refresh().await {
        tracing::warn!(error = %error, "cannot refresh the connection catalog after a change");
    }
}

/// The permission a route needs and what it touches; a route the front
/// does not serve is refused (and audited), never forwarded.
async fn route(
    state: &FrontState,
    caller: &Caller,
    parts: &Parts,
    path: &str,
) -> Result<(Permission, ResourceRef), FrontError> {
    if let Some(route) = classify(&parts.method, path) {
        return Ok(route);
    }
    caller
        .deny(
            state,
            "front.route",
            &Resource::Global,
            "route_not_served",
            "403",
        )
        .await;
    Err(FrontError::Forbidden)
}

/// The audit record of an allowed request, written once Airbyte answered
/// (reads only with `[audit] record_reads`).
struct Audit<'a> {
    on: bool,
    permission: Permission,
    method: &'a Method,
    path: &'a str,
}

impl Audit<'_> {
    async fn record(
        self,
        state: &FrontState,
        caller: &Caller,
        decision: Option<&Decision>,
        resource: &Resource,
        outcome: String,
    ) {
        if !self.on {
            return;
        }
        let detail = serde_json::json!({"method": self.method.as_str(), "path": self.path});
        caller
            .record(
                state,
                &action_of(self.permission),
                decision,
                resource,
                outcome,
                Some(detail),
            )
            .await;
    }
}

/// Either go on, or answer now (Airbyte's own refusal of a lookup).
pub(super) enum Step<T> {
    Go(T),
    Answer(Response),
}

/// What a request touches: the resource decided on, how a refusal names
/// it (`connection` `id`), what Airbyte already answered while finding it
/// (a `GET` of a source or destination), the body to forward, and the
/// other resources its body or query names.
struct Target {
    resource: Resource,
    kind: &'static str,
    id: String,
    fetched: Option<airbyte_client::RawResponse>,
    body: Vec<u8>,
    also: Vec<references::Also>,
}

/// Finds what the request touches, asking the catalog or Airbyte: the
/// main resource, then every other one its body or query names.
async fn target(
    state: &FrontState,
    parts: &Parts,
    reference: ResourceRef,
    query: &Query,
    body: &Bytes,
) -> Result<Step<Target>, FrontError> {
    // A body the front read to authorize is forwarded as it read it, so that
    // Airbyte cannot read a different one (duplicate keys).
    let object = body_of(&parts.method, body)?;
    let mut named = match &object {
        Some(object) => references::in_body(object)?,
        None => Vec::new(),
    };
    if reference == ResourceRef::Streams
        && let Some(destination) = query.uuid("destinationId")?
    {
        named.push(Named::Destination(destination));
    }
    let (mut target, decided_on) =
        match main_target(state, parts, reference, query, object.as_ref()).await? {
            Step::Go(found) => found,
            Step::Answer(response) => return Ok(Step::Answer(response)),
        };
    if let Some(object) = object {
        target.body = serde_json::to_vec(&object).map_err(|e| FrontError::Internal(e.into()))?;
    }
    named.retain(|name| Some(name.id()) != decided_on);
    target.also = match references::find(state, parts, named).await? {
        Step::Go(also) => also,
        Step::Answer(response) => return Ok(Step::Answer(response)),
    };
    Ok(Step::Go(target))
}

/// The resource the request is decided on, and the id that named it (so
/// that the same id in the body is not looked up twice).
async fn main_target(
    state: &FrontState,
    parts: &Parts,
    reference: ResourceRef,
    query: &Query,
    object: Option<&Map<String, Value>>,
) -> Result<Step<(Target, Option<Uuid>)>, FrontError> {
    let mut target = Target {
        resource: Resource::Global,
        kind: "workspace",
        id: String::new(),
        fetched: None,
        body: Vec::new(),
        also: Vec::new(),
    };
    let decided_on = match reference {
        ResourceRef::Connection(id) => {
            let connection = resolve_connection(state, id).await?;
            target.resource = connection.resource();
            target.kind = "connection";
            target.id = connection.id;
            id
        }
        ResourceRef::Job(id) => {
            target.resource = resolve_job(state, id).await?.resource();
            target.kind = "job";
            target.id = id.to_string();
            return Ok(Step::Go((target, None)));
        }
        ResourceRef::Workspace(id) => {
            target.id = id.hyphenated().to_string();
            target.resource = workspace_resource(state, &target.id);
            id
        }
        ResourceRef::Source(id) | ResourceRef::Destination(id) => {
            let (plural, kind) = match reference {
                ResourceRef::Source(_) => ("sources", "source"),
                _ => ("destinations", "destination"),
            };
            let (workspace, raw) = match Box::pin(locate(state, parts, plural, id)).await? {
                Located::In(workspace, raw) => (workspace, raw),
                Located::Refused(raw) => return Ok(Step::Answer(raw_response(raw))),
            };
            target.resource = workspace_resource(state, &workspace);
            target.kind = kind;
            target.id = id.to_string();
            target.fetched = (parts.method == Method::GET).then_some(raw);
            id
        }
        ResourceRef::Streams => {
            let source = query
                .uuid("sourceId")?
                .ok_or_else(|| FrontError::BadRequest("sourceId must be a UUID".to_owned()))?;
            let workspace = match Box::pin(source_workspace(state, parts, source)).await? {
                Step::Go(workspace) => workspace,
                Step::Answer(response) => return Ok(Step::Answer(response)),
            };
            target.resource = workspace_resource(state, &workspace);
            target.kind = "source";
            target.id = source.to_string();
            source
        }
        ResourceRef::NewConnection | ResourceRef::NewInWorkspace => {
            let (named, workspace) = match Box::pin(new_in(state, parts, reference, object)).await?
            {
                Step::Go(found) => found,
                Step::Answer(response) => return Ok(Step::Answer(response)),
            };
            target.resource = workspace_resource(state, &workspace);
            target.id = workspace;
            named
        }
        ResourceRef::Global => return Ok(Step::Go((target, None))),
        ResourceRef::List(_) | ResourceRef::NewJob => {
            return Err(FrontError::Internal(anyhow::anyhow!("handled above")));
        }
    };
    Ok(Step::Go((target, Some(decided_on))))
}

/// Where a creation goes: the workspace of the body's `sourceId` (a new
/// connection) or its `workspaceId`, with the id that named it.
async fn new_in(
    state: &FrontState,
    parts: &Parts,
    reference: ResourceRef,
    object: Option<&Map<String, Value>>,
) -> Result<Step<(Uuid, String)>, FrontError> {
    let object = object.ok_or_else(|| {
        FrontError::BadRequest("The request body must be a JSON object".to_owned())
    })?;
    if reference != ResourceRef::NewConnection {
        let workspace = uuid_field(object, "workspaceId")?;
        return Ok(Step::Go((workspace, workspace.hyphenated().to_string())));
    }
    let source = uuid_field(object, "sourceId")?;
    Ok(match source_workspace(state, parts, source).await? {
        Step::Go(workspace) => Step::Go((source, workspace)),
        Step::Answer(response) => Step::Answer(response),
    })
}

/// The workspace of a source (Airbyte is asked), or Airbyte's refusal.
async fn source_workspace(
    state: &FrontState,
    parts: &Parts,
    source: Uuid,
) -> Result<Step<String>, FrontError> {
    Ok(match locate(state, parts, "sources", source).await? {
        Located::In(workspace, _) => Step::Go(workspace),
        Located::Refused(raw) => Step::Answer(raw_response(raw)),
    })
}

/// Airbyte's answer: the kept answer of a finished job (`job_read`: a
/// `GET /jobs/{id}`; a finished job never changes), what a lookup already
/// fetched, or the request forwarded to `forwarded` (the path and the
/// query the front parsed, re-encoded).
async fn answer(
    state: &FrontState,
    parts: &Parts,
    forwarded: &str,
    job_read: Option<i64>,
    fetched: Option<airbyte_client::RawResponse>,
    body: Vec<u8>,
) -> Result<(StatusCode, Response), FrontError> {
    let finished = &state.front().finished;
    if let Some(answer) = job_read.and_then(|id| finished.get(id, &parts.headers)) {
        let response = airbyte_response(
            StatusCode::OK,
            answer.content_type.as_deref(),
            Body::from(answer.body),
        );
        return Ok((StatusCode::OK, response));
    }
    if let Some(raw) = fetched {
        return Ok((raw.status, raw_response(raw)));
    }
    let raw = forward(state, parts, forwarded, body).await?;
    let status = raw.status;
    let response = if let Some(id) = job_read {
        finished.offer(id, status, raw.content_type.as_deref(), &raw.body);
        airbyte_response(status, raw.content_type.as_deref(), Body::from(raw.body))
    } else {
        raw_response(raw)
    };
    Ok((status, response))
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
) -> Result<airlock_domain::policy::Decision, FrontError> {
    if permission == Permission::ConnectionsRead {
        let snapshot = state.catalog().snapshot();
        let connections = snapshot
            .all()
            .iter()
            .filter(|c| c.workspace_id == id)
            .map(ConnectionInfo::resource);
        if let Some(decision) = caller.allowed_on_any(state, permission, connections) {
            return Ok(decision);
        }
    }
    caller::authorize(caller, state, permission, resource, "workspace", id).await
}

/// Where a source or destination lives, as Airbyte says.
pub(super) enum Located {
    /// In this workspace; Airbyte's answer to the GET.
    In(String, airbyte_client::RawResponse),
    /// Airbyte refused the GET (other than "not found"): its answer.
    Refused(airbyte_client::RawResponse),
}

/// Asks Airbyte (with Airlock's credential) for `/{kind}/{id}` to learn its
/// workspace before deciding. Not found is Airlock's own 404, the same as
/// out of scope, so that the two cannot be told apart.
pub(super) async fn locate(
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

/// A connection by Airbyte id, through the catalog (refreshed once when
/// unknown).
pub(super) async fn resolve_connection(
    state: &FrontState,
    id: Uuid,
) -> Result<ConnectionInfo, FrontError> {
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
pub(super) async fn resolve_job(
    state: &FrontState,
    job_id: i64,
) -> Result<ConnectionInfo, FrontError> {
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
                // Boxed: rare (a job Airlock never saw), and large.
                None => match Box::pin(state.airbyte().get_job(job_id)).await {
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
pub(super) fn is_not_found(error: &airbyte_client::Error) -> bool {
    matches!(error, airbyte_client::Error::NotFound { .. })
        || error.problem().is_some_and(|p| p.is("resource-not-found"))
}
