//! The webhook tables: the cursors over the two timelines (`job_events`
//! and `approval_events`), the deliveries to send and the record of every
//! attempt. Times are unix milliseconds.
//!
//! Nothing here holds a transaction across an HTTP call: a delivery is
//! claimed by moving its `next_attempt_at` past the attempt's timeout (a
//! compare-and-set, so two replicas never send the same attempt), sent, then
//! its outcome is written together with its attempt row.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError};

/// One row of `job_events`, as the deliverer reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub seq: i64,
    pub job_id: String,
    pub state: String,
    pub at: i64,
    pub detail: Option<String>,
}

/// A timeline whose events become deliveries, each read after its own
/// cursor (a row of `webhook_cursor`); an event's `seq` counts in its
/// timeline only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeline {
    /// `job_events`.
    Jobs,
    /// `approval_events`.
    Approvals,
}

impl Timeline {
    /// Its row of `webhook_cursor`.
    fn cursor_id(self) -> i64 {
        match self {
            Self::Jobs => 1,
            Self::Approvals => 2,
        }
    }

    /// As stored in `webhook_deliveries.timeline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jobs => "jobs",
            Self::Approvals => "approvals",
        }
    }
}

/// A delivery to insert with the cursor move.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: String,
    pub webhook_id: String,
    /// The job; for an approval's event, the request's job or `""`.
    pub job_id: String,
    /// The request, for an approval's event.
    pub approval_id: Option<String>,
    pub event_seq: i64,
    pub event: &'static str,
    pub payload: String,
}

/// A delivery: one event for one webhook, with where its sending stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Sent as `Airlock-Delivery`; the same on every attempt, so receivers
    /// can drop duplicates.
    pub id: String,
    /// A hash of the webhook's URL (never the URL: it may hold a token).
    pub webhook_id: String,
    /// The job; for an approval's event, the request's job or `""`.
    pub job_id: String,
    /// `jobs` or `approvals`: the timeline `event_seq` counts in.
    pub timeline: String,
    /// The request, for an approval's event.
    pub approval_id: Option<String>,
    /// The `job_events` (or `approval_events`) row that raised it.
    pub event_seq: i64,
    /// `job.succeeded`, `approval.requested`, ...
    pub event: String,
    /// The body sent, without `sent_at`.
    #[serde(skip)]
    pub payload: String,
    pub attempts: i64,
    /// When the next attempt is due; `None` once delivered or given up.
    pub next_attempt_at: Option<i64>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// When Airlock gave up (attempts exhausted, webhook removed).
    pub failed_at: Option<i64>,
}

/// One attempt at sending a delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub attempt: i64,
    /// When it was sent.
    pub at: i64,
    /// The receiver's HTTP status; `None` when no answer came.
    pub status: Option<i64>,
    /// Why it did not count as delivered.
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Delivered,
    RetryAt(i64),
    GiveUp,
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, job_id, timeline, approval_id, event_seq, event, payload, attempts, next_attempt_at, \
    last_status, last_error, created_at, delivered_at, failed_at";

fn decode_delivery(row: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.try_get("id")?,
        webhook_id: row.try_get("webhook_id")?,
        job_id: row.try_get("job_id")?,
        timeline: row.try_get("timeline")?,
        approval_id: row.try_get("approval_id")?,
        event_seq: row.try_get("event_seq")?,
        event: row.try_get("event")?,
        payload: row.try_get("payload")?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
        failed_at: row.try_get("failed_at")?,
    })
}

/// The last `seq` of `timeline` turned into deliveries.
pub async fn cursor(store: &Store, timeline: Timeline) -> Result<i64, StoreError> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM webhook_cursor WHERE id = $1")
        .bind(timeline.cursor_id())
        .fetch_optional(&store.pool)
        .await?;
    seq.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "the webhook cursor row of {} is missing",
            timeline.as_str()
        ))
    })
}

/// Events after `after`, oldest first.
pub async fn events_after(
    store: &Store,
    after: i64,
    limit: i64,
) -> Result<Vec<RawEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT seq, job_id, state, at, detail FROM job_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(RawEvent {
                seq: row.try_get("seq")?,
                job_id: row.try_get("job_id")?,
                state: row.try_get("state")?,
                at: row.try_get("at")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect()
}

/// True when the job reached `pending` or `running` before event `seq`.
pub async fn started_before(store: &Store, job_id: &str, seq: i64) -> Result<bool, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM job_events WHERE job_id = $1 AND seq < $2 AND state IN ('pending', 'running')",
    )
    .bind(job_id)
    .bind(seq)
    .fetch_one(&store.pool)
    .await?;
    Ok(count > 0)
}

