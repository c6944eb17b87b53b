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

    fn preset(config: &IssuerConfig) -> Self {
        match config.preset {
            Preset::Generic => Self {
                subject: paths(&["sub"]),
                roles: paths(&["roles"]),
                groups: paths(&["groups"]),
                scopes: paths(&["scope", "scp"]),
                client_id: paths(&["client_id", "azp"]),
                name: paths(&["name", "preferred_username"]),
                email: paths(&["email"]),
                // RFC 9068: a client-credentials token's `sub` is the client.
                service: vec![rule("sub", |r| r.same_as = Some("client_id".into()))],
            },
            Preset::Entra => Self {
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
            },
            Preset::Okta => Self {
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
            },
            Preset::Keycloak => {
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
            Preset::Auth0 => Self {
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
            },
            Preset::Google => Self {
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
            },
        }
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
        let subject = first(&self.subject).ok_or(MappingError::MissingSubject)?;
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
mod tests {
    use serde_json::json;

    use super::*;
    use crate::identity::config::ClaimsConfig;

    fn map(preset: Preset, audiences: &[&str], claims: Value) -> Principal {
        let mut config = IssuerConfig::new("https://issuer.example", audiences);
        config.preset = preset;
        ClaimMapping::for_issuer(&config)
            .principal("https://issuer.example", claims)
            .expect("maps")
    }

    #[test]
    fn entra_app_token_is_a_service_with_app_roles() {
        let p = map(
            Preset::Entra,
            &["api://airlock"],
            json!({
                "aud": "api://airlock",
                "iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
                "azp": "6e74172b-be56-4843-9ff4-e66a39bb12e3",
                "azpacr": "1",
                "idtyp": "app",
                "oid": "1f0b5a0e-0000-4c8e-9a8b-1234567890ab",
                "sub": "1f0b5a0e-0000-4c8e-9a8b-1234567890ab",
                "roles": ["Airlock.Runner", "Airlock.Reader"],
                "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                "ver": "2.0"
            }),
        );
        assert_eq!(p.kind, PrincipalKind::Service);
        assert_eq!(p.subject, "1f0b5a0e-0000-4c8e-9a8b-1234567890ab");
        assert_eq!(
            p.client_id.as_deref(),
            Some("6e74172b-be56-4843-9ff4-e66a39bb12e3")
        );
        assert_eq!(p.roles, vec!["Airlock.Runner", "Airlock.Reader"]);
        assert!(p.scopes.is_empty());
        assert_eq!(p.display_name, "6e74172b-be56-4843-9ff4-e66a39bb12e3");
    }

    #[test]
    fn entra_user_token_uses_oid_and_scp_string() {
        let p = map(
            Preset::Entra,
            &["api://airlock"],
            json!({
                "aud": "api://airlock",
                "azp": "0e0a7a5b-1111-2222-3333-444455556666",
                "name": "Ada Lovelace",
                "oid": "00000000-0000-0000-66f3-3332eca7ea81",
                "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
                "preferred_username": "ada@contoso.com",
                "scp": "Jobs.Read Jobs.Sync",
                "groups": ["a3c1bd5c-8f4b-4e7e-9a8b-0d2f1e3c4b5a"],
                "v1_appid_ignored": "x",
                "ver": "2.0"
            }),
        );
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.subject, "00000000-0000-0000-66f3-3332eca7ea81");
        assert_eq!(p.scopes, vec!["Jobs.Read", "Jobs.Sync"]);
        assert_eq!(p.groups, vec!["a3c1bd5c-8f4b-4e7e-9a8b-0d2f1e3c4b5a"]);
        assert_eq!(p.display_name, "Ada Lovelace");
        assert_eq!(
            p.email, None,
            "upn/preferred_username are never taken as email"
        );
    }

    #[test]
    fn entra_v1_token_falls_back_to_appid() {
        let p = map(
            Preset::Entra,
            &["api://airlock"],
            json!({"appid": "c0ffee00-aaaa-bbbb-cccc-000000000001", "oid": "o1", "sub": "o1", "ver": "1.0"}),
        );
        assert_eq!(
            p.client_id.as_deref(),
            Some("c0ffee00-aaaa-bbbb-cccc-000000000001")
        );
        assert_eq!(p.kind, PrincipalKind::Service);
    }

    #[test]
    fn okta_scp_array_groups_and_client_tokens() {
        let user = map(
            Preset::Okta,
            &["api://airlock"],
            json!({
                "ver": 1,
                "jti": "AT.abc",
                "iss": "https://dev-123.okta.com/oauth2/default",
                "aud": "api://airlock",
                "cid": "0oa1bcdefGHIJKLmn357",
                "uid": "00u1abcdEFGHIJKlm357",
                "scp": ["openid", "airlock.sync"],
                "sub": "grace@example.com",
                "groups": ["Everyone", "data-engineers"]
            }),
        );
        assert_eq!(user.kind, PrincipalKind::User);
        assert_eq!(
            user.subject, "00u1abcdEFGHIJKlm357",
            "uid is stable, sub is the login"
        );
        assert_eq!(user.scopes, vec!["openid", "airlock.sync"]);
        assert_eq!(user.groups, vec!["Everyone", "data-engineers"]);
        assert_eq!(user.client_id.as_deref(), Some("0oa1bcdefGHIJKLmn357"));

        let service = map(
            Preset::Okta,
            &["api://airlock"],
            json!({"cid": "0oa9service", "sub": "0oa9service", "scp": ["airlock.sync"]}),
        );
        assert_eq!(service.kind, PrincipalKind::Service);
        assert_eq!(service.subject, "0oa9service");
    }

    #[test]
    fn keycloak_nested_realm_and_client_roles_and_client_id_spellings() {
        let p = map(
            Preset::Keycloak,
            &["airlock"],
            json!({
                "iss": "https://kc.example.com/realms/data",
                "aud": ["airlock", "account"],
                "sub": "3f2d9c1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f",
                "typ": "Bearer",
                "azp": "dagster",
                "preferred_username": "service-account-dagster",
                "clientId": "dagster",
                "realm_access": {"roles": ["offline_access", "airbyte-runner"]},
                "resource_access": {
                    "airlock": {"roles": ["editor"]},
                    "account": {"roles": ["manage-account"]}
                },
                "scope": "profile email"
            }),
        );
        assert_eq!(p.kind, PrincipalKind::Service);
        assert_eq!(
            p.client_id.as_deref(),
            Some("dagster"),
            "older clientId spelling"
        );
        assert_eq!(p.roles, vec!["offline_access", "airbyte-runner", "editor"]);
        assert!(
            !p.roles.contains(&"manage-account".to_owned()),
            "other clients' roles stay out"
        );
        assert_eq!(p.scopes, vec!["profile", "email"]);
        assert_eq!(p.display_name, "service-account-dagster");

        let user = map(
            Preset::Keycloak,
            &["airlock"],
            json!({"sub": "u-1", "client_id": "console", "azp": "console", "preferred_username": "linus",
                   "name": "Linus T", "email": "linus@example.com", "email_verified": true,
                   "groups": ["/data/eng"]}),
        );
        assert_eq!(user.kind, PrincipalKind::User);
        assert_eq!(user.client_id.as_deref(), Some("console"));
        assert_eq!(user.email.as_deref(), Some("linus@example.com"));
        assert_eq!(user.groups, vec!["/data/eng"]);
    }

    #[test]
    fn auth0_namespaced_claims_permissions_and_client_credentials() {
        let service = map(
            Preset::Auth0,
            &["https://airlock.example.com"],
            json!({
                "iss": "https://tenant.eu.auth0.com/",
                "sub": "Xk9rQ2abcDEF@clients",
                "aud": "https://airlock.example.com",
                "gty": "client-credentials",
                "azp": "Xk9rQ2abcDEF",
                "scope": "jobs:sync",
                "permissions": ["jobs:sync"]
            }),
        );
        assert_eq!(service.kind, PrincipalKind::Service);
        assert_eq!(service.client_id.as_deref(), Some("Xk9rQ2abcDEF"));
        assert_eq!(service.roles, vec!["jobs:sync"]);

        let mut config = IssuerConfig::new(
            "https://tenant.eu.auth0.com/",
            &["https://airlock.example.com"],
        );
        config.preset = Preset::Auth0;
        config.claims = ClaimsConfig {
            roles: Some(ClaimPaths(vec!["https://airlock.example.com/roles".into()])),
            groups: Some(ClaimPaths(vec![
                "https://airlock.example.com/groups".into(),
            ])),
            ..ClaimsConfig::default()
        };
        let user = ClaimMapping::for_issuer(&config)
            .principal(
                "https://tenant.eu.auth0.com/",
                json!({
                    "sub": "auth0|64b7f0c2e1",
                    "azp": "spa-client",
                    "https://airlock.example.com/roles": ["airbyte-editor"],
                    "https://airlock.example.com/groups": "analysts",
                    "nickname": "margaret",
                    "permissions": ["ignored-now"]
                }),
            )
            .expect("maps");
        assert_eq!(user.kind, PrincipalKind::User);
        assert_eq!(user.roles, vec!["airbyte-editor"]);
        assert_eq!(user.groups, vec!["analysts"]);
        assert_eq!(user.display_name, "margaret");
    }

    #[test]
    fn google_hd_email_and_service_accounts() {
        let user = map(
            Preset::Google,
            &["1234-abc.apps.googleusercontent.com"],
            json!({
                "iss": "https://accounts.google.com",
                "azp": "1234-abc.apps.googleusercontent.com",
                "aud": "1234-abc.apps.googleusercontent.com",
                "sub": "110169484474386276334",
                "hd": "example.com",
                "email": "alan@example.com",
                "email_verified": true
            }),
        );
        assert_eq!(user.kind, PrincipalKind::User);
        assert_eq!(user.email.as_deref(), Some("alan@example.com"));
        assert_eq!(user.display_name, "alan@example.com");
        assert_eq!(user.claim("hd"), Some(&json!("example.com")));

        let sa = map(
            Preset::Google,
            &["https://airlock.example.com"],
            json!({"sub": "1175", "email": "ci-runner@proj-1.iam.gserviceaccount.com", "email_verified": true}),
        );
        assert_eq!(sa.kind, PrincipalKind::Service);

        let unverified = map(
            Preset::Google,
            &["x"],
            json!({"sub": "1", "email": "x@example.com", "email_verified": false}),
        );
        assert_eq!(
            unverified.email, None,
            "an unverified email is not an identity"
        );
    }

    #[test]
    fn generic_rfc9068_client_token_and_missing_subject() {
        let p = map(
            Preset::Generic,
            &["airlock"],
            json!({"sub": "runner", "client_id": "runner", "roles": ["runner"], "scope": "airlock"}),
        );
        assert_eq!(p.kind, PrincipalKind::Service);
        assert_eq!(p.roles, vec!["runner"]);
        assert_eq!(p.scopes, vec!["airlock"]);

        let config = IssuerConfig::new("https://i.example", &["x"]);
        let err =
            ClaimMapping::for_issuer(&config).principal("https://i.example", json!({"sub": ""}));
        assert_eq!(err, Err(MappingError::MissingSubject));
    }

    #[test]
    fn overrides_replace_preset_paths_and_kind_rules() {
        let mut config = IssuerConfig::new("https://i.example", &["x"]);
        config.preset = Preset::Okta;
        config.claims = ClaimsConfig {
            subject: Some(ClaimPaths(vec!["employee.id".into()])),
            service: Some(vec![KindRule {
                claim: "kind".into(),
                equals: Some("bot".into()),
                ..KindRule::default()
            }]),
            ..ClaimsConfig::default()
        };
        let mapping = ClaimMapping::for_issuer(&config);
        let bot = mapping
            .principal(
                "https://i.example",
                json!({"employee": {"id": 7}, "kind": "bot", "uid": "u"}),
            )
            .expect("maps");
        assert_eq!(bot.subject, "7");
        assert_eq!(bot.kind, PrincipalKind::Service);
        let person = mapping
            .principal("https://i.example", json!({"employee": {"id": "e-8"}}))
            .expect("maps");
        assert_eq!(
            person.kind,
            PrincipalKind::User,
            "preset rule `uid absent` was replaced"
        );
    }
}
