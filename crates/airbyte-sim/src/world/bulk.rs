//! Bulk connections for load tests (`POST /_sim/connections`): many connections in
//! one workspace, sharing one sample-data source and one destination.

use serde::Deserialize;
use uuid::Uuid;

use super::fixture::{default_attempt_failure_rate, default_duration, default_failure_rate};
use super::model::{
    Actor, Connection, ConnectionStatus, Outcome, Schedule, Stream, Workspace, check_outcome,
    check_schedule, default_configuration,
};
use super::{CREATED_BASE_SECS, World, derive_id};

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
        let workspace_id = self.bulk_workspace(&req.workspace)?;
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
        let streams = bulk_streams();
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

    /// The workspace a bulk request names: an id that must exist, or a name,
    /// created when unknown.
    fn bulk_workspace(&mut self, workspace: &str) -> Result<Uuid, String> {
        Ok(match Uuid::parse_str(workspace) {
            Ok(id) => self
                .workspace(id)
                .map(|w| w.id)
                .ok_or_else(|| format!("unknown workspace {id}"))?,
            Err(_) => match self.workspace_by_name(workspace) {
                Some(w) => w.id,
                None => {
                    let id = derive_id(self.seed, "workspace", workspace);
                    self.workspaces.push(Workspace {
                        id,
                        name: workspace.to_owned(),
                        data_residency: "auto".to_owned(),
                        deleted: false,
                    });
                    id
                }
            },
        })
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
            deleted: false,
        });
        id
    }
}

/// The stream catalog every bulk connection shares (and that a source
/// created through the API discovers).
pub(super) fn bulk_streams() -> Vec<Stream> {
    ["users", "products", "purchases"]
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
        .collect()
}
