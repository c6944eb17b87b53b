//! The simulated Airbyte instance's configuration: workspaces, sources, destinations,
//! connections (with tags, schedule and a stream catalog) and how their jobs behave.
//!
//! A world is read from a fixture (TOML). The built-in one is `default_world.toml`
//! beside this file and doubles as the format's example. Fixture format:
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

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::SimError;

/// The built-in fixture: three workspaces, nine connections, one of them flaky.
pub(crate) const DEFAULT_WORLD: &str = include_str!("default_world.toml");

/// 2026-01-05T09:00:00Z: when the fixture's objects were "created".
const CREATED_BASE_SECS: i64 = 1_767_603_600;

const TAG_COLORS: [&str; 6] = ["75DCFF", "FBECB1", "FFBAC6", "CFD7FE", "BDFFC3", "FFD0B2"];

// ---------------------------------------------------------------- fixture (input)

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
fn default_failure_rate() -> f64 {
    0.02
}
fn default_attempt_failure_rate() -> f64 {
    0.05
}
fn default_duration() -> [u64; 2] {
    [5, 60]
}
fn default_rows() -> [u64; 2] {
    [500, 50_000]
}

// ---------------------------------------------------------------- model

/// A connection's lifecycle state as the public API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ConnectionStatus {
    #[default]
    Active,
    Inactive,
    Deprecated,
}

impl ConnectionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Inactive => "inactive",
            ConnectionStatus::Deprecated => "deprecated",
        }
    }
}

/// When Airbyte itself would run a connection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Schedule {
    #[default]
    Manual,
    Cron {
        cron: String,
        #[serde(default = "utc")]
        timezone: String,
    },
    Basic {
        every: u32,
        unit: String,
    },
}

fn utc() -> String {
    "UTC".to_owned()
}

impl Schedule {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Schedule::Manual => "manual",
            Schedule::Cron { .. } => "cron",
            Schedule::Basic { .. } => "basic",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) data_residency: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) workspace_id: Uuid,
    pub(crate) actor_type: String,
    pub(crate) definition_id: Uuid,
    pub(crate) configuration: Value,
    pub(crate) created_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Tag {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) color: String,
    pub(crate) workspace_id: Uuid,
}

#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) sync_mode: String,
    pub(crate) destination_sync_mode: String,
    pub(crate) cursor_field: Vec<String>,
    pub(crate) primary_key: Vec<Vec<String>>,
    pub(crate) selected: bool,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Stream {
    /// The public API's single sync mode name for this stream's pair of modes.
    pub(crate) fn public_sync_mode(&self) -> &'static str {
        match (self.sync_mode.as_str(), self.destination_sync_mode.as_str()) {
            ("full_refresh", "append") => "full_refresh_append",
            ("full_refresh", "append_dedup") => "full_refresh_overwrite_deduped",
            ("incremental", "append") => "incremental_append",
            ("incremental", "append_dedup") => "incremental_deduped_history",
            _ => "full_refresh_overwrite",
        }
    }

    pub(crate) fn json_schema(&self) -> Value {
        let mut properties = serde_json::Map::new();
        for (field, ty) in &self.fields {
            let schema = match ty.as_str() {
                "timestamp" => {
                    json!({"type": ["null", "string"], "format": "date-time", "airbyte_type": "timestamp_with_timezone"})
                }
                "date" => json!({"type": ["null", "string"], "format": "date"}),
                other => json!({"type": ["null", other]}),
            };
            properties.insert(field.clone(), schema);
        }
        json!({
            "type": "object",
            "$schema": "http://json-schema.org/draft-07/schema#",
            "properties": properties,
        })
    }

    pub(crate) fn supported_sync_modes(&self) -> Vec<&'static str> {
        if self.sync_mode == "incremental" || !self.cursor_field.is_empty() {
            vec!["full_refresh", "incremental"]
        } else {
            vec!["full_refresh"]
        }
    }
}

