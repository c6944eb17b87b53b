//! Four-eyes approval requests as rows: created, read, listed, and changed
//! only under a compare-and-set on the row's `version`, each change with its
//! audit record and its event (`approval_events`) in the same transaction.
//!
//! - here: the row, reads and lists, and a new request;
//! - [`changes`]: decisions, expiry and withdrawal, and what each does to
//!   the job waiting for the request (queued, rejected, expired, cancelled)
//!   in the same transaction;
//! - [`gated`]: a job stored with its gate, either a new request it waits
//!   for or an approval granted earlier that it uses.
//!
//! The rules are the domain's (`airlock_domain::approvals::rules`): a
//! change reads the row, asks the rule what the request becomes, and writes
//! that only if the row is still the version it read. A writer that lost
//! the race reads again and asks again, so that of two decisions racing on
//! a pending request one wins and the other is refused as no longer
//! pending. A refused change writes nothing (the caller's access guard
//! records refusals).

mod changes;
mod gated;

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError};
use crate::approval_rows::{COLUMNS, corrupt, decode, insert};
use airlock_domain::approvals::rules::Refusal;
use airlock_domain::approvals::{Action, Approval, ApprovalId, ApprovalState, Party};
use airlock_domain::audit;

pub use gated::Granted;

/// What became of a change asked of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Written: the request as it now stands.
    Done(Box<Approval>),
    /// The rules refused it; nothing was written.
    Refused(Refusal),
    /// No request has this id.
    Missing,
}

/// Which requests to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub state: Option<ApprovalState>,
    /// Only this requester's (issuer and subject).
    pub requester: Option<(String, String)>,
    pub connection_id: Option<String>,
    /// Only requests older than this one (newest-first pages).
    pub before: Option<ApprovalId>,
    /// At most this many (clamped to 1..=1000).
    pub limit: i64,
}

/// One entry of the approvals' timeline: what happened to which request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalEvent {
    pub seq: i64,
    pub approval_id: ApprovalId,
    /// `requested`, `approved`, `denied`, `expired`, `withdrawn` or `used`.
    pub event: String,
    /// Unix ms.
    pub at: i64,
}

impl Store {
    /// Stores a new request made without a job (a pre-approval: the grant
    /// is used by the requester's next matching trigger), with its audit
    /// record (`approvals.request`, built from `request`).
    pub async fn create_approval(
        &self,
        approval: &Approval,
        request: &audit::Entry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert(&mut tx, approval, request).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One request, if it exists.
    pub async fn get_approval(&self, id: &ApprovalId) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Requests matching `filter`, newest first.
    pub async fn list_approvals(
        &self,
        filter: &ApprovalFilter,
    ) -> Result<Vec<Approval>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM approvals WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut add = |sql: &mut String, column: &str, value: String| {
            binds.push(value);
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        };
        if let Some(state) = filter.state {
            add(&mut sql, "state", state.as_str().to_owned());
        }
        if let Some((issuer, subject)) = &filter.requester {
            add(&mut sql, "requester_issuer", issuer.clone());
            add(&mut sql, "requester_subject", subject.clone());
        }
        if let Some(connection) = &filter.connection_id {
            add(&mut sql, "connection_id", connection.clone());
        }
        if let Some(before) = &filter.before {
            binds.push(before.as_str().to_owned());
            sql.push_str(&format!(" AND id < ${}", binds.len()));
        }
        // Ids are UUIDv7: newest first is greatest id first.
        sql.push_str(&format!(
            " ORDER BY id DESC LIMIT {}",
            filter.limit.clamp(1, 1_000)
        ));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// The requester's open request (pending, or approved and not used yet)
    /// made without a job for `action`, if any, a grant before a pending
    /// one: the grant a trigger uses, or the request a refused trigger
    /// points at instead of making another.
    pub async fn open_approval_for(
        &self,
        requester: &Party,
        action: &Action,
        now: i64,
    ) -> Result<Option<Approval>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE requester_issuer = $1 AND requester_subject = $2 \
             AND permission = $3 AND connection_id = $4 AND job_type = $5 AND job_id IS NULL \
             AND ((state = 'pending' AND expires_at > $6) \
               OR (state = 'approved' AND grant_expires_at > $6)) \
             ORDER BY CASE WHEN state = 'approved' THEN 0 ELSE 1 END, id DESC LIMIT 1"
        )))
        .bind(&requester.issuer)
        .bind(&requester.subject)
        .bind(action.permission.as_str())
        .bind(&action.connection_id)
        .bind(action.job_type.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// The newest entry of the approvals' timeline (0 when it is empty).
    pub async fn latest_approval_event_seq(&self) -> Result<i64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM approval_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Up to `limit` entries of the approvals' timeline after `after_seq`,
    /// oldest first.
    pub async fn approval_events_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<ApprovalEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, approval_id, event, at FROM approval_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ApprovalEvent {
                    seq: row.try_get("seq")?,
                    approval_id: row
                        .try_get::<String, _>("approval_id")?
                        .parse()
                        .map_err(|e| corrupt("event", e))?,
                    event: row.try_get("event")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
