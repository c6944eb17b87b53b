//! The public API's writes of workspaces, sources and destinations, with the
//! rules of Airbyte's servers:
//!
//! - Ids are new UUIDs (derived from the seed and a counter, so that a seed
//!   replays); names need not be unique, in Airbyte as here.
//! - A delete is a tombstone: the object is still readable by id, listed only
//!   with `includeDeleted`, and deleting it again succeeds. Deleting a source
//!   or destination deletes (deprecates) the connections that use it; deleting
//!   a workspace deletes everything in it.
//! - A source's `PATCH` changes the fields it names and merges its
//!   `configuration` into the stored one; a `PUT` replaces name and
//!   configuration.
//! - Secrets in a configuration are stored and shown masked, as Airbyte shows
//!   them (`**********`).

use serde_json::Value;
use uuid::Uuid;

use super::model::{Actor, ConnectionStatus, Workspace};
use super::{World, derive_id};

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EditError {
    /// Something the request names does not exist.
    NotFound {
        resource_type: &'static str,
        id: Uuid,
    },
    /// The request breaks one of Airbyte's rules (a `bad-request`).
    Invalid(String),
}

/// A source or a destination: they share their shape and their rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActorKind {
    Source,
    Destination,
}

impl ActorKind {
    /// `source` or `destination`, as Airbyte names them in JSON keys and errors.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ActorKind::Source => "source",
            ActorKind::Destination => "destination",
        }
    }
}

/// A source or destination to create.
#[derive(Debug, Clone)]
pub(crate) struct NewActor {
    pub(crate) name: String,
    pub(crate) workspace_id: Uuid,
    /// The connector's type (`postgres`); `None` when only a definition id
    /// was given, which must then be one the world knows.
    pub(crate) actor_type: Option<String>,
    pub(crate) definition_id: Option<Uuid>,
    pub(crate) configuration: Value,
}

/// A change to a source or destination: `PATCH` (`replace` false) or `PUT`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActorChange {
    pub(crate) name: Option<String>,
    pub(crate) configuration: Option<Value>,
    pub(crate) replace: bool,
}

/// Configuration keys whose values Airbyte never shows.
const SECRET_KEYS: [&str; 8] = [
    "password",
    "client_secret",
    "secret",
    "api_key",
    "access_token",
    "refresh_token",
    "credentials_json",
    "private_key",
];

/// The configuration as Airbyte stores and shows it: its connector-type key
/// removed (the answer adds it back), secrets masked at any depth.
fn stored_configuration(mut configuration: Value, kind: ActorKind) -> Value {
    if let Some(map) = configuration.as_object_mut() {
        map.remove(&format!("{}Type", kind.as_str()));
    }
    mask(&mut configuration);
    configuration
}

fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if SECRET_KEYS.contains(&key.as_str()) && !v.is_object() {
                    *v = Value::String("**********".to_owned());
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

impl World {
    /// A new id for an object the API creates.
    pub(super) fn next_id(&mut self, kind: &str) -> Uuid {
        self.created += 1;
        derive_id(self.seed, &format!("api-{kind}"), &self.created.to_string())
    }

    fn actors(&self, kind: ActorKind) -> &Vec<Actor> {
        match kind {
            ActorKind::Source => &self.sources,
            ActorKind::Destination => &self.destinations,
        }
    }

    fn actors_mut(&mut self, kind: ActorKind) -> &mut Vec<Actor> {
        match kind {
            ActorKind::Source => &mut self.sources,
            ActorKind::Destination => &mut self.destinations,
        }
    }

    /// A live (not deleted) workspace, or `NotFound`.
    pub(crate) fn live_workspace(&self, id: Uuid) -> Result<&Workspace, EditError> {
        self.workspace(id)
            .filter(|w| !w.deleted)
            .ok_or(EditError::NotFound {
                resource_type: "workspace",
                id,
            })
    }

    /// A source or destination by id, deleted or not.
    pub(crate) fn actor(&self, kind: ActorKind, id: Uuid) -> Option<&Actor> {
        self.actors(kind).iter().find(|a| a.id == id)
    }

    fn actor_mut(&mut self, kind: ActorKind, id: Uuid) -> Result<&mut Actor, EditError> {
        self.actors_mut(kind)
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(EditError::NotFound {
                resource_type: kind.as_str(),
                id,
            })
    }

    /// `POST /workspaces`.
    pub(crate) fn create_workspace(&mut self, name: String) -> &Workspace {
        let id = self.next_id("workspace");
        self.workspaces.push(Workspace {
            id,
            name,
            data_residency: "auto".to_owned(),
            deleted: false,
        });
        &self.workspaces[self.workspaces.len() - 1]
    }

    /// The workspace `id`, to change.
    fn workspace_mut(&mut self, id: Uuid) -> Result<&mut Workspace, EditError> {
        self.workspaces
            .iter_mut()
            .find(|w| w.id == id)
            .ok_or(EditError::NotFound {
                resource_type: "workspace",
                id,
            })
    }

    /// `PATCH /workspaces/{id}`: a new name.
    pub(crate) fn rename_workspace(&mut self, id: Uuid, name: String) -> Result<(), EditError> {
        let workspace = self.workspace_mut(id)?;
        workspace.name = name;
        Ok(())
    }

    /// `DELETE /workspaces/{id}`: the workspace and everything in it; returns
    /// the connections it deleted.
    pub(crate) fn delete_workspace(&mut self, id: Uuid) -> Result<Vec<Uuid>, EditError> {
        let workspace = self.workspace_mut(id)?;
        workspace.deleted = true;
        for actor in self.sources.iter_mut().chain(self.destinations.iter_mut()) {
            if actor.workspace_id == id {
                actor.deleted = true;
            }
        }
        Ok(self.deprecate_connections(|c| c.workspace_id == id))
    }

    /// `POST /sources` or `POST /destinations`.
    pub(crate) fn create_actor(
        &mut self,
        kind: ActorKind,
        new: NewActor,
        now_secs: i64,
    ) -> Result<&Actor, EditError> {
        self.live_workspace(new.workspace_id)?;
        let known = |world: &World, definition: Uuid| {
            world
                .actors(kind)
                .iter()
                .find(|a| a.definition_id == definition)
                .map(|a| a.actor_type.clone())
        };
        let (actor_type, definition_id) = match (new.actor_type, new.definition_id) {
            (Some(t), Some(d)) => (t, d),
            (Some(t), None) => {
                let d = definition_of(kind, &t);
                (t, d)
            }
            (None, Some(d)) => {
                let t = known(self, d).ok_or(EditError::NotFound {
                    resource_type: "actor_definition",
                    id: d,
                })?;
                (t, d)
            }
            (None, None) => {
                return Err(EditError::Invalid(format!(
                    "{}Type must be specified in configuration or definitionId must be provided",
                    kind.as_str()
                )));
            }
        };
        let id = self.next_id(kind.as_str());
        let actor = Actor {
            id,
            name: new.name,
            workspace_id: new.workspace_id,
            actor_type,
            definition_id,
            configuration: stored_configuration(new.configuration, kind),
            created_at: now_secs,
            deleted: false,
        };
        let list = self.actors_mut(kind);
        list.push(actor);
        Ok(&list[list.len() - 1])
    }

    /// `PATCH` or `PUT` of a source or destination.
    pub(crate) fn update_actor(
        &mut self,
        kind: ActorKind,
        id: Uuid,
        change: ActorChange,
    ) -> Result<&Actor, EditError> {
        let actor = self.actor_mut(kind, id)?;
        if let Some(name) = change.name {
            actor.name = name;
        }
        if let Some(configuration) = change.configuration {
            let configuration = stored_configuration(configuration, kind);
            match (change.replace, actor.configuration.as_object_mut()) {
                (false, Some(stored)) => {
                    if let Value::Object(given) = configuration {
                        stored.extend(given);
                    }
                }
                _ => actor.configuration = configuration,
            }
        }
        Ok(actor)
    }

    /// `DELETE` of a source or destination, and of the connections that use
    /// it; returns those connections.
    pub(crate) fn delete_actor(
        &mut self,
        kind: ActorKind,
        id: Uuid,
    ) -> Result<Vec<Uuid>, EditError> {
        self.actor_mut(kind, id)?.deleted = true;
        Ok(self.deprecate_connections(|c| match kind {
            ActorKind::Source => c.source_id == id,
            ActorKind::Destination => c.destination_id == id,
        }))
    }

    /// Deprecates the live connections that `which` picks; returns their ids.
    pub(super) fn deprecate_connections(
        &mut self,
        which: impl Fn(&super::Connection) -> bool,
    ) -> Vec<Uuid> {
        self.connections
            .iter_mut()
            .filter(|c| c.status != ConnectionStatus::Deprecated && which(c))
            .map(|c| {
                c.status = ConnectionStatus::Deprecated;
                c.id
            })
            .collect()
    }
}

/// The definition id the fixture gives a connector type.
pub(super) fn definition_of(kind: ActorKind, actor_type: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("airbyte-sim:{}-definition:{actor_type}", kind.as_str()).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::DEFAULT_WORLD;

    fn world() -> World {
        World::from_toml(DEFAULT_WORLD, 1).expect("valid")
    }

    fn new_source(workspace_id: Uuid) -> NewActor {
        NewActor {
            name: "Orders DB".to_owned(),
            workspace_id,
            actor_type: Some("postgres".to_owned()),
            definition_id: None,
            configuration: serde_json::json!({
                "sourceType": "postgres",
                "host": "db",
                "password": "hunter2",
                "tunnel": {"private_key": "k", "port": 22},
            }),
        }
    }

    #[test]
    fn created_actors_are_stored_masked_and_deleting_one_deprecates_its_connections() {
        let mut w = world();
        let workspace = w.workspaces[0].id;
        let source = w
            .create_actor(ActorKind::Source, new_source(workspace), 5)
            .expect("created")
            .clone();
        assert_eq!(source.configuration["password"], "**********");
        assert_eq!(source.configuration["tunnel"]["private_key"], "**********");
        assert_eq!(source.configuration["tunnel"]["port"], 22);
        assert!(source.configuration.get("sourceType").is_none());
        assert_eq!(
            source.definition_id,
            definition_of(ActorKind::Source, "postgres")
        );

        let used = w.connections[0].source_id;
        let users = w
            .connections
            .iter()
            .filter(|c| c.source_id == used && c.status != ConnectionStatus::Deprecated)
            .count();
        let deleted = w.delete_actor(ActorKind::Source, used).expect("deleted");
        assert_eq!(deleted.len(), users);
        assert!(w.actor(ActorKind::Source, used).expect("kept").deleted);
        assert!(
            deleted
                .iter()
                .all(|id| w.connection(*id).expect("kept").status == ConnectionStatus::Deprecated)
        );
        assert_eq!(
            w.delete_actor(ActorKind::Source, used),
            Ok(Vec::new()),
            "a second delete succeeds and changes nothing"
        );
    }

    #[test]
    fn patch_merges_configuration_and_put_replaces_it() {
        let mut w = world();
        let workspace = w.workspaces[0].id;
        let id = w
            .create_actor(ActorKind::Source, new_source(workspace), 5)
            .expect("created")
            .id;
        let patched = w
            .update_actor(
                ActorKind::Source,
                id,
                ActorChange {
                    configuration: Some(serde_json::json!({"port": 5433})),
                    ..ActorChange::default()
                },
            )
            .expect("patched");
        assert_eq!(patched.name, "Orders DB");
        assert_eq!(patched.configuration["host"], "db");
        assert_eq!(patched.configuration["port"], 5433);
        let put = w
            .update_actor(
                ActorKind::Source,
                id,
                ActorChange {
                    name: Some("Orders".to_owned()),
                    configuration: Some(serde_json::json!({"host": "db2"})),
                    replace: true,
                },
            )
            .expect("replaced");
        assert_eq!(put.name, "Orders");
        assert_eq!(put.configuration, serde_json::json!({"host": "db2"}));
    }

    #[test]
    fn unknown_and_deleted_workspaces_and_definitions_are_refused() {
        let mut w = world();
        let nowhere = Uuid::from_u128(7);
        let err = w
            .create_actor(ActorKind::Destination, new_source(nowhere), 5)
            .expect_err("unknown workspace");
        assert_eq!(
            err,
            EditError::NotFound {
                resource_type: "workspace",
                id: nowhere
            }
        );
        let workspace = w.workspaces[0].id;
        let mut unnamed = new_source(workspace);
        unnamed.actor_type = None;
        assert!(matches!(
            w.create_actor(ActorKind::Source, unnamed.clone(), 5),
            Err(EditError::Invalid(_))
        ));
        unnamed.definition_id = Some(nowhere);
        assert!(matches!(
            w.create_actor(ActorKind::Source, unnamed, 5),
            Err(EditError::NotFound {
                resource_type: "actor_definition",
                ..
            })
        ));
        let deleted = w.delete_workspace(workspace).expect("deleted");
        assert!(!deleted.is_empty());
        assert!(
            w.sources
                .iter()
                .filter(|s| s.workspace_id == workspace)
                .all(|s| s.deleted)
        );
        assert!(
            w.create_actor(ActorKind::Source, new_source(workspace), 5)
                .is_err()
        );
    }
}
