//! The connection catalog: Airbyte's connections as Airlock shows them,
//! with slugs, workspace names and tags, cached and refreshed in the
//! background so that listing connections does not cost an Airbyte call.
//!
//! Each refresh also binds names to ids once (`bind`): a connection seen for
//! the first time gets its slug for good, and a workspace name the grants use
//! is bound to the one workspace that has it (ARCHITECTURE.md, "Names in
//! grants are bound to ids"). The resources the policy decides on carry
//! those bindings, never Airbyte's current names.

mod bind;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use airbyte_client::{AirbyteClient, ListParams};
use airlock_store::bindings::Bindings;
use airlock_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::queue::tracker::KnownConnections;
use airlock_domain::clock::SharedClock;
use airlock_domain::policy::{ConnectionResource, Resource};
use airlock_domain::settings::{self, InvalidKey};

/// How soon after a fetch an unknown connection reference may cause
/// another one.
const MISS_REFRESH_COOLDOWN: Duration = Duration::from_secs(1);

/// One connection as Airlock knows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionInfo {
    /// Airbyte's connection id.
    pub id: String,
    /// A short unique name for URLs, derived from the name or set in config.
    pub slug: String,
    pub name: String,
    pub workspace_id: String,
    pub workspace_name: String,
    /// Names of its Airbyte tags.
    pub tags: Vec<String>,
    pub status: String,
    /// Airbyte's schedule object, as it sent it.
    pub schedule: serde_json::Value,
    /// The grant names bound to its workspace (what the policy matches).
    #[serde(skip)]
    pub workspace_bound_names: Vec<String>,
}

/// Why the catalog could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Airbyte did not list its workspaces or connections.
    #[error(transparent)]
    Airbyte(#[from] airbyte_client::Error),
    /// The bindings could not be read or recorded.
    #[error("cannot read or record the name bindings: {0}")]
    Store(#[from] StoreError),
}

impl ConnectionInfo {
    /// The policy's view of this connection.
    pub fn resource(&self) -> Resource {
        Resource::Connection(ConnectionResource {
            id: self.id.clone(),
            slug: self.slug.clone(),
            workspace_id: self.workspace_id.clone(),
            workspace_names: self.workspace_bound_names.clone(),
            tags: self.tags.clone(),
        })
    }
}

/// A consistent view of the catalog at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    connections: Vec<ConnectionInfo>,
    by_id: HashMap<String, usize>,
    by_slug: HashMap<String, usize>,
    workspaces: BTreeMap<String, String>,
    /// Workspace id to the grant names bound to it.
    bound_names: BTreeMap<String, Vec<String>>,
    /// When it was fetched (unix ms, the injected clock); 0 before the
    /// first fetch.
    pub fetched_at: i64,
    /// When the listing behind it began (monotonic: it orders listings and
    /// times the miss cooldown, whatever the wall clock does); `None` for a
    /// snapshot no listing made.
    started_at: Option<Instant>,
}

impl Snapshot {
    /// Builds the lookup tables from the connections, the workspaces (id to
    /// Airbyte's name) and the bindings recorded for them: each connection
    /// takes its recorded slug (its id when it has none, which only a store
    /// failure leaves), each workspace the names bound to it.
    pub fn new(
        mut connections: Vec<ConnectionInfo>,
        workspaces: BTreeMap<String, String>,
        bindings: &Bindings,
        fetched_at: i64,
    ) -> Self {
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        let mut bound_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, id) in &bindings.workspaces {
            bound_names
                .entry(id.clone())
                .or_default()
                .push(name.clone());
        }
        for c in &mut connections {
            c.slug = bindings
                .slugs
                .get(&c.id)
                .cloned()
                .unwrap_or_else(|| c.id.clone());
            c.workspace_bound_names = bound_names
                .get(&c.workspace_id)
                .cloned()
                .unwrap_or_default();
        }
        let by_id = connections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i))
            .collect();
        let by_slug = connections
            .iter()
            .enumerate()
            .map(|(i, c)| (c.slug.clone(), i))
            .collect();
        Self {
            connections,
            by_id,
            by_slug,
            workspaces,
            bound_names,
            fetched_at,
            started_at: None,
        }
    }

    /// Every connection, ordered by id.
    pub fn all(&self) -> &[ConnectionInfo] {
        &self.connections
    }

    /// A connection by Airbyte id or by slug.
    pub fn resolve(&self, reference: &str) -> Option<&ConnectionInfo> {
        let lower = reference.to_ascii_lowercase();
        self.by_id
            .get(&lower)
            .or_else(|| self.by_slug.get(&lower))
            .map(|&i| &self.connections[i])
    }

    /// A workspace's name by id.
    pub fn workspace_name(&self, id: &str) -> Option<&str> {
        self.workspaces.get(id).map(String::as_str)
    }

    /// Every workspace: id to name.
    pub fn workspaces(&self) -> &BTreeMap<String, String> {
        &self.workspaces
    }

    /// The grant names bound to a workspace (what the policy matches).
    pub fn bound_names(&self, workspace_id: &str) -> Vec<String> {
        self.bound_names
            .get(workspace_id)
            .cloned()
            .unwrap_or_default()
    }
}