/// How a connection's jobs behave.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) failure_rate: f64,
    pub(crate) attempt_failure_rate: f64,
    pub(crate) duration_secs: (u64, u64),
    pub(crate) rows: (u64, u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) workspace_id: Uuid,
    pub(crate) source_id: Uuid,
    pub(crate) destination_id: Uuid,
    pub(crate) status: ConnectionStatus,
    pub(crate) schedule: Schedule,
    pub(crate) namespace_definition: String,
    pub(crate) namespace_format: Option<String>,
    pub(crate) prefix: String,
    pub(crate) tag_ids: Vec<Uuid>,
    pub(crate) streams: Vec<Stream>,
    pub(crate) outcome: Outcome,
    pub(crate) created_at: i64,
}

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
}

/// What `POST /_sim/connections` asks for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkAdd {
    /// Workspace name or id; a new workspace is created when the name is unknown.
    pub(crate) workspace: String,
    pub(crate) count: u32,
    #[serde(default = "bulk_prefix")]
    pub(crate) name_prefix: String,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    #[serde(default)]
    pub(crate) schedule: Schedule,
    #[serde(default = "default_failure_rate")]
    pub(crate) failure_rate: f64,
    #[serde(default = "default_attempt_failure_rate")]
    pub(crate) attempt_failure_rate: f64,
    #[serde(default = "default_duration")]
    pub(crate) duration_secs: [u64; 2],
    /// Start one sync per new connection (counted as started by Airbyte, not the API).
    #[serde(default)]
    pub(crate) start_syncs: bool,
}

fn bulk_prefix() -> String {
    "Bulk connection".to_owned()
}

