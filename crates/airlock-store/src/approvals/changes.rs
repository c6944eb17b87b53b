//! Changes of a request, each a compare-and-set on the row's `version`:
//! a decision, a grant's use, expiry, withdrawal. A request made with its
//! job moves the job in the same transaction: approved, the job is queued
//! (the request is used by it at once); denied, it ends `rejected`;
//! expired, `expired`; withdrawn, `cancelled`. The job's row is changed
//! before the audit chain's head is taken, as every change of a job does.

use sqlx::AnyConnection;

use super::Change;
use crate::approval_rows::{audited, compare_and_set, record_event, system_entry};
use crate::{Store, StoreError};
use airlock_domain::approvals::rules;
use airlock_domain::approvals::{Action, Approval, ApprovalId, ApprovalState, Decision, Party};
use airlock_domain::audit;
use airlock_domain::jobs::{JobId, JobState};

/// How many times a change reads again after losing a race.
const CAS_ROUNDS: usize = 16;

/// Requests expired per pass of [`Store::expire_approvals`].
const EXPIRE_BATCH: i64 = 500;

/// The event a change from `before` to `after` is on the approvals'
/// timeline, if it is one (an approval short of `min_approvals` is not).
fn event_of(before: ApprovalState, after: ApprovalState) -> Option<&'static str> {
    match (before, after) {
        (ApprovalState::Pending, ApprovalState::Approved | ApprovalState::Used) => Some("approved"),
        (_, ApprovalState::Used) => Some("used"),
        (_, ApprovalState::Denied) => Some("denied"),
        (_, ApprovalState::Expired) => Some("expired"),
        (_, ApprovalState::Withdrawn) => Some("withdrawn"),
        _ => None,
    }
}

/// The job's move for a request that went from `before` to `next`: its new
/// state, the approval state it shows, and the short error it keeps.
fn job_move(before: ApprovalState, next: &Approval) -> Option<(JobState, String)> {
    let reason = next
        .decisions
        .last()
        .and_then(|d| d.reason.clone())
        .unwrap_or_default();
    match (before, next.state) {
        (ApprovalState::Pending, ApprovalState::Used) => Some((JobState::Queued, String::new())),
        (_, ApprovalState::Denied) => Some((JobState::Rejected, format!("denied: {reason}"))),
        (_, ApprovalState::Expired) => Some((
            JobState::Expired,
            "nobody decided its approval in time".to_owned(),
        )),
        (_, ApprovalState::Withdrawn) => Some((
            JobState::Cancelled,
            "cancelled while it awaited approval".to_owned(),
        )),
        _ => None,
    }
}

/// Moves the job waiting for `next` (if it has one) as its request moved
/// from `before`, on its timeline too; a job no longer awaiting approval is
/// left as it is (and logged).
async fn settle_job(
    conn: &mut AnyConnection,
    before: ApprovalState,
    next: &Approval,
    now: i64,
) -> Result<Option<(JobId, JobState)>, StoreError> {
    let (Some(job), Some((state, error))) = (&next.job_id, job_move(before, next)) else {
        return Ok(None);
    };
    let ends = state.is_terminal();
    let moved = sqlx::query(
        "UPDATE jobs SET state = $1, approval_state = $2, updated_at = $3, run_after = $3, \
         finished_at = CASE WHEN $4 = 1 THEN $3 ELSE finished_at END, \
         cancel_requested = CASE WHEN $1 = 'cancelled' THEN 1 ELSE cancel_requested END, \
         error = CASE WHEN $4 = 1 THEN $5 ELSE error END \
         WHERE id = $6 AND state = 'awaiting_approval'",
    )
    .bind(state.as_str())
    .bind(next.state.as_str())
    .bind(now)
    .bind(i64::from(ends))
    .bind(error.chars().take(500).collect::<String>())
    .bind(job.as_str())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if moved != 1 {
        // Its request and its job change together, so this is a job
        // changed behind the request's back (by hand, in the database):
        // the request still moves on, so that expiry never sticks on it.
        tracing::warn!(approval_id = %next.id, job_id = %job, "the job of an approval request is no longer awaiting approval; left as it is");
        return Ok(None);
    }
    let detail = match next.state {
        ApprovalState::Used => "approved",
        other => other.as_str(),
    };
    crate::jobs::insert_event(conn, job, state, now, Some(detail)).await?;
    Ok(Some((job.clone(), state)))
}

