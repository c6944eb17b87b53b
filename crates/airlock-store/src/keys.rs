//! Values Airlock makes once and every replica shares, kept sealed (the
//! front's signing key, encrypted by `airlock_domain::secret::sealed`): the
//! store only keeps the text, and never sees what it opens to.

use super::{Store, StoreError};

impl Store {
    /// The sealed value stored under `name`, if any.
    pub async fn sealed_value(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM sealed_values WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores `sealed` under `name` unless a value is there already (another
    /// replica starting at the same time stored its own first), and returns
    /// the value that is stored now: every replica ends up with the same.
    pub async fn store_sealed_value_once(
        &self,
        name: &str,
        sealed: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        {
            let mut conn = self.writer().await?;
            sqlx::query(
                "INSERT INTO sealed_values (name, sealed, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(sealed)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        self.sealed_value(name).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("the sealed value {name} vanished once stored"))
        })
    }
}
