//! Four-eyes approval requests as rows: created, read, listed, and changed
//! only under a compare-and-set on the row's `version`, each change with its
//! audit record in the same transaction.
//!
//! The rules are the domain's (`airlock_domain::approvals::rules`): a
//! change reads the row, asks the rule what the request becomes, and writes
//! that only if the row is still the version it read. A writer that lost
//! the race reads again and asks again, so that of two decisions racing on
//! a pending request one wins and the other is refused as no longer
//! pending. A refused change writes nothing (the caller's access guard
//! records refusals).

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{Store, StoreError};
use airlock_domain::approvals::rules::{self, Refusal};
use airlock_domain::approvals::{
    Action, Approval, ApprovalId, ApprovalState, Decision, Party, Verdict,
};
use airlock_domain::audit;

const COLUMNS: &str = "id, permission, connection_id, job_type, job_id, requester_issuer, \
    requester_subject, requester_kind, requester_client_id, channel, reason, state, decisions, \
    min_approvals, requested_at, expires_at, approved_at, grant_expires_at, used_at, version";

/// How many times a change reads again after losing a race.
const CAS_ROUNDS: usize = 16;

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
    /// At most this many (clamped to 1..=1000).
    pub limit: i64,
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("approval {what}: {error}"))
}

fn decode(row: &AnyRow) -> Result<Approval, StoreError> {
    let decisions: String = row.try_get("decisions")?;
    let min_approvals: i64 = row.try_get("min_approvals")?;
    let job_id: Option<String> = row.try_get("job_id")?;
    Ok(Approval {
        id: row
            .try_get::<String, _>("id")?
            .parse()
            .map_err(|e| corrupt("id", e))?,
        action: Action {
            permission: row
                .try_get::<String, _>("permission")?
                .parse()
                .map_err(|e| corrupt("permission", e))?,
            connection_id: row.try_get("connection_id")?,
            job_type: row
                .try_get::<String, _>("job_type")?
                .parse()
                .map_err(|e| corrupt("job type", e))?,
        },
        requester: Party {
            issuer: row.try_get("requester_issuer")?,
            subject: row.try_get("requester_subject")?,
            kind: row.try_get("requester_kind")?,
            client_id: row.try_get("requester_client_id")?,
        },
        channel: row
            .try_get::<String, _>("channel")?
            .parse()
            .map_err(|e| corrupt("channel", e))?,
        reason: row.try_get("reason")?,
        job_id: job_id
            .map(|id| id.parse())
            .transpose()
            .map_err(|e| corrupt("job id", e))?,
        state: row
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|e| corrupt("state", e))?,
        decisions: serde_json::from_str(&decisions).map_err(|e| corrupt("decisions", e))?,
        min_approvals: u32::try_from(min_approvals).map_err(|e| corrupt("min_approvals", e))?,
        requested_at: row.try_get("requested_at")?,
        expires_at: row.try_get("expires_at")?,
        approved_at: row.try_get("approved_at")?,
        grant_expires_at: row.try_get("grant_expires_at")?,
        used_at: row.try_get("used_at")?,
        version: row.try_get("version")?,
    })
}

fn decisions_json(approval: &Approval) -> Result<String, StoreError> {
    serde_json::to_string(&approval.decisions).map_err(|e| corrupt("decisions", e))
}

/// The audit record of a change to `approval`: the request's record (who,
/// from where, through which door, which grant allowed it) named `action`,
/// with the approval's id, action, state and `reason` in its detail.
fn audited(
    request: &audit::Entry,
    action: &str,
    approval: &Approval,
    reason: Option<&str>,
) -> audit::Entry {
    let mut entry = request.clone();
    entry.action = action.to_owned();
    entry.connection_id = Some(approval.action.connection_id.clone());
    if let Some(job) = &approval.job_id {
        entry.job_id = Some(job.to_string());
    }
    entry.outcome = Some(approval.state.as_str().to_owned());
    entry.detail = Some(json!({
        "approval_id": approval.id.as_str(),
        "permission": approval.action.permission.as_str(),
        "job_type": approval.action.job_type.as_str(),
        "approvals": approval.approvals(),
        "min_approvals": approval.min_approvals,
        "reason": reason,
    }));
    entry
}

/// Writes `next` over the row if it is still at `version`; false when
/// another change got there first.
async fn compare_and_set(
    conn: &mut AnyConnection,
    version: i64,
    next: &Approval,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE approvals SET state = $1, decisions = $2, approved_at = $3, grant_expires_at = $4, \
         used_at = $5, version = $6, updated_at = $7 WHERE id = $8 AND version = $9",
    )
    .bind(next.state.as_str())
    .bind(decisions_json(next)?)
    .bind(next.approved_at)
    .bind(next.grant_expires_at)
    .bind(next.used_at)
    .bind(next.version)
    .bind(now)
    .bind(next.id.as_str())
    .bind(version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}

