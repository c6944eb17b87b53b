//! Reads of one job row on SQLite, done on the calling thread.
//!
//! sqlx runs every SQLite connection on a thread of its own and hands each
//! statement over, and each row back, through channels: two thread wake-ups
//! per query. For `GET /v1/jobs/{id}`, the read every status poller makes,
//! those wake-ups cost far more than the query (a primary-key lookup of a
//! few microseconds); the profile is in BENCHMARKS.md. This reader opens its
//! own read-only connections to the same file and runs that one statement
//! inline.
//!
//! It never waits: the connections have no busy timeout, and any failure
//! (`SQLITE_BUSY` while another process recovers the WAL, a file that went
//! away, a row that does not decode) makes the caller fall back to the
//! pool, which retries and reports errors the usual way. In WAL mode a
//! reader never waits for writers, and each statement sees every commit
//! made before it began, so a job is read as fresh as through the pool.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{OpenFlags, OptionalExtension};

use super::StoreError;
use super::jobs::{COLUMN_NAMES, Columns, JOB_BY_ID, decode};
use airlock_domain::jobs::Job;

/// Idle connections kept; more are opened when more threads read at once,
/// and closed after use.
const IDLE: usize = 4;

/// Read-only connections to the store's SQLite file.
#[derive(Debug)]
pub(super) struct InlineReader {
    path: PathBuf,
    idle: Mutex<Vec<rusqlite::Connection>>,
}

impl InlineReader {
    /// A reader of the database at `url`, or `None` for an in-memory
    /// database (another connection would see another database).
    pub(super) fn for_url(url: &str) -> Option<Self> {
        if url.contains(":memory:") || url.contains("mode=memory") {
            return None;
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
        Some(Self {
            path: options.get_filename().to_path_buf(),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The job with `id`: `Ok(None)` when there is none, `Err` when this
    /// reader cannot tell (the caller asks the pool instead).
    pub(super) fn get_job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let conn = match self.take() {
            Some(conn) => conn,
            None => self.open().map_err(unavailable)?,
        };
        let result = (|| {
            let mut statement = conn.prepare_cached(&JOB_BY_ID).map_err(unavailable)?;
            statement
                .query_row([id], |row| Ok(decode(&Positional(row))))
                .optional()
                .map_err(unavailable)?
                .transpose()
        })();
        if result.is_ok() {
            self.give_back(conn);
        }
        result
    }

    fn take(&self) -> Option<rusqlite::Connection> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
    }

    fn give_back(&self, conn: rusqlite::Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Never wait on a lock: the caller falls back to the pool instead.
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Inline(error.to_string())
}

/// A row of [`super::jobs::COLUMNS`], its columns found by position.
struct Positional<'a, 'b>(&'a rusqlite::Row<'b>);

impl Positional<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, name: &str) -> Result<T, StoreError> {
        let index = COLUMN_NAMES
            .iter()
            .position(|column| *column == name)
            .ok_or_else(|| StoreError::Inline(format!("no column {name}")))?;
        self.0.get(index).map_err(unavailable)
    }
}

impl Columns for Positional<'_, '_> {
    fn text(&self, name: &str) -> Result<String, StoreError> {
        self.get(name)
    }

    fn opt_text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get(name)
    }

    fn int(&self, name: &str) -> Result<i64, StoreError> {
        self.get(name)
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::InlineReader;
    use crate::Store;
    use crate::jobs::Inserted;
    use airlock_domain::jobs::{Channel, JobId, JobType, NewJob};

    /// The store's job reads on a SQLite file really are inline (a reader
    /// that always failed would go unnoticed: the pool answers the same).
    #[tokio::test]
    async fn a_sqlite_file_store_reads_jobs_inline() {
        let dir = std::env::temp_dir().join(format!("airlock-inline-{}", JobId::generate()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let url = format!("sqlite://{}", dir.join("a.db").display());
        let store = Store::connect(&url).await.expect("store");
        let new = NewJob {
            connection_id: "c1".to_owned(),
            workspace_id: "w1".to_owned(),
            job_type: JobType::Sync,
            max_attempts: 3,
            requested_by: "alice".to_owned(),
            requester: serde_json::json!({"sub": "alice"}),
            channel: Channel::Api,
            retry_of: None,
            trace_parent: None,
        };
        let Inserted::New { job, .. } = store
            .insert_job(&new, None, 1_000, &airlock_domain::audit::Entry::default())
            .await
            .expect("insert")
        else {
            panic!("a new job");
        };
        let reader = store.inline.as_ref().expect("a file has an inline reader");
        assert_eq!(
            reader.get_job(job.id.as_str()).expect("inline read"),
            Some(job)
        );
        let missing = JobId::generate();
        assert_eq!(reader.get_job(missing.as_str()).expect("inline read"), None);
        drop(store);
        let _ignored = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn column_names_are_the_columns_read() {
        let columns: Vec<&str> = super::super::jobs::COLUMNS.split(", ").collect();
        assert_eq!(columns, super::COLUMN_NAMES);
    }

    #[test]
    fn memory_databases_have_no_inline_reader() {
        assert!(InlineReader::for_url("sqlite::memory:").is_none());
        assert!(InlineReader::for_url("sqlite://file.db?mode=memory").is_none());
        assert!(InlineReader::for_url("sqlite://airlock.db").is_some());
        assert!(InlineReader::for_url("sqlite:airlock.db?mode=rwc").is_some());
    }
}