/// The audit records of a change from `before` to `next`, asked for by
/// `request` as `action`: the change's own, and, when it released a job
/// into the queue, Airlock's record of that.
fn records(
    request: &audit::Entry,
    action: &str,
    before: ApprovalState,
    next: &Approval,
    reason: Option<&str>,
    job: Option<&(JobId, JobState)>,
) -> Vec<audit::Entry> {
    // A request used by its own job the moment it was approved shows as
    // approved in the decision's record; the job's release is its own.
    let shown = match (before, next.state) {
        (ApprovalState::Pending, ApprovalState::Used) => ApprovalState::Approved,
        (_, state) => state,
    };
    let mut entries = vec![audited(request, action, next, shown.as_str(), reason)];
    if let Some((_, JobState::Queued)) = job {
        entries.push(audited(
            &system_entry(),
            "approvals.use",
            next,
            JobState::Queued.as_str(),
            None,
        ));
    }
    entries
}

impl Store {
    /// Records `decision` on a pending request (its audit record,
    /// `approvals.approve` or `approvals.deny`, built from `request`). The
    /// deciding approval makes it a grant until `grant_ttl_ms` later; a
    /// request made with its job is used by that job at once, which joins
    /// the queue. A denial ends the job `rejected`.
    pub async fn decide_approval(
        &self,
        id: &ApprovalId,
        decision: &Decision,
        grant_ttl_ms: i64,
        request: &audit::Entry,
    ) -> Result<Change, StoreError> {
        let action = match decision.verdict {
            airlock_domain::approvals::Verdict::Approve => "approvals.approve",
            airlock_domain::approvals::Verdict::Deny => "approvals.deny",
        };
        let at = decision.at;
        self.change(id, at, request, action, |current| {
            let mut next = rules::decide(current, decision.clone(), grant_ttl_ms)?;
            let reason = next.decisions.last().and_then(|d| d.reason.clone());
            if next.state == ApprovalState::Approved && next.job_id.is_some() {
                let requester = next.requester.clone();
                let action = next.action.clone();
                next = rules::use_grant(&next, &requester, &action, at)?;
            }
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

    /// Withdraws the pending request the job `job` waits for, because the
    /// job is cancelled (`request`, the cancel's audit record, named
    /// `jobs.cancel`); the job ends `cancelled` in the same transaction.
    /// Refused when the request was decided first.
    pub async fn withdraw_approval(
        &self,
        id: &ApprovalId,
        now: i64,
        request: &audit::Entry,
    ) -> Result<Change, StoreError> {
        self.change(id, now, request, "jobs.cancel", |current| {
            Ok((rules::withdraw(current)?, None))
        })
        .await
    }

    /// Marks expired every request due at `now` (pending past its time, or
    /// approved and unused past its grant's end), each with its audit
    /// record (Airlock's own, `approvals.expire`); a job waiting for one
    /// ends `expired`. Returns those it expired.
    pub async fn expire_approvals(&self, now: i64) -> Result<Vec<Approval>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM approvals WHERE (state = 'pending' AND expires_at <= $1) \
             OR (state = 'approved' AND grant_expires_at <= $1) ORDER BY id LIMIT {EXPIRE_BATCH}",
            crate::approval_rows::COLUMNS
        )))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let due: Vec<Approval> = rows
            .iter()
            .map(crate::approval_rows::decode)
            .collect::<Result<_, _>>()?;
        let mut expired = Vec::new();
        if due.is_empty() {
            return Ok(expired);
        }
        let mut tx = self.begin_write().await?;
        for current in &due {
            let Some(next) = rules::expire(current, now) else {
                continue;
            };
            if compare_and_set(&mut tx, current.version, &next, now).await? {
                let job = settle_job(&mut tx, current.state, &next, now).await?;
                record_event(&mut tx, &next.id, "expired", now).await?;
                let entries = records(
                    &system_entry(),
                    "approvals.expire",
                    current.state,
                    &next,
                    None,
                    job.as_ref(),
                );
                for entry in &entries {
                    crate::audit::append(&mut tx, entry, now).await?;
                }
                expired.push(next);
            }
        }
        tx.commit().await?;
        Ok(expired)
    }

    /// Reads the request, asks `rule` what it becomes, and writes that under
    /// the compare-and-set, moving its job, with its event and its audit
    /// records (the first named `action`); reads again when another change
    /// won the race.
    async fn change(
        &self,
        id: &ApprovalId,
        now: i64,
        request: &audit::Entry,
        action: &str,
        rule: impl Fn(&Approval) -> Result<(Approval, Option<String>), rules::Refusal>,
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
            let job = settle_job(&mut tx, current.state, &next, now).await?;
            if let Some(event) = event_of(current.state, next.state) {
                record_event(&mut tx, &next.id, event, now).await?;
            }
            let entries = records(
                request,
                action,
                current.state,
                &next,
                reason.as_deref(),
                job.as_ref(),
            );
            for entry in &entries {
                crate::audit::append(&mut tx, entry, now).await?;
            }
            tx.commit().await?;
            return Ok(Change::Done(Box::new(next)));
        }
        Err(StoreError::Corrupt(format!(
            "approval {id}: still changing after {CAS_ROUNDS} reads"
        )))
    }
}
