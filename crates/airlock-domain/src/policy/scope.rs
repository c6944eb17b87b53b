//! Where a grant applies: its [`Scope`], and the [`ConnectionSelector`]s
//! that name connections in it.

use std::fmt;

use serde::Serialize;

use super::{ConnectionResource, Resource};

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
