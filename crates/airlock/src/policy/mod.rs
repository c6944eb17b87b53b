//! Policy: what a [`Principal`] may do, where. Deny by default.
//!
//! Permissions ([`Permission`]) are grouped into roles: the built-in
//! `reader`, `runner`, `editor`, `admin`, `auditor`, and custom ones from
//! `[roles.NAME]`. A grant (`[[grants]]`) gives one role to the principals
//! its matcher selects, within a scope: all workspaces, some workspaces,
//! some connections (by id, slug or `tag:NAME`), or both (a connection must
//! then satisfy both). [`Policy::decide`] walks the grants in order and
//! allows on the first grant that matches the principal, carries the
//! permission, and covers the resource.
//!
//! A [`Policy`] is an immutable value built from configuration; a reload
//! builds a new one and swaps it in.

mod config;
pub mod explain;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use config::{GrantConfig, MatchConfig, RoleConfig};

use crate::identity::{IssuerConfig, Principal, lookup_claim};

/// One thing a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Permission {
    /// List and read connections.
    ConnectionsRead,
    /// List and read jobs, follow their events.
    JobsRead,
    /// Start a sync.
    JobsSync,
    /// Cancel a running job.
    JobsCancel,
    /// Retry a failed job.
    JobsRetry,
    /// Reset or clear a connection's data (destructive).
    JobsReset,
    /// Read the audit trail.
    AuditRead,
    /// Change Airbyte configuration through the compatible front.
    AirbyteWrite,
}

impl Permission {
    /// Every permission, in display order.
    pub const ALL: [Permission; 8] = [
        Self::ConnectionsRead,
        Self::JobsRead,
        Self::JobsSync,
        Self::JobsCancel,
        Self::JobsRetry,
        Self::JobsReset,
        Self::AuditRead,
        Self::AirbyteWrite,
    ];

    /// The name used in configuration and responses (`jobs:sync`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionsRead => "connections:read",
            Self::JobsRead => "jobs:read",
            Self::JobsSync => "jobs:sync",
            Self::JobsCancel => "jobs:cancel",
            Self::JobsRetry => "jobs:retry",
            Self::JobsReset => "jobs:reset",
            Self::AuditRead => "audit:read",
            Self::AirbyteWrite => "airbyte:write",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no permission.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown permission `{0}` (known: connections:read, jobs:read, jobs:sync, jobs:cancel, jobs:retry, jobs:reset, audit:read, airbyte:write)"
)]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(s.to_owned()))
    }
}

impl TryFrom<String> for Permission {
    type Error = UnknownPermission;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Permission> for String {
    fn from(value: Permission) -> Self {
        value.as_str().to_owned()
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// No permission.
    pub const EMPTY: Self = Self(0);

    /// The set of `permissions`.
    pub fn of(permissions: &[Permission]) -> Self {
        Self(permissions.iter().fold(0, |bits, p| bits | p.bit()))
    }

    /// Every permission.
    pub fn all() -> Self {
        Self::of(&Permission::ALL)
    }

    /// Whether `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Both sets together.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions, in display order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }
}

/// The built-in roles, in Airbyte's vocabulary.
pub const BUILTIN_ROLES: [&str; 5] = ["reader", "runner", "editor", "admin", "auditor"];

fn builtin_permissions(name: &str) -> Option<PermissionSet> {
    use Permission as P;
    let reader = [P::ConnectionsRead, P::JobsRead];
    let runner = [
        P::ConnectionsRead,
        P::JobsRead,
        P::JobsSync,
        P::JobsCancel,
        P::JobsRetry,
    ];
    Some(match name {
        "reader" => PermissionSet::of(&reader),
        "runner" => PermissionSet::of(&runner),
        "editor" => {
            PermissionSet::of(&runner).union(PermissionSet::of(&[P::JobsReset, P::AirbyteWrite]))
        }
        "admin" => PermissionSet::all(),
        "auditor" => PermissionSet::of(&reader).union(PermissionSet::of(&[P::AuditRead])),
        _ => return None,
    })
}

/// A role: a name and its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Everything it allows, inheritance included.
    pub permissions: PermissionSet,
    /// Whether Airlock defines it (not the configuration).
    pub builtin: bool,
}

/// A connection as a grant names it: id or slug, or `tag:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionSelector {
    /// The connection whose Airbyte id or Airlock slug is this.
    IdOrSlug(String),
    /// Every connection carrying this Airbyte tag.
    Tag(String),
}

