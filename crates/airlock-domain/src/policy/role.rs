//! Roles: the built-in ones and the custom ones of `[roles.NAME]`, with
//! their inheritance resolved to a [`PermissionSet`].

use std::collections::BTreeMap;

use super::{InvalidKey, Permission, PermissionSet, RoleConfig};

/// The built-in roles, in Airbyte's vocabulary.
pub const BUILTIN_ROLES: [&str; 6] = ["reader", "runner", "editor", "admin", "auditor", "approver"];

pub(super) fn builtin_permissions(name: &str) -> Option<PermissionSet> {
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
        // Everything but break-glass, which no built-in role holds: an
        // admin decides others' approvals, and waits for their own.
        "admin" => PermissionSet::of(
            &Permission::ALL
                .into_iter()
                .filter(|p| *p != P::ApprovalsBypass)
                .collect::<Vec<_>>(),
        ),
        "auditor" => PermissionSet::of(&reader).union(PermissionSet::of(&[P::AuditRead])),
        "approver" => PermissionSet::of(&reader).union(PermissionSet::of(&[P::ApprovalsDecide])),
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

pub(super) fn builtin_roles() -> BTreeMap<String, Role> {
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

pub(super) fn resolve_roles(
    custom: &BTreeMap<String, RoleConfig>,
) -> Result<BTreeMap<String, Role>, InvalidKey> {
    let mut roles = builtin_roles();
    for (name, role) in custom {
        let key = format!("roles.{name}");
        if BUILTIN_ROLES.contains(&name.as_str()) {
            return Err(InvalidKey::new(
                key,
                format!("`{name}` is a built-in role and cannot be redefined; choose another name"),
            ));
        }
        if !valid_role_name(name) {
            return Err(InvalidKey::new(
                key,
                "a role name is 1 to 64 letters, digits, `-`, `_`, `.` or `:`",
            ));
        }
        for (i, permission) in role.permissions.iter().enumerate() {
            permission
                .parse::<Permission>()
                .map_err(|e| InvalidKey::new(format!("{key}.permissions[{i}]"), e.to_string()))?;
        }
        for (i, parent) in role.inherits.iter().enumerate() {
            if builtin_permissions(parent).is_none() && !custom.contains_key(parent) {
                return Err(InvalidKey::new(
                    format!("{key}.inherits[{i}]"),
                    format!("no role is called `{parent}`"),
                ));
            }
        }
        if role.permissions.is_empty() && role.inherits.is_empty() {
            return Err(InvalidKey::new(
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
) -> Result<PermissionSet, InvalidKey> {
    if let Some(builtin) = builtin_permissions(name) {
        return Ok(builtin);
    }
    if path.iter().any(|seen| seen == name) {
        path.push(name.to_owned());
        return Err(InvalidKey::new(
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
