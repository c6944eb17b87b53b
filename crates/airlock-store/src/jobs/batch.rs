//! Group commit for triggers.
//!
//! Every trigger is one transaction (the job, its idempotency key, its
//! first event and its audit record), and every such transaction appends
//! to the one audit chain, so triggers commit one after another whatever
//! the database. What bounds them is the commit itself (a disk flush), not
//! the statements. So one task takes the triggers that are waiting, stores
//! them all in one transaction and commits once: under load many triggers
//! share a flush; a lone trigger still commits at once (nothing waits to
//! fill a batch).
//!
//! Each caller is answered after the commit that made its job durable. If a
//! batch fails before its commit, its triggers are stored again one
//! transaction each, so that one bad trigger cannot fail the others and each
//! caller hears its own outcome. If the commit's answer is lost (the
//! connection dropped while it was under way), the writer asks the database
//! whether the batch is there before it answers anyone (see
//! [`Committer::settle`]): a trigger that was committed is answered with its
//! job, never with a 503 that would make a keyless client trigger again; one
//! that was not is stored again. Only when the database cannot be asked for
//! [`SETTLE_PATIENCE`] does every caller of the batch get a 503 (and retry
//! with its `Idempotency-Key`), never a second write that could duplicate a
//! job.

use std::time::Duration;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{IdempotencyKey, Inserted, insert_batch};
use crate::{StoreError, WriteTurns};
use airlock_domain::approvals::Approval;
use airlock_domain::audit;
use airlock_domain::jobs::model::{JobId, NewJob};

/// The most triggers stored in one transaction.
const MAX_BATCH: usize = 256;
/// Triggers waiting for the writer before callers wait to hand theirs over.
const QUEUE_DEPTH: usize = 4096;
/// How long the writer keeps asking whether a commit whose answer was lost
/// happened, while the database does not answer (a restart takes seconds).
const SETTLE_PATIENCE: Duration = Duration::from_secs(10);
/// The first pause between two such questions; it doubles up to a second.
const SETTLE_PAUSE: Duration = Duration::from_millis(50);

/// One trigger to store.
#[derive(Debug)]
pub(crate) struct Insert {
    pub new: NewJob,
    pub key: Option<IdempotencyKey>,
    pub now: i64,
    pub request: audit::Entry,
    /// The approval request the job waits for (`awaiting_approval`), made
    /// with it; `None` for a job that is queued at once.
    pub approval: Option<Approval>,
}

type Pending = (Insert, oneshot::Sender<Result<Inserted, StoreError>>);

/// The handle to the writer task; the task ends when the last handle goes.
#[derive(Debug, Clone)]
pub(crate) struct InsertQueue {
    sender: mpsc::Sender<Pending>,
    /// What the writer is told to get wrong (tests only).
    #[cfg(test)]
    pub(crate) faults: std::sync::Arc<faults::CommitFaults>,
}