impl ConnectionSelector {
    fn covers(&self, connection: &ConnectionResource) -> bool {
        match self {
            Self::IdOrSlug(r) => r == &connection.id || r == &connection.slug,
            Self::Tag(tag) => connection.tags.iter().any(|t| t == tag),
        }
    }
}

impl fmt::Display for ConnectionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IdOrSlug(r) => f.write_str(r),
            Self::Tag(tag) => write!(f, "tag:{tag}"),
        }
    }
}

impl Serialize for ConnectionSelector {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everywhere, including global resources such as the audit trail.
    All,
    /// Only within the listed workspaces and/or connections (a connection
    /// must satisfy every list given).
    Limited {
        /// Workspace ids or names; `None` places no workspace limit.
        workspaces: Option<Vec<String>>,
        /// Connection selectors; `None` places no connection limit.
        connections: Option<Vec<ConnectionSelector>>,
    },
}

impl Scope {
    /// Whether the scope covers `resource`.
    pub fn covers(&self, resource: &Resource) -> bool {
        let Self::Limited {
            workspaces,
            connections,
        } = self
        else {
            return true;
        };
        let in_workspaces = |id: &str, name: Option<&str>| {
            workspaces
                .as_ref()
                .is_none_or(|list| list.iter().any(|w| w == id || Some(w.as_str()) == name))
        };
        match resource {
            Resource::Global => false,
            // Some connections of a workspace are not the workspace.
            Resource::Workspace(ws) => {
                connections.is_none() && in_workspaces(&ws.id, ws.name.as_deref())
            }
            Resource::Connection(c) => {
                in_workspaces(&c.workspace_id, c.workspace_name.as_deref())
                    && connections
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|s| s.covers(c)))
            }
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("all workspaces"),
            Self::Limited {
                workspaces,
                connections,
            } => {
                let mut parts = Vec::new();
                if let Some(list) = workspaces {
                    parts.push(format!("workspaces [{}]", list.join(", ")));
                }
                if let Some(list) = connections {
                    let list: Vec<String> = list.iter().map(ToString::to_string).collect();
                    parts.push(format!("connections [{}]", list.join(", ")));
                }
                f.write_str(&parts.join(" and "))
            }
        }
    }
}

/// `"all"`, or `{"workspaces": [...], "connections": [...]}`.
impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::All => serializer.serialize_str("all"),
            Self::Limited {
                workspaces,
                connections,
            } => {
                let mut map = serializer.serialize_map(None)?;
                if let Some(list) = workspaces {
                    map.serialize_entry("workspaces", list)?;
                }
                if let Some(list) = connections {
                    map.serialize_entry("connections", list)?;
                }
                map.end()
            }
        }
    }
}

/// What a request touches, as the policy needs to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// Nothing scoped: the audit trail, lists across workspaces.
    Global,
    /// A whole workspace.
    Workspace(WorkspaceResource),
    /// One connection.
    Connection(ConnectionResource),
}

/// A workspace, by Airbyte id and (when known) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceResource {
    /// Airbyte's workspace id.
    pub id: String,
    /// Its name, when known.
    pub name: Option<String>,
}

/// A connection with what grants can select it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionResource {
    /// Airbyte's connection id.
    pub id: String,
    /// Airlock's slug for it.
    pub slug: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// That workspace's name, when known.
    pub workspace_name: Option<String>,
    /// Its Airbyte tags.
    pub tags: Vec<String>,
}

/// How a principal is selected by a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    /// The claim at `path` holds `value`.
    Claim {
        /// A claim path.
        path: String,
        /// The value held.
        value: String,
    },
    /// The principal's subject.
    Subject(String),
    /// The principal's OAuth client.
    ClientId(String),
    /// One of the principal's groups.
    Group(String),
    /// The principal's email (case-insensitive).
    Email(String),
    /// One of the principal's identity-provider roles.
    Role(String),
    /// One of the token's scopes.
    Scope(String),
}

