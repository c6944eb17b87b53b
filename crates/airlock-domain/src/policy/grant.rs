//! Grants: who gets a role ([`Matcher`]) and where, validated from
//! `[[grants]]`.

use std::collections::BTreeMap;
use std::fmt;

use super::{ConnectionSelector, GrantConfig, InvalidKey, MatchConfig, PermissionSet, Role, Scope};
use crate::identity::{Principal, lookup_claim};

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

pub(super) fn build_grant(
    index: usize,
    grant: &GrantConfig,
    roles: &BTreeMap<String, Role>,
) -> Result<Grant, InvalidKey> {
    let key = format!("grants[{index}]");
    let role = roles.get(&grant.role).ok_or_else(|| {
        let known: Vec<&str> = roles.keys().map(String::as_str).collect();
        InvalidKey::new(
            format!("{key}.role"),
            format!(
                "no role is called `{}` (known: {})",
                grant.role,
                known.join(", ")
            ),
        )
    })?;
    let matcher =
        build_matcher(&grant.matcher).map_err(|m| InvalidKey::new(format!("{key}.match"), m))?;
    if let Some(issuer) = &grant.matcher.issuer
        && issuer.trim().is_empty()
    {
        return Err(InvalidKey::new(
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
                    Some("") => Err(InvalidKey::new(
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

fn check_list(list: &[String], key: &str, what: &str) -> Result<(), InvalidKey> {
    if list.is_empty() {
        return Err(InvalidKey::new(
            key,
            format!(
                "an empty list grants nothing; name at least one {what}, or remove the key to grant everywhere"
            ),
        ));
    }
    if let Some(i) = list.iter().position(|e| e.trim().is_empty()) {
        return Err(InvalidKey::new(format!("{key}[{i}]"), "must not be empty"));
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
