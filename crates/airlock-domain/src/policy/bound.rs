//! What the names in grants are bound to: a workspace name to the one
//! workspace id it resolved to first, a connection slug to the connection
//! it was assigned to (the store keeps both; ARCHITECTURE.md, "Names in
//! grants are bound to ids"). Reported by `airlock check-config` and
//! `airlock policy explain`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Grant;

/// The bindings recorded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameBindings {
    /// Workspace name (as grants write it) to workspace id.
    pub workspaces: BTreeMap<String, String>,
    /// Connection id to its slug.
    pub slugs: BTreeMap<String, String>,
}

/// One line per workspace name and connection slug in `grants`, saying
/// what it is bound to; ids and tags need no binding and are left out.
pub fn bindings_report<'a>(
    grants: impl IntoIterator<Item = &'a Grant>,
    bindings: &NameBindings,
) -> String {
    let by_slug: BTreeMap<&str, &str> = bindings
        .slugs
        .iter()
        .map(|(id, slug)| (slug.as_str(), id.as_str()))
        .collect();
    let mut out = String::new();
    for grant in grants {
        for name in grant.scope.workspace_names() {
            let bound = match bindings.workspaces.get(name) {
                Some(id) => format!("bound to workspace {id}"),
                None => "not bound yet: covers nothing until exactly one workspace has this name"
                    .to_owned(),
            };
            let _ = writeln!(
                out,
                "  grants[{}]  workspace {name:?}  {bound}",
                grant.index
            );
        }
        for reference in grant.scope.connection_refs() {
            if bindings.slugs.contains_key(reference) {
                continue;
            }
            let bound = match by_slug.get(reference) {
                Some(id) => format!("slug of connection {id}"),
                None if !super::is_workspace_name(reference) => {
                    "a connection id (never seen yet)".to_owned()
                }
                None => "no connection has this slug yet".to_owned(),
            };
            let _ = writeln!(
                out,
                "  grants[{}]  connection {reference:?}  {bound}",
                grant.index
            );
        }
    }
    if out.is_empty() {
        out.push_str("  no names: the grants use ids, tags or no limits only\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::{GrantConfig, Policy};

    #[test]
    fn names_are_reported_with_what_they_are_bound_to() {
        let grants: Vec<GrantConfig> = serde_json::from_value(serde_json::json!([
            {"role": "runner", "match": {"sub": "a"},
             "workspaces": ["analytics", "sales", "0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a40"],
             "connections": ["orders", "later", "tag:nightly"]},
        ]))
        .expect("grants");
        let policy = Policy::new(&BTreeMap::new(), &grants).expect("valid");
        let bindings = NameBindings {
            workspaces: BTreeMap::from([("analytics".to_owned(), "w-1".to_owned())]),
            slugs: BTreeMap::from([("c-1".to_owned(), "orders".to_owned())]),
        };
        let report = bindings_report(policy.grants(), &bindings);
        assert!(
            report.contains("workspace \"analytics\"  bound to workspace w-1"),
            "{report}"
        );
        assert!(
            report.contains("workspace \"sales\"  not bound yet"),
            "{report}"
        );
        assert!(
            report.contains("connection \"orders\"  slug of connection c-1"),
            "{report}"
        );
        assert!(
            report.contains("connection \"later\"  no connection has this slug yet"),
            "{report}"
        );
        assert!(
            !report.contains("0d9e2f4a"),
            "ids need no binding: {report}"
        );
        assert!(!report.contains("nightly"), "nor tags: {report}");
    }
}
