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

/// A workspace, by Airbyte id and the names grants may call it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkspaceResource {
    /// Airbyte's workspace id.
    pub id: String,
    /// The names bound to this id (the names grants wrote that resolved
    /// to it, kept in the database), never Airbyte's current name, which
    /// anyone editing in Airbyte can change or copy.
    pub names: Vec<String>,
}

/// A connection with what grants can select it by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionResource {
    /// Airbyte's connection id.
    pub id: String,
    /// Airlock's slug for it: assigned once, never moved to another
    /// connection.
    pub slug: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// The names bound to that workspace (see [`WorkspaceResource::names`]).
    pub workspace_names: Vec<String>,
    /// Its Airbyte tags.
    pub tags: Vec<String>,
}