impl Matcher {
    fn matches(&self, p: &Principal) -> bool {
        match self {
            Self::Claim { path, value } => lookup_claim(&p.claims, path)
                .is_some_and(|v| crate::identity::claim_holds(v, value)),
            Self::Subject(s) => &p.subject == s,
            Self::ClientId(c) => p.client_id.as_ref() == Some(c),
            Self::Group(g) => p.groups.contains(g),
            Self::Email(e) => p.email.as_ref().is_some_and(|m| m.eq_ignore_ascii_case(e)),
            Self::Role(r) => p.roles.contains(r),
            Self::Scope(s) => p.scopes.contains(s),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Claim { path, value } => write!(f, "claim {path} = {value:?}"),
            Self::Subject(v) => write!(f, "sub = {v:?}"),
            Self::ClientId(v) => write!(f, "client_id = {v:?}"),
            Self::Group(v) => write!(f, "group = {v:?}"),
            Self::Email(v) => write!(f, "email = {v:?}"),
            Self::Role(v) => write!(f, "role = {v:?}"),
            Self::Scope(v) => write!(f, "scope = {v:?}"),
        }
    }
}

/// One grant, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its position in `[[grants]]`, from 0.
    pub index: usize,
    /// The Airlock role granted.
    pub role: String,
    /// That role's permissions.
    pub permissions: PermissionSet,
    /// Who gets it.
    pub matcher: Matcher,
    /// Only principals of this issuer, when set.
    pub issuer: Option<String>,
    /// Where it applies.
    pub scope: Scope,
}

impl Grant {
    /// Whether the grant selects `principal`.
    pub fn matches(&self, principal: &Principal) -> bool {
        self.issuer
            .as_ref()
            .is_none_or(|iss| iss == &principal.issuer)
            && self.matcher.matches(principal)
    }
}

/// Why a decision went the way it did; printed as a short code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Allowed by this grant: `grant:INDEX:ROLE`.
    Grant {
        /// The grant's index in `[[grants]]`.
        index: usize,
        /// Its role.
        role: String,
    },
    /// No grant selects the principal: `no_matching_grant`.
    NoMatchingGrant,
    /// Grants select the principal, none carries the permission:
    /// `permission_not_granted`.
    PermissionNotGranted,
    /// A grant carries the permission, but not for this resource:
    /// `out_of_scope`.
    OutOfScope,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Grant { index, role } => write!(f, "grant:{index}:{role}"),
            Self::NoMatchingGrant => f.write_str("no_matching_grant"),
            Self::PermissionNotGranted => f.write_str("permission_not_granted"),
            Self::OutOfScope => f.write_str("out_of_scope"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The answer to "may this principal do this here?".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// Why, for the audit trail.
    pub reason: Reason,
    /// The grant that allowed it.
    pub grant_index: Option<usize>,
}

/// A configuration error in `[roles]` or `[[grants]]`, naming the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The key at `key` is invalid.
    #[error("{key}: {message}")]
    Invalid {
        /// Where, e.g. `grants[1].match`.
        key: String,
        /// What is wrong there.
        message: String,
    },
}

impl PolicyError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The dotted path of the offending key.
    pub fn key(&self) -> &str {
        match self {
            Self::Invalid { key, .. } => key,
        }
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        match self {
            Self::Invalid { message, .. } => message,
        }
    }
}

/// Roles and grants, validated: decides every request. The default
/// policy has the built-in roles and no grant: it denies everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    roles: BTreeMap<String, Role>,
    grants: Vec<Grant>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            roles: builtin_roles(),
            grants: Vec::new(),
        }
    }
}

fn builtin_roles() -> BTreeMap<String, Role> {
    BUILTIN_ROLES
        .iter()
        .filter_map(|name| {
            builtin_permissions(name).map(|permissions| {
                let role = Role {
                    name: (*name).to_owned(),
                    permissions,
                    builtin: true,
                };
                ((*name).to_owned(), role)
            })
        })
        .collect()
}

fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl Policy {
    /// The policy of custom `roles` and `grants`, the grants' issuers
    /// checked against the configured `issuers`.
    pub fn for_issuers(
        roles: &BTreeMap<String, RoleConfig>,
        grants: &[GrantConfig],
        issuers: &[IssuerConfig],
    ) -> Result<Self, PolicyError> {
        let policy = Self::new(roles, grants)?;
        for (i, grant) in grants.iter().enumerate() {
            if let Some(iss) = &grant.matcher.issuer
                && !issuers.iter().any(|c| &c.issuer == iss)
            {
                return Err(PolicyError::invalid(
                    format!("grants[{i}].match.issuer"),
                    format!("`{iss}` is not a configured issuer"),
                ));
            }
        }
        Ok(policy)
    }

    /// The policy of custom `roles` and `grants`.
    pub fn new(
        roles: &BTreeMap<String, RoleConfig>,
        grants: &[GrantConfig],
    ) -> Result<Self, PolicyError> {
        let roles = resolve_roles(roles)?;
        let grants = grants
            .iter()
            .enumerate()
            .map(|(i, g)| build_grant(i, g, &roles))
            .collect::<Result<_, _>>()?;
        Ok(Self { roles, grants })
    }

    /// Every role, built-in and custom, by name.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The role called `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Every grant, in configuration order.
    pub fn grants(&self) -> &[Grant] {
        &self.grants
    }

    /// The grants that select `principal`, in order.
    pub fn grants_for<'a>(
        &'a self,
        principal: &'a Principal,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants.iter().filter(move |g| g.matches(principal))
    }

    /// Decides whether `principal` may use `permission` on `resource`.
    pub fn decide(
        &self,
        principal: &Principal,
        permission: Permission,
        resource: &Resource,
    ) -> Decision {
        let mut selected = false;
        let mut carried = false;
        for grant in self.grants_for(principal) {
            selected = true;
            if !grant.permissions.contains(permission) {
                continue;
            }
            carried = true;
            if grant.scope.covers(resource) {
                return Decision {
                    allowed: true,
                    reason: Reason::Grant {
                        index: grant.index,
                        role: grant.role.clone(),
                    },
                    grant_index: Some(grant.index),
                };
            }
        }
        let reason = match (selected, carried) {
            (_, true) => Reason::OutOfScope,
            (true, false) => Reason::PermissionNotGranted,
            (false, false) => Reason::NoMatchingGrant,
        };
        Decision {
            allowed: false,
            reason,
            grant_index: None,
        }
    }

    /// Whether `principal` may use `permission` on `resource`: for
    /// filtering lists.
    pub fn allows(
        &self,
        principal: &Principal,
        permission: Permission,
        resource: &Resource,
    ) -> bool {
        self.decide(principal, permission, resource).allowed
    }

    /// Whether `principal` has `permission` anywhere at all: for hiding
    /// what it can never use (MCP tools, console buttons).
    pub fn can_anywhere(&self, principal: &Principal, permission: Permission) -> bool {
        self.grants_for(principal)
            .any(|g| g.permissions.contains(permission))
    }

    /// Each permission `principal` has and where, for `whoami`. A
    /// permission held everywhere is listed once with [`Scope::All`].
    pub fn effective(&self, principal: &Principal) -> Vec<(Permission, Scope)> {
        let grants: Vec<&Grant> = self.grants_for(principal).collect();
        let mut out = Vec::new();
        for permission in Permission::ALL {
            let mut scopes: Vec<&Scope> = Vec::new();
            for grant in grants.iter().filter(|g| g.permissions.contains(permission)) {
                if !scopes.contains(&&grant.scope) {
                    scopes.push(&grant.scope);
                }
            }
            if scopes.contains(&&Scope::All) {
                out.push((permission, Scope::All));
            } else {
                out.extend(scopes.into_iter().map(|s| (permission, s.clone())));
            }
        }
        out
    }

    /// The Airlock roles `principal` holds through grants (anywhere).
    pub fn roles_of(&self, principal: &Principal) -> Vec<String> {
        let mut names = BTreeSet::new();
        let mut out = Vec::new();
        for grant in self.grants_for(principal) {
            if names.insert(grant.role.clone()) {
                out.push(grant.role.clone());
            }
        }
        out
    }
}

