//! Leader election among replicas sharing one Postgres: work that must run
//! once (polling Airbyte) runs on the replica holding a session-level
//! advisory lock. If that replica dies, its connection closes, Postgres
//! releases the lock and another replica takes over on its next try.
//! On SQLite there is one process, which always leads.

use sqlx::{AnyConnection, Connection};

use super::{Backend, Store, StoreError};

/// Held while this replica leads; dropping it gives the lead up.
#[derive(Debug)]
pub struct Leadership {
    /// The connection holding the advisory lock (Postgres only).
    connection: Option<AnyConnection>,
}

impl Leadership {
    /// Whether the lead is still held (the lock's connection still answers).
    ///
    /// A ping that does not answer within a few seconds counts as lost:
    /// the lead is given up (the connection is closed, which releases the
    /// lock once Postgres notices), rather than stalling the tracker.
    pub async fn still_leading(&mut self) -> bool {
        let Some(connection) = &mut self.connection else {
            return true;
        };
        let alive = matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), connection.ping()).await,
            Ok(Ok(()))
        );
        if !alive {
            self.connection = None;
        }
        alive
    }
}

/// Stable numbers for the advisory locks of each singleton task.
fn lock_key(name: &str) -> i64 {
    // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

impl Store {
    /// Tries to become the leader for `name`; `None` when another replica leads.
    pub async fn try_lead(&self, name: &str) -> Result<Option<Leadership>, StoreError> {
        match self.backend {
            Backend::Sqlite => Ok(Some(Leadership { connection: None })),
            Backend::Postgres => {
                let mut connection = self.pool.acquire().await?;
                let won: bool = sqlx::query_scalar::<_, i64>(
                    "SELECT CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END",
                )
                .bind(lock_key(name))
                .fetch_one(&mut *connection)
                .await?
                    == 1;
                if won {
                    // The lock lives as long as this session: out of the pool.
                    Ok(Some(Leadership {
                        connection: Some(connection.detach()),
                    }))
                } else {
                    // A failed try holds nothing: the connection goes back to
                    // the pool rather than a new one being opened every try.
                    Ok(None)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(super::lock_key("tracker"), super::lock_key("tracker"));
        assert_ne!(super::lock_key("tracker"), super::lock_key("webhooks"));
    }
}
