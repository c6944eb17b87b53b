//! `GET /v1/whoami`: the caller as Airlock sees it.

use axum::extract::State;
use axum::response::Json;
use serde_json::{Value, json};

use super::{AppState, Caller};

/// The principal, its Airlock roles, and each permission with its scope.
pub(super) async fn whoami(State(state): State<AppState>, caller: Caller) -> Json<Value> {
    let policy = state.policy();
    let principal = &caller.principal;
    let permissions: Vec<Value> = policy
        .effective(principal)
        .into_iter()
        .map(|(permission, scope)| json!({"permission": permission.as_str(), "scope": scope}))
        .collect();
    Json(json!({
        "issuer": principal.issuer,
        "subject": principal.subject,
        "kind": principal.kind.as_str(),
        "client_id": principal.client_id,
        "display_name": principal.display_name,
        "email": principal.email,
        "idp_roles": principal.roles,
        "groups": principal.groups,
        "roles": policy.roles_of(principal),
        "permissions": permissions,
    }))
}
