//! Names bound to ids once, at each refresh (ARCHITECTURE.md, "Names in
//! grants are bound to ids"): the recorded bindings are read; overrides
//! from `[connections.slugs]` are applied; a connection seen for the first
//! time is given the first free slug of its name and keeps it for good; a
//! workspace name the grants use is bound when exactly one workspace has
//! it. Writes that lose a race to another replica are read back.

use std::collections::{BTreeMap, BTreeSet};

use airlock_store::StoreError;
use airlock_store::bindings::Bindings;

use super::{Catalog, ConnectionInfo, slugify};

/// How many suffixes a new slug tries before giving up until the next refresh.
const MAX_SUFFIX: usize = 1_000;

/// The first slug of `name` that nobody holds: `orders`, else `orders-2`,
/// `orders-3`, ...; never an id-shaped one (a connection named after another
/// one's id must not take that id as its slug).
pub(super) fn free_slug(name: &str, taken: &BTreeSet<&str>) -> Option<String> {
    let base = slugify(name);
    (1..=MAX_SUFFIX)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|s| !taken.contains(s.as_str()) && uuid::Uuid::parse_str(s).is_err())
}

impl Catalog {
    /// Records what this listing binds and returns every binding.
    pub(super) async fn bind(
        &self,
        workspaces: &BTreeMap<String, String>,
        connections: &[ConnectionInfo],
    ) -> Result<Bindings, StoreError> {
        let now = self.clock.now_ms();
        let mut bindings = self.store.bindings().await?;
        let mut changed = false;
        for (id, slug) in &self.slug_overrides {
            if bindings.slugs.get(id) != Some(slug) {
                changed = true;
                if !self.store.override_slug(id, slug, now).await? {
                    tracing::warn!(connection = %id, slug = %slug,
                        "[connections.slugs] names a slug another connection holds; ignored");
                }
            }
        }
        if changed {
            bindings = self.store.bindings().await?;
        }
        let mut sorted: Vec<&ConnectionInfo> = connections.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for c in sorted {
            self.assign_slug(c, &mut bindings, now).await?;
        }
        let wanted = self
            .workspace_names
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut bound_any = false;
        for name in wanted
            .iter()
            .filter(|n| !bindings.workspaces.contains_key(*n))
        {
            let mut having = workspaces.iter().filter(|(_, n)| *n == name);
            match (having.next(), having.next()) {
                (Some((id, _)), None) => {
                    self.store.bind_workspace(name, id, now).await?;
                    tracing::info!(name = %name, workspace = %id, "workspace name in the grants bound");
                    bound_any = true;
                }
                (Some(_), Some(_)) => {
                    tracing::warn!(name = %name,
                        "several workspaces have this name: not bound, grants naming it cover nothing");
                }
                (None, _) => {}
            }
        }
        if bound_any {
            bindings.workspaces = self.store.bindings().await?.workspaces;
        }
        Ok(bindings)
    }

    /// Gives a connection without a slug the first free one of its name.
    async fn assign_slug(
        &self,
        c: &ConnectionInfo,
        bindings: &mut Bindings,
        now: i64,
    ) -> Result<(), StoreError> {
        for _ in 0..3 {
            if bindings.slugs.contains_key(&c.id) {
                return Ok(());
            }
            let taken: BTreeSet<&str> = bindings
                .slugs
                .values()
                .chain(self.slug_overrides.values())
                .map(String::as_str)
                .collect();
            let Some(slug) = free_slug(&c.name, &taken) else {
                tracing::warn!(connection = %c.id, "no free slug for this connection's name");
                return Ok(());
            };
            if self.store.record_slug(&c.id, &slug, now).await? {
                bindings.slugs.insert(c.id.clone(), slug);
                return Ok(());
            }
            // Another replica was first: read what it recorded.
            *bindings = self.store.bindings().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_slug_skips_every_recorded_one_and_ids() {
        let taken = BTreeSet::from(["orders", "orders-2"]);
        assert_eq!(free_slug("Orders", &taken).as_deref(), Some("orders-3"));
        assert_eq!(free_slug("Stripe", &taken).as_deref(), Some("stripe"));
        let id = "0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a40";
        assert_eq!(
            free_slug(id, &BTreeSet::new()).as_deref(),
            Some("0d9e2f4a-6c1b-4f0e-9a3d-2b7c8e5f1a40-2"),
            "a name shaped like an id does not become that id"
        );
    }
}