/// Lowercase words joined by `-`: "Postgres → Snowflake" becomes `postgres-snowflake`.
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        "connection".to_owned()
    } else {
        slug
    }
}

/// The catalog: the latest snapshot, and how to refresh it.
#[derive(Debug)]
pub struct Catalog {
    airbyte: AirbyteClient,
    store: Store,
    slug_overrides: BTreeMap<String, String>,
    /// The workspace names the policy's grants use, to bind.
    workspace_names: RwLock<BTreeSet<String>>,
    current: RwLock<Arc<Snapshot>>,
    refresh_lock: tokio::sync::Mutex<()>,
    clock: SharedClock,
}

impl Catalog {
    /// An empty catalog; call [`Catalog::refresh`] before use. Bindings
    /// are kept in `store`.
    pub fn new(
        airbyte: AirbyteClient,
        store: Store,
        slug_overrides: BTreeMap<String, String>,
        clock: SharedClock,
    ) -> Self {
        Self {
            airbyte,
            store,
            slug_overrides,
            workspace_names: RwLock::new(BTreeSet::new()),
            clock,
            current: RwLock::new(Arc::new(Snapshot::default())),
            refresh_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The workspace names the grants use (`Policy::workspace_names`): each
    /// is bound at the first refresh where exactly one workspace has it.
    /// Set at start and on every policy reload.
    pub fn set_workspace_names(&self, names: BTreeSet<String>) {
        *self
            .workspace_names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = names;
    }

    /// Fetches workspaces and connections from Airbyte and swaps the snapshot.
    /// Concurrent callers wait for one fetch instead of each doing their own.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, CatalogError> {
        self.refresh_started_after(Instant::now()).await
    }

    /// Like [`Catalog::refresh`], but content with a listing that began at
    /// or after `since`: a listing already under way when something new was
    /// asked for may not show it.
    async fn refresh_started_after(&self, since: Instant) -> Result<Arc<Snapshot>, CatalogError> {
        let _guard = self.refresh_lock.lock().await;
        let current = self.snapshot();
        if current.started_at.is_some_and(|started| started >= since) {
            return Ok(current);
        }
        let started_at = Instant::now();
        let params = ListParams {
            limit: Some(100),
            ..ListParams::default()
        };
        let mut workspaces = BTreeMap::new();
        let mut offset = 0;
        loop {
            let page = self
                .airbyte
                .list_workspaces(&ListParams {
                    offset: Some(offset),
                    ..params.clone()
                })
                .await?;
            let count = page.data.len();
            workspaces.extend(
                page.data
                    .into_iter()
                    .map(|w| (w.workspace_id.to_string(), w.name)),
            );
            if count < 100 {
                break;
            }
            offset += 100;
        }
        let connections = self
            .airbyte
            .list_all_connections(&params)
            .await?
            .into_iter()
            .map(|c| {
                let workspace_id = c.workspace_id.to_string();
                ConnectionInfo {
                    id: c.connection_id.to_string(),
                    slug: String::new(),
                    name: c.name,
                    workspace_name: workspaces.get(&workspace_id).cloned().unwrap_or_default(),
                    workspace_id,
                    tags: c.tags.into_iter().map(|t| t.name).collect(),
                    status: c.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
                    schedule: c
                        .schedule
                        .and_then(|s| serde_json::to_value(s).ok())
                        .unwrap_or(serde_json::Value::Null),
                    workspace_bound_names: Vec::new(),
                }
            })
            .collect::<Vec<_>>();
        let bindings = self.bind(&workspaces, &connections).await?;
        let mut snapshot = Snapshot::new(connections, workspaces, &bindings, self.clock.now_ms());
        snapshot.started_at = Some(started_at);
        let snapshot = Arc::new(snapshot);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&snapshot);
        Ok(snapshot)
    }

    /// A connection by id or slug; refreshes once when it is unknown (a
    /// connection created in Airbyte a moment ago).
    pub async fn resolve(&self, reference: &str) -> Result<Option<ConnectionInfo>, CatalogError> {
        if let Some(found) = self.snapshot().resolve(reference) {
            return Ok(Some(found.clone()));
        }
        // Boxed: the listing's future is large and a miss is rare, while
        // every request that resolves a connection would carry it.
        let snapshot = Box::pin(self.refresh_after_miss()).await?;
        Ok(snapshot.resolve(reference).cloned())
    }

