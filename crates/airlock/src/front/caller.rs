//! Who calls the front, and may they: authentication from the bearer token,
//! decisions logged and denials audited, with Airbyte-shaped refusals.

use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::FrontError;
use crate::audit;
use crate::identity::Principal;
use crate::policy::{Decision, Permission, Resource};
use crate::web::AppState;
use crate::web::auth::{action_of, origin_of, place};

/// The audit and job channel of the front.
pub(crate) const CHANNEL: &str = "front";

/// A verified caller of the front.
#[derive(Debug, Clone)]
pub(crate) struct FrontCaller {
    pub(crate) principal: std::sync::Arc<Principal>,
    pub(crate) request_id: String,
    origin: audit::Origin,
    /// This request's place under the per-identity cap (as on the API).
    _permit: Option<std::sync::Arc<tokio::sync::OwnedSemaphorePermit>>,
}

/// Verifies the bearer token; a 401 (reason logged and audited) otherwise.
pub(crate) async fn authenticate(
    state: &AppState,
    parts: &Parts,
    request_id: &str,
) -> Result<FrontCaller, FrontError> {
    let origin = origin_of(parts, request_id);
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match state.authenticator().authenticate(header).await {
        Ok(principal) => {
            crate::web::request_id::RequestLog::of(&parts.extensions).subject(&principal.subject);
            let identity = format!("{}|{}", principal.issuer, principal.subject);
            let Some(permit) = state.limiter().try_acquire(&identity) else {
                tracing::info!(request_id, subject = %principal.subject, "too many requests in flight");
                return Err(FrontError::RateLimited);
            };
            Ok(FrontCaller {
                principal,
                request_id: request_id.to_owned(),
                origin,
                _permit: permit.map(std::sync::Arc::new),
            })
        }
        Err(error) => {
            state.metrics().authentication_failure(error.code());
            tracing::info!(
                request_id,
                reason = error.code(),
                path = %parts.uri.path(),
                "authentication failed"
            );
            let entry = audit::Entry {
                origin,
                channel: CHANNEL.to_owned(),
                action: "authenticate".to_owned(),
                decision: "deny".to_owned(),
                reason: Some(error.code().to_owned()),
                outcome: Some("401".to_owned()),
                detail: Some(serde_json::json!({"path": parts.uri.path()})),
                ..audit::Entry::default()
            };
            state.audit(&entry).await;
            Err(FrontError::Unauthorized)
        }
    }
}

impl FrontCaller {
    /// An audit record of this caller doing `action`.
    pub(crate) fn entry(&self, action: &str, decision: &Decision) -> audit::Entry {
        audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: CHANNEL.to_owned(),
            action: action.to_owned(),
            decision: if decision.allowed { "allow" } else { "deny" }.to_owned(),
            reason: Some(decision.reason.to_string()),
            ..audit::Entry::default()
        }
    }

    /// 403 unless some grant gives `permission` somewhere: checked before
    /// anything is looked up, so that the caller learns nothing.
    pub(crate) async fn require_somewhere(
        &self,
        state: &AppState,
        permission: Permission,
    ) -> Result<(), FrontError> {
        if state.policy().can_anywhere(&self.principal, permission) {
            return Ok(());
        }
        self.deny(
            state,
            &action_of(permission),
            &Resource::Global,
            "no_grant_anywhere",
            "403",
        )
        .await;
        Err(FrontError::Forbidden)
    }

    /// Decides `permission` on `resource`. A denial looks like the resource
    /// does not exist (404 `resource_type` `id`), so that out-of-scope
    /// resources cannot be told from missing ones; a global resource is
    /// refused with 403 (nothing to hide).
    pub(crate) async fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        resource: &Resource,
        resource_type: &'static str,
        id: &str,
    ) -> Result<Decision, FrontError> {
        let decision = state.policy().decide(&self.principal, permission, resource);
        state.metrics().authorization(permission, decision.allowed);
        if decision.allowed {
            return Ok(decision);
        }
        let (status, error) = if *resource == Resource::Global {
            ("403", FrontError::Forbidden)
        } else {
            (
                "404",
                FrontError::NotFound {
                    resource_type,
                    id: id.to_owned(),
                },
            )
        };
        self.deny(
            state,
            &action_of(permission),
            resource,
            &decision.reason.to_string(),
            status,
        )
        .await;
        Err(error)
    }

    /// Logs and audits a refusal answered with `status`.
    pub(crate) async fn deny(
        &self,
        state: &AppState,
        action: &str,
        resource: &Resource,
        reason: &str,
        status: &str,
    ) {
        tracing::info!(
            request_id = %self.request_id,
            subject = %self.principal.subject,
            action,
            reason,
            "denied"
        );
        let mut entry = audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: CHANNEL.to_owned(),
            action: action.to_owned(),
            decision: "deny".to_owned(),
            reason: Some(reason.to_owned()),
            outcome: Some(status.to_owned()),
            ..audit::Entry::default()
        };
        place(&mut entry, resource);
        state.audit(&entry).await;
    }

    /// Audits an allowed request that the front handed to Airbyte, with
    /// Airbyte's answer as the outcome; `decision` is `None` for lists
    /// (decided item by item).
    pub(crate) async fn record(
        &self,
        state: &AppState,
        action: &str,
        decision: Option<&Decision>,
        resource: &Resource,
        outcome: String,
        detail: Option<serde_json::Value>,
    ) {
        let mut entry = audit::Entry {
            origin: self.origin.clone(),
            actor: audit::Actor::of(&self.principal),
            channel: CHANNEL.to_owned(),
            action: action.to_owned(),
            decision: "allow".to_owned(),
            reason: decision.map(|d| d.reason.to_string()),
            ..audit::Entry::default()
        };
        place(&mut entry, resource);
        entry.outcome = Some(outcome);
        entry.detail = detail;
        state.audit(&entry).await;
    }

    /// The principal as the job table keeps it.
    pub(crate) fn requester(&self) -> serde_json::Value {
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
