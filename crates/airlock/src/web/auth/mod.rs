//! The access guard: who is calling, and may they. [`Caller`] is the one
//! type every door (the API, the Airbyte-compatible front, `/mcp`, the
//! console) asks to authenticate a request (bearer token, or console session
//! with its CSRF check), to hold its place under the per-identity cap, to
//! decide one action on one resource, and to log, count and audit every
//! refusal. A door differs only in how it renders a [`Refusal`]: the API and
//! the console as problem+json, the front in Airbyte's shape, answering a
//! resource outside the caller's scope as missing ([`Door::hides_out_of_scope`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;

mod decide;

pub use super::refusals::Unidentified;
use super::{ApiError, AppState, RequestId, RequestLog, refusals, session};
use airlock_domain::audit;
use airlock_domain::identity::Principal;
use airlock_domain::policy::{Permission, Resource};
use airlock_store::StoreError;

/// Why the guard refused a request. Each door renders it in its own shape.
#[derive(Debug)]
pub enum Refusal {
    /// No valid credential (401; logged and audited).
    Unauthenticated,
    /// The session cookie came twice (400; logged and audited): which one
    /// is the session cannot be told.
    DuplicateSession,
    /// The identity is at its cap of requests in flight (429).
    TooManyRequests,
    /// A console request failed the CSRF check (403; logged and audited).
    Csrf(&'static str),
    /// Not allowed (logged and audited). `hidden`: the door answers as if
    /// the resource did not exist.
    Forbidden { hidden: bool },
    /// The session store could not be read.
    Store(StoreError),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => Self::Unauthorized,
            Refusal::DuplicateSession => Self::malformed("Cookie", DUPLICATE_SESSION),
            Refusal::TooManyRequests => Self::TooManyRequests,
            Refusal::Csrf(message) => Self::CsrfRejected(message),
            Refusal::Forbidden { .. } => Self::Forbidden,
            Refusal::Store(error) => error.into(),
        }
    }
}

/// What a request carrying its session cookie twice is told.
pub const DUPLICATE_SESSION: &str = "the request carries the session cookie more than once; \
    clear this site's cookies and sign in again";

/// How a door takes credentials and answers refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Door {
    /// The audit and job channel (`api`, `front`, `mcp`, `console`).
    pub channel: &'static str,
    /// A console session cookie is a credential here (bearer tokens always
    /// are, and win over a cookie sent along).
    pub sessions: bool,
    /// A denial on a workspace or connection is answered as if it did not
    /// exist (404), so that out-of-scope resources cannot be told from
    /// missing ones.
    pub hides_out_of_scope: bool,
    /// The channel of requests authenticated by a console session here.
    pub session_channel: &'static str,
}

impl Door {
    /// Airlock's own API (and `/mcp`, the console, which call it).
    pub const API: Self = Self {
        channel: "api",
        sessions: true,
        hides_out_of_scope: false,
        session_channel: CONSOLE,
    };
    /// `/mcp`: as the API, on its own channel.
    pub const MCP: Self = Self {
        channel: "mcp",
        session_channel: "mcp",
        ..Self::API
    };
    /// The Airbyte-compatible front: bearer tokens only, out-of-scope
    /// resources hidden.
    pub const FRONT: Self = Self {
        channel: "front",
        sessions: false,
        hides_out_of_scope: true,
        session_channel: "front",
    };
}

/// A verified caller, the id of its request and where it came from.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Shared with the verified-token cache: cloning a caller is cheap.
    pub principal: Arc<Principal>,
    pub request_id: RequestId,
    pub origin: audit::Origin,
    /// Which door the request came through (`api`, `front`, `mcp`,
    /// `console`).
    pub channel: &'static str,
    /// The console session the request was authenticated by, if it was.
    pub session: Option<Arc<session::Session>>,
    /// The door it came through: how refusals are answered.
    door: Door,
    /// The request's log record (subject, job ids).
    log: RequestLog,
    /// This request's place under the per-identity cap, freed when the
    /// handler is done with the caller.
    _permit: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

/// Set as a request extension by in-process adapters (the MCP server)
/// that call the API on a caller's behalf, so the audit trail names the
/// door the request really came through. Extensions cannot be set from
/// outside the process.
#[derive(Debug, Clone, Copy)]
pub struct ChannelTag(pub &'static str);

/// The channel of requests authenticated by a console session.
pub const CONSOLE: &str = "console";

/// Where a request came from, for the audit trail.
pub(crate) fn origin_of(parts: &Parts, request_id: &str) -> audit::Origin {
    audit::Origin {
        request_id: Some(request_id.to_owned()),
        source_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string()),
        user_agent: parts
            .headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect()),
    }
}

/// The audit name of a permission's action: `jobs:sync` is `jobs.sync`.
pub(crate) fn action_of(permission: Permission) -> String {
    permission.as_str().replace(':', ".")
}