/// Inserts `deliveries` (of events of `timeline`) and moves its cursor from
/// `from` to `to`, in one transaction. False (and nothing written) when the
/// cursor was no longer at `from`: another replica got there first.
pub async fn commit_batch(
    store: &Store,
    timeline: Timeline,
    from: i64,
    to: i64,
    deliveries: &[NewDelivery],
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    // Move the cursor first: on Postgres the row lock it takes makes a
    // concurrent replica wait, then find the cursor moved.
    let moved = sqlx::query(
        "UPDATE webhook_cursor SET last_seq = $1, updated_at = $2 WHERE id = $3 AND last_seq = $4",
    )
    .bind(to)
    .bind(now)
    .bind(timeline.cursor_id())
    .bind(from)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if moved != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    for delivery in deliveries {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, job_id, timeline, approval_id, event_seq, event, \
             payload, attempts, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9) ON CONFLICT DO NOTHING",
        )
        .bind(&delivery.id)
        .bind(&delivery.webhook_id)
        .bind(&delivery.job_id)
        .bind(timeline.as_str())
        .bind(delivery.approval_id.as_deref())
        .bind(delivery.event_seq)
        .bind(delivery.event)
        .bind(&delivery.payload)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// Deliveries whose next attempt is due, oldest due first.
pub async fn due(store: &Store, now: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(&store.pool)
    .await?;
    rows.iter().map(decode_delivery).collect()
}

/// Takes a due delivery for one attempt by pushing its `next_attempt_at` to
/// `lease_until` (should this replica die mid-attempt, another retries
/// then). False when someone else took it first.
pub async fn claim(
    store: &Store,
    id: &str,
    seen_next_attempt_at: i64,
    lease_until: i64,
) -> Result<bool, StoreError> {
    let mut conn = store.writer().await?;
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = $1 \
         WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL",
    )
    .bind(lease_until)
    .bind(id)
    .bind(seen_next_attempt_at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

/// Records an attempt and what follows it, in one transaction. False when
/// this attempt was already recorded (a lease that ran out mid-attempt).
pub async fn record_attempt(
    store: &Store,
    attempt: &Attempt,
    after: After,
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status, error, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&attempt.delivery_id)
    .bind(attempt.attempt)
    .bind(attempt.at)
    .bind(attempt.status)
    .bind(attempt.error.as_deref())
    .bind(attempt.duration_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    let (next, delivered_at, failed_at) = match after {
        After::Delivered => (None, Some(attempt.at), None),
        After::RetryAt(at) => (Some(at), None, None),
        After::GiveUp => (None, None, Some(attempt.at)),
    };
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = $1, last_status = $2, last_error = $3, next_attempt_at = $4, \
         delivered_at = $5, failed_at = $6 WHERE id = $7 AND delivered_at IS NULL",
    )
    .bind(attempt.attempt)
    .bind(attempt.status)
    .bind(attempt.error.as_deref())
    .bind(next)
    .bind(delivered_at)
    .bind(failed_at)
    .bind(&attempt.delivery_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Stops trying a delivery without an attempt (its webhook was removed).
pub async fn give_up(store: &Store, id: &str, error: &str, now: i64) -> Result<(), StoreError> {
    let mut conn = store.writer().await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_at = NULL, failed_at = $1, last_error = $2 \
         WHERE id = $3 AND delivered_at IS NULL",
    )
    .bind(now)
    .bind(error)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deliveries, newest first, optionally of one job: for operators and tests.
pub async fn list_deliveries(
    store: &Store,
    job_id: Option<&str>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let rows = match job_id {
        Some(job_id) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE job_id = $1 \
                 ORDER BY event_seq DESC, webhook_id LIMIT $2"
            )))
            .bind(job_id)
            .bind(limit)
            .fetch_all(&store.pool)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries ORDER BY event_seq DESC, webhook_id LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(&store.pool)
            .await?
        }
    };
    rows.iter().map(decode_delivery).collect()
}

/// Every attempt of a delivery, first first.
pub async fn list_attempts(store: &Store, delivery_id: &str) -> Result<Vec<Attempt>, StoreError> {
    let rows = sqlx::query(
        "SELECT delivery_id, attempt, at, status, error, duration_ms FROM webhook_attempts \
         WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery_id)
    .fetch_all(&store.pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Attempt {
                delivery_id: row.try_get("delivery_id")?,
                attempt: row.try_get("attempt")?,
                at: row.try_get("at")?,
                status: row.try_get("status")?,
                error: row.try_get("error")?,
                duration_ms: row.try_get("duration_ms")?,
            })
        })
        .collect()
}
