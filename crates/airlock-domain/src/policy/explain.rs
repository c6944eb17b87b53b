//! `airlock policy explain`: what a principal may do, permission by
//! permission, and which grant decided.
//!
//! The principal comes from a token (`--token`, verified against the
//! configured issuers, keys fetched over HTTP like the server does) or from
//! a claims file (`--claims`, NOT verified: the issuer is picked by the
//! `iss` claim and its preset applied, to try a policy before any token
//! exists). The resource comes from flags, offline: a connection reference
//! stands for both its id and its slug, and its tags must be given.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;

use super::{
    ConnectionResource, Matcher, Permission, Policy, Resource, WorkspaceResource, is_workspace_name,
};
use crate::clock::SystemClock;
use crate::identity::{
    AuthError, Authenticator, IdentityError, IssuerConfig, Principal,
    principal_from_unverified_claims,
};

/// Why `policy explain` could not build its principal.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The claims file does not make a principal (no `iss`, unknown issuer, no subject).
    #[error("the claims do not make a principal: {0}")]
    Claims(AuthError),
    /// The token was refused; the code says why.
    #[error("the token was refused: {0} ({code})", code = .0.code())]
    Token(AuthError),
    /// The issuers are misconfigured.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// No HTTP client could be built to fetch keys.
    #[error("cannot build an HTTP client: {0}")]
    Http(String),
}

/// A principal from a claims document, unverified, mapped by the preset of
/// the issuer its `iss` names.
pub fn principal_from_claims(
    issuers: &[IssuerConfig],
    claims: &Value,
) -> Result<Principal, ExplainError> {
    principal_from_unverified_claims(issuers, claims.clone()).map_err(ExplainError::Claims)
}

/// A principal from a token, verified against the configured issuers (keys
/// fetched from their JWKS endpoints, the real clock).
pub async fn principal_from_token(
    issuers: &[IssuerConfig],
    token: &str,
) -> Result<Principal, ExplainError> {
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| ExplainError::Http(e.to_string()))?;
    let authenticator = Authenticator::from_config(issuers, &http, Arc::new(SystemClock))?;
    authenticator
        .verify_token(token.trim())
        .await
        .map(std::sync::Arc::unwrap_or_clone)
        .map_err(ExplainError::Token)
}

/// The resource named by `--connection` / `--workspace` / `--tag`, offline:
/// a reference stands for both id and slug (or id and name); with no flag
/// the resource is [`Resource::Global`].
pub fn resource_from_flags(
    connection: Option<&str>,
    workspace: Option<&str>,
    tags: &[String],
) -> Resource {
    match (connection, workspace) {
        (Some(connection), workspace) => Resource::Connection(ConnectionResource {
            id: connection.to_owned(),
            slug: connection.to_owned(),
            workspace_id: workspace.unwrap_or_default().to_owned(),
            workspace_names: bound_to_itself(workspace),
            tags: tags.to_vec(),
        }),
        (None, Some(workspace)) => Resource::Workspace(WorkspaceResource {
            id: workspace.to_owned(),
            names: bound_to_itself(Some(workspace)),
        }),
        (None, None) => Resource::Global,
    }
}

