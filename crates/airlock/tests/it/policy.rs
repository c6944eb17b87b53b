//! The authorization matrix: every built-in role × every permission ×
//! resources inside and outside each kind of scope. The expectations are
//! written out here, independently of the implementation's role tables.

use airlock::config::Config;
use airlock_domain::identity::{Principal, PrincipalKind};
use airlock_domain::policy::{
    ConnectionResource, Permission, Reason, Resource, Scope, WorkspaceResource,
};
use serde_json::json;

use crate::harness::{AirlockToml, Grant, Issuer};

const ROLES: [&str; 6] = ["reader", "runner", "editor", "admin", "auditor", "approver"];

/// What each built-in role may do, as PRODUCT.md states it.
fn role_allows(role: &str, permission: Permission) -> bool {
    use Permission as P;
    let reader = matches!(permission, P::ConnectionsRead | P::JobsRead);
    let runner = reader || matches!(permission, P::JobsSync | P::JobsCancel | P::JobsRetry);
    match role {
        "reader" => reader,
        "runner" => runner,
        "editor" => runner || matches!(permission, P::JobsReset | P::AirbyteWrite),
        // Break-glass is held by no built-in role, not even admin.
        "admin" => permission != P::ApprovalsBypass,
        "auditor" => reader || permission == P::AuditRead,
        "approver" => reader || permission == P::ApprovalsDecide,
        other => panic!("not a built-in role: {other}"),
    }
}

/// The scope kinds a grant can have, by the subject that receives it.
const SCOPES: [&str; 5] = ["all", "workspace", "connections", "tag", "workspace+tag"];

fn config() -> Config {
    let mut config =
        AirlockToml::default().with_issuer(Issuer::new("https://id.example.com", &["airlock"]));
    for role in ROLES {
        for scope in SCOPES {
            let grant = Grant::matching(role, "sub", &format!("{role}@{scope}"));
            config = config.with_grant(match scope {
                "all" => grant,
                "workspace" => grant.workspaces(&["analytics"]),
                "connections" => grant.connections(&["conn-1", "orders-daily"]),
                "tag" => grant.connections(&["tag:nightly"]),
                _ => grant
                    .workspaces(&["ws-finance"])
                    .connections(&["tag:nightly"]),
            });
        }
    }
    let text = config.text();
    Config::from_toml("matrix.toml", &text, &[]).expect("the matrix configuration is valid")
}

fn principal(subject: &str) -> Principal {
    Principal {
        issuer: "https://id.example.com".into(),
        subject: subject.into(),
        kind: PrincipalKind::User,
        client_id: None,
        display_name: subject.into(),
        roles: vec![],
        groups: vec![],
        scopes: vec![],
        email: None,
        claims: json!({"sub": subject}),
    }
}

fn connection(
    id: &str,
    slug: &str,
    workspace_id: &str,
    workspace_name: &str,
    tags: &[&str],
) -> Resource {
    Resource::Connection(ConnectionResource {
        id: id.into(),
        slug: slug.into(),
        workspace_id: workspace_id.into(),
        workspace_names: vec![workspace_name.into()],
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    })
}

