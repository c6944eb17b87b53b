//! Who is calling: a [`Principal`] built from verified claims by the
//! issuer's preset, as overridden in its configuration.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::claims::{as_list, as_single, lookup};
use super::config::{ClaimPaths, IssuerConfig, KindRule, Preset};

/// A verified caller: what the policy engine matches grants against and
/// what the audit trail records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    /// The configured issuer that vouched for this caller.
    pub issuer: String,
    /// The stable subject at that issuer (the preset's subject claim).
    pub subject: String,
    /// A person or a machine client.
    pub kind: PrincipalKind,
    /// The OAuth client the token was issued to, when the token says.
    pub client_id: Option<String>,
    /// A name for humans: logs, `whoami`, the audit trail.
    pub display_name: String,
    /// The identity provider's roles (not Airlock roles).
    pub roles: Vec<String>,
    /// The identity provider's groups.
    pub groups: Vec<String>,
    /// The token's scopes.
    pub scopes: Vec<String>,
    /// The email address, unless the token says it is unverified.
    pub email: Option<String>,
    /// Every verified claim, for grants that match an arbitrary claim.
    pub claims: Value,
}

impl Principal {
    /// The claim at `path` (literal key first, then dotted), if any.
    pub fn claim(&self, path: &str) -> Option<&Value> {
        lookup(&self.claims, path)
    }

    /// Whether the token says the caller's groups did not fit in it (Entra
    /// ID's "groups overage", past 200 groups): `_claim_names` names
    /// `groups` (with `_claim_sources` pointing at Microsoft Graph), or
    /// `hasgroups` is `true`. Its [`groups`](Self::groups) are then not the
    /// caller's groups: group grants cannot select it, and Airlock does not
    /// call Graph to find them.
    pub fn groups_overage(&self) -> bool {
        let named = self
            .claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|names| names.contains_key("groups"));
        named || self.claims.get("hasgroups") == Some(&Value::Bool(true))
    }
}

/// Whether a principal is a person or a machine client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person, signed in through the identity provider.
    User,
    /// A machine client (client credentials, service account).
    Service,
}

impl PrincipalKind {
    /// `user` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
        }
    }
}

/// Where one issuer's tokens keep each part of a principal: the preset's
/// paths with the configuration's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClaimMapping {
    subject: Vec<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    scopes: Vec<String>,
    client_id: Vec<String>,
    name: Vec<String>,
    email: Vec<String>,
    service: Vec<KindRule>,
}

fn paths(list: &[&str]) -> Vec<String> {
    list.iter().map(|p| (*p).to_owned()).collect()
}

fn rule(claim: &str, f: impl FnOnce(&mut KindRule)) -> KindRule {
    let mut rule = KindRule {
        claim: claim.to_owned(),
        ..KindRule::default()
    };
    f(&mut rule);
    rule
}

impl ClaimMapping {
    /// The preset's paths for `config.preset`, overridden by `config.claims`.
    pub(crate) fn for_issuer(config: &IssuerConfig) -> Self {
        let mut mapping = Self::preset(config);
        let c = &config.claims;
        let set = |slot: &mut Vec<String>, value: &Option<ClaimPaths>| {
            if let Some(ClaimPaths(list)) = value {
                slot.clone_from(list);
            }
        };
        set(&mut mapping.subject, &c.subject);
        set(&mut mapping.roles, &c.roles);
        set(&mut mapping.groups, &c.groups);
        set(&mut mapping.scopes, &c.scopes);
        set(&mut mapping.client_id, &c.client_id);
        set(&mut mapping.name, &c.name);
        set(&mut mapping.email, &c.email);
        if let Some(rules) = &c.service {
            mapping.service.clone_from(rules);
        }
        mapping
    }

