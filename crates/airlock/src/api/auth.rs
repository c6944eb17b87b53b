//! Who is calling, and may they: the `Caller` extractor and the one place
//! where authorization decisions are taken and logged.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, AppState, RequestId};
use crate::identity::Principal;
use crate::policy::{Decision, Permission, Resource};

/// A verified caller and the id of its request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: RequestId,
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
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        match state.authenticator().authenticate(header).await {
            Ok(principal) => Ok(Self {
                principal,
                request_id,
            }),
            Err(error) => {
                // The reason goes to the log (and the audit trail), never
                // to the caller.
                tracing::info!(
                    request_id = %request_id.0,
                    reason = error.code(),
                    path = %parts.uri.path(),
                    "authentication failed"
                );
                Err(ApiError::Unauthorized)
            }
        }
    }
}

impl Caller {
    /// Decides and logs; `Forbidden` unless allowed.
    pub fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        resource: &Resource,
    ) -> Result<Decision, ApiError> {
        let decision = state.policy().decide(&self.principal, permission, resource);
        if decision.allowed {
            Ok(decision)
        } else {
            tracing::info!(
                request_id = %self.request_id.0,
                subject = %self.principal.subject,
                permission = permission.as_str(),
                reason = %decision.reason,
                "denied"
            );
            Err(ApiError::Forbidden)
        }
    }

    /// `Forbidden` unless some grant gives `permission` somewhere: checked
    /// before looking anything up, so that callers without the permission
    /// learn nothing about what exists.
    pub fn require_somewhere(
        &self,
        state: &AppState,
        permission: Permission,
    ) -> Result<(), ApiError> {
        if state.policy().can_anywhere(&self.principal, permission) {
            Ok(())
        } else {
            tracing::info!(
                request_id = %self.request_id.0,
                subject = %self.principal.subject,
                permission = permission.as_str(),
                reason = "no_grant_anywhere",
                "denied"
            );
            Err(ApiError::Forbidden)
        }
    }
}