    /// A listing that began after now, for something the snapshot does
    /// not know (a reference, a list item naming an unknown connection).
    /// Misses cannot amplify load on Airbyte: a miss waits until the last
    /// listing is a cooldown old, and concurrent misses share one listing,
    /// so there is at most one per cooldown, whoever asks.
    pub async fn refresh_after_miss(&self) -> Result<Arc<Snapshot>, CatalogError> {
        let missed_at = Instant::now();
        if let Some(started) = self.snapshot().started_at {
            let age = missed_at.duration_since(started);
            if age < MISS_REFRESH_COOLDOWN {
                tokio::time::sleep(MISS_REFRESH_COOLDOWN - age).await;
            }
        }
        self.refresh_started_after(missed_at).await
    }

    /// Refreshes every `every` until `stop` is notified; failures keep the
    /// last good snapshot.
    pub async fn run(self: Arc<Self>, every: Duration, stop: Arc<Notify>) {
        loop {
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(error = %error, "connection catalog refresh failed; keeping the last one");
            }
        }
    }
}

impl KnownConnections for Catalog {
    fn workspace_of(&self, connection_id: &str) -> Option<String> {
        self.snapshot()
            .resolve(connection_id)
            .map(|c| c.workspace_id.clone())
    }

    fn workspaces(&self) -> Vec<String> {
        let snapshot = self.snapshot();
        let mut ids: Vec<String> = snapshot
            .all()
            .iter()
            .map(|c| c.workspace_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// How Airlock presents Airbyte's connections.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// Slugs set by hand, by Airbyte connection id (others derive from names).
    pub slugs: BTreeMap<String, String>,
    /// How often the connection list is fetched again from Airbyte, in seconds.
    pub refresh_secs: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            slugs: BTreeMap::new(),
            refresh_secs: 30,
        }
    }
}

impl ConnectionsConfig {
    /// Checks the slugs and the refresh period; errors name the key.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        for (id, slug) in &self.slugs {
            if slug.is_empty()
                || !slug
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(InvalidKey::new(
                    format!("connections.slugs.{id}"),
                    "a slug is lowercase letters, digits and `-`",
                ));
            }
            if uuid::Uuid::parse_str(slug).is_ok() {
                return Err(InvalidKey::new(
                    format!("connections.slugs.{id}"),
                    "a slug cannot look like a connection id",
                ));
            }
        }
        settings::at_least_one_sec("connections.refresh_secs", self.refresh_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, name: &str) -> ConnectionInfo {
        ConnectionInfo {
            id: id.to_owned(),
            slug: String::new(),
            name: name.to_owned(),
            workspace_id: "w".to_owned(),
            workspace_name: "W".to_owned(),
            tags: Vec::new(),
            status: "active".to_owned(),
            schedule: serde_json::Value::Null,
            workspace_bound_names: Vec::new(),
        }
    }

    #[test]
    fn slugs_are_readable_and_come_from_the_bindings() {
        assert_eq!(slugify("Postgres → Snowflake"), "postgres-snowflake");
        assert_eq!(slugify("  Stripe__to  BigQuery!! "), "stripe-to-bigquery");
        assert_eq!(slugify("→"), "connection");
        let bindings = Bindings {
            slugs: BTreeMap::from([
                ("a".to_owned(), "orders-2".to_owned()),
                ("c".to_owned(), "orders".to_owned()),
            ]),
            workspaces: BTreeMap::from([("analytics".to_owned(), "w".to_owned())]),
        };
        let snapshot = Snapshot::new(
            vec![
                info("b", "Orders"),
                info("a", "Orders"),
                info("c", "Anything"),
            ],
            BTreeMap::new(),
            &bindings,
            1,
        );
        let slugs: Vec<(&str, &str)> = snapshot
            .all()
            .iter()
            .map(|c| (c.id.as_str(), c.slug.as_str()))
            .collect();
        assert_eq!(
            slugs,
            [("a", "orders-2"), ("b", "b"), ("c", "orders")],
            "a connection without a recorded slug is known by its id only"
        );
        assert_eq!(snapshot.resolve("orders").map(|c| c.id.as_str()), Some("c"));
        assert_eq!(snapshot.resolve("A").map(|c| c.id.as_str()), Some("a"));
        assert!(snapshot.resolve("missing").is_none());
        assert_eq!(snapshot.bound_names("w"), vec!["analytics".to_owned()]);
        let Resource::Connection(resource) = snapshot.all()[0].resource() else {
            panic!("a connection");
        };
        assert_eq!(resource.workspace_names, vec!["analytics".to_owned()]);
    }
}
