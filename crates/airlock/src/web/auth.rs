//! Who is calling, and may they: the `Caller` extractor and the one place
//! where authorization decisions are taken, logged and (when denied)
//! written to the audit trail.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;

use super::{ApiError, AppState, RequestId, RequestLog, session};
use crate::audit;
use crate::identity::Principal;
use crate::policy::{Decision, Permission, Resource};

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
        // A bearer token wins over a session cookie sent along with it.
        if header.is_none()
            && let Some(id) = session::cookie_id(&parts.headers)
        {
            let id = id.to_owned();
            return Self::from_session(parts, state, &id, request_id, origin).await;
        }
        let channel = parts
            .extensions
            .get::<ChannelTag>()
            .map_or("api", |tag| tag.0);
        match state.authenticator().authenticate(header).await {
            Ok(principal) => {
                Self::admit(parts, state, principal, request_id, origin, channel, None)
            }
            Err(error) => {
                refuse(parts, state, &request_id, origin, channel, error.code()).await;
                Err(ApiError::Unauthorized)
            }
        }
    }
}

/// Logs, counts and audits a failed authentication (401): the reason goes
/// to the log and the audit trail, never to the caller.
async fn refuse(
    parts: &Parts,
    state: &AppState,
    request_id: &RequestId,
    origin: audit::Origin,
    channel: &str,
    reason: &'static str,
) {
    tracing::info!(
        request_id = %request_id.0,
        reason,
        path = %parts.uri.path(),
        "authentication failed"
    );
    state.metrics().authentication_failure(reason);
    let entry = audit::Entry {
        origin,
        channel: channel.to_owned(),
        action: "authenticate".to_owned(),
        decision: "deny".to_owned(),
        reason: Some(reason.to_owned()),
        outcome: Some("401".to_owned()),
        detail: Some(serde_json::json!({"path": parts.uri.path()})),
        ..audit::Entry::default()
    };
    state.audit(&entry).await;
}

impl Caller {
    /// A verified principal takes its place under the per-identity cap.
    fn admit(
        parts: &Parts,
        state: &AppState,
        principal: Arc<Principal>,
        request_id: RequestId,
        origin: audit::Origin,
        channel: &'static str,
        session: Option<Arc<session::Session>>,
    ) -> Result<Self, ApiError> {
        let log = RequestLog::of(&parts.extensions);
        log.subject(&principal.subject);
        // In-process calls (MCP tools) ride on their outer request's place.
        let permit = if parts.extensions.get::<ChannelTag>().is_some() {
            None
        } else {
            let identity = format!("{}|{}", principal.issuer, principal.subject);
            match state.limiter().try_acquire(&identity) {
                Some(permit) => permit,
                None => {
                    tracing::info!(request_id = %request_id.0, subject = %principal.subject, "too many requests in flight");
                    return Err(ApiError::TooManyRequests);
                }
            }
        };
        Ok(Self {
            principal,
            request_id,
            origin,
            channel,
            session,
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
        id: &str,
        request_id: RequestId,
        origin: audit::Origin,
    ) -> Result<Self, ApiError> {
        let channel = parts
            .extensions
            .get::<ChannelTag>()
            .map_or(CONSOLE, |tag| tag.0);
        let session = match state.sessions().find(id, state.now_ms()).await {
            Ok(Some(session)) => session,
            Ok(None) => {
                refuse(parts, state, &request_id, origin, channel, "no_session").await;
                return Err(ApiError::Unauthorized);
            }
            Err(error) => return Err(error.into()),
        };
        if session::changes_state(&parts.method) {
            let own = session::own_origin(state.config(), &parts.headers);
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
                return Err(ApiError::CsrfRejected(failure.message()));
            }
        }
        Self::admit(
            parts,
            state,
            Arc::new(session.principal.clone()),
            request_id,
            origin,
            channel,
            Some(Arc::clone(&session)),
        )
    }

    /// Names the job this request is about in its log line (Airlock's id,
    /// and Airbyte's once there is one).
    pub fn note_job(&self, job: &crate::jobs::Job) {
        self.log.job(&job.id.to_string(), job.airbyte_job_id);
    }

    /// An audit record of this caller doing `action`.
    pub fn entry(&self, action: &str, decision: &Decision) -> audit::Entry {
        audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: self.channel.to_owned(),
            action: action.to_owned(),
            decision: if decision.allowed { "allow" } else { "deny" }.to_owned(),
            reason: Some(decision.reason.to_string()),
            ..audit::Entry::default()
        }
    }

    /// Decides; a denial is logged, audited and answered 403.
    pub async fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        resource: &Resource,
    ) -> Result<Decision, ApiError> {
        let decision = state.policy().decide(&self.principal, permission, resource);
        if decision.allowed {
            state.metrics().authorization(permission, true);
            return Ok(decision);
        }
        self.deny(state, permission, resource, &decision.reason.to_string())
            .await;
        Err(ApiError::Forbidden)
    }

    /// `Forbidden` unless some grant gives `permission` somewhere: checked
    /// before looking anything up, so that callers without the permission
    /// learn nothing about what exists.
    pub async fn require_somewhere(
        &self,
        state: &AppState,
        permission: Permission,
    ) -> Result<(), ApiError> {
        if state.policy().can_anywhere(&self.principal, permission) {
            return Ok(());
        }
        self.deny(state, permission, &Resource::Global, "no_grant_anywhere")
            .await;
        Err(ApiError::Forbidden)
    }

    /// Records a successful read, when `[audit] record_reads` asks for it.
    pub async fn read(&self, state: &AppState, action: &str, resource: &Resource) {
        if !state.config().audit.record_reads {
            return;
        }
        let mut entry = audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: self.channel.to_owned(),
            action: action.to_owned(),
            decision: "allow".to_owned(),
            outcome: Some("200".to_owned()),
            ..audit::Entry::default()
        };
        place(&mut entry, resource);
        state.audit(&entry).await;
    }

    /// Logs and audits a denial.
    pub async fn deny(
        &self,
        state: &AppState,
        permission: Permission,
        resource: &Resource,
        reason: &str,
    ) {
        tracing::info!(
            request_id = %self.request_id.0,
            subject = %self.principal.subject,
            permission = permission.as_str(),
            reason,
            "denied"
        );
        state.metrics().authorization(permission, false);
        let mut entry = audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: self.channel.to_owned(),
            action: action_of(permission),
            decision: "deny".to_owned(),
            reason: Some(reason.to_owned()),
            outcome: Some("403".to_owned()),
            ..audit::Entry::default()
        };
        place(&mut entry, resource);
        state.audit(&entry).await;
    }
}
