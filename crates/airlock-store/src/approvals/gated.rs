//! A trigger of an action that waits for approval, stored with its gate:
//! either the new request its job waits for (`awaiting_approval`), or an
//! approval granted earlier, which the job uses up in the transaction that
//! stores it, so that a grant is used once and a stored job never lost its
//! grant.

use crate::approval_rows::{audited, compare_and_set, record_event};
use crate::jobs::batch::Insert;
use crate::jobs::{IdempotencyKey, Inserted, insert_batch};
use crate::{Store, StoreError};
use airlock_domain::approvals::rules::{self, Refusal};
use airlock_domain::approvals::{Action, Approval, ApprovalId, ApprovalState, Party};
use airlock_domain::audit;
use airlock_domain::jobs::NewJob;

/// What became of a trigger that came with a grant.
#[derive(Debug, Clone, PartialEq)]
pub enum Granted {
    /// Stored (or, for a repeated idempotency key, the job it stored
    /// before, the grant untouched).
    Stored(Box<Inserted>),
    /// The grant cannot be used; nothing was written.
    Refused(Refusal),
    /// No request has this id.
    Missing,
}

/// How many times a grant's use reads again after losing a race.
const CAS_ROUNDS: usize = 16;

impl Store {
    /// Stores a trigger whose job waits for `approval` (a new, pending
    /// request for it, made by the same caller): the job is
    /// `awaiting_approval`, and the request names it; one transaction with
    /// the trigger's audit record and the request's.
    pub async fn insert_job_awaiting(
        &self,
        new: &NewJob,
        key: Option<&IdempotencyKey>,
        now: i64,
        request: &audit::Entry,
        approval: &Approval,
    ) -> Result<Inserted, StoreError> {
        self.inserts
            .submit(Insert {
                new: new.clone(),
                key: key.cloned(),
                now,
                request: request.clone(),
                approval: Some(approval.clone()),
            })
            .await
    }

    /// Stores a trigger that uses the grant `grant` (approved for `action`,
    /// requested by `who`): the grant is used and the job queued in one
    /// transaction, with the trigger's record and `approvals.use`. A
    /// repeated idempotency key answers its earlier job and leaves the
    /// grant as it was.
    pub async fn insert_job_with_grant(
        &self,
        new: &NewJob,
        key: Option<&IdempotencyKey>,
        now: i64,
        request: &audit::Entry,
        grant: (&ApprovalId, &Party, &Action),
    ) -> Result<Granted, StoreError> {
        let (id, who, action) = grant;
        for _ in 0..CAS_ROUNDS {
            let Some(current) = self.get_approval(id).await? else {
                return Ok(Granted::Missing);
            };
            let mut next = match rules::use_grant(&current, who, action, now) {
                Ok(next) => next,
                Err(refusal) => return Ok(Granted::Refused(refusal)),
            };
            // The request's row first, then the job and the audit chain's
            // head (insert_batch), the order every change of a request
            // takes, so that two never wait on each other.
            let mut tx = self.begin_write().await?;
            if !compare_and_set(&mut tx, current.version, &next, now).await? {
                tx.rollback().await?;
                continue;
            }
            let insert = Insert {
                new: new.clone(),
                key: key.cloned(),
                now,
                request: request.clone(),
                approval: None,
            };
            let inserted = insert_batch(&mut tx, &[&insert])
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("a trigger was not stored".into()))?;
            let Inserted::New { mut job, ready } = inserted else {
                tx.rollback().await?;
                return Ok(Granted::Stored(Box::new(inserted)));
            };
            next.job_id = Some(job.id.clone());
            sqlx::query("UPDATE approvals SET job_id = $1 WHERE id = $2")
                .bind(job.id.as_str())
                .bind(next.id.as_str())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE jobs SET approval_id = $1, approval_state = $2 WHERE id = $3")
                .bind(next.id.as_str())
                .bind(ApprovalState::Used.as_str())
                .bind(job.id.as_str())
                .execute(&mut *tx)
                .await?;
            record_event(&mut tx, &next.id, "used", now).await?;
            let entry = audited(request, "approvals.use", &next, "used", None);
            crate::audit::append(&mut tx, &entry, now).await?;
            tx.commit().await?;
            job.approval_id = Some(next.id.to_string());
            job.approval_state = Some(ApprovalState::Used.as_str().to_owned());
            return Ok(Granted::Stored(Box::new(Inserted::New { job, ready })));
        }
        Err(StoreError::Corrupt(format!(
            "approval {id}: still changing after {CAS_ROUNDS} reads"
        )))
    }
}
