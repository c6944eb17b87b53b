//! Durable storage on SQLite (the default) or Postgres (several replicas).
//!
//! One schema, written in the SQL both databases understand, with `$N`
//! placeholders (which sqlx's SQLite driver reads too) and times as unix
//! milliseconds. Where the dialects differ (claiming jobs, the migration
//! lock), [`Backend`] says which one we talk to. Migrations live next to this
//! file, are compiled into the binary and run at start-up.

mod approval_rows;
pub mod approvals;
pub mod audit;
pub mod bindings;
pub mod election;
pub mod feed;
mod finished;
pub mod front;
mod inline;
pub mod jobs;
pub mod keys;
mod params;
pub mod sessions;
pub mod webhooks;
mod write;

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

use airlock_domain::settings::InvalidKey;

pub(crate) use self::write::{WriteTurns, WriteTx, Writer};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What can go wrong with storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported storage url (expected sqlite: or postgres://)")]
    UnsupportedUrl,
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration {version} failed: {source}")]
    Migration {
        version: i64,
        #[source]
        source: sqlx::Error,
    },
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The inline SQLite reader could not read (the pool is asked instead).
    #[error("inline read failed: {0}")]
    Inline(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| is_unavailable_code(&c)) => {
                Self::Unavailable(error)
            }
            other => Self::Database(other),
        }
    }
}

/// SQLSTATEs that say the server went away or is not accepting work, not
/// that the statement is wrong: Postgres shutting down or restarting
/// (`57P01` admin_shutdown, `57P02` crash_shutdown, `57P03`
/// cannot_connect_now), too many connections (`53300`), and connection
/// exceptions (class `08`).
fn is_unavailable_code(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
}

