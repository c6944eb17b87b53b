//! The simulated Airbyte instance's configuration: workspaces, sources, destinations,
//! connections (with tags, schedule and a stream catalog) and how their jobs behave.
//!
//! A world is read from a fixture (TOML). The built-in one is `src/default_world.toml`
//! and doubles as the format's example. Fixture format:
//!
//! ```toml
//! [[workspaces]]
//! name = "analytics"              # unique; referenced by name below
//! # id = "<uuid>"                 # optional; otherwise UUID v5 of (seed, name)
//! # data_residency = "auto"
//!
//! [[sources]]
//! name = "Production Postgres"     # unique among sources
//! workspace = "analytics"
//! source_type = "postgres"
//! # id, definition_id: optional UUIDs; configuration: optional table (shown as is)
//!
//! [[destinations]]                 # same keys, with destination_type
//! name = "Snowflake Warehouse"
//! workspace = "analytics"
//! destination_type = "snowflake"
//!
//! [[connections]]
//! name = "Postgres → Snowflake"
//! source = "Production Postgres"   # source and destination names, same workspace
//! destination = "Snowflake Warehouse"
//! status = "active"                # active | inactive | deprecated (= deleted)
//! tags = ["nightly", "pii"]        # tags are per workspace, created on first use
//! schedule = { type = "cron", cron = "0 0 2 * * ?", timezone = "UTC" }
//! # or { type = "basic", every = 6, unit = "hours" } or { type = "manual" } (default)
//! namespace_definition = "destination"   # source | destination | custom_format
//! # namespace_format = "${SOURCE_NAMESPACE}_raw"
//! prefix = "pg_"
//! failure_rate = 0.02              # chance that a job fails (after 3 attempts)
//! attempt_failure_rate = 0.05      # chance that an attempt fails when the job succeeds
//! duration_secs = [5, 60]          # running time of one attempt, before time_scale
//! rows = [500, 50000]              # rows a successful sync moves
//! [[connections.streams]]
//! name = "users"
//! namespace = "public"
//! sync_mode = "incremental"        # full_refresh | incremental
//! destination_sync_mode = "append_dedup"   # overwrite | append | append_dedup
//! cursor_field = ["updated_at"]
//! primary_key = [["id"]]
//! selected = true
//! fields = { id = "integer", email = "string", updated_at = "timestamp" }
//! ```
//!
//! Layout: `model` holds the types the API reads, `fixture` reads a fixture into a
//! [`World`], `bulk` adds generated connections (`POST /_sim/connections`), `edit`
//! and `connections` carry out the public API's writes with Airbyte's rules; this
//! file holds the world itself and its lookups.

mod bulk;
mod connections;
mod edit;
mod fixture;
mod model;

use std::collections::HashMap;

use uuid::Uuid;

pub(crate) use bulk::BulkAdd;
pub(crate) use connections::{ConnectionChange, NewConnection, StreamChoice};
pub(crate) use edit::{ActorChange, ActorKind, EditError, NewActor};
pub(crate) use model::{Actor, Connection, ConnectionStatus, Outcome, Schedule, Tag, Workspace};

/// The built-in fixture: three workspaces, nine connections, one of them flaky.
pub(crate) const DEFAULT_WORLD: &str = include_str!("../default_world.toml");

/// 2026-01-05T09:00:00Z: when the fixture's objects were "created".
const CREATED_BASE_SECS: i64 = 1_767_603_600;

const TAG_COLORS: [&str; 6] = ["75DCFF", "FBECB1", "FFBAC6", "CFD7FE", "BDFFC3", "FFD0B2"];

/// The whole simulated configuration, indexed for the lookups the API makes.
#[derive(Debug, Default)]
pub(crate) struct World {
    seed: u64,
    pub(crate) workspaces: Vec<Workspace>,
    pub(crate) sources: Vec<Actor>,
    pub(crate) destinations: Vec<Actor>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) connections: Vec<Connection>,
    connection_index: HashMap<Uuid, usize>,
    /// How many objects the API created: their ids derive from it and the seed.
    created: u64,
}

impl World {
    fn push_connection(&mut self, c: Connection) {
        self.connection_index.insert(c.id, self.connections.len());
        self.connections.push(c);
    }

    fn workspace_by_name(&self, name: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.name == name)
    }

    /// The id of the tag `name` in a workspace, created on first use.
    fn tag_id(&mut self, workspace_id: Uuid, name: &str) -> Uuid {
        if let Some(t) = self
            .tags
            .iter()
            .find(|t| t.workspace_id == workspace_id && t.name == name)
        {
            return t.id;
        }
        let id = derive_id(self.seed, "tag", &format!("{workspace_id}/{name}"));
        let color = TAG_COLORS[self.tags.len() % TAG_COLORS.len()].to_owned();
        self.tags.push(Tag {
            id,
            name: name.to_owned(),
            color,
            workspace_id,
        });
        id
    }

    pub(crate) fn connection(&self, id: Uuid) -> Option<&Connection> {
        self.connection_index
            .get(&id)
            .and_then(|&i| self.connections.get(i))
    }

    pub(crate) fn workspace(&self, id: Uuid) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.id == id)
    }

    pub(crate) fn source(&self, id: Uuid) -> Option<&Actor> {
        self.sources.iter().find(|w| w.id == id)
    }

    pub(crate) fn destination(&self, id: Uuid) -> Option<&Actor> {
        self.destinations.iter().find(|w| w.id == id)
    }

    pub(crate) fn tag(&self, id: Uuid) -> Option<&Tag> {
        self.tags.iter().find(|t| t.id == id)
    }
}

/// A UUID v5 derived from the seed, so a seed always names the same objects.
pub(crate) fn derive_id(seed: u64, kind: &str, key: &str) -> Uuid {
    let namespace = Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("airbyte-sim/{seed}").as_bytes(),
    );
    Uuid::new_v5(&namespace, format!("{kind}/{key}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_world_loads() {
        let w = World::from_toml(DEFAULT_WORLD, 1).expect("built-in world is valid");
        assert_eq!(w.workspaces.len(), 3);
        assert!(w.connections.len() >= 8);
        assert!(w.connections.iter().any(|c| c.outcome.failure_rate >= 0.2));
    }

    #[test]
    fn ids_depend_on_the_seed_only() {
        let a = World::from_toml(DEFAULT_WORLD, 1).expect("valid");
        let b = World::from_toml(DEFAULT_WORLD, 1).expect("valid");
        let c = World::from_toml(DEFAULT_WORLD, 2).expect("valid");
        assert_eq!(a.connections[0].id, b.connections[0].id);
        assert_ne!(a.connections[0].id, c.connections[0].id);
    }

    #[test]
    fn dangling_references_are_named() {
        let text = r#"
            [[workspaces]]
            name = "w"
            [[sources]]
            name = "s"
            workspace = "nope"
            source_type = "postgres"
        "#;
        let err = World::from_toml(text, 1).expect_err("dangling workspace");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn unknown_fixture_keys_are_rejected() {
        let err = World::from_toml("[[workspaces]]\nname = \"w\"\ncolour = 1\n", 1)
            .expect_err("unknown key");
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
