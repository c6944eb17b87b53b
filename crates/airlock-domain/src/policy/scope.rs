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
        /// Workspace ids or names (a name covers the workspace it is bound
        /// to, see [`is_workspace_name`]); `None` places no workspace limit.
        workspaces: Option<Vec<String>>,
        /// Connection selectors; `None` places no connection limit.
        connections: Option<Vec<ConnectionSelector>>,
    },
}

/// Whether a grant's workspace entry is a name (bound to an id at first
/// resolution) rather than an id. An id-shaped entry is never a name, so
/// that a workspace named after another's id cannot be bound to it.
pub fn is_workspace_name(entry: &str) -> bool {
    uuid::Uuid::parse_str(entry).is_err()
}

impl Scope {
    /// The workspace names the scope uses (entries that are not ids).
    pub fn workspace_names(&self) -> impl Iterator<Item = &str> {
        let list = match self {
            Self::Limited {
                workspaces: Some(list),
                ..
            } => list.as_slice(),
            _ => &[],
        };
        list.iter()
            .map(String::as_str)
            .filter(|w| is_workspace_name(w))
    }

    /// The connection ids or slugs the scope names (not its tags).
    pub fn connection_refs(&self) -> impl Iterator<Item = &str> {
        let list = match self {
            Self::Limited {
                connections: Some(list),
                ..
            } => list.as_slice(),
            _ => &[],
        };
        list.iter().filter_map(|s| match s {
            ConnectionSelector::IdOrSlug(r) => Some(r.as_str()),
            ConnectionSelector::Tag(_) => None,
        })
    }

    /// Whether the scope covers `resource`.
    pub fn covers(&self, resource: &Resource) -> bool {
        let Self::Limited {
            workspaces,
            connections,
        } = self
        else {
            return true;
        };
        // A name matches only through its binding to this id.
        let in_workspaces = |id: &str, names: &[String]| {
            workspaces
                .as_ref()
                .is_none_or(|list| list.iter().any(|w| w == id || names.contains(w)))
        };
        match resource {
            Resource::Global => false,
            // Some connections of a workspace are not the workspace.
            Resource::Workspace(ws) => connections.is_none() && in_workspaces(&ws.id, &ws.names),
            Resource::Connection(c) => {
                in_workspaces(&c.workspace_id, &c.workspace_names)
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