/// The audit trail's view of a resource.
pub(crate) fn place(entry: &mut audit::Entry, resource: &Resource) {
    match resource {
        Resource::Global => {}
        Resource::Workspace(w) => entry.workspace_id = Some(w.id.clone()),
        Resource::Connection(c) => {
            entry.workspace_id = Some(c.workspace_id.clone());
            entry.connection_id = Some(c.id.clone());
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::authenticate(parts, state, Door::API).await?)
    }
}

impl Caller {
    /// Authenticates the request at `door`: its bearer token, or (where the
    /// door takes them, and no `Authorization` header is sent) its console
    /// session with the CSRF check; then its place under the per-identity
    /// cap. A failure is logged, counted and audited.
    pub async fn authenticate(
        parts: &Parts,
        state: &AppState,
        door: Door,
    ) -> Result<Self, Refusal> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_header(None));
        let origin = origin_of(parts, &request_id.0);
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        // An address that keeps sending bad credentials (tokens or session
        // cookies) is refused before any work, unless its token already
        // verified.
        if state.any_throttled()
            && state.throttled(&refusals::address_key(origin.source_ip.as_deref()))
            && !state.authenticator().is_cached(header)
        {
            let refusal = Unidentified {
                channel: tagged(parts).unwrap_or(door.channel),
                action: "authenticate",
                reason: "throttled",
                status: "429",
                detail: serde_json::json!({"path": refusals::bounded(parts.uri.path())}),
            };
            // Refusals and sessions are boxed: their futures are the
            // largest here, and every bearer token's request would carry them.
            Box::pin(state.refused(refusal.entry(origin), None, &[])).await;
            return Err(Refusal::TooManyRequests);
        }
        // A bearer token wins over a session cookie sent along with it.
        let session_channel = tagged(parts).unwrap_or(door.session_channel);
        if door.sessions
            && header.is_none()
            && let Some(id) = Box::pin(session_cookie(parts, state, session_channel)).await?
        {
            let id = id.to_owned();
            return Box::pin(Self::from_session(
                parts, state, door, &id, request_id, origin,
            ))
            .await;
        }
        let door = Door {
            channel: tagged(parts).unwrap_or(door.channel),
            ..door
        };
        match state.authenticator().authenticate(header).await {
            Ok(principal) => Self::admit(parts, state, door, principal, request_id, origin, None),
            Err(error) => {
                let reason = Reason {
                    code: error.code(),
                    claim: error.claim(),
                };
                Box::pin(refuse(
                    parts,
                    state,
                    &request_id,
                    origin,
                    door.channel,
                    reason,
                ))
                .await;
                Err(Refusal::Unauthenticated)
            }
        }
    }
}

/// What the per-identity limits count by.
fn identity_of(principal: &Principal) -> String {
    format!("{}|{}", principal.issuer, principal.subject)
}

/// An open event stream's place under its identity's bound.
#[derive(Debug)]
pub struct StreamPlace {
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// The id in the request's console session cookie (named per
/// `[console] cookie_secure`), if any. A request that carries the cookie
/// twice is refused (logged, counted and audited on `channel`) rather than
/// one of them picked: a planted cookie next to the real one must not
/// choose the session.
pub async fn session_cookie<'p>(
    parts: &'p Parts,
    state: &AppState,
    channel: &str,
) -> Result<Option<&'p str>, Refusal> {
    let secure = session::cookie_is_secure(state.site(), &parts.headers);
    if let Ok(id) = session::cookie_id(&parts.headers, secure) {
        return Ok(id);
    }
    let request_id = parts
        .extensions
        .get::<RequestId>()
        .map_or_else(String::new, |id| id.0.clone());
    let reason = "duplicate_session_cookie";
    tracing::info!(request_id, reason, path = %parts.uri.path(), "session cookie refused");
    state.metrics().authentication_failure(reason);
    let refusal = Unidentified {
        channel,
        action: "authenticate",
        reason,
        status: "400",
        detail: serde_json::json!({"path": refusals::bounded(parts.uri.path())}),
    };
    refusal.record(state, origin_of(parts, &request_id)).await;
    Err(Refusal::DuplicateSession)
}

/// The channel an in-process adapter (the MCP server) set on the request.
fn tagged(parts: &Parts) -> Option<&'static str> {
    parts.extensions.get::<ChannelTag>().map(|tag| tag.0)
}

/// Why an authentication failed: the reason code, and the claim it is
/// about (`invalid_claim` of `sub`), when it is about one.
struct Reason {
    code: &'static str,
    claim: Option<&'static str>,
}

