//! The audit trail: every decision, every accepted change and every job
//! state change, in a hash chain a reviewer can verify.
//!
//! Each record carries the SHA-256 of its canonical encoding, which
//! includes the previous record's hash. The canonical encoding is the JSON
//! object of every field but `hash`, with keys in lexicographic order, no
//! whitespace, absent values as `null` (see [`Record::canonical`]).
//! Appending locks the chain head (`audit_head`) inside the transaction of
//! the change the record describes, so records and changes commit together
//! and the chain has no gaps or forks.

pub mod checkpoint;
pub mod verify;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use utoipa::ToSchema;

use crate::store::{Store, StoreError};

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
    hex(digest.as_ref())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

const COLUMNS: &str = "seq, at, request_id, principal_issuer, principal_subject, principal_kind, \
    principal_client_id, channel, action, workspace_id, connection_id, job_id, airbyte_job_id, decision, \
    reason, outcome, source_ip, user_agent, detail, prev_hash, hash";

/// Appends `entry` to the chain inside the caller's transaction.
///
/// The first statement locks the head row (a write in SQLite takes the
/// database's write lock; in Postgres the row lock), so concurrent appends
/// queue up behind each other.
pub async fn append(
    conn: &mut AnyConnection,
    entry: &Entry,
    now: i64,
) -> Result<Record, StoreError> {
    let mut records = append_many(conn, &[(entry, now)]).await?;
    records
        .pop()
        .ok_or_else(|| StoreError::Corrupt("an append wrote no record".into()))
}

/// Rows per `INSERT` when appending many records (21 parameters each, well
/// under both databases' limits).
const ROWS_PER_INSERT: usize = 64;