fn resolve_roles(
    custom: &BTreeMap<String, RoleConfig>,
) -> Result<BTreeMap<String, Role>, PolicyError> {
    let mut roles = builtin_roles();
    for (name, role) in custom {
        let key = format!("roles.{name}");
        if BUILTIN_ROLES.contains(&name.as_str()) {
            return Err(PolicyError::invalid(
                key,
                format!("`{name}` is a built-in role and cannot be redefined; choose another name"),
            ));
        }
        if !valid_role_name(name) {
            return Err(PolicyError::invalid(
                key,
                "a role name is 1 to 64 letters, digits, `-`, `_`, `.` or `:`",
            ));
        }
        for (i, permission) in role.permissions.iter().enumerate() {
            permission.parse::<Permission>().map_err(|e| {
                PolicyError::invalid(format!("{key}.permissions[{i}]"), e.to_string())
            })?;
        }
        for (i, parent) in role.inherits.iter().enumerate() {
            if builtin_permissions(parent).is_none() && !custom.contains_key(parent) {
                return Err(PolicyError::invalid(
                    format!("{key}.inherits[{i}]"),
                    format!("no role is called `{parent}`"),
                ));
            }
        }
        if role.permissions.is_empty() && role.inherits.is_empty() {
            return Err(PolicyError::invalid(
                format!("{key}.permissions"),
                "a role must grant at least one permission",
            ));
        }
    }
    for name in custom.keys() {
        let permissions = custom_permissions(name, custom, &mut Vec::new())?;
        roles.insert(
            name.clone(),
            Role {
                name: name.clone(),
                permissions,
                builtin: false,
            },
        );
    }
    Ok(roles)
}

/// A custom role's permissions, inheritance resolved; `path` detects cycles.
fn custom_permissions(
    name: &str,
    custom: &BTreeMap<String, RoleConfig>,
    path: &mut Vec<String>,
) -> Result<PermissionSet, PolicyError> {
    if let Some(builtin) = builtin_permissions(name) {
        return Ok(builtin);
    }
    if path.iter().any(|seen| seen == name) {
        path.push(name.to_owned());
        return Err(PolicyError::invalid(
            format!("roles.{}.inherits", path[0]),
            format!("roles inherit in a cycle: {}", path.join(" -> ")),
        ));
    }
    let Some(role) = custom.get(name) else {
        return Ok(PermissionSet::EMPTY);
    };
    path.push(name.to_owned());
    let mut set = PermissionSet::of(
        &role
            .permissions
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect::<Vec<Permission>>(),
    );
    for parent in &role.inherits {
        set = set.union(custom_permissions(parent, custom, path)?);
    }
    path.pop();
    Ok(set)
}

fn build_grant(
    index: usize,
    grant: &GrantConfig,
    roles: &BTreeMap<String, Role>,
) -> Result<Grant, PolicyError> {
    let key = format!("grants[{index}]");
    let role = roles.get(&grant.role).ok_or_else(|| {
        let known: Vec<&str> = roles.keys().map(String::as_str).collect();
        PolicyError::invalid(
            format!("{key}.role"),
            format!(
                "no role is called `{}` (known: {})",
                grant.role,
                known.join(", ")
            ),
        )
    })?;
    let matcher = build_matcher(&grant.matcher)
        .map_err(|m| PolicyError::invalid(format!("{key}.match"), m))?;
    if let Some(issuer) = &grant.matcher.issuer
        && issuer.trim().is_empty()
    {
        return Err(PolicyError::invalid(
            format!("{key}.match.issuer"),
            "must not be empty",
        ));
    }
    let workspaces = match &grant.workspaces {
        None => None,
        Some(list) => {
            check_list(list, &format!("{key}.workspaces"), "workspace")?;
            Some(list.clone())
        }
    };
    let connections = match &grant.connections {
        None => None,
        Some(list) => {
            check_list(list, &format!("{key}.connections"), "connection")?;
            let selectors = list
                .iter()
                .enumerate()
                .map(|(i, entry)| match entry.strip_prefix("tag:") {
                    Some("") => Err(PolicyError::invalid(
                        format!("{key}.connections[{i}]"),
                        "`tag:` needs a tag name",
                    )),
                    Some(tag) => Ok(ConnectionSelector::Tag(tag.to_owned())),
                    None => Ok(ConnectionSelector::IdOrSlug(entry.clone())),
                })
                .collect::<Result<_, _>>()?;
            Some(selectors)
        }
    };
    let scope = if workspaces.is_none() && connections.is_none() {
        Scope::All
    } else {
        Scope::Limited {
            workspaces,
            connections,
        }
    };
    Ok(Grant {
        index,
        role: role.name.clone(),
        permissions: role.permissions,
        matcher,
        issuer: grant.matcher.issuer.clone(),
        scope,
    })
}

