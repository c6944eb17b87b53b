//! The audit trail: every decision, every accepted change and every job
//! state change, in a hash chain a reviewer can verify.
//!
//! Each record carries the SHA-256 of its canonical encoding, which
//! includes the previous record's hash. The canonical encoding is the JSON
//! object of every field but `hash`, with keys in lexicographic order, no
//! whitespace, absent values as `null` (see [`Record::canonical`]).
//! Appending (in the store) locks the chain head (`audit_head`)
//! inside the transaction of the change the record describes, so records
//! and changes commit together and the chain has no gaps or forks.

pub mod checkpoint;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::secret::SecretSource;

/// The hash that precedes the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who acted, as recorded (no token, no claims beyond these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    pub issuer: Option<String>,
    pub subject: Option<String>,
    pub kind: Option<String>,
    pub client_id: Option<String>,
}

impl Actor {
    /// Airlock itself (the dispatcher, the tracker).
    pub fn system() -> Self {
        Self {
            subject: Some("airlock".to_owned()),
            kind: Some("system".to_owned()),
            ..Self::default()
        }
    }

    /// A verified principal.
    pub fn of(principal: &crate::identity::Principal) -> Self {
        Self {
            issuer: Some(principal.issuer.clone()),
            subject: Some(principal.subject.clone()),
            kind: Some(principal.kind.as_str().to_owned()),
            client_id: principal.client_id.clone(),
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Origin {
    pub request_id: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A record before it is chained: what the code that acts provides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    #[serde(flatten)]
    pub origin: Origin,
    #[serde(rename = "principal")]
    pub actor: Actor,
    /// `api`, `front`, `mcp`, `cli`, `airlock` (background work), `airbyte`.
    pub channel: String,
    /// What was attempted: `jobs.sync`, `jobs.cancel`, `job.state`, ...
    pub action: String,
    pub workspace_id: Option<String>,
    pub connection_id: Option<String>,
    pub job_id: Option<String>,
    pub airbyte_job_id: Option<i64>,
    /// `allow`, `deny`, or `system` for changes no request caused.
    pub decision: String,
    /// The reason code (which grant allowed; why nothing did).
    pub reason: Option<String>,
    /// What happened: `queued`, `running`, `rejected`, `401`, ...
    pub outcome: Option<String>,
    /// Small structured extras (never secrets).
    pub detail: Option<Value>,
}

/// A chained record, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Record {
    pub seq: i64,
    /// Unix ms.
    pub at: i64,
    #[serde(flatten)]
    pub entry: Entry,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// The canonical encoding hashed into `hash`.
    pub fn canonical(&self) -> String {
        // serde_json's map is ordered by key (no `preserve_order`), so the
        // object below serializes with sorted keys.
        let e = &self.entry;
        json!({
            "action": e.action,
            "airbyte_job_id": e.airbyte_job_id,
            "at": self.at,
            "channel": e.channel,
            "connection_id": e.connection_id,
            "decision": e.decision,
            "detail": e.detail.as_ref().map(Value::to_string),
            "job_id": e.job_id,
            "outcome": e.outcome,
            "prev_hash": self.prev_hash,
            "principal_client_id": e.actor.client_id,
            "principal_issuer": e.actor.issuer,
            "principal_kind": e.actor.kind,
            "principal_subject": e.actor.subject,
            "reason": e.reason,
            "request_id": e.origin.request_id,
            "seq": self.seq,
            "source_ip": e.origin.source_ip,
            "user_agent": e.origin.user_agent,
            "workspace_id": e.workspace_id,
        })
        .to_string()
    }

    /// SHA-256 of the canonical encoding, in lowercase hex.
    pub fn compute_hash(&self) -> String {
        sha256_hex(self.canonical().as_bytes())
    }
}

/// SHA-256 in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    hex::encode(digest.as_ref())
}

/// `[audit]`: what the trail records beyond decisions and changes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record successful reads too (every list and get), not only denials
    /// and changes.
    pub record_reads: bool,
    /// Signs exported checkpoints (HMAC-SHA256) so they cannot be forged.
    pub checkpoint_key: Option<SecretSource>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut record = Record {
            seq: 1,
            at: 1_700_000_000_000,
            entry: Entry {
                channel: "api".into(),
                action: "jobs.sync".into(),
                decision: "allow".into(),
                actor: Actor {
                    subject: Some("alice".into()),
                    ..Actor::default()
                },
                detail: Some(json!({"b": 1, "a": [true]})),
                ..Entry::default()
            },
            prev_hash: GENESIS.into(),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }

    #[test]
    fn canonical_encoding_has_sorted_keys_and_every_field() {
        let canonical = record().canonical();
        let value: Value = serde_json::from_str(&canonical).expect("json");
        let keys: Vec<&String> = value.as_object().expect("object").keys().collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(keys.len(), 20);
        assert!(!canonical.contains(' '), "no whitespace: {canonical}");
    }

    #[test]
    fn any_change_changes_the_hash() {
        let original = record();
        let mut edited = original.clone();
        edited.entry.actor.subject = Some("mallory".into());
        assert_ne!(edited.compute_hash(), original.hash);
        let mut moved = original.clone();
        moved.seq = 2;
        assert_ne!(moved.compute_hash(), original.hash);
        assert_eq!(original.compute_hash(), original.hash, "stable");
        assert_eq!(hex::encode([0x00, 0xff, 0x1a]), "00ff1a");
    }
}