impl InsertQueue {
    /// Starts the writer on the current runtime.
    pub(crate) fn start(pool: AnyPool, turns: WriteTurns) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let committer = Committer {
            pool,
            turns,
            #[cfg(test)]
            faults: std::sync::Arc::default(),
        };
        let queue = Self {
            sender,
            #[cfg(test)]
            faults: std::sync::Arc::clone(&committer.faults),
        };
        tokio::spawn(write(committer, receiver));
        queue
    }

    /// Stores `insert`; returns once it is committed (or failed).
    pub(crate) async fn submit(&self, insert: Insert) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        // The writer is gone only when its runtime is shutting down.
        let gone = || StoreError::Unavailable(sqlx::Error::PoolClosed);
        self.sender
            .send((insert, reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn write(committer: Committer, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() > 1 {
            let inserts: Vec<&Insert> = batch.iter().map(|(insert, _)| insert).collect();
            match committer.store(&inserts).await {
                Stored::Done(outcomes) => {
                    for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                        // A caller that went away still has its job stored.
                        let _ = reply.send(Ok(outcome));
                    }
                    continue;
                }
                Stored::Unknown(error) => {
                    // The commit may have happened and the database cannot
                    // say: storing the triggers again could start keyless
                    // ones twice. Each caller hears 503 and retries with
                    // its Idempotency-Key, as after any ambiguous answer.
                    let message = error.to_string();
                    for (_, reply) in batch.drain(..) {
                        let _ = reply.send(Err(StoreError::Unavailable(sqlx::Error::Protocol(
                            format!("commit outcome unknown: {message}"),
                        ))));
                    }
                    continue;
                }
                Stored::Nothing(error) => {
                    // Nothing was written: one trigger per transaction
                    // now, so each caller hears its own outcome.
                    tracing::debug!(error = %error, triggers = batch.len(), "a batch of triggers failed; storing them one by one");
                }
            }
        }
        for (insert, reply) in batch.drain(..) {
            let outcome = match committer.store(&[&insert]).await {
                Stored::Done(outcomes) => outcomes.into_iter().next().ok_or_else(|| {
                    StoreError::Corrupt("a trigger was stored without an outcome".into())
                }),
                Stored::Nothing(error) | Stored::Unknown(error) => Err(error),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// What became of a batch.
enum Stored {
    /// Committed (or nothing to write): each trigger's outcome, in order.
    Done(Vec<Inserted>),
    /// Nothing was written.
    Nothing(StoreError),
    /// The commit's answer was lost, and the database could not say since.
    Unknown(StoreError),
}

/// Where storing a batch failed: before the commit (nothing was written)
/// or at it (the outcome is unknown; what each trigger's outcome is if it
/// happened).
enum Failed {
    Before(StoreError),
    AtCommit(StoreError, Vec<Inserted>),
}

/// The writer's side of the database.
struct Committer {
    pool: AnyPool,
    turns: WriteTurns,
    #[cfg(test)]
    faults: std::sync::Arc<faults::CommitFaults>,
}

impl Committer {
    /// Stores `inserts` in order in one transaction, and settles a commit
    /// whose answer was lost.
    async fn store(&self, inserts: &[&Insert]) -> Stored {
        match self.store_all(inserts).await {
            Ok(outcomes) => Stored::Done(outcomes),
            Err(Failed::Before(error)) => Stored::Nothing(error),
            Err(Failed::AtCommit(error, outcomes)) => self.settle(error, outcomes).await,
        }
    }

    async fn store_all(&self, inserts: &[&Insert]) -> Result<Vec<Inserted>, Failed> {
        let before = |error: sqlx::Error| Failed::Before(error.into());
        let mut tx = self.turns.begin(&self.pool).await.map_err(before)?;
        let outcomes = insert_batch(&mut tx, inserts)
            .await
            .map_err(Failed::Before)?;
        #[cfg(test)]
        if faults::take(&self.faults.roll_back) {
            tx.rollback().await.map_err(before)?;
            return Err(Failed::AtCommit(faults::lost_answer(), outcomes));
        }
        if let Err(error) = tx.commit().await {
            return Err(Failed::AtCommit(error.into(), outcomes));
        }
        #[cfg(test)]
        if faults::take(&self.faults.lose_answer) {
            return Err(Failed::AtCommit(faults::lost_answer(), outcomes));
        }
        Ok(outcomes)
    }

    /// The commit of a batch failed with `error`, so it may or may not
    /// have happened: the batch's first new job says which, once the
    /// database answers. A batch without a new job wrote nothing, and its
    /// outcomes stand either way.
    async fn settle(&self, error: StoreError, outcomes: Vec<Inserted>) -> Stored {
        let probe = outcomes.iter().find_map(|outcome| match outcome {
            Inserted::New { job, .. } => Some(job.id.clone()),
            _ => None,
        });
        let Some(probe) = probe else {
            return Stored::Done(outcomes);
        };
        match self.committed(&probe).await {
            Ok(true) => {
                tracing::warn!(error = %error, triggers = outcomes.len(), "the answer to a commit of triggers was lost; the database has them");
                Stored::Done(outcomes)
            }
            Ok(false) => {
                tracing::warn!(error = %error, triggers = outcomes.len(), "the commit of triggers failed; nothing was stored");
                Stored::Nothing(error)
            }
            Err(asking) => {
                tracing::warn!(error = %error, asking = %asking, triggers = outcomes.len(), "the commit of triggers failed and the database cannot say whether it happened");
                Stored::Unknown(error)
            }
        }
    }

    /// Whether job `probe` is stored, asking until the database answers
    /// (for up to [`SETTLE_PATIENCE`]).
    async fn committed(&self, probe: &JobId) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + SETTLE_PATIENCE;
        let mut pause = SETTLE_PAUSE;
        loop {
            let error = match tokio::time::timeout_at(deadline, self.look(probe)).await {
                Ok(Ok(found)) => return Ok(found),
                Ok(Err(error)) => error,
                Err(_) => StoreError::Unavailable(sqlx::Error::PoolTimedOut),
            };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(error);
            }
            tracing::debug!(error = %error, "cannot tell yet whether triggers were committed");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Looks for job `probe` once the transaction that wrote it has ended.
    /// That transaction held the audit chain's head (every new job appends
    /// to the chain), so taking the head waits for its end: on Postgres a
    /// `COMMIT` whose answer was lost may still be under way, and a read
    /// that does not wait could miss a job about to be committed.
    async fn look(&self, probe: &JobId) -> Result<bool, StoreError> {
        #[cfg(test)]
        if faults::take(&self.faults.fail_looks) {
            return Err(faults::lost_answer());
        }
        let mut tx = self.turns.begin(&self.pool).await?;
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE id = $1")
            .bind(probe.as_str())
            .fetch_one(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(found > 0)
    }
}

/// Faults tests inject into the writer.
#[cfg(test)]
pub(crate) mod faults {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::StoreError;

    /// Each counter is how many more times the writer does it.
    #[derive(Debug, Default)]
    pub(crate) struct CommitFaults {
        /// Commits, then reports the commit's answer lost.
        pub(crate) lose_answer: AtomicUsize,
        /// Rolls back instead of committing, and reports the answer lost.
        pub(crate) roll_back: AtomicUsize,
        /// Fails the look that settles a lost answer, as if the database
        /// were away.
        pub(crate) fail_looks: AtomicUsize,
    }

    /// True (and one fewer left) when `counter` is not zero.
    pub(super) fn take(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// What a connection dropped under a `COMMIT` looks like.
    pub(super) fn lost_answer() -> StoreError {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected: the connection dropped under the commit",
        )))
    }
}

#[cfg(test)]
mod tests;
