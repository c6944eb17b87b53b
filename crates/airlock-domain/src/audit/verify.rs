//! Recomputing the chain: what `airlock audit verify` runs.

use super::checkpoint::Checkpoint;
use super::{GENESIS, Record};

/// The first thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    /// A record's content no longer matches its hash (edited).
    #[error("record {seq}: its content does not match its hash (edited)")]
    Altered { seq: i64 },
    /// A record does not follow the one before it (deleted, inserted or
    /// reordered records).
    #[error(
        "record {seq}: does not follow record {previous} (records deleted, inserted or reordered)"
    )]
    Unlinked { seq: i64, previous: i64 },
    /// Sequence numbers skip or repeat.
    #[error("record {seq}: expected sequence number {expected} (records deleted or inserted)")]
    Sequence { seq: i64, expected: i64 },
    /// The chain ends before a checkpoint, or differs from it (truncated or rewritten).
    #[error("checkpoint at record {seq}: {problem}")]
    Checkpoint { seq: i64, problem: String },
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records checked.
    pub records: i64,
    /// The last record's hash (the head).
    pub head: String,
    /// The first problem, if any.
    pub broken: Option<Broken>,
}

/// Verifies records in order, as they stream in.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    broken: Option<Broken>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS.to_owned(),
            broken: None,
        }
    }
}

impl Verifier {
    /// Checks the next record; after the first problem, nothing more is checked.
    pub fn check(&mut self, record: &Record) {
        if self.broken.is_some() {
            return;
        }
        if record.compute_hash() != record.hash {
            self.broken = Some(Broken::Altered { seq: record.seq });
        } else if record.prev_hash != self.prev_hash {
            self.broken = Some(Broken::Unlinked {
                seq: record.seq,
                previous: self.expected_seq - 1,
            });
        } else if record.seq != self.expected_seq {
            self.broken = Some(Broken::Sequence {
                seq: record.seq,
                expected: self.expected_seq,
            });
        }
        self.expected_seq += 1;
        self.prev_hash.clone_from(&record.hash);
    }

    /// The outcome, checked against `checkpoints` (truncation shows here).
    pub fn finish(mut self, checkpoints: &[(Checkpoint, Option<String>)]) -> Report {
        let records = self.expected_seq - 1;
        if self.broken.is_none() {
            for (checkpoint, stored_hash) in checkpoints {
                let problem = match stored_hash {
                    None => Some(format!(
                        "the trail ends at record {records}: records were removed"
                    )),
                    Some(hash) if *hash != checkpoint.hash => {
                        Some("the record's hash differs from the checkpoint".to_owned())
                    }
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    self.broken = Some(Broken::Checkpoint {
                        seq: checkpoint.seq,
                        problem,
                    });
                    break;
                }
            }
        }
        Report {
            records,
            head: self.prev_hash,
            broken: self.broken,
        }
    }
}
