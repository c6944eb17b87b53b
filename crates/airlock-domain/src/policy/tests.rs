use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

use super::role::builtin_permissions;
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

fn grants(text: &str) -> Result<Policy, InvalidKey> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        roles: BTreeMap<String, RoleConfig>,
        #[serde(default)]
        grants: Vec<GrantConfig>,
    }
    let file: File = toml::from_str(text).map_err(|e| InvalidKey::new("toml", e.to_string()))?;
    Policy::new(&file.roles, &file.grants)
}

#[test]
fn builtin_roles_are_as_documented() {
    let policy = Policy::default();
    assert_eq!(policy.roles().filter(|r| r.builtin).count(), 6);
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
    assert_eq!(p("admin").len(), 9);
    assert!(p("admin").contains(&"approvals:decide"));
    assert!(
        !p("admin").contains(&"approvals:bypass"),
        "break-glass is held by no built-in role"
    );
    assert_eq!(
        p("auditor"),
        ["connections:read", "jobs:read", "audit:read"]
    );
    assert_eq!(
        p("approver"),
        ["connections:read", "jobs:read", "approvals:decide"]
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
    assert_eq!(err.key, "roles.a.inherits", "{err}");
    assert!(err.message.contains("a -> b -> a"), "{err}");
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
        assert_eq!(err.key, key, "{text} -> {err}");
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
        workspace_names: vec![ws.into()],
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
        names: vec!["analytics".into()],
    });
    assert!(
        !policy.allows(&p, Permission::JobsRead, &ws),
        "some connections are not the workspace"
    );
    assert!(!policy.allows(&p, Permission::JobsRead, &Resource::Global));
    let renamed_in = Resource::Connection(ConnectionResource {
        id: "c-4".into(),
        slug: "etl4".into(),
        workspace_id: "impostor-id".into(),
        workspace_names: Vec::new(),
        tags: vec!["nightly".into()],
    });
    assert_eq!(
        policy.decide(&p, Permission::JobsSync, &renamed_in).reason,
        Reason::OutOfScope,
        "a workspace now called analytics, but not bound to the name, is not covered"
    );
    assert_eq!(
        policy.workspace_names().into_iter().collect::<Vec<_>>(),
        vec!["analytics".to_owned()]
    );
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
