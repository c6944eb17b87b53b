//! The public API's writes of connections, and the stream catalog a source
//! discovers, with the rules of Airbyte's servers:
//!
//! - A connection joins a live source and destination of one workspace; it
//!   lives in their workspace. Without a name it is called `default`, as
//!   Airbyte's connection handler names it.
//! - Its streams are chosen from what the source discovers: a stream the
//!   source does not have, a stream named twice, an incremental mode on a
//!   stream without a cursor or a deduplicating mode without a primary key
//!   are `bad-request`s. Without `configurations`, every discovered stream is
//!   synced `full_refresh_overwrite`, on a `PATCH` as on a creation (the
//!   public API rebuilds the catalog on every update).
//! - A `PATCH` changes only the fields it names (streams aside); a cron
//!   schedule needs a Quartz expression.
//! - A delete deprecates the connection: readable by id, listed only with
//!   `includeDeleted`, refused for new jobs.

use uuid::Uuid;

use super::World;
use super::bulk::bulk_streams;
use super::edit::{ActorKind, EditError};
use super::fixture::{default_attempt_failure_rate, default_duration, default_failure_rate};
use super::model::{Connection, ConnectionStatus, Outcome, Schedule, Stream};

/// One stream of a request's `configurations.streams`.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamChoice {
    pub(crate) name: String,
    /// The public API's sync mode (`incremental_append`); the default is
    /// `full_refresh_overwrite`.
    pub(crate) sync_mode: Option<String>,
    pub(crate) cursor_field: Option<Vec<String>>,
    pub(crate) primary_key: Option<Vec<Vec<String>>>,
}

/// `POST /connections`.
#[derive(Debug, Clone)]
pub(crate) struct NewConnection {
    pub(crate) name: Option<String>,
    pub(crate) source_id: Uuid,
    pub(crate) destination_id: Uuid,
    pub(crate) streams: Option<Vec<StreamChoice>>,
    pub(crate) schedule: Schedule,
    pub(crate) namespace_definition: Option<String>,
    pub(crate) namespace_format: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) status: Option<ConnectionStatus>,
}

/// `PATCH /connections/{id}`: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnectionChange {
    pub(crate) name: Option<String>,
    pub(crate) streams: Option<Vec<StreamChoice>>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) namespace_definition: Option<String>,
    pub(crate) namespace_format: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) status: Option<ConnectionStatus>,
}

/// A cron expression Airbyte's Quartz parser could take: six or seven fields.
fn check_cron(schedule: &Schedule) -> Result<(), EditError> {
    if let Schedule::Cron { cron, .. } = schedule {
        let fields = cron.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(EditError::Invalid(format!(
                "The cron expression {cron} is not valid or is less than the one hour minimum. The seconds and minutes values cannot be `*`."
            )));
        }
    }
    Ok(())
}

fn check_namespace(definition: Option<&str>) -> Result<(), EditError> {
    match definition {
        None | Some("source" | "destination" | "custom_format") => Ok(()),
        Some(other) => Err(EditError::Invalid(format!(
            "namespaceDefinition must be source, destination or custom_format, got {other}"
        ))),
    }
}

/// The streams a choice makes of the discovered ones; unnamed streams are
/// not selected.
fn configure(
    discovered: &[Stream],
    choices: Option<&[StreamChoice]>,
) -> Result<Vec<Stream>, EditError> {
    let Some(choices) = choices.filter(|c| !c.is_empty()) else {
        return Ok(discovered
            .iter()
            .map(|s| with_mode(s, "full_refresh", "overwrite"))
            .collect());
    };
    let mut streams: Vec<Stream> = discovered
        .iter()
        .map(|s| Stream {
            selected: false,
            ..s.clone()
        })
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for choice in choices {
        if seen.contains(&choice.name.as_str()) {
            return Err(EditError::Invalid(format!(
                "Duplicate stream found in configuration for: {}",
                choice.name
            )));
        }
        seen.push(&choice.name);
        let stream = streams
            .iter_mut()
            .find(|s| s.name == choice.name)
            .ok_or_else(|| {
                let valid: Vec<&str> = discovered.iter().map(|s| s.name.as_str()).collect();
                EditError::Invalid(format!(
                    "Invalid stream found: {}. The list of valid streams include: {valid:?}.",
                    choice.name
                ))
            })?;
        *stream = chosen(stream, choice)?;
    }
    Ok(streams)
}

