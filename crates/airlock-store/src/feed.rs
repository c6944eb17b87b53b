//! What live views read: the timeline of every job in order (the
//! caller-scoped event stream follows it) and the newest job of each
//! connection (the connection list's last job).

use sqlx::{AssertSqlSafe, Row};

use super::jobs::{COLUMNS, JobEvent, decode};
use super::{Store, StoreError};
use airlock_domain::jobs::model::{Job, JobId};

/// Binds per query when many connections are asked about at once.
const CHUNK: usize = 500;

impl Store {
    /// The newest entry of the whole timeline (0 when it is empty): where a
    /// stream that starts now begins.
    pub async fn latest_event_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM job_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Up to `limit` timeline entries of any job after `after_seq`, oldest
    /// first, each with its job id.
    pub async fn events_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(JobId, JobEvent)>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, job_id, state, at, detail FROM job_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let job_id: String = row.try_get("job_id")?;
                Ok((
                    job_id.parse().map_err(StoreError::Corrupt)?,
                    super::jobs::decode_event(row)?,
                ))
            })
            .collect()
    }

    /// The newest job of each of `connection_ids` that has one (ids are
    /// time-ordered, so the greatest id is the newest job).
    pub async fn latest_jobs_of(&self, connection_ids: &[String]) -> Result<Vec<Job>, StoreError> {
        let mut jobs = Vec::new();
        for chunk in connection_ids.chunks(CHUNK) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {COLUMNS} FROM jobs WHERE id IN \
                 (SELECT MAX(id) FROM jobs WHERE connection_id IN ({}) GROUP BY connection_id)",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.as_str());
            }
            let rows = query.fetch_all(&self.pool).await?;
            for row in &rows {
                jobs.push(decode(row)?);
            }
        }
        Ok(jobs)
    }
}
