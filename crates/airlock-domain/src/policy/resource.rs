//! What a request touches, as the policy sees it.

use serde::Serialize;

/// What a request touches, as the policy needs to see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// Nothing scoped: the audit trail, lists across workspaces.
    Global,
    /// A whole workspace.
    Workspace(WorkspaceResource),
    /// One connection.
    Connection(ConnectionResource),
}

/// A workspace, by Airbyte id and (when known) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceResource {
    /// Airbyte's workspace id.
    pub id: String,
    /// Its name, when known.
    pub name: Option<String>,
}

/// A connection with what grants can select it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionResource {
    /// Airbyte's connection id.
    pub id: String,
    /// Airlock's slug for it.
    pub slug: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// That workspace's name, when known.
    pub workspace_name: Option<String>,
    /// Its Airbyte tags.
    pub tags: Vec<String>,
}