fn with_mode(s: &Stream, sync_mode: &str, destination_sync_mode: &str) -> Stream {
    Stream {
        sync_mode: sync_mode.to_owned(),
        destination_sync_mode: destination_sync_mode.to_owned(),
        selected: true,
        ..s.clone()
    }
}

/// One discovered stream configured as `choice` asks.
fn chosen(discovered: &Stream, choice: &StreamChoice) -> Result<Stream, EditError> {
    let mode = choice
        .sync_mode
        .as_deref()
        .unwrap_or("full_refresh_overwrite");
    let (sync_mode, destination_sync_mode) = match mode {
        "full_refresh_overwrite" => ("full_refresh", "overwrite"),
        "full_refresh_append" => ("full_refresh", "append"),
        "incremental_append" => ("incremental", "append"),
        "incremental_deduped_history" => ("incremental", "append_dedup"),
        other => {
            return Err(EditError::Invalid(format!(
                "Unknown sync mode {other} for stream {}",
                choice.name
            )));
        }
    };
    let mut stream = with_mode(discovered, sync_mode, destination_sync_mode);
    if sync_mode == "incremental" {
        if !discovered.supported_sync_modes().contains(&"incremental") {
            return Err(EditError::Invalid(format!(
                "Cannot set sync mode to {mode} for stream {}",
                choice.name
            )));
        }
        if let Some(cursor) = &choice.cursor_field {
            stream.cursor_field = cursor.clone();
        }
        if stream.cursor_field.is_empty() {
            return Err(EditError::Invalid(format!(
                "No default cursor field for {}",
                choice.name
            )));
        }
    }
    if destination_sync_mode == "append_dedup" {
        if let Some(key) = &choice.primary_key {
            stream.primary_key = key.clone();
        }
        if stream.primary_key.is_empty() {
            return Err(EditError::Invalid(format!(
                "No default primary key for {}",
                choice.name
            )));
        }
    }
    Ok(stream)
}

impl World {
    /// What a source discovers: the streams of its connections (each once),
    /// or, for a source no connection uses yet, the sample catalog.
    pub(crate) fn source_catalog(&self, source_id: Uuid) -> Vec<Stream> {
        let mut streams: Vec<Stream> = Vec::new();
        for c in self.connections.iter().filter(|c| c.source_id == source_id) {
            for s in &c.streams {
                if !streams
                    .iter()
                    .any(|x| x.name == s.name && x.namespace == s.namespace)
                {
                    streams.push(s.clone());
                }
            }
        }
        if streams.is_empty() {
            streams = bulk_streams();
        }
        streams
    }

    /// A live source or destination, or why not.
    fn live_actor(&self, kind: ActorKind, id: Uuid) -> Result<Uuid, EditError> {
        let actor = self.actor(kind, id).ok_or(EditError::NotFound {
            resource_type: kind.as_str(),
            id,
        })?;
        if actor.deleted {
            return Err(EditError::Invalid(format!(
                "The {} {id} has been deleted",
                kind.as_str()
            )));
        }
        Ok(actor.workspace_id)
    }