fn check_list(list: &[String], key: &str, what: &str) -> Result<(), PolicyError> {
    if list.is_empty() {
        return Err(PolicyError::invalid(
            key,
            format!(
                "an empty list grants nothing; name at least one {what}, or remove the key to grant everywhere"
            ),
        ));
    }
    if let Some(i) = list.iter().position(|e| e.trim().is_empty()) {
        return Err(PolicyError::invalid(
            format!("{key}[{i}]"),
            "must not be empty",
        ));
    }
    Ok(())
}

fn build_matcher(m: &MatchConfig) -> Result<Matcher, String> {
    let given: Vec<(&str, &String)> = [
        ("claim", &m.claim),
        ("sub", &m.sub),
        ("client_id", &m.client_id),
        ("group", &m.group),
        ("email", &m.email),
        ("role", &m.role),
        ("scope", &m.scope),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
    .collect();
    let [(name, value)] = given[..] else {
        let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
        return Err(if given.is_empty() {
            "give one of claim (with value), sub, client_id, group, email, role, scope".to_owned()
        } else {
            format!(
                "give only one of {} per grant (add another grant for more)",
                names.join(", ")
            )
        });
    };
    if value.trim().is_empty() {
        return Err(format!("`{name}` must not be empty"));
    }
    if name != "claim" && m.value.is_some() {
        return Err("`value` goes with `claim` only".to_owned());
    }
    Ok(match name {
        "claim" => {
            let expected = m.value.clone().ok_or("`claim` needs a `value`")?;
            Matcher::Claim {
                path: value.clone(),
                value: expected,
            }
        }
        "sub" => Matcher::Subject(value.clone()),
        "client_id" => Matcher::ClientId(value.clone()),
        "group" => Matcher::Group(value.clone()),
        "email" => Matcher::Email(value.clone()),
        "role" => Matcher::Role(value.clone()),
        _ => Matcher::Scope(value.clone()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::PrincipalKind;

    fn principal(claims: serde_json::Value) -> Principal {
        Principal {
            issuer: "https://id.example.com".into(),
            subject: claims["sub"].as_str().unwrap_or("s").into(),
            kind: PrincipalKind::User,
            client_id: claims["client_id"].as_str().map(str::to_owned),
            display_name: "d".into(),
            roles: claims["roles"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            groups: vec!["data-eng".into()],
            scopes: vec!["airlock.sync".into()],
            email: Some("Ada@Example.com".into()),
            claims,
        }
    }

    fn grants(text: &str) -> Result<Policy, PolicyError> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            roles: BTreeMap<String, RoleConfig>,
            #[serde(default)]
            grants: Vec<GrantConfig>,
        }
        let file: File =
            toml::from_str(text).map_err(|e| PolicyError::invalid("toml", e.to_string()))?;
        Policy::new(&file.roles, &file.grants)
    }

    #[test]
    fn permissions_round_trip_through_strings() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(
                serde_json::to_value(p).expect("serializes"),
                json!(p.as_str())
            );
        }
        assert!("jobs:delete".parse::<Permission>().is_err());
        assert!("JOBS:READ".parse::<Permission>().is_err());
        assert_eq!(PermissionSet::all().iter().count(), 8);
    }

    #[test]
    fn builtin_roles_are_as_documented() {
        let policy = Policy::default();
        assert_eq!(policy.roles().filter(|r| r.builtin).count(), 5);
        assert!(policy.grants().is_empty());
        let p = |name| {
            builtin_permissions(name)
                .expect(name)
                .iter()
                .map(Permission::as_str)
                .collect::<Vec<_>>()
        };
        assert_eq!(p("reader"), ["connections:read", "jobs:read"]);
        assert_eq!(
            p("runner"),
            [
                "connections:read",
                "jobs:read",
                "jobs:sync",
                "jobs:cancel",
                "jobs:retry"
            ]
        );
        assert_eq!(
            p("editor"),
            [
                "connections:read",
                "jobs:read",
                "jobs:sync",
                "jobs:cancel",
                "jobs:retry",
                "jobs:reset",
                "airbyte:write"
            ]
        );
        assert_eq!(p("admin").len(), 8);
        assert_eq!(
            p("auditor"),
            ["connections:read", "jobs:read", "audit:read"]
        );
    }

    #[test]
    fn custom_roles_inherit_and_cycles_are_named() {
        let policy = grants(
            "[roles.pipeline-operator]\npermissions = [\"jobs:reset\"]\ninherits = [\"runner\"]\n[roles.lead]\ninherits = [\"pipeline-operator\"]\npermissions = [\"audit:read\"]\n",
        )
        .expect("valid");
        let lead = policy.role("lead").expect("lead");
        assert!(lead.permissions.contains(Permission::JobsReset));
        assert!(lead.permissions.contains(Permission::JobsSync));
        assert!(lead.permissions.contains(Permission::AuditRead));
        assert!(!lead.permissions.contains(Permission::AirbyteWrite));
        assert!(!lead.builtin);

        let err = grants("[roles.a]\ninherits = [\"b\"]\n[roles.b]\ninherits = [\"a\"]\n")
            .expect_err("cycle");
        assert_eq!(err.key(), "roles.a.inherits", "{err}");
        assert!(err.message().contains("a -> b -> a"), "{err}");
    }

    #[test]
    fn config_errors_name_the_place() {
        let cases = [
            (
                "[roles.ops]\npermissions = [\"jobs:read\", \"jobs:destroy\"]\n",
                "roles.ops.permissions[1]",
            ),
            (
                "[roles.runner]\npermissions = [\"jobs:read\"]\n",
                "roles.runner",
            ),
            ("[roles.ops]\npermissions = []\n", "roles.ops.permissions"),
            (
                "[roles.ops]\ninherits = [\"nope\"]\n",
                "roles.ops.inherits[0]",
            ),
            (
                "[roles.\"bad name\"]\npermissions = [\"jobs:read\"]\n",
                "roles.bad name",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\" }\n[[grants]]\nrole = \"runnr\"\nmatch = { sub = \"a\" }\n",
                "grants[1].role",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { claim = \"roles\" }\n",
                "grants[0].match",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\", group = \"b\" }\n",
                "grants[0].match",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = {}\n",
                "grants[0].match",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"\" }\n",
                "grants[0].match",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\", value = \"b\" }\n",
                "grants[0].match",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { issuer = \"https://i\" }\n",
                "grants[0].match",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\" }\nworkspaces = []\n",
                "grants[0].workspaces",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\" }\nconnections = []\n",
                "grants[0].connections",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\" }\nconnections = [\"x\", \"tag:\"]\n",
                "grants[0].connections[1]",
            ),
            (
                "[[grants]]\nrole = \"reader\"\nmatch = { sub = \"a\" }\nworkspaces = [\" \"]\n",
                "grants[0].workspaces[0]",
            ),
        ];
        for (text, key) in cases {
            let err = grants(text).expect_err(text);
            assert_eq!(err.key(), key, "{text} -> {err}");
        }
        // Unknown keys are refused by serde, naming them.
        let err = grants("[[grants]]\nrole = \"reader\"\nmatch = { subject = \"a\" }\n")
            .expect_err("unknown key");
        assert!(err.to_string().contains("subject"), "{err}");
    }

    #[test]
    fn every_matcher_kind_selects_the_right_principals() {
        let policy = grants(
            r#"
[[grants]]
role = "reader"
match = { claim = "realm_access.roles", value = "airbyte-reader" }
[[grants]]
role = "reader"
match = { sub = "u-1" }
[[grants]]
role = "reader"
match = { client_id = "dagster" }
[[grants]]
role = "reader"
match = { group = "data-eng" }
[[grants]]
role = "reader"
match = { email = "ada@example.com" }
[[grants]]
role = "reader"
match = { role = "Airlock.Reader" }
[[grants]]
role = "reader"
match = { scope = "airlock.sync" }
[[grants]]
role = "reader"
match = { sub = "u-1", issuer = "https://other.example.com" }
"#,
        )
        .expect("valid");
        let p = principal(
            json!({"sub": "u-1", "client_id": "dagster", "roles": ["Airlock.Reader"],
                                 "realm_access": {"roles": ["airbyte-reader"]}}),
        );
        let matched: Vec<usize> = policy.grants_for(&p).map(|g| g.index).collect();
        assert_eq!(
            matched,
            vec![0, 1, 2, 3, 4, 5, 6],
            "grant 7 is for another issuer"
        );

        let mut nobody = principal(json!({"sub": "u-2"}));
        nobody.groups.clear();
        nobody.scopes.clear();
        nobody.email = None;
        assert_eq!(policy.grants_for(&nobody).count(), 0);
        let d = policy.decide(&nobody, Permission::JobsRead, &Resource::Global);
        assert_eq!(
            (d.allowed, d.reason.to_string()),
            (false, "no_matching_grant".to_owned())
        );
    }

    fn connection(id: &str, slug: &str, ws: &str, tags: &[&str]) -> Resource {
        Resource::Connection(ConnectionResource {
            id: id.into(),
            slug: slug.into(),
            workspace_id: format!("{ws}-id"),
            workspace_name: Some(ws.into()),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        })
    }

    #[test]
    fn scopes_and_reasons() {
        let policy = grants(
            r#"
[[grants]]
role = "runner"
match = { sub = "u" }
workspaces = ["analytics"]
connections = ["tag:nightly"]
[[grants]]
role = "reader"
match = { sub = "u" }
connections = ["c-9", "orders"]
"#,
        )
        .expect("valid");
        let p = principal(json!({"sub": "u"}));
        let nightly = connection("c-1", "etl", "analytics", &["nightly"]);
        let d = policy.decide(&p, Permission::JobsSync, &nightly);
        assert_eq!(
            (d.allowed, d.reason.to_string(), d.grant_index),
            (true, "grant:0:runner".into(), Some(0))
        );
        let elsewhere = connection("c-2", "etl2", "finance", &["nightly"]);
        assert_eq!(
            policy.decide(&p, Permission::JobsSync, &elsewhere).reason,
            Reason::OutOfScope
        );
        assert_eq!(
            policy.decide(&p, Permission::JobsReset, &nightly).reason,
            Reason::PermissionNotGranted
        );
        let by_slug = connection("c-3", "orders", "finance", &[]);
        assert!(policy.allows(&p, Permission::ConnectionsRead, &by_slug));
        assert!(!policy.allows(&p, Permission::JobsSync, &by_slug));
        let by_id = connection("c-9", "x", "finance", &[]);
        assert!(policy.allows(&p, Permission::JobsRead, &by_id));
        let ws = Resource::Workspace(WorkspaceResource {
            id: "analytics-id".into(),
            name: Some("analytics".into()),
        });
        assert!(
            !policy.allows(&p, Permission::JobsRead, &ws),
            "some connections are not the workspace"
        );
        assert!(!policy.allows(&p, Permission::JobsRead, &Resource::Global));
        assert!(policy.can_anywhere(&p, Permission::JobsSync));
        assert!(!policy.can_anywhere(&p, Permission::AuditRead));
        assert_eq!(policy.roles_of(&p), vec!["runner", "reader"]);
    }

    #[test]
    fn effective_permissions_collapse_to_all() {
        let policy = grants(
            r#"
[[grants]]
role = "runner"
match = { sub = "u" }
workspaces = ["analytics"]
[[grants]]
role = "reader"
match = { sub = "u" }
"#,
        )
        .expect("valid");
        let effective = policy.effective(&principal(json!({"sub": "u"})));
        let printed: Vec<String> = effective
            .iter()
            .map(|(p, s)| format!("{p} @ {s}"))
            .collect();
        assert_eq!(
            printed,
            [
                "connections:read @ all workspaces",
                "jobs:read @ all workspaces",
                "jobs:sync @ workspaces [analytics]",
                "jobs:cancel @ workspaces [analytics]",
                "jobs:retry @ workspaces [analytics]",
            ]
        );
        assert_eq!(
            serde_json::to_value(&effective[0].1).expect("json"),
            json!("all")
        );
        assert_eq!(
            serde_json::to_value(&effective[2].1).expect("json"),
            json!({"workspaces": ["analytics"]})
        );
    }
}
