//! Names bound to Airbyte ids once: connection slugs and workspace names in
//! grants. Rows are only ever added (a slug override replaces its own
//! connection's slug); an insert that loses a race to another replica does
//! nothing, and the caller reads the winner back.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Store, StoreError};

/// Every binding recorded so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings {
    /// Connection id to its slug.
    pub slugs: BTreeMap<String, String>,
    /// Workspace name (as grants write it) to workspace id.
    pub workspaces: BTreeMap<String, String>,
}

impl Store {
    /// Reads every binding.
    pub async fn bindings(&self) -> Result<Bindings, StoreError> {
        let mut bindings = Bindings::default();
        for row in sqlx::query("SELECT connection_id, slug FROM connection_slugs")
            .fetch_all(&self.pool)
            .await?
        {
            bindings
                .slugs
                .insert(row.try_get("connection_id")?, row.try_get("slug")?);
        }
        for row in sqlx::query("SELECT name, workspace_id FROM workspace_bindings")
            .fetch_all(&self.pool)
            .await?
        {
            bindings
                .workspaces
                .insert(row.try_get("name")?, row.try_get("workspace_id")?);
        }
        Ok(bindings)
    }

    /// Records a connection's first slug; false when the connection already
    /// has one or the slug is taken (read them back).
    pub async fn record_slug(
        &self,
        connection_id: &str,
        slug: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer().await?;
        let inserted = sqlx::query(
            "INSERT INTO connection_slugs (connection_id, slug, assigned_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(connection_id)
        .bind(slug)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Gives a connection the slug an administrator set for it; false (and
    /// nothing changed) when another connection holds that slug.
    pub async fn override_slug(
        &self,
        connection_id: &str,
        slug: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT connection_id FROM connection_slugs WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&mut *tx)
                .await?;
        if holder.as_deref().is_some_and(|h| h != connection_id) {
            tx.commit().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM connection_slugs WHERE connection_id = $1")
            .bind(connection_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO connection_slugs (connection_id, slug, assigned_at) VALUES ($1, $2, $3)",
        )
        .bind(connection_id)
        .bind(slug)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Binds a workspace name to an id, unless it is bound already.
    pub async fn bind_workspace(
        &self,
        name: &str,
        workspace_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        sqlx::query(
            "INSERT INTO workspace_bindings (name, workspace_id, bound_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(workspace_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
