//! Checkpoints of the chain head, exported so that truncating the trail
//! (deleting its newest records) is detectable too. A checkpoint may be
//! signed with a key from the configuration (HMAC-SHA256).

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The head of the chain at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: String,
    /// Unix ms when it was taken.
    pub at: i64,
    /// `hmac-sha256:<hex>` over `"<seq>:<hash>:<at>"`, when a key is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What is wrong with a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("line {line}: not a checkpoint: {message}")]
    Parse { line: usize, message: String },
    #[error("checkpoint at record {seq}: bad signature")]
    BadSignature { seq: i64 },
    #[error("checkpoint at record {seq}: unsigned, but a checkpoint key is configured")]
    Unsigned { seq: i64 },
}

impl Checkpoint {
    fn message(&self) -> String {
        format!("{}:{}:{}", self.seq, self.hash, self.at)
    }

    /// Signs with `key` (or leaves it unsigned without one).
    pub fn signed(mut self, key: Option<&Secret>) -> Self {
        self.signature = key.map(|key| format!("hmac-sha256:{}", mac(key, &self.message())));
        self
    }

    /// Checks the signature when a key is configured.
    pub fn check(&self, key: Option<&Secret>) -> Result<(), CheckpointError> {
        let Some(key) = key else { return Ok(()) };
        let Some(signature) = &self.signature else {
            return Err(CheckpointError::Unsigned { seq: self.seq });
        };
        let expected = format!("hmac-sha256:{}", mac(key, &self.message()));
        // Compare in constant time: the signature is attacker-supplied.
        let equal = aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            signature.as_bytes(),
        )
        .is_ok();
        if equal {
            Ok(())
        } else {
            Err(CheckpointError::BadSignature { seq: self.seq })
        }
    }

    /// Reads checkpoints, one JSON object per line.
    pub fn parse_lines(text: &str) -> Result<Vec<Self>, CheckpointError> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line).map_err(|e| CheckpointError::Parse {
                    line: i + 1,
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

fn mac(key: &Secret, message: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose().as_bytes());
    hex::encode(aws_lc_rs::hmac::sign(&key, message.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let key = Secret::new("k");
        let checkpoint = Checkpoint {
            seq: 3,
            hash: "ab".into(),
            at: 1,
            signature: None,
        }
        .signed(Some(&key));
        assert!(checkpoint.check(Some(&key)).is_ok());
        assert!(checkpoint.check(Some(&Secret::new("other"))).is_err());
        let mut moved = checkpoint.clone();
        moved.seq = 2;
        assert_eq!(
            moved.check(Some(&key)),
            Err(CheckpointError::BadSignature { seq: 2 })
        );
        let unsigned = Checkpoint {
            signature: None,
            ..checkpoint
        };
        assert!(unsigned.check(None).is_ok());
        assert_eq!(
            unsigned.check(Some(&key)),
            Err(CheckpointError::Unsigned { seq: 3 })
        );
        let line = serde_json::to_string(&unsigned).expect("json");
        assert_eq!(
            Checkpoint::parse_lines(&format!("{line}\n\n{line}\n"))
                .expect("parses")
                .len(),
            2
        );
        assert!(Checkpoint::parse_lines("nope").is_err());
    }
}
