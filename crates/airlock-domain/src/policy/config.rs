//! `[roles.NAME]` and `[[grants]]` as written in the configuration file;
//! [`super::Policy::new`] turns them into the policy.

use serde::{Deserialize, Serialize};

/// A custom role: a named set of permissions, next to the built-in ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Permissions by name (`jobs:sync`, ...).
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Roles (built-in or custom) whose permissions this one also has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    /// What the role is for, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One grant: a role, the identities that get it, and where.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantConfig {
    /// The Airlock role granted (built-in or from `[roles]`).
    pub role: String,
    /// Which principals get it.
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    /// Only in these workspaces (ids or names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<Vec<String>>,
    /// Only on these connections: ids, slugs, or `tag:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<String>>,
    /// Why the grant exists, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `match = { ... }`: exactly one of `claim` (with `value`), `sub`,
/// `client_id`, `group`, `email`, `role`, `scope`; optionally `issuer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// A claim path (`realm_access.roles`, `hd`); needs `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// The value the claim must hold (equal, or an element of a list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The principal's subject (the preset's subject claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The OAuth client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// One of the principal's groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The principal's (verified) email address, case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// One of the principal's identity-provider roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// One of the token's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Only principals from this configured issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}
