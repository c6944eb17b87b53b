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
//! caller hears its own outcome. If the commit itself fails, the outcome is
//! unknown: every caller of the batch gets a 503 (and retries with its
//! `Idempotency-Key`), never a second write that could duplicate a job.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{IdempotencyKey, Inserted, insert_batch};
use crate::{StoreError, WriteTurns};
use airlock_domain::audit;
use airlock_domain::jobs::model::NewJob;

/// The most triggers stored in one transaction.
const MAX_BATCH: usize = 256;
/// Triggers waiting for the writer before callers wait to hand theirs over.
const QUEUE_DEPTH: usize = 4096;

/// One trigger to store.
#[derive(Debug)]
pub(crate) struct Insert {
    pub new: NewJob,
    pub key: Option<IdempotencyKey>,
    pub now: i64,
    pub request: audit::Entry,
}

type Pending = (Insert, oneshot::Sender<Result<Inserted, StoreError>>);

/// The handle to the writer task; the task ends when the last handle goes.
#[derive(Debug, Clone)]
pub(crate) struct InsertQueue {
    sender: mpsc::Sender<Pending>,
}

impl InsertQueue {
    /// Starts the writer on the current runtime.
    pub(crate) fn start(pool: AnyPool, turns: WriteTurns) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write(pool, turns, receiver));
        Self { sender }
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

async fn write(pool: AnyPool, turns: WriteTurns, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() > 1 {
            match store_all(&pool, &turns, batch.iter().map(|(insert, _)| insert)).await {
                Ok(outcomes) => {
                    for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                        // A caller that went away still has its job stored.
                        let _ = reply.send(Ok(outcome));
                    }
                    continue;
                }
                Err(Failed::AtCommit(error)) => {
                    // The commit may have happened: storing the triggers
                    // again could start keyless ones twice. Each caller
                    // hears 503 and retries with its Idempotency-Key, as
                    // after any ambiguous answer.
                    tracing::warn!(error = %error, triggers = batch.len(), "the commit of a batch of triggers failed");
                    let message = error.to_string();
                    for (_, reply) in batch.drain(..) {
                        let _ = reply.send(Err(StoreError::Unavailable(sqlx::Error::Protocol(
                            format!("commit failed: {message}"),
                        ))));
                    }
                    continue;
                }
                Err(Failed::Before(error)) => {
                    // Nothing was written: one trigger per transaction
                    // now, so each caller hears its own outcome.
                    tracing::debug!(error = %error, triggers = batch.len(), "a batch of triggers failed; storing them one by one");
                }
            }
        }
        for (insert, reply) in batch.drain(..) {
            let outcome = match store_all(&pool, &turns, std::iter::once(&insert)).await {
                Ok(outcomes) => outcomes.into_iter().next().ok_or_else(|| {
                    StoreError::Corrupt("a trigger was stored without an outcome".into())
                }),
                Err(Failed::Before(error) | Failed::AtCommit(error)) => Err(error),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// Where storing a batch failed: before the commit (nothing was written)
/// or at it (the outcome is unknown).
enum Failed {
    Before(StoreError),
    AtCommit(StoreError),
}

/// Stores `inserts` in order in one transaction.
async fn store_all(
    pool: &AnyPool,
    turns: &WriteTurns,
    inserts: impl Iterator<Item = &Insert>,
) -> Result<Vec<Inserted>, Failed> {
    let inserts: Vec<&Insert> = inserts.collect();
    let before = |error: sqlx::Error| Failed::Before(error.into());
    let mut tx = turns.begin(pool).await.map_err(before)?;
    let outcomes = insert_batch(&mut tx, &inserts)
        .await
        .map_err(Failed::Before)?;
    tx.commit()
        .await
        .map_err(|error| Failed::AtCommit(error.into()))?;
    Ok(outcomes)
}
