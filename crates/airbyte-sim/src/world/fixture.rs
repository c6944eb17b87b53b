//! Reading a fixture (the TOML format described in the parent module) into a
//! [`World`]: names resolved to ids, every value checked, errors naming the culprit.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::model::{
    Actor, Connection, ConnectionStatus, Outcome, Schedule, Stream, Workspace, check_outcome,
    check_schedule, default_configuration,
};
use super::{CREATED_BASE_SECS, World, derive_id};
use crate::error::SimError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(default)]
    workspaces: Vec<WorkspaceFx>,
    #[serde(default)]
    sources: Vec<ActorFx>,
    #[serde(default)]
    destinations: Vec<ActorFx>,
    #[serde(default)]
    connections: Vec<ConnectionFx>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkspaceFx {
    name: String,
    id: Option<Uuid>,
    #[serde(default = "auto")]
    data_residency: String,
}

/// A source or a destination: they only differ by the name of their type key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorFx {
    name: String,
    workspace: String,
    #[serde(alias = "destination_type")]
    source_type: String,
    id: Option<Uuid>,
    definition_id: Option<Uuid>,
    configuration: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionFx {
    name: String,
    source: String,
    destination: String,
    id: Option<Uuid>,
    #[serde(default)]
    status: ConnectionStatus,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    schedule: Schedule,
    #[serde(default = "destination")]
    namespace_definition: String,
    namespace_format: Option<String>,
    #[serde(default)]
    prefix: String,
    #[serde(default = "default_failure_rate")]
    failure_rate: f64,
    #[serde(default = "default_attempt_failure_rate")]
    attempt_failure_rate: f64,
    #[serde(default = "default_duration")]
    duration_secs: [u64; 2],
    #[serde(default = "default_rows")]
    rows: [u64; 2],
    #[serde(default)]
    streams: Vec<StreamFx>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamFx {
    name: String,
    namespace: Option<String>,
    #[serde(default = "full_refresh")]
    sync_mode: String,
    #[serde(default = "overwrite")]
    destination_sync_mode: String,
    #[serde(default)]
    cursor_field: Vec<String>,
    #[serde(default)]
    primary_key: Vec<Vec<String>>,
    #[serde(default = "yes")]
    selected: bool,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

fn auto() -> String {
    "auto".to_owned()
}
fn destination() -> String {
    "destination".to_owned()
}
fn full_refresh() -> String {
    "full_refresh".to_owned()
}
fn overwrite() -> String {
    "overwrite".to_owned()
}
fn yes() -> bool {
    true
}
pub(super) fn default_failure_rate() -> f64 {
    0.02
}
pub(super) fn default_attempt_failure_rate() -> f64 {
    0.05
}
pub(super) fn default_duration() -> [u64; 2] {
    [5, 60]
}
fn default_rows() -> [u64; 2] {
    [500, 50_000]
}

impl World {
    /// Builds a world from fixture text, with ids derived from `seed`.
    pub(crate) fn from_toml(text: &str, seed: u64) -> Result<World, SimError> {
        let fixture: Fixture = toml::from_str(text).map_err(|e| SimError::World(e.to_string()))?;
        World::build(fixture, seed)
    }

    fn build(fx: Fixture, seed: u64) -> Result<World, SimError> {
        let bad = SimError::World;
        let mut world = World {
            seed,
            ..World::default()
        };
        for w in fx.workspaces {
            if world.workspace_by_name(&w.name).is_some() {
                return Err(bad(format!("workspace {:?} is defined twice", w.name)));
            }
            world.workspaces.push(Workspace {
                id: w
                    .id
                    .unwrap_or_else(|| derive_id(seed, "workspace", &w.name)),
                name: w.name,
                data_residency: w.data_residency,
                deleted: false,
            });
        }
        for (kind, list) in [("source", fx.sources), ("destination", fx.destinations)] {
            for a in list {
                let workspace_id = world
                    .workspace_by_name(&a.workspace)
                    .ok_or_else(|| {
                        bad(format!(
                            "{kind} {:?} names unknown workspace {:?}",
                            a.name, a.workspace
                        ))
                    })?
                    .id;
                let actors = if kind == "source" {
                    &world.sources
                } else {
                    &world.destinations
                };
                if actors.iter().any(|x| x.name == a.name) {
                    return Err(bad(format!("{kind} {:?} is defined twice", a.name)));
                }
                let created_at = CREATED_BASE_SECS + 3_600 * 7 * actors.len() as i64;
                let actor = Actor {
                    id: a.id.unwrap_or_else(|| derive_id(seed, kind, &a.name)),
                    definition_id: a.definition_id.unwrap_or_else(|| {
                        Uuid::new_v5(
                            &Uuid::NAMESPACE_URL,
                            format!("airbyte-sim:{kind}-definition:{}", a.source_type).as_bytes(),
                        )
                    }),
                    configuration: a
                        .configuration
                        .unwrap_or_else(|| default_configuration(&a.source_type)),
                    name: a.name,
                    workspace_id,
                    actor_type: a.source_type,
                    created_at,
                    deleted: false,
                };
                if kind == "source" {
                    world.sources.push(actor);
                } else {
                    world.destinations.push(actor);
                }
            }
        }
        for c in fx.connections {
            world.add_connection_from_fixture(c)?;
        }
        Ok(world)
    }

    /// The source, destination and workspace ids of a fixture connection: both
    /// endpoints must exist and share a workspace.
    fn fixture_endpoints(&self, c: &ConnectionFx) -> Result<(Uuid, Uuid, Uuid), SimError> {
        let bad = SimError::World;
        let source = self
            .sources
            .iter()
            .find(|s| s.name == c.source)
            .ok_or_else(|| {
                bad(format!(
                    "connection {:?}: unknown source {:?}",
                    c.name, c.source
                ))
            })?;
        let destination = self
            .destinations
            .iter()
            .find(|s| s.name == c.destination)
            .ok_or_else(|| {
                bad(format!(
                    "connection {:?}: unknown destination {:?}",
                    c.name, c.destination
                ))
            })?;
        if source.workspace_id != destination.workspace_id {
            return Err(bad(format!(
                "connection {:?}: source and destination are in different workspaces",
                c.name
            )));
        }
        Ok((source.id, destination.id, source.workspace_id))
    }

    fn add_connection_from_fixture(&mut self, c: ConnectionFx) -> Result<(), SimError> {
        let bad = SimError::World;
        let (source_id, destination_id, workspace_id) = self.fixture_endpoints(&c)?;
        if !matches!(
            c.namespace_definition.as_str(),
            "source" | "destination" | "custom_format"
        ) {
            return Err(bad(format!(
                "connection {:?}: namespace_definition must be source, destination or custom_format",
                c.name
            )));
        }
        check_outcome(
            &c.name,
            c.failure_rate,
            c.attempt_failure_rate,
            c.duration_secs,
        )
        .map_err(bad)?;
        check_schedule(&c.name, &c.schedule).map_err(bad)?;
        let mut streams = Vec::with_capacity(c.streams.len());
        for s in c.streams {
            streams.push(check_stream(&c.name, s).map_err(bad)?);
        }
        let tag_ids = c
            .tags
            .iter()
            .map(|t| self.tag_id(workspace_id, t))
            .collect();
        let id =
            c.id.unwrap_or_else(|| derive_id(self.seed, "connection", &c.name));
        if self.connection_index.contains_key(&id) {
            return Err(bad(format!("connection {:?} is defined twice", c.name)));
        }
        let created_at = CREATED_BASE_SECS + 86_400 + 3_600 * 5 * self.connections.len() as i64;
        self.push_connection(Connection {
            id,
            name: c.name,
            workspace_id,
            source_id,
            destination_id,
            status: c.status,
            schedule: c.schedule,
            namespace_definition: c.namespace_definition,
            namespace_format: c.namespace_format,
            prefix: c.prefix,
            tag_ids,
            streams,
            outcome: Outcome {
                failure_rate: c.failure_rate,
                attempt_failure_rate: c.attempt_failure_rate,
                duration_secs: (c.duration_secs[0], c.duration_secs[1]),
                rows: (c.rows[0].min(c.rows[1]), c.rows[1].max(c.rows[0])),
            },
            created_at,
        });
        Ok(())
    }
}

fn check_stream(connection: &str, s: StreamFx) -> Result<Stream, String> {
    if !matches!(s.sync_mode.as_str(), "full_refresh" | "incremental") {
        return Err(format!(
            "{connection:?} stream {:?}: sync_mode must be full_refresh or incremental",
            s.name
        ));
    }
    if !matches!(
        s.destination_sync_mode.as_str(),
        "overwrite" | "append" | "append_dedup"
    ) {
        return Err(format!(
            "{connection:?} stream {:?}: destination_sync_mode must be overwrite, append or append_dedup",
            s.name
        ));
    }
    if s.sync_mode == "incremental" && s.destination_sync_mode == "overwrite" {
        return Err(format!(
            "{connection:?} stream {:?}: incremental streams append (append or append_dedup)",
            s.name
        ));
    }
    if s.sync_mode == "incremental" && s.cursor_field.is_empty() {
        return Err(format!(
            "{connection:?} stream {:?}: incremental streams need a cursor_field",
            s.name
        ));
    }
    if s.destination_sync_mode == "append_dedup" && s.primary_key.is_empty() {
        return Err(format!(
            "{connection:?} stream {:?}: append_dedup needs a primary_key",
            s.name
        ));
    }
    Ok(Stream {
        name: s.name,
        namespace: s.namespace,
        sync_mode: s.sync_mode,
        destination_sync_mode: s.destination_sync_mode,
        cursor_field: s.cursor_field,
        primary_key: s.primary_key,
        selected: s.selected,
        fields: s.fields,
    })
}