/// Offline, a workspace flag that is a name stands for the workspace that
/// name is bound to.
fn bound_to_itself(workspace: Option<&str>) -> Vec<String> {
    workspace
        .filter(|w| is_workspace_name(w))
        .map(|w| vec![w.to_owned()])
        .unwrap_or_default()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

fn describe(resource: &Resource) -> String {
    match resource {
        Resource::Global => "global (no workspace or connection)".to_owned(),
        Resource::Workspace(ws) => match ws.names.first() {
            Some(name) if name != &ws.id => format!("workspace {name} (id {})", ws.id),
            _ => format!("workspace {}", ws.id),
        },
        Resource::Connection(c) => {
            let mut out = format!("connection {}", c.slug);
            if c.id != c.slug {
                let _ = write!(out, " (id {})", c.id);
            }
            let ws = c.workspace_names.first().unwrap_or(&c.workspace_id);
            if !ws.is_empty() {
                let _ = write!(out, " in workspace {ws}");
            }
            let _ = write!(out, ", tags: {}", list(&c.tags));
            out
        }
    }
}

/// Why group grants cannot select a principal whose token carries the
/// groups overage marker, and which grants that concerns.
fn overage_note(out: &mut String, policy: &Policy) {
    let _ = writeln!(
        out,
        "\ngroups overage\n  the token names no groups: it carries `_claim_names`/`hasgroups` instead\n  (Entra ID, over 200 groups). Airlock does not fetch them from Microsoft Graph,\n  so no group grant can select this principal; grant an app role (`roles`)\n  or the subject instead, or emit only the application's groups."
    );
    let group_grants = policy
        .grants()
        .iter()
        .filter(|g| matches!(g.matcher, Matcher::Group(_)));
    for grant in group_grants {
        let _ = writeln!(
            out,
            "  grants[{}]  role {}  match {}  cannot match: groups overage",
            grant.index, grant.role, grant.matcher
        );
    }
}

/// The principal, the grants that select it, and for each permission
/// allow or deny on `resource` with the deciding grant or the reason.
pub fn explain(policy: &Policy, principal: &Principal, resource: &Resource) -> String {
    let mut out = String::new();
    let p = principal;
    let _ = writeln!(out, "principal");
    for (label, value) in [
        ("issuer", p.issuer.clone()),
        ("subject", p.subject.clone()),
        ("kind", p.kind.as_str().to_owned()),
        (
            "client_id",
            p.client_id.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("name", p.display_name.clone()),
        ("email", p.email.clone().unwrap_or_else(|| "-".to_owned())),
        ("idp roles", list(&p.roles)),
        (
            "groups",
            if p.groups_overage() {
                format!("{} (incomplete: groups overage)", list(&p.groups))
            } else {
                list(&p.groups)
            },
        ),
        ("scopes", list(&p.scopes)),
    ] {
        let _ = writeln!(out, "  {label:<10} {value}");
    }

    let _ = writeln!(out, "\ngrants selecting this principal");
    let mut any = false;
    for grant in policy.grants_for(p) {
        any = true;
        let issuer = grant
            .issuer
            .as_ref()
            .map(|i| format!(" from {i}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  grants[{}]  role {}  match {}{issuer}  scope {}",
            grant.index, grant.role, grant.matcher, grant.scope
        );
    }
    if !any {
        let _ = writeln!(out, "  none: every permission is denied");
    }
    let roles = policy.roles_of(p);
    if !roles.is_empty() {
        let _ = writeln!(out, "  airlock roles: {}", roles.join(", "));
    }
    if p.groups_overage() {
        overage_note(&mut out, policy);
    }

    let _ = writeln!(out, "\nresource  {}", describe(resource));
    let _ = writeln!(out, "\n  {:<18} {:<8} reason", "permission", "decision");
    for permission in Permission::ALL {
        let decision = policy.decide(p, permission, resource);
        let verdict = if decision.allowed { "allow" } else { "deny" };
        let _ = writeln!(
            out,
            "  {:<18} {verdict:<8} {}",
            permission.as_str(),
            decision.reason
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::{GrantConfig, RoleConfig};

    /// The parts of a configuration file that the policy reads.
    #[derive(serde::Deserialize)]
    struct Config {
        issuers: Vec<IssuerConfig>,
        roles: BTreeMap<String, RoleConfig>,
        grants: Vec<GrantConfig>,
    }

    impl Config {
        fn policy(&self) -> Result<Policy, crate::settings::InvalidKey> {
            Policy::for_issuers(&self.roles, &self.grants, &self.issuers)
        }
    }

    fn config() -> Config {
        toml::from_str(
            r#"
[[issuers]]
issuer = "https://kc.example.com/realms/data"
audiences = ["airlock"]
preset = "keycloak"

[roles.pipeline-operator]
permissions = ["connections:read", "jobs:read", "jobs:sync"]

[[grants]]
role = "pipeline-operator"
match = { claim = "realm_access.roles", value = "airbyte-runner" }
workspaces = ["analytics"]

[[grants]]
role = "auditor"
match = { group = "security" }
"#,
        )
        .expect("valid config")
    }

    #[test]
    fn explains_each_permission_with_the_deciding_grant() {
        let config = config();
        let principal = principal_from_claims(
            &config.issuers,
            &json!({
                "iss": "https://kc.example.com/realms/data",
                "sub": "u-1",
                "preferred_username": "ada",
                "realm_access": {"roles": ["airbyte-runner"]}
            }),
        )
        .expect("maps");
        let resource =
            resource_from_flags(Some("orders"), Some("analytics"), &["nightly".to_owned()]);
        let text = explain(
            &config.policy().expect("valid policy"),
            &principal,
            &resource,
        );
        assert!(text.contains("subject    u-1"), "{text}");
        assert!(text.contains("idp roles  airbyte-runner"), "{text}");
        assert!(text.contains("grants[0]  role pipeline-operator  match claim realm_access.roles = \"airbyte-runner\""), "{text}");
        assert!(
            text.contains("connection orders in workspace analytics, tags: nightly"),
            "{text}"
        );
        assert!(
            text.contains("jobs:sync          allow    grant:0:pipeline-operator"),
            "{text}"
        );
        assert!(
            text.contains("jobs:reset         deny     permission_not_granted"),
            "{text}"
        );

        let elsewhere = resource_from_flags(Some("orders"), Some("finance"), &[]);
        let text = explain(
            &config.policy().expect("valid policy"),
            &principal,
            &elsewhere,
        );
        assert!(
            text.contains("jobs:sync          deny     out_of_scope"),
            "{text}"
        );

        let stranger = principal_from_claims(
            &config.issuers,
            &json!({"iss": "https://kc.example.com/realms/data", "sub": "u-2"}),
        )
        .expect("maps");
        let text = explain(
            &config.policy().expect("valid policy"),
            &stranger,
            &Resource::Global,
        );
        assert!(text.contains("none: every permission is denied"), "{text}");
        assert!(
            text.contains("connections:read   deny     no_matching_grant"),
            "{text}"
        );
    }

    #[test]
    fn a_groups_overage_is_explained_and_matches_no_group_grant() {
        let config: Config = toml::from_str(
            r#"
[[issuers]]
issuer = "https://login.microsoftonline.com/t/v2.0"
audiences = ["api://airlock"]
preset = "entra"

[roles]

[[grants]]
role = "runner"
match = { group = "5f1c0000-0000-0000-0000-00000000ops0" }

[[grants]]
role = "reader"
match = { role = "Airlock.Reader" }
"#,
        )
        .expect("valid config");
        let policy = config.policy().expect("valid policy");
        let principal = principal_from_claims(
            &config.issuers,
            &json!({
                "iss": "https://login.microsoftonline.com/t/v2.0",
                "oid": "u-1",
                "roles": ["Airlock.Reader"],
                "_claim_names": {"groups": "src1"},
                "_claim_sources": {"src1": {"endpoint": "https://graph.microsoft.com/v1.0/users/u-1/getMemberObjects"}}
            }),
        )
        .expect("maps");
        assert!(principal.groups.is_empty());
        let text = explain(&policy, &principal, &Resource::Global);
        assert!(
            text.contains("groups     - (incomplete: groups overage)"),
            "{text}"
        );
        assert!(text.contains("\ngroups overage\n"), "{text}");
        assert!(
            text.contains("grants[0]  role runner  match group = \"5f1c0000-0000-0000-0000-00000000ops0\"  cannot match: groups overage"),
            "{text}"
        );
        assert!(
            !text.contains("grants[1]  role reader  match role = \"Airlock.Reader\"  cannot"),
            "{text}"
        );
        assert!(
            text.contains("jobs:sync          deny     permission_not_granted"),
            "the runner grant did not apply: {text}"
        );
        assert!(
            !text.contains("graph.microsoft.com"),
            "the claim source is not echoed: {text}"
        );

        let with_groups = principal_from_claims(
            &config.issuers,
            &json!({"iss": "https://login.microsoftonline.com/t/v2.0", "oid": "u-2", "groups": ["5f1c0000-0000-0000-0000-00000000ops0"]}),
        )
        .expect("maps");
        let text = explain(&policy, &with_groups, &Resource::Global);
        assert!(!text.contains("overage"), "{text}");
        assert!(
            text.contains("jobs:sync          allow    grant:0:runner"),
            "{text}"
        );
    }

    #[test]
    fn claims_from_an_unknown_issuer_are_refused() {
        let err = principal_from_claims(
            &config().issuers,
            &json!({"iss": "https://evil.example", "sub": "x"}),
        )
        .expect_err("unknown issuer");
        assert!(err.to_string().contains("unknown issuer"), "{err}");
    }

    #[test]
    fn flags_make_resources() {
        assert_eq!(resource_from_flags(None, None, &[]), Resource::Global);
        assert!(
            matches!(resource_from_flags(None, Some("w"), &[]), Resource::Workspace(w) if w.id == "w")
        );
        assert!(matches!(
            resource_from_flags(Some("c"), None, &[]),
            Resource::Connection(c) if c.id == "c" && c.slug == "c" && c.workspace_id.is_empty()
        ));
    }
}