/// Resources, each with the scopes that cover it.
fn resources() -> Vec<(&'static str, Resource, &'static [&'static str])> {
    vec![
        // In "analytics" (by name), listed by id in the connections scope.
        (
            "conn-1",
            connection("conn-1", "orders-hourly", "ws-analytics", "analytics", &[]),
            &["all", "workspace", "connections"],
        ),
        // In "finance" (by id), listed by slug, tagged nightly.
        (
            "conn-2",
            connection(
                "conn-2",
                "orders-daily",
                "ws-finance",
                "finance",
                &["nightly", "critical"],
            ),
            &["all", "connections", "tag", "workspace+tag"],
        ),
        // Tagged nightly, but in analytics: outside the workspace+tag scope.
        (
            "conn-3",
            connection(
                "conn-3",
                "events",
                "ws-analytics",
                "analytics",
                &["nightly"],
            ),
            &["all", "workspace", "tag"],
        ),
        // Nothing selects it but "all".
        (
            "conn-4",
            connection("conn-4", "misc", "ws-finance", "finance", &["weekly"]),
            &["all"],
        ),
        (
            "workspace analytics",
            Resource::Workspace(WorkspaceResource {
                id: "ws-analytics".into(),
                names: vec!["analytics".into()],
            }),
            &["all", "workspace"],
        ),
        (
            "workspace finance",
            Resource::Workspace(WorkspaceResource {
                id: "ws-finance".into(),
                names: vec!["finance".into()],
            }),
            &["all"],
        ),
        ("global", Resource::Global, &["all"]),
    ]
}

#[test]
fn every_role_permission_and_scope_decides_as_documented() {
    let config = config();
    let policy = config.policy().expect("valid policy");
    let mut checked = 0;
    let mut wrong = Vec::new();
    for role in ROLES {
        for scope in SCOPES {
            let who = principal(&format!("{role}@{scope}"));
            for (name, resource, covered_by) in resources() {
                for permission in Permission::ALL {
                    let has = role_allows(role, permission);
                    let covered = covered_by.contains(&scope);
                    let decision = policy.decide(&who, permission, &resource);
                    checked += 1;
                    let expected_reason = match (has, covered) {
                        (true, true) => None,
                        (true, false) => Some(Reason::OutOfScope),
                        (false, _) => Some(Reason::PermissionNotGranted),
                    };
                    let ok = match &expected_reason {
                        None => {
                            decision.allowed
                                && matches!(&decision.reason, Reason::Grant { role: r, .. } if r == role)
                                && decision.grant_index.is_some()
                        }
                        Some(reason) => {
                            !decision.allowed
                                && &decision.reason == reason
                                && decision.grant_index.is_none()
                        }
                    };
                    if !ok {
                        wrong.push(format!(
                            "{role} scoped {scope}, {permission} on {name}: got {} ({}), expected {}",
                            if decision.allowed { "allow" } else { "deny" },
                            decision.reason,
                            expected_reason.map_or("allow".to_owned(), |r| format!("deny ({r})"))
                        ));
                    }
                    assert_eq!(policy.allows(&who, permission, &resource), decision.allowed);
                }
            }
            for permission in Permission::ALL {
                assert_eq!(
                    policy.can_anywhere(&who, permission),
                    role_allows(role, permission),
                    "{role} {permission}"
                );
            }
        }
    }
    assert_eq!(
        checked,
        ROLES.len() * SCOPES.len() * 7 * Permission::ALL.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {checked} decisions wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn a_principal_without_grants_is_denied_everything() {
    let policy = config().policy().expect("valid policy");
    let stranger = principal("nobody");
    for (name, resource, _) in resources() {
        for permission in Permission::ALL {
            let d = policy.decide(&stranger, permission, &resource);
            assert!(!d.allowed, "{permission} on {name}");
            assert_eq!(d.reason.to_string(), "no_matching_grant");
        }
    }
    assert!(policy.effective(&stranger).is_empty());
    assert!(
        Permission::ALL
            .iter()
            .all(|p| !policy.can_anywhere(&stranger, *p))
    );
}

#[test]
fn grant_reasons_name_the_deciding_grant() {
    let policy = config().policy().expect("valid policy");
    // Grants are laid out role by role, five scopes each: runner@all is 5.
    let d = policy.decide(
        &principal("runner@all"),
        Permission::JobsSync,
        &Resource::Global,
    );
    assert_eq!(d.reason.to_string(), "grant:5:runner");
    assert_eq!(d.grant_index, Some(5));
    let effective = policy.effective(&principal("editor@tag"));
    assert_eq!(effective.len(), 7, "editor has seven permissions");
    assert!(
        effective
            .iter()
            .all(|(_, scope)| scope.to_string() == "connections [tag:nightly]")
    );
    let effective = policy.effective(&principal("admin@all"));
    assert_eq!(effective.len(), 9, "every permission but approvals:bypass");
    assert!(effective.iter().all(|(_, scope)| *scope == Scope::All));
}
