//! The front's side of the access guard ([`crate::web::auth::Caller`]):
//! the same authentication, decisions and audit records as every door,
//! refusals rendered in Airbyte's error shape, and a workspace, connection
//! or job outside the caller's scope answered as missing (404).

use axum::http::request::Parts;

use super::FrontState;
use super::error::FrontError;
use crate::web::auth::{Caller, DUPLICATE_SESSION, Door, Refusal};
use airlock_domain::policy::{Decision, Permission, Resource};

/// Verifies the bearer token (the front takes no console session); a 401
/// (reason logged and audited) otherwise.
pub(crate) async fn authenticate(state: &FrontState, parts: &Parts) -> Result<Caller, FrontError> {
    Caller::authenticate(parts, state, Door::FRONT)
        .await
        .map_err(FrontError::from)
}

/// Decides `permission` on `resource`. A denial looks like the resource
/// does not exist (404 `resource_type` `id`), so that out-of-scope
/// resources cannot be told from missing ones; a global resource is
/// refused with 403 (nothing to hide).
pub(crate) async fn authorize(
    caller: &Caller,
    state: &FrontState,
    permission: Permission,
    resource: &Resource,
    resource_type: &'static str,
    id: &str,
) -> Result<Decision, FrontError> {
    caller
        .authorize(state, permission, resource)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Forbidden { hidden: true } => FrontError::NotFound {
                resource_type,
                id: id.to_owned(),
            },
            other => other.into(),
        })
}

impl From<Refusal> for FrontError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Unauthenticated => Self::Unauthorized,
            Refusal::DuplicateSession => Self::BadRequest(DUPLICATE_SESSION.to_owned()),
            Refusal::TooManyRequests => Self::RateLimited,
            // The front takes no session, so it runs no CSRF check; a
            // hidden refusal without its resource is still a refusal.
            Refusal::Csrf(_) | Refusal::Forbidden { .. } => Self::Forbidden,
            Refusal::Store(error) => error.into(),
        }
    }
}
