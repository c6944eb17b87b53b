//! `GET /v1/whoami`: the caller as Airlock sees it.

use axum::extract::State;
use axum::response::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::problem::responses::Unauthorized;
use crate::web::{AppState, Caller};
use airlock_domain::policy::Scope;

/// The caller: its identity, Airlock roles and effective permissions.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Whoami)]
pub(super) struct WhoamiView {
    issuer: String,
    subject: String,
    /// `user` or `service`.
    kind: &'static str,
    client_id: Option<String>,
    display_name: String,
    email: Option<String>,
    /// Roles the identity provider gave (the `roles` claim, per preset).
    idp_roles: Vec<String>,
    groups: Vec<String>,
    /// Airlock roles granted to the caller.
    roles: Vec<String>,
    permissions: Vec<PermissionScope>,
}

/// One permission and where it applies.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PermissionScope {
    /// `connections:read`, `jobs:sync`, ...
    permission: &'static str,
    /// `"all"`, or `{"workspaces": [...], "connections": [...]}`.
    #[schema(value_type = Value)]
    scope: Scope,
}

/// The principal, its Airlock roles, and each permission with its scope.
#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "identity",
    summary = "The caller's identity, roles and effective permissions",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = WhoamiView),
        (status = 401, response = Unauthorized),
    )
)]
pub(super) async fn whoami(State(state): State<AppState>, caller: Caller) -> Json<WhoamiView> {
    let policy = state.policy();
    let principal = &caller.principal;
    let permissions = policy
        .effective(principal)
        .into_iter()
        .map(|(permission, scope)| PermissionScope {
            permission: permission.as_str(),
            scope,
        })
        .collect();
    Json(WhoamiView {
        issuer: principal.issuer.clone(),
        subject: principal.subject.clone(),
        kind: principal.kind.as_str(),
        client_id: principal.client_id.clone(),
        display_name: principal.display_name.clone(),
        email: principal.email.clone(),
        idp_roles: principal.roles.clone(),
        groups: principal.groups.clone(),
        roles: policy.roles_of(principal),
        permissions,
    })
}
