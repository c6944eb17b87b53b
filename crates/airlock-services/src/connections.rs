//! The connection catalog: Airbyte's connections as Airlock shows them,
//! with slugs, workspace names and tags, cached and refreshed in the
//! background so that listing connections does not cost an Airbyte call.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use airbyte_client::{AirbyteClient, ListParams};
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
}

impl ConnectionInfo {
    /// The policy's view of this connection.
    pub fn resource(&self) -> Resource {
        Resource::Connection(ConnectionResource {
            id: self.id.clone(),
            slug: self.slug.clone(),
            workspace_id: self.workspace_id.clone(),
            workspace_name: Some(self.workspace_name.clone()),
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
    /// When it was fetched (unix ms, the injected clock); 0 before the
    /// first fetch.
    pub fetched_at: i64,
    /// When the listing behind it began (monotonic: it orders listings and
    /// times the miss cooldown, whatever the wall clock does); `None` for a
    /// snapshot no listing made.
    started_at: Option<Instant>,
}

impl Snapshot {
    /// Builds the lookup tables; `slug_overrides` maps connection ids to slugs.
    pub fn new(
        mut connections: Vec<ConnectionInfo>,
        workspaces: BTreeMap<String, String>,
        slug_overrides: &BTreeMap<String, String>,
        fetched_at: i64,
    ) -> Self {
        connections.sort_by(|a, b| a.id.cmp(&b.id));
        assign_slugs(&mut connections, slug_overrides);
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

/// Gives each connection a unique slug: configured ones first, then names,
/// with `-2`, `-3` for repeats in id order (stable across refreshes).
fn assign_slugs(connections: &mut [ConnectionInfo], overrides: &BTreeMap<String, String>) {
    let mut taken: HashMap<String, ()> = overrides.values().map(|s| (s.clone(), ())).collect();
    for connection in connections.iter_mut() {
        if let Some(slug) = overrides.get(&connection.id) {
            connection.slug = slug.clone();
            continue;
        }
        let base = slugify(&connection.name);
        let mut slug = base.clone();
        let mut n = 2;
        while taken.contains_key(&slug) {
            slug = format!("{base}-{n}");
            n += 1;
        }
        taken.insert(slug.clone(), ());
        connection.slug = slug;
    }
}

/// The catalog: the latest snapshot, and how to refresh it.
#[derive(Debug)]
pub struct Catalog {
    airbyte: AirbyteClient,
    slug_overrides: BTreeMap<String, String>,
    current: RwLock<Arc<Snapshot>>,
    refresh_lock: tokio::sync::Mutex<()>,
    clock: SharedClock,
}

impl Catalog {
    /// An empty catalog; call [`Catalog::refresh`] before use.
    pub fn new(
        airbyte: AirbyteClient,
        slug_overrides: BTreeMap<String, String>,
        clock: SharedClock,
    ) -> Self {
        Self {
            airbyte,
            slug_overrides,
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

    /// Fetches workspaces and connections from Airbyte and swaps the snapshot.
    /// Concurrent callers wait for one fetch instead of each doing their own.
    pub async fn refresh(&self) -> Result<Arc<Snapshot>, airbyte_client::Error> {
        self.refresh_started_after(Instant::now()).await
    }

    /// Like [`Catalog::refresh`], but content with a listing that began at
    /// or after `since`: a listing already under way when something new was
    /// asked for may not show it.
    async fn refresh_started_after(
        &self,
        since: Instant,
    ) -> Result<Arc<Snapshot>, airbyte_client::Error> {
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
                }
            })
            .collect();
        let mut snapshot = Snapshot::new(
            connections,
            workspaces,
            &self.slug_overrides,
            self.clock.now_ms(),
        );
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
    pub async fn resolve(
        &self,
        reference: &str,
    ) -> Result<Option<ConnectionInfo>, airbyte_client::Error> {
        if let Some(found) = self.snapshot().resolve(reference) {
            return Ok(Some(found.clone()));
        }
        let snapshot = self.refresh_after_miss().await?;
        Ok(snapshot.resolve(reference).cloned())
    }

    /// A listing that began after now, for something the snapshot does
    /// not know (a reference, a list item naming an unknown connection).
    /// Misses cannot amplify load on Airbyte: a miss waits until the last
    /// listing is a cooldown old, and concurrent misses share one listing,
    /// so there is at most one per cooldown, whoever asks.
    pub async fn refresh_after_miss(&self) -> Result<Arc<Snapshot>, airbyte_client::Error> {
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
        }
    }

    #[test]
    fn slugs_are_readable_and_unique() {
        assert_eq!(slugify("Postgres → Snowflake"), "postgres-snowflake");
        assert_eq!(slugify("  Stripe__to  BigQuery!! "), "stripe-to-bigquery");
        assert_eq!(slugify("→"), "connection");
        let overrides = BTreeMap::from([("c".to_owned(), "orders".to_owned())]);
        let snapshot = Snapshot::new(
            vec![
                info("b", "Orders"),
                info("a", "Orders"),
                info("c", "Anything"),
            ],
            BTreeMap::new(),
            &overrides,
            1,
        );
        let slugs: Vec<(&str, &str)> = snapshot
            .all()
            .iter()
            .map(|c| (c.id.as_str(), c.slug.as_str()))
            .collect();
        assert_eq!(
            slugs,
            [("a", "orders-2"), ("b", "orders-3"), ("c", "orders")]
        );
        assert_eq!(snapshot.resolve("orders").map(|c| c.id.as_str()), Some("c"));
        assert_eq!(snapshot.resolve("A").map(|c| c.id.as_str()), Some("a"));
        assert!(snapshot.resolve("missing").is_none());
    }
}
