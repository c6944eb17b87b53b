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

mod bound;
mod config;
mod decision;
pub mod explain;
mod grant;
mod permission;
mod resource;
mod role;
mod scope;

use std::collections::{BTreeMap, BTreeSet};

pub use bound::{NameBindings, bindings_report};
pub use config::{GrantConfig, MatchConfig, RoleConfig};
pub use decision::{Decision, Reason};
pub use grant::{Grant, Matcher};
pub use permission::{Permission, PermissionSet, UnknownPermission};
pub use resource::{ConnectionResource, Resource, WorkspaceResource};
pub use role::{BUILTIN_ROLES, Role};
pub use scope::{ConnectionSelector, Scope, is_workspace_name};

use crate::identity::{IssuerConfig, Principal};
use crate::settings::InvalidKey;
use grant::build_grant;
use role::{builtin_roles, resolve_roles};

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

impl Policy {
    /// The policy of custom `roles` and `grants`, the grants' issuers
    /// checked against the configured `issuers`.
    pub fn for_issuers(
        roles: &BTreeMap<String, RoleConfig>,
        grants: &[GrantConfig],
        issuers: &[IssuerConfig],
    ) -> Result<Self, InvalidKey> {
        let policy = Self::new(roles, grants)?;
        for (i, grant) in grants.iter().enumerate() {
            if let Some(iss) = &grant.matcher.issuer
                && !issuers.iter().any(|c| &c.issuer == iss)
            {
                return Err(InvalidKey::new(
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
    ) -> Result<Self, InvalidKey> {
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

    /// Every workspace name the grants use (entries that are not ids), for
    /// the catalog to bind.
    pub fn workspace_names(&self) -> std::collections::BTreeSet<String> {
        self.grants
            .iter()
            .flat_map(|g| g.scope.workspace_names())
            .map(str::to_owned)
            .collect()
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

#[cfg(test)]
mod tests;