    /// `POST /connections`: returns the new connection's id.
    pub(crate) fn create_connection(
        &mut self,
        new: NewConnection,
        now_secs: i64,
    ) -> Result<Uuid, EditError> {
        let workspace_id = self.live_actor(ActorKind::Destination, new.destination_id)?;
        let source_workspace = self.live_actor(ActorKind::Source, new.source_id)?;
        if source_workspace != workspace_id {
            return Err(EditError::Invalid(
                "The source and the destination must be in the same workspace".to_owned(),
            ));
        }
        self.live_workspace(workspace_id)?;
        check_cron(&new.schedule)?;
        check_namespace(new.namespace_definition.as_deref())?;
        let streams = configure(&self.source_catalog(new.source_id), new.streams.as_deref())?;
        let id = self.next_id("connection");
        self.push_connection(Connection {
            id,
            name: new.name.unwrap_or_else(|| "default".to_owned()),
            workspace_id,
            source_id: new.source_id,
            destination_id: new.destination_id,
            status: new.status.unwrap_or_default(),
            schedule: new.schedule,
            namespace_definition: new
                .namespace_definition
                .unwrap_or_else(|| "destination".to_owned()),
            namespace_format: new.namespace_format,
            prefix: new.prefix.unwrap_or_default(),
            tag_ids: Vec::new(),
            streams,
            outcome: Outcome {
                failure_rate: default_failure_rate(),
                attempt_failure_rate: default_attempt_failure_rate(),
                duration_secs: {
                    let [min, max] = default_duration();
                    (min, max)
                },
                rows: (500, 50_000),
            },
            created_at: now_secs,
        });
        Ok(id)
    }

    /// `PATCH /connections/{id}`.
    pub(crate) fn update_connection(
        &mut self,
        id: Uuid,
        change: ConnectionChange,
    ) -> Result<(), EditError> {
        let not_found = EditError::NotFound {
            resource_type: "connection",
            id,
        };
        let source_id = self.connection(id).ok_or(not_found.clone())?.source_id;
        if let Some(schedule) = &change.schedule {
            check_cron(schedule)?;
        }
        check_namespace(change.namespace_definition.as_deref())?;
        let streams = configure(&self.source_catalog(source_id), change.streams.as_deref())?;
        let index = *self.connection_index.get(&id).ok_or(not_found)?;
        let c = &mut self.connections[index];
        c.streams = streams;
        if let Some(name) = change.name {
            c.name = name;
        }
        if let Some(schedule) = change.schedule {
            c.schedule = schedule;
        }
        if let Some(definition) = change.namespace_definition {
            c.namespace_definition = definition;
        }
        if let Some(format) = change.namespace_format {
            c.namespace_format = Some(format);
        }
        if let Some(prefix) = change.prefix {
            c.prefix = prefix;
        }
        if let Some(status) = change.status {
            c.status = status;
        }
        Ok(())
    }

