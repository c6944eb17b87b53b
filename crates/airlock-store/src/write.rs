//! Writing on SQLite takes turns: [`WriteTx`] (a transaction) and
//! [`Writer`] (one statement) hold this process's turn to write for as long
//! as they live, so no write can forget it.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::Backend;

/// Whose turn it is to write, on SQLite.
///
/// SQLite lets one connection write at a time. A connection that finds the
/// lock taken waits in SQLite's busy handler, which sleeps 1, 2, 5, 10 ...
/// up to 100 ms between looks: under load the lock sat idle while every
/// writer slept, and triggers waited up to a second. This process's writers
/// take turns here instead, in the order they came, and find the lock free
/// when their turn comes; only another process writing the same file still
/// meets the busy handler. On Postgres there are no turns.
///
/// A turn is held by one write (a statement or a transaction) and by
/// nothing that waits for another write: turns are not re-entrant.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteTurns(Option<Arc<Mutex<()>>>);

impl WriteTurns {
    pub(super) fn for_backend(backend: Backend) -> Self {
        Self((backend == Backend::Sqlite).then(Arc::default))
    }

    /// The longest a writer waits for its turn. Writes take milliseconds;
    /// a wait this long means a turn is held by something that waits for
    /// another one (a bug), and the writer goes ahead without a turn, as
    /// writers did before turns, rather than wait forever.
    const PATIENCE: Duration = Duration::from_secs(30);

    /// Waits for this writer's turn; the turn ends when the guard drops.
    async fn take(&self) -> Option<MutexGuard<'_, ()>> {
        let turns = self.0.as_ref()?;
        match tokio::time::timeout(Self::PATIENCE, turns.lock()).await {
            Ok(turn) => Some(turn),
            Err(_) => {
                tracing::error!(
                    waited_secs = Self::PATIENCE.as_secs(),
                    "no turn to write came; writing without one"
                );
                None
            }
        }
    }

    /// Begins a transaction on this writer's turn.
    pub(crate) async fn begin(&self, pool: &AnyPool) -> Result<WriteTx<'_>, sqlx::Error> {
        let turn = self.take().await;
        let tx = pool.begin().await?;
        Ok(WriteTx { tx, _turn: turn })
    }

    /// A connection for one statement, on this writer's turn.
    pub(crate) async fn writer(&self, pool: &AnyPool) -> Result<Writer<'_>, sqlx::Error> {
        let turn = self.take().await;
        let conn = pool.acquire().await?;
        Ok(Writer { conn, _turn: turn })
    }
}

/// A transaction that writes, holding this process's turn to write until it
/// is committed or dropped (rolled back). Derefs to the connection, for
/// `.execute(&mut *tx)`.
#[derive(Debug)]
pub(crate) struct WriteTx<'a> {
    // Fields drop in order: the transaction ends before the turn does.
    tx: Transaction<'static, Any>,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl WriteTx<'_> {
    /// Commits, then gives the turn to the next writer.
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    /// Rolls back, then gives the turn to the next writer.
    pub(crate) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTx<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

/// A connection for one writing statement, holding this process's turn to
/// write until it is dropped.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    conn: PoolConnection<Any>,
    _turn: Option<MutexGuard<'a, ()>>,
}

impl Deref for Writer<'_> {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}
