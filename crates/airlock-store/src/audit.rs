//! The audit trail's rows: appending inside the caller's transaction,
//! reading with filters, the chain's head, and verifying the whole chain.
//! What a record is and how it is hashed is [`airlock_domain::audit`].

use futures_util::TryStreamExt;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::params::Placeholders;
use super::{Store, StoreError};
use airlock_domain::audit::checkpoint::Checkpoint;
use airlock_domain::audit::verify::{Report, Verifier};
use airlock_domain::audit::{Actor, Entry, Origin, Record};

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
    let marks = Placeholders::of(conn);
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let rows = marks.rows(chunk.len(), 21, |p| format!("({})", p.join(", ")));
        let sql = format!("INSERT INTO audit_log ({COLUMNS}) VALUES {rows}");
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
        let mut tx = self.begin_write().await?;
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
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    /// The chain head: the last sequence number and its hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((row.try_get("seq")?, row.try_get("hash")?))
    }
}

/// Verifies the whole trail in `store`, and each checkpoint against it.
pub async fn verify_store(store: &Store, checkpoints: &[Checkpoint]) -> Result<Report, StoreError> {
    let mut verifier = Verifier::default();
    let mut hashes = Vec::new();
    {
        let sql = format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq");
        let mut rows = sqlx::query(AssertSqlSafe(sql)).fetch(&store.pool);
        while let Some(row) = rows.try_next().await? {
            let record = decode(&row)?;
            verifier.check(&record);
            if checkpoints.iter().any(|c| c.seq == record.seq) {
                hashes.push((record.seq, record.hash.clone()));
            }
        }
    }
    let pairs: Vec<(Checkpoint, Option<String>)> = checkpoints
        .iter()
        .map(|c| {
            let stored = hashes
                .iter()
                .find(|(seq, _)| *seq == c.seq)
                .map(|(_, h)| h.clone());
            (c.clone(), stored)
        })
        .collect();
    Ok(verifier.finish(&pairs))
}
