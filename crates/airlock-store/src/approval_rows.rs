//! An approval request's row: its columns and decoding, and the writes
//! every change of one makes in the caller's transaction (a new request, a
//! compare-and-set on its `version`, its event, its audit record). Below
//! both `jobs` (a job stored with the request it waits for) and
//! `approvals` (the request's life).

use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::StoreError;
use airlock_domain::approvals::{Action, Approval, ApprovalId, Party};
use airlock_domain::audit;

pub(crate) const COLUMNS: &str = "id, permission, connection_id, job_type, job_id, requester_issuer, \
    requester_subject, requester_kind, requester_client_id, channel, reason, state, decisions, \
    min_approvals, requested_at, expires_at, approved_at, grant_expires_at, used_at, version";

pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("approval {what}: {error}"))
}

pub(crate) fn decode(row: &AnyRow) -> Result<Approval, StoreError> {
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
/// with `outcome`, and the approval's id, action and `reason` in its detail.
pub(crate) fn audited(
    request: &audit::Entry,
    action: &str,
    approval: &Approval,
    outcome: &str,
    reason: Option<&str>,
) -> audit::Entry {
    let mut entry = request.clone();
    entry.action = action.to_owned();
    entry.connection_id = Some(approval.action.connection_id.clone());
    if let Some(job) = &approval.job_id {
        entry.job_id = Some(job.to_string());
    }
    entry.outcome = Some(outcome.to_owned());
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

/// Airlock's own audit record (expiry, a job released by its approval).
pub(crate) fn system_entry() -> audit::Entry {
    audit::Entry {
        actor: audit::Actor::system(),
        channel: "airlock".to_owned(),
        decision: "system".to_owned(),
        ..audit::Entry::default()
    }
}

/// Appends `event` of request `id` to the approvals' timeline.
pub(crate) async fn record_event(
    conn: &mut AnyConnection,
    id: &ApprovalId,
    event: &str,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO approval_events (approval_id, event, at) VALUES ($1, $2, $3)")
        .bind(id.as_str())
        .bind(event)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a new request (pending, as `Approval::request` makes it) in the
/// caller's transaction, with its event and its audit record
/// (`approvals.request`, built from `request`).
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    approval: &Approval,
    request: &audit::Entry,
) -> Result<(), StoreError> {
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
    .execute(&mut *conn)
    .await?;
    record_event(conn, &approval.id, "requested", approval.requested_at).await?;
    let entry = audited(
        request,
        "approvals.request",
        approval,
        approval.state.as_str(),
        approval.reason.as_deref(),
    );
    crate::audit::append(conn, &entry, approval.requested_at).await?;
    Ok(())
}

/// Writes `next` over the row if it is still at `version`; false when
/// another change got there first.
pub(crate) async fn compare_and_set(
    conn: &mut AnyConnection,
    version: i64,
    next: &Approval,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE approvals SET state = $1, decisions = $2, approved_at = $3, grant_expires_at = $4, \
         used_at = $5, version = $6, updated_at = $7, job_id = $8 WHERE id = $9 AND version = $10",
    )
    .bind(next.state.as_str())
    .bind(decisions_json(next)?)
    .bind(next.approved_at)
    .bind(next.grant_expires_at)
    .bind(next.used_at)
    .bind(next.version)
    .bind(now)
    .bind(next.job_id.as_ref().map(ToString::to_string))
    .bind(next.id.as_str())
    .bind(version)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(done == 1)
}