/// Appends `entries` (each with its time, unix ms), in order, inside the
/// caller's transaction: one lock of the head for all of them, multi-row
/// inserts, one update of the head.
pub async fn append_many(
    conn: &mut AnyConnection,
    entries: &[(&Entry, i64)],
) -> Result<Vec<Record>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(entries.len())
        .map_err(|_| StoreError::Corrupt("too many audit records at once".into()))?;
    let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
        .bind(count)
        .fetch_one(&mut *conn)
        .await?;
    let last_seq: i64 = head.try_get("seq")?;
    let mut prev_hash: String = head.try_get("hash")?;
    let mut records = Vec::with_capacity(entries.len());
    for (seq, (entry, at)) in (last_seq - count + 1..).zip(entries) {
        let mut record = Record {
            seq,
            at: *at,
            entry: Entry::clone(entry),
            prev_hash: std::mem::take(&mut prev_hash),
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        prev_hash.clone_from(&record.hash);
        records.push(record);
    }
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|r| {
                let params: Vec<String> = (1..=21).map(|c| format!("${}", r * 21 + c)).collect();
                format!("({})", params.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for record in chunk {
            let e = &record.entry;
            query = query
                .bind(record.seq)
                .bind(record.at)
                .bind(e.origin.request_id.clone())
                .bind(e.actor.issuer.clone())
                .bind(e.actor.subject.clone())
                .bind(e.actor.kind.clone())
                .bind(e.actor.client_id.clone())
                .bind(e.channel.clone())
                .bind(e.action.clone())
                .bind(e.workspace_id.clone())
                .bind(e.connection_id.clone())
                .bind(e.job_id.clone())
                .bind(e.airbyte_job_id)
                .bind(e.decision.clone())
                .bind(e.reason.clone())
                .bind(e.outcome.clone())
                .bind(e.origin.source_ip.clone())
                .bind(e.origin.user_agent.clone())
                .bind(e.detail.as_ref().map(Value::to_string))
                .bind(record.prev_hash.clone())
                .bind(record.hash.clone());
        }
        query.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(prev_hash.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(records)
}

pub(crate) fn decode(row: &AnyRow) -> Result<Record, StoreError> {
    let text = |name: &str| {
        row.try_get::<Option<String>, _>(name)
            .map_err(StoreError::from)
    };
    let detail = text("detail")?
        .map(|d| serde_json::from_str(&d))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?;
    Ok(Record {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        entry: Entry {
            origin: Origin {
                request_id: text("request_id")?,
                source_ip: text("source_ip")?,
                user_agent: text("user_agent")?,
            },
            actor: Actor {
                issuer: text("principal_issuer")?,
                subject: text("principal_subject")?,
                kind: text("principal_kind")?,
                client_id: text("principal_client_id")?,
            },
            channel: row.try_get("channel")?,
            action: row.try_get("action")?,
            workspace_id: text("workspace_id")?,
            connection_id: text("connection_id")?,
            job_id: text("job_id")?,
            airbyte_job_id: row.try_get("airbyte_job_id")?,
            decision: row.try_get("decision")?,
            reason: text("reason")?,
            outcome: text("outcome")?,
            detail,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Filters of an audit query; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The principal's subject.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub connection_id: Option<String>,
    pub job_id: Option<String>,
    pub airbyte_job_id: Option<i64>,
    pub decision: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// Only records with `seq` below this (newest-first pages).
    pub before_seq: Option<i64>,
    /// Only records with `seq` above this (oldest-first, for followers).
    pub after_seq: Option<i64>,
    /// Oldest first when true (export); newest first otherwise.
    pub ascending: bool,
    pub limit: i64,
}

impl Store {
    /// Appends one record in its own transaction (decisions that change
    /// nothing else: denials, reads).
    pub async fn append_audit(&self, entry: &Entry, now: i64) -> Result<Record, StoreError> {
        let _turn = self.write_turn().await;
        let mut tx = self.pool().begin().await?;
        let record = append(&mut tx, entry, now).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Records matching `filter`.
    pub async fn audit_records(&self, filter: &AuditFilter) -> Result<Vec<Record>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut texts: Vec<(usize, String)> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let mut n = 0;
        let mut add_text = |sql: &mut String, column: &str, value: &Option<String>| {
            if let Some(value) = value {
                n += 1;
                sql.push_str(&format!(" AND {column} = ${n}"));
                texts.push((n, value.clone()));
            }
        };
        add_text(&mut sql, "principal_subject", &filter.actor);
        add_text(&mut sql, "action", &filter.action);
        add_text(&mut sql, "connection_id", &filter.connection_id);
        add_text(&mut sql, "job_id", &filter.job_id);
        add_text(&mut sql, "decision", &filter.decision);
        let mut add_int = |sql: &mut String, condition: &str, value: Option<i64>| {
            if let Some(value) = value {
                n += 1;
                sql.push_str(&format!(" AND {condition} ${n}"));
                ints.push((n, value));
            }
        };
        add_int(&mut sql, "airbyte_job_id =", filter.airbyte_job_id);
        add_int(&mut sql, "at >=", filter.since);
        add_int(&mut sql, "at <", filter.until);
        add_int(&mut sql, "seq <", filter.before_seq);
        add_int(&mut sql, "seq >", filter.after_seq);
        let order = if filter.ascending { "ASC" } else { "DESC" };
        sql.push_str(&format!(
            " ORDER BY seq {order} LIMIT {}",
            filter.limit.clamp(1, 10_000)
        ));
        // Bind in placeholder order.
        let mut binds: Vec<(usize, Result<String, i64>)> = texts
            .into_iter()
            .map(|(i, v)| (i, Ok(v)))
            .chain(ints.into_iter().map(|(i, v)| (i, Err(v))))
            .collect();
        binds.sort_by_key(|(i, _)| *i);
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (_, value) in binds {
            query = match value {
                Ok(text) => query.bind(text),
                Err(int) => query.bind(int),
            };
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(decode).collect()
    }

    /// The chain head: the last sequence number and its hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }
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
        assert_eq!(hex(&[0x00, 0xff, 0x1a]), "00ff1a");
    }
}