    /// `DELETE /connections/{id}`: deprecates it (again, harmlessly).
    pub(crate) fn delete_connection(&mut self, id: Uuid) -> Result<(), EditError> {
        if self.connection(id).is_none() {
            return Err(EditError::NotFound {
                resource_type: "connection",
                id,
            });
        }
        self.deprecate_connections(|c| c.id == id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::DEFAULT_WORLD;

    fn world() -> World {
        World::from_toml(DEFAULT_WORLD, 1).expect("valid")
    }

    fn new_connection(w: &World) -> NewConnection {
        let c = &w.connections[0];
        NewConnection {
            name: None,
            source_id: c.source_id,
            destination_id: c.destination_id,
            streams: None,
            schedule: Schedule::Manual,
            namespace_definition: None,
            namespace_format: None,
            prefix: None,
            status: None,
        }
    }

    fn choice(name: &str, mode: &str) -> StreamChoice {
        StreamChoice {
            name: name.to_owned(),
            sync_mode: Some(mode.to_owned()),
            ..StreamChoice::default()
        }
    }

    #[test]
    fn a_new_connection_takes_its_endpoints_workspace_and_every_stream_by_default() {
        let mut w = world();
        let new = new_connection(&w);
        let catalog = w.source_catalog(new.source_id);
        let id = w.create_connection(new.clone(), 9).expect("created");
        let c = w.connection(id).expect("stored");
        assert_eq!(c.name, "default");
        assert_eq!(c.workspace_id, w.connections[0].workspace_id);
        assert_eq!(c.status, ConnectionStatus::Active);
        assert_eq!(c.streams.len(), catalog.len());
        assert!(
            c.streams
                .iter()
                .all(|s| s.selected && s.public_sync_mode() == "full_refresh_overwrite")
        );
        let again = w.create_connection(new, 9).expect("a namesake is allowed");
        assert_ne!(again, id);
    }

    #[test]
    fn stream_choices_follow_the_discovered_catalog() {
        let mut w = world();
        let mut new = new_connection(&w);
        let catalog = w.source_catalog(new.source_id);
        let first = catalog[0].name.clone();
        new.streams = Some(vec![choice("no-such-stream", "full_refresh_append")]);
        assert!(matches!(
            w.create_connection(new.clone(), 9),
            Err(EditError::Invalid(m)) if m.contains("no-such-stream")
        ));
        new.streams = Some(vec![
            choice(&first, "full_refresh_append"),
            choice(&first, "full_refresh_append"),
        ]);
        assert!(matches!(
            w.create_connection(new.clone(), 9),
            Err(EditError::Invalid(m)) if m.contains("Duplicate")
        ));
        new.streams = Some(vec![choice(&first, "full_refresh_append")]);
        let id = w.create_connection(new, 9).expect("created");
        let streams = &w.connection(id).expect("stored").streams;
        assert_eq!(streams.iter().filter(|s| s.selected).count(), 1);
        assert_eq!(streams[0].public_sync_mode(), "full_refresh_append");
    }

    #[test]
    fn incremental_needs_a_cursor_and_dedup_a_primary_key() {
        let plain = Stream {
            name: "events".to_owned(),
            namespace: None,
            sync_mode: "full_refresh".to_owned(),
            destination_sync_mode: "overwrite".to_owned(),
            cursor_field: Vec::new(),
            primary_key: Vec::new(),
            selected: true,
            fields: std::collections::BTreeMap::new(),
        };
        assert!(chosen(&plain, &choice("events", "incremental_append")).is_err());
        let mut with_cursor = choice("events", "incremental_deduped_history");
        with_cursor.cursor_field = Some(vec!["at".to_owned()]);
        let with_cursor_stream = Stream {
            cursor_field: vec!["at".to_owned()],
            ..plain.clone()
        };
        assert!(chosen(&with_cursor_stream, &with_cursor).is_err(), "no key");
        with_cursor.primary_key = Some(vec![vec!["id".to_owned()]]);
        let stream = chosen(&with_cursor_stream, &with_cursor).expect("valid");
        assert_eq!(stream.public_sync_mode(), "incremental_deduped_history");
        assert!(chosen(&plain, &choice("events", "sometimes")).is_err());
    }

    #[test]
    fn patch_changes_named_fields_and_delete_deprecates() {
        let mut w = world();
        let id = w.connections[0].id;
        let before = w.connection(id).expect("exists").clone();
        w.update_connection(
            id,
            ConnectionChange {
                name: Some("Renamed".to_owned()),
                ..ConnectionChange::default()
            },
        )
        .expect("patched");
        let after = w.connection(id).expect("exists");
        assert_eq!(after.name, "Renamed");
        assert_eq!(after.prefix, before.prefix);
        assert_eq!(after.schedule, before.schedule);
        let bad_cron = ConnectionChange {
            schedule: Some(Schedule::Cron {
                cron: "every day".to_owned(),
                timezone: "UTC".to_owned(),
            }),
            ..ConnectionChange::default()
        };
        assert!(matches!(
            w.update_connection(id, bad_cron),
            Err(EditError::Invalid(_))
        ));
        w.delete_connection(id).expect("deleted");
        assert_eq!(
            w.connection(id).expect("kept").status,
            ConnectionStatus::Deprecated
        );
        let unknown = Uuid::from_u128(3);
        assert!(matches!(
            w.delete_connection(unknown),
            Err(EditError::NotFound { .. })
        ));
        assert!(matches!(
            w.update_connection(unknown, ConnectionChange::default()),
            Err(EditError::NotFound { .. })
        ));
    }
}