    /// The paths of `config.preset`, before the configuration's overrides.
    fn preset(config: &IssuerConfig) -> Self {
        match config.preset {
            Preset::Generic => Self::generic(),
            Preset::Entra => Self::entra(),
            Preset::Okta => Self::okta(),
            Preset::Keycloak => Self::keycloak(config),
            Preset::Auth0 => Self::auth0(),
            Preset::Google => Self::google(),
        }
    }

    /// `generic`: plain OIDC and RFC 9068 access tokens.
    fn generic() -> Self {
        Self {
            subject: paths(&["sub"]),
            roles: paths(&["roles"]),
            groups: paths(&["groups"]),
            scopes: paths(&["scope", "scp"]),
            client_id: paths(&["client_id", "azp"]),
            name: paths(&["name", "preferred_username"]),
            email: paths(&["email"]),
            // RFC 9068: a client-credentials token's `sub` is the client.
            service: vec![rule("sub", |r| r.same_as = Some("client_id".into()))],
        }
    }

    /// `entra`: Microsoft Entra ID (v2 tokens, v1 `appid` as a fallback).
    fn entra() -> Self {
        Self {
            // `oid` is stable across applications; `sub` is pairwise.
            subject: paths(&["oid", "sub"]),
            roles: paths(&["roles"]),
            groups: paths(&["groups"]),
            scopes: paths(&["scp"]),
            client_id: paths(&["azp", "appid"]),
            name: paths(&["name", "preferred_username"]),
            email: paths(&["email"]),
            // App-only tokens: `idtyp` = app when registered, and
            // always `sub` = `oid` (the service principal).
            service: vec![
                rule("idtyp", |r| r.equals = Some("app".into())),
                rule("sub", |r| r.same_as = Some("oid".into())),
            ],
        }
    }

    /// `okta`: Okta custom authorization servers.
    fn okta() -> Self {
        Self {
            subject: paths(&["uid", "sub"]),
            roles: paths(&["roles"]),
            groups: paths(&["groups"]),
            scopes: paths(&["scp"]),
            client_id: paths(&["cid"]),
            name: paths(&["name"]),
            email: paths(&["email"]),
            service: vec![
                rule("sub", |r| r.same_as = Some("cid".into())),
                rule("uid", |r| r.absent = Some(true)),
            ],
        }
    }

    /// `keycloak`: Keycloak realms; the realm's roles and those of the
    /// clients the issuer is configured with (audiences, client ids).
    fn keycloak(config: &IssuerConfig) -> Self {
        let mut roles = paths(&["realm_access.roles"]);
        for client in config
            .audiences
            .iter()
            .chain(&config.client_id)
            .chain(&config.console_client_id)
        {
            let path = format!("resource_access.{client}.roles");
            if !roles.contains(&path) {
                roles.push(path);
            }
        }
        Self {
            subject: paths(&["sub"]),
            roles,
            groups: paths(&["groups"]),
            scopes: paths(&["scope"]),
            client_id: paths(&["client_id", "clientId", "azp"]),
            name: paths(&["name", "preferred_username"]),
            email: paths(&["email"]),
            service: vec![rule("preferred_username", |r| {
                r.starts_with = Some("service-account-".into());
            })],
        }
    }

    /// `auth0`: Auth0 tenants.
    fn auth0() -> Self {
        Self {
            subject: paths(&["sub"]),
            // RBAC's "add permissions in the access token"; namespaced
            // role claims are set per issuer (`claims.roles`).
            roles: paths(&["permissions"]),
            groups: Vec::new(),
            scopes: paths(&["scope"]),
            client_id: paths(&["azp", "client_id"]),
            name: paths(&["name", "nickname"]),
            email: paths(&["email"]),
            service: vec![
                rule("gty", |r| r.equals = Some("client-credentials".into())),
                rule("sub", |r| r.ends_with = Some("@clients".into())),
            ],
        }
    }

    /// `google`: Google ID tokens.
    fn google() -> Self {
        Self {
            subject: paths(&["sub"]),
            roles: Vec::new(),
            groups: Vec::new(),
            scopes: Vec::new(),
            client_id: paths(&["azp"]),
            name: paths(&["name", "email"]),
            email: paths(&["email"]),
            service: vec![rule("email", |r| {
                r.ends_with = Some(".gserviceaccount.com".into())
            })],
        }
    }