impl Store {
    /// Stores a new request (pending, as `Approval::request` makes it) with
    /// its audit record (`approvals.request`), built from `request`.
    pub async fn create_approval(
        &self,
        approval: &Approval,
        request: &audit::Entry,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO approvals ({COLUMNS}, updated_at) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        )))
        .bind(approval.id.as_str())
        .bind(approval.action.permission.as_str())
        .bind(&approval.action.connection_id)
        .bind(approval.action.job_type.as_str())
        .bind(approval.job_id.as_ref().map(ToString::to_string))
        .bind(&approval.requester.issuer)
        .bind(&approval.requester.subject)
        .bind(&approval.requester.kind)
        .bind(approval.requester.client_id.clone())
        .bind(approval.channel.as_str())
        .bind(approval.reason.clone())
        .bind(approval.state.as_str())
        .bind(decisions_json(approval)?)
        .bind(i64::from(approval.min_approvals))
        .bind(approval.requested_at)
        .bind(approval.expires_at)
        .bind(approval.approved_at)
        .bind(approval.grant_expires_at)
        .bind(approval.used_at)
        .bind(approval.version)
        .bind(approval.requested_at)
        .execute(&mut *tx)
        .await?;
        let entry = audited(
            request,
            "approvals.request",
            approval,
            approval.reason.as_deref(),
        );
        crate::audit::append(&mut tx, &entry, approval.requested_at).await?;
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
        sql.push_str(&format!(
            " ORDER BY requested_at DESC, id DESC LIMIT {}",
            filter.limit.clamp(1, 1_000)
        ));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for value in binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// Records `decision` on a pending request (its audit record,
    /// `approvals.approve` or `approvals.deny`, built from `request`); the
    /// deciding approval makes it a grant until `grant_ttl_ms` later.
    pub async fn decide_approval(
        &self,
        id: &ApprovalId,
        decision: &Decision,
        grant_ttl_ms: i64,
        request: &audit::Entry,
    ) -> Result<Change, StoreError> {
        let action = match decision.verdict {
            Verdict::Approve => "approvals.approve",
            Verdict::Deny => "approvals.deny",
        };
        let at = decision.at;
        self.change(id, at, request, action, |current| {
            let next = rules::decide(current, decision.clone(), grant_ttl_ms)?;
            let reason = next.decisions.last().and_then(|d| d.reason.clone());
            Ok((next, reason))
        })
        .await
    }

    /// Uses the grant `id` for `action` on behalf of `who` (the requester,
    /// only once, only in time), with its audit record (`approvals.use`).
    pub async fn use_approval_grant(
        &self,
        id: &ApprovalId,
        who: &Party,
        action: &Action,
        now: i64,
        request: &audit::Entry,
    ) -> Result<Change, StoreError> {
        self.change(id, now, request, "approvals.use", |current| {
            Ok((rules::use_grant(current, who, action, now)?, None))
        })
        .await
    }

    /// Marks expired every request due at `now` (pending past its time, or
    /// approved and unused past its grant's end), each with its audit
    /// record (Airlock's own, `approvals.expire`). Returns those it expired.
    pub async fn expire_approvals(&self, now: i64) -> Result<Vec<Approval>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE (state = 'pending' AND expires_at <= $1) \
             OR (state = 'approved' AND grant_expires_at <= $1) ORDER BY requested_at LIMIT 500"
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let due: Vec<Approval> = rows.iter().map(decode).collect::<Result<_, _>>()?;
        let system = audit::Entry {
            actor: audit::Actor::system(),
            channel: "airlock".to_owned(),
            decision: "system".to_owned(),
            ..audit::Entry::default()
        };
        let mut expired = Vec::new();
        let mut tx = self.begin_write().await?;
        for current in &due {
            let Some(next) = rules::expire(current, now) else {
                continue;
            };
            if compare_and_set(&mut tx, current.version, &next, now).await? {
                let entry = audited(&system, "approvals.expire", &next, None);
                crate::audit::append(&mut tx, &entry, now).await?;
                expired.push(next);
            }
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Reads the request, asks `rule` what it becomes, and writes that under
    /// the compare-and-set with its audit record named `action`; reads again
    /// when another change won the race.
    async fn change(
        &self,
        id: &ApprovalId,
        now: i64,
        request: &audit::Entry,
        action: &str,
        rule: impl Fn(&Approval) -> Result<(Approval, Option<String>), Refusal>,
    ) -> Result<Change, StoreError> {
        for _ in 0..CAS_ROUNDS {
            let Some(current) = self.get_approval(id).await? else {
                return Ok(Change::Missing);
            };
            let (next, reason) = match rule(&current) {
                Ok(next) => next,
                Err(refusal) => return Ok(Change::Refused(refusal)),
            };
            let mut tx = self.begin_write().await?;
            if !compare_and_set(&mut tx, current.version, &next, now).await? {
                tx.rollback().await?;
                continue;
            }
            let entry = audited(request, action, &next, reason.as_deref());
            crate::audit::append(&mut tx, &entry, now).await?;
            tx.commit().await?;
            return Ok(Change::Done(Box::new(next)));
        }
        Err(StoreError::Corrupt(format!(
            "approval {id}: still changing after {CAS_ROUNDS} reads"
        )))
    }
}