/// The most connections one bulk request may add.
pub(crate) const MAX_BULK: u32 = 20_000;

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

    fn add_connection_from_fixture(&mut self, c: ConnectionFx) -> Result<(), SimError> {
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
        let (source_id, destination_id, workspace_id) =
            (source.id, destination.id, source.workspace_id);
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

    /// Adds `req.count` connections to a workspace (created when unknown), sharing
    /// one sample-data source and one destination; returns the workspace and new ids.
    pub(crate) fn add_bulk(&mut self, req: &BulkAdd) -> Result<(Uuid, Vec<Uuid>), String> {
        if req.count == 0 || req.count > MAX_BULK {
            return Err(format!("count must be between 1 and {MAX_BULK}"));
        }
        check_outcome(
            &req.name_prefix,
            req.failure_rate,
            req.attempt_failure_rate,
            req.duration_secs,
        )?;
        check_schedule(&req.name_prefix, &req.schedule)?;
        let workspace_id = match Uuid::parse_str(&req.workspace) {
            Ok(id) => self
                .workspace(id)
                .map(|w| w.id)
                .ok_or_else(|| format!("unknown workspace {id}"))?,
            Err(_) => match self.workspace_by_name(&req.workspace) {
                Some(w) => w.id,
                None => {
                    let id = derive_id(self.seed, "workspace", &req.workspace);
                    self.workspaces.push(Workspace {
                        id,
                        name: req.workspace.clone(),
                        data_residency: "auto".to_owned(),
                    });
                    id
                }
            },
        };
        let source_id = self.bulk_actor(workspace_id, "source", "faker", "Sample Data (Faker)");
        let destination_id = self.bulk_actor(
            workspace_id,
            "destination",
            "dev-null",
            "End-to-End Testing (/dev/null)",
        );
        let tag_ids: Vec<Uuid> = req
            .tags
            .iter()
            .map(|t| self.tag_id(workspace_id, t))
            .collect();
        let streams: Vec<Stream> = ["users", "products", "purchases"]
            .into_iter()
            .map(|name| Stream {
                name: name.to_owned(),
                namespace: None,
                sync_mode: "incremental".to_owned(),
                destination_sync_mode: "append_dedup".to_owned(),
                cursor_field: vec!["updated_at".to_owned()],
                primary_key: vec![vec!["id".to_owned()]],
                selected: true,
                fields: [("id", "integer"), ("updated_at", "timestamp")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            })
            .collect();
        let mut ids = Vec::with_capacity(req.count as usize);
        for _ in 0..req.count {
            let n = self.connections.len();
            let id = derive_id(self.seed, "bulk-connection", &format!("{workspace_id}/{n}"));
            let name = format!("{} {:05}", req.name_prefix, n + 1);
            self.push_connection(Connection {
                id,
                name,
                workspace_id,
                source_id,
                destination_id,
                status: ConnectionStatus::Active,
                schedule: req.schedule.clone(),
                namespace_definition: "destination".to_owned(),
                namespace_format: None,
                prefix: String::new(),
                tag_ids: tag_ids.clone(),
                streams: streams.clone(),
                outcome: Outcome {
                    failure_rate: req.failure_rate,
                    attempt_failure_rate: req.attempt_failure_rate,
                    duration_secs: (req.duration_secs[0], req.duration_secs[1]),
                    rows: (500, 50_000),
                },
                created_at: CREATED_BASE_SECS + 86_400 * 30,
            });
            ids.push(id);
        }
        Ok((workspace_id, ids))
    }

    fn bulk_actor(&mut self, workspace_id: Uuid, kind: &str, actor_type: &str, name: &str) -> Uuid {
        let list = if kind == "source" {
            &mut self.sources
        } else {
            &mut self.destinations
        };
        if let Some(a) = list
            .iter()
            .find(|a| a.workspace_id == workspace_id && a.name == name)
        {
            return a.id;
        }
        let id = derive_id(self.seed, kind, &format!("{workspace_id}/{name}"));
        list.push(Actor {
            id,
            name: name.to_owned(),
            workspace_id,
            actor_type: actor_type.to_owned(),
            definition_id: Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!("airbyte-sim:{kind}-definition:{actor_type}").as_bytes(),
            ),
            configuration: default_configuration(actor_type),
            created_at: CREATED_BASE_SECS + 86_400 * 30,
        });
        id
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

fn check_outcome(
    name: &str,
    failure_rate: f64,
    attempt_failure_rate: f64,
    duration: [u64; 2],
) -> Result<(), String> {
    for (key, v) in [
        ("failure_rate", failure_rate),
        ("attempt_failure_rate", attempt_failure_rate),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{name:?}: {key} must be between 0 and 1, got {v}"));
        }
    }
    if duration[0] == 0 || duration[0] > duration[1] {
        return Err(format!(
            "{name:?}: duration_secs must be [min, max] with 1 <= min <= max"
        ));
    }
    Ok(())
}

fn check_schedule(name: &str, schedule: &Schedule) -> Result<(), String> {
    if let Schedule::Basic { every, unit } = schedule {
        if *every == 0 {
            return Err(format!("{name:?}: a basic schedule needs every >= 1"));
        }
        if !matches!(
            unit.as_str(),
            "minutes" | "hours" | "days" | "weeks" | "months"
        ) {
            return Err(format!(
                "{name:?}: schedule unit must be minutes, hours, days, weeks or months"
            ));
        }
    }
    Ok(())
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

/// A masked configuration such as Airbyte shows for a connector of this type.
fn default_configuration(actor_type: &str) -> Value {
    match actor_type {
        "postgres" | "mssql" => json!({
            "host": format!("{actor_type}.internal.example.com"),
            "port": 5432,
            "database": "app",
            // Sources list the schemas they read; destinations name the one
            // they write.
            "schemas": ["public"],
            "schema": "public",
            "username": "airbyte",
            "password": "**********",
        }),
        "mysql" => json!({
            "host": "mysql.internal.example.com",
            "port": 3306,
            "database": "app",
            "username": "airbyte",
            "password": "**********",
            "replication_method": {"method": "STANDARD"},
        }),
        "snowflake" => json!({
            "host": "acme.snowflakecomputing.com",
            "role": "AIRBYTE_ROLE",
            "warehouse": "AIRBYTE_WAREHOUSE",
            "database": "RAW",
            "schema": "PUBLIC",
            "username": "AIRBYTE_USER",
        }),
        "redshift" => json!({
            "host": "analytics.abc123.us-east-1.redshift.amazonaws.com",
            "port": 5439,
            "database": "dev",
            "schema": "public",
            "username": "airbyte",
            "password": "**********",
        }),
        "dev-null" => json!({"test_destination": {"test_destination_type": "SILENT"}}),
        "bigquery" => json!({
            "project_id": "acme-data",
            "dataset_location": "US",
            "dataset_id": "raw",
            "credentials_json": "**********",
        }),
        _ => json!({}),
    }
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