    /// The subject: the first of the subject paths that holds a non-blank
    /// string, or an integer (a custom claim such as an employee number;
    /// `sub` itself must be a string, which [`check_string_claims`]
    /// enforces). Anything else (a float, a boolean, an object) refuses the
    /// claims rather than being skipped or printed.
    ///
    /// [`check_string_claims`]: super::token::check_string_claims
    fn subject(&self, claims: &Value) -> Result<String, MappingError> {
        for path in &self.subject {
            match lookup(claims, path) {
                None => {}
                Some(Value::String(s)) if s.trim().is_empty() => {}
                Some(Value::String(s)) => return Ok(s.clone()),
                Some(Value::Number(n)) if n.is_i64() || n.is_u64() => return Ok(n.to_string()),
                Some(_) => return Err(MappingError::InvalidSubject),
            }
        }
        Err(MappingError::MissingSubject)
    }

    /// Builds the principal from claims whose signature and validity were
    /// already checked (or, for `policy explain --claims`, deliberately not).
    pub(crate) fn principal(&self, issuer: &str, claims: Value) -> Result<Principal, MappingError> {
        let first = |paths: &[String]| {
            paths
                .iter()
                .find_map(|p| lookup(&claims, p).and_then(as_single))
        };
        let all = |paths: &[String]| {
            let mut out: Vec<String> = Vec::new();
            for value in paths.iter().filter_map(|p| lookup(&claims, p)) {
                for item in as_list(value) {
                    if !out.contains(&item) {
                        out.push(item);
                    }
                }
            }
            out
        };
        let subject = self.subject(&claims)?;
        let client_id = first(&self.client_id);
        let email_unverified =
            lookup(&claims, "email_verified").is_some_and(|v| v == &Value::Bool(false));
        let email = if email_unverified {
            None
        } else {
            first(&self.email)
        };
        let display_name = first(&self.name)
            .or_else(|| email.clone())
            .or_else(|| client_id.clone())
            .unwrap_or_else(|| subject.clone());
        let kind = if self.service.iter().any(|r| rule_matches(r, &claims)) {
            PrincipalKind::Service
        } else {
            PrincipalKind::User
        };
        let (roles, groups, scopes) = (all(&self.roles), all(&self.groups), all(&self.scopes));
        Ok(Principal {
            issuer: issuer.to_owned(),
            subject,
            kind,
            client_id,
            display_name,
            roles,
            groups,
            scopes,
            email,
            claims,
        })
    }
}

/// Why claims do not make a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MappingError {
    #[error("no subject claim")]
    MissingSubject,
    /// The subject claim is a float, a boolean, an object...: never
    /// coerced into a subject.
    #[error("the subject claim is not a string")]
    InvalidSubject,
}

impl From<MappingError> for super::AuthError {
    fn from(error: MappingError) -> Self {
        match error {
            MappingError::MissingSubject => Self::MissingClaim("sub"),
            MappingError::InvalidSubject => Self::InvalidClaim("sub"),
        }
    }
}

fn rule_matches(rule: &KindRule, claims: &Value) -> bool {
    let value = lookup(claims, &rule.claim).and_then(as_single);
    if let Some(absent) = rule.absent {
        return value.is_none() == absent;
    }
    let Some(value) = value else {
        return false;
    };
    if let Some(expected) = &rule.equals {
        return &value == expected;
    }
    if let Some(prefix) = &rule.starts_with {
        return value.starts_with(prefix.as_str());
    }
    if let Some(suffix) = &rule.ends_with {
        return value.ends_with(suffix.as_str());
    }
    if let Some(other) = &rule.same_as {
        return lookup(claims, other).and_then(as_single).as_ref() == Some(&value);
    }
    false
}

#[cfg(test)]
mod tests;