impl StoreError {
    /// True when the database could not be reached (a 503, not a 500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// A migration: its version and its SQL for each backend. Most are
/// written once in the SQL both understand (`migrations/NNNN_*.sql`); where
/// the dialects differ, each has its own (`migrations/{sqlite,postgres}/`).
struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("migrations/sqlite/0001_jobs.sql"),
        postgres: include_str!("migrations/postgres/0001_jobs.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("migrations/0002_webhooks.sql"),
        postgres: include_str!("migrations/0002_webhooks.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("migrations/0003_audit.sql"),
        postgres: include_str!("migrations/0003_audit.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("migrations/0004_queue_index.sql"),
        postgres: include_str!("migrations/0004_queue_index.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("migrations/0005_console_sessions.sql"),
        postgres: include_str!("migrations/0005_console_sessions.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("migrations/0006_dispatch_order.sql"),
        postgres: include_str!("migrations/0006_dispatch_order.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("migrations/0007_sealed_values.sql"),
        postgres: include_str!("migrations/0007_sealed_values.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("migrations/0008_bindings.sql"),
        postgres: include_str!("migrations/0008_bindings.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("migrations/0009_approvals.sql"),
        postgres: include_str!("migrations/0009_approvals.sql"),
    },
    Migration {
        version: 10,
        sqlite: include_str!("migrations/sqlite/0010_approval_jobs.sql"),
        postgres: include_str!("migrations/postgres/0010_approval_jobs.sql"),
    },
    Migration {
        version: 11,
        sqlite: include_str!("migrations/0011_approval_webhooks.sql"),
        postgres: include_str!("migrations/0011_approval_webhooks.sql"),
    },
    Migration {
        version: 12,
        sqlite: include_str!("migrations/0012_job_trace_context.sql"),
        postgres: include_str!("migrations/0012_job_trace_context.sql"),
    },
];

/// The pool and the backend it talks to. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Writers' turns (SQLite only).
    turns: WriteTurns,
    /// The group-commit writer of triggers.
    inserts: jobs::batch::InsertQueue,
    /// Copies of finished jobs, for reads.
    finished: std::sync::Arc<finished::FinishedJobs>,
    /// Job reads without the pool's thread hand-off (SQLite files only).
    inline: Option<std::sync::Arc<inline::InlineReader>>,
}

impl Store {
    /// Connects (creating a SQLite file when missing) and runs migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let mut pool = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
            .max_connections(match backend {
                // One writer at a time in SQLite anyway; a few readers help.
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            });
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    // Checkpoints every 64 MB of log rather than 4 MB: a
                    // burst of triggers rewrites the same index pages many
                    // times, and each checkpoint copies them back and
                    // flushes the file again.
                    conn.execute("PRAGMA wal_autocheckpoint = 16384").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        let inline = match backend {
            Backend::Sqlite => inline::InlineReader::for_url(&url).map(std::sync::Arc::new),
            Backend::Postgres => None,
        };
        let turns = WriteTurns::for_backend(backend);
        let store = Self {
            inserts: jobs::batch::InsertQueue::start(pool.clone(), turns.clone()),
            turns,
            finished: std::sync::Arc::default(),
            inline,
            pool,
            backend,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The backend behind the pool.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for tests that reach under the store (tampering with the
    /// audit trail, closing the pool). Airlock's own SQL is all in this
    /// module.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes, begun on this process's turn to write
    /// (see [`WriteTurns`]): the only way this module begins one.
    pub(crate) async fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        self.turns.begin(&self.pool).await.map_err(StoreError::from)
    }

    /// A connection for one writing statement, on this process's turn to
    /// write: the only way this module writes outside a transaction.
    pub(crate) async fn writer(&self) -> Result<Writer<'_>, StoreError> {
        self.turns
            .writer(&self.pool)
            .await
            .map_err(StoreError::from)
    }

    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Applies the migrations not applied yet, under a lock so that several
    /// replicas starting together apply each one once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        match self.backend {
            // An exclusive transaction serializes SQLite writers.
            Backend::Sqlite => {
                conn.execute("BEGIN IMMEDIATE").await?;
            }
            Backend::Postgres => {
                conn.execute("BEGIN").await?;
                conn.execute("SELECT pg_advisory_xact_lock(7242010001)")
                    .await?;
            }
        }
        let result = async {
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .await?;
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
                .fetch_all(&mut *conn)
                .await?;
            for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
                let sql = match self.backend {
                    Backend::Sqlite => migration.sqlite,
                    Backend::Postgres => migration.postgres,
                };
                conn.execute(sql).await.map_err(|source| StoreError::Migration {
                    version: migration.version,
                    source,
                })?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(migration.version)
                    .bind(now_ms())
                    .execute(&mut *conn)
                    .await?;
                tracing::info!(version = migration.version, "applied migration");
            }
            Ok::<_, StoreError>(())
        }
        .await;
        match result {
            Ok(()) => {
                conn.execute("COMMIT").await?;
                Ok(())
            }
            Err(error) => {
                // The connection goes back to the pool: leave no transaction open.
                let _rolled_back = conn.execute("ROLLBACK").await;
                Err(error)
            }
        }
    }
}

/// The current time as unix milliseconds, the unit every stored time uses.
pub fn now_ms() -> i64 {
    airlock_domain::clock::wall_ms()
}

/// Where jobs, idempotency keys and the audit trail are kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` (created when missing) or `postgres://user@host/db`.
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://airlock.db".to_owned(),
        }
    }
}

impl StorageConfig {
    /// True for Postgres, which several replicas may share (SQLite is one
    /// process's file).
    pub fn is_shared(&self) -> bool {
        !self.url.starts_with("sqlite:")
    }

    /// Checks that the URL names a backend Airlock has.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let url = &self.url;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(InvalidKey::new(
                "storage.url",
                format!("`{url}` is neither sqlite:PATH nor postgres://..."),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_going_away_is_unavailable_not_a_bug() {
        for code in ["57P01", "57P02", "57P03", "53300", "08006", "08001"] {
            assert!(super::is_unavailable_code(code), "{code}");
        }
        for code in ["23505", "42P01", "40001", "55000"] {
            assert!(!super::is_unavailable_code(code), "{code}");
        }
    }
}