/// Logs, counts and audits a failed authentication (401): the reason goes
/// to the log and the audit trail, never to the caller.
async fn refuse(
    parts: &Parts,
    state: &AppState,
    request_id: &RequestId,
    origin: audit::Origin,
    channel: &str,
    reason: Reason,
) {
    tracing::info!(
        request_id = %request_id.0,
        reason = reason.code,
        claim = reason.claim,
        path = %parts.uri.path(),
        "authentication failed"
    );
    state.metrics().authentication_failure(reason.code);
    let mut detail = serde_json::json!({"path": refusals::bounded(parts.uri.path())});
    if let Some(claim) = reason.claim {
        detail["claim"] = claim.into();
    }
    let refusal = Unidentified {
        channel,
        action: "authenticate",
        reason: reason.code,
        status: "401",
        detail,
    };
    refusal.record(state, origin).await;
}

impl Caller {
    /// A verified principal takes its place under the per-identity cap.
    fn admit(
        parts: &Parts,
        state: &AppState,
        door: Door,
        principal: Arc<Principal>,
        request_id: RequestId,
        origin: audit::Origin,
        session: Option<Arc<session::Session>>,
    ) -> Result<Self, Refusal> {
        let log = RequestLog::of(&parts.extensions);
        log.subject(&principal.subject);
        // In-process calls (MCP tools) ride on their outer request's place.
        let permit = if parts.extensions.get::<ChannelTag>().is_some() {
            None
        } else {
            match state.limiter().try_acquire(&identity_of(&principal)) {
                Some(permit) => permit,
                None => {
                    tracing::info!(request_id = %request_id.0, subject = %principal.subject, "too many requests in flight");
                    return Err(Refusal::TooManyRequests);
                }
            }
        };
        Ok(Self {
            principal,
            request_id,
            origin,
            channel: door.channel,
            session,
            door,
            log,
            _permit: permit.map(Arc::new),
        })
    }

    /// A request of the web console, authenticated by its session cookie
    /// (channel `console`): the session's principal, once a state-changing
    /// request has passed the CSRF check.
    async fn from_session(
        parts: &Parts,
        state: &AppState,
        door: Door,
        id: &str,
        request_id: RequestId,
        origin: audit::Origin,
    ) -> Result<Self, Refusal> {
        let channel = tagged(parts).unwrap_or(door.session_channel);
        let door = Door { channel, ..door };
        let session = match state.sessions().find(id, state.now_ms()).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                let reason = Reason {
                    code: "no_session",
                    claim: None,
                };
                refuse(parts, state, &request_id, origin, channel, reason).await;
                return Err(Refusal::Unauthenticated);
            }
            Err(error) => return Err(Refusal::Store(error)),
        };
        if session::changes_state(&parts.method) {
            let own = session::own_origin(state.site(), &parts.headers);
            if let Err(failure) = session::check_csrf(&parts.headers, &session, &own) {
                tracing::info!(
                    request_id = %request_id.0,
                    subject = %session.principal.subject,
                    reason = failure.code(),
                    path = %parts.uri.path(),
                    "console request refused"
                );
                let entry = audit::Entry {
                    origin,
                    actor: audit::Actor::of(&session.principal),
                    channel: channel.to_owned(),
                    action: "csrf".to_owned(),
                    decision: "deny".to_owned(),
                    reason: Some(failure.code().to_owned()),
                    outcome: Some("403".to_owned()),
                    detail: Some(serde_json::json!({
                        "method": parts.method.as_str(),
                        "path": parts.uri.path(),
                    })),
                    ..audit::Entry::default()
                };
                state.audit(&entry).await;
                return Err(Refusal::Csrf(failure.message()));
            }
        }
        Self::admit(
            parts,
            state,
            door,
            Arc::new(session.principal.clone()),
            request_id,
            origin,
            Some(Arc::clone(&session)),
        )
    }

    /// A place for one more open event stream of this identity, held while
    /// the stream lasts (an open stream is not a request in flight, but
    /// their number is bounded too).
    pub fn open_stream(&self, state: &AppState) -> Result<StreamPlace, Refusal> {
        match state.streams().try_acquire(&identity_of(&self.principal)) {
            Some(permit) => Ok(StreamPlace { _permit: permit }),
            None => {
                tracing::info!(request_id = %self.request_id.0, subject = %self.principal.subject, "too many event streams open");
                Err(Refusal::TooManyRequests)
            }
        }
    }

    /// Names the job this request is about in its log line (Airlock's id,
    /// and Airbyte's once there is one).
    pub fn note_job(&self, job: &airlock_domain::jobs::Job) {
        self.log.job(&job.id.to_string(), job.airbyte_job_id);
    }

    /// The principal as the job table keeps it.
    pub fn requester(&self) -> serde_json::Value {
        let p = &self.principal;
        serde_json::json!({
            "issuer": p.issuer,
            "subject": p.subject,
            "kind": p.kind.as_str(),
            "client_id": p.client_id,
            "display_name": p.display_name,
        })
    }
}
