//! What the client commands print: tables, job summaries, JSON.

use super::*;

pub(super) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// A string field, or `-`.
pub(super) fn field(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SS`, or `-`.
pub(super) fn when(value: &Value, key: &str) -> String {
    match value.get(key).and_then(Value::as_str) {
        Some(text) => {
            let seconds = text.get(..19).unwrap_or(text);
            seconds.replacen('T', " ", 1)
        }
        None => "-".to_owned(),
    }
}

/// Columns padded to their widest cell.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let _infallible = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `rows` as a table under `headers`, or `empty` when there are none.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
    } else {
        print!("{}", table(headers, rows));
    }
}

pub(super) fn rows_of(list: &Value) -> &[Value] {
    list.get("data")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// One line on how a job ended.
pub(super) fn summary(job: &Value) -> String {
    let state = field(job, "state");
    let mut line = format!("job {} {state}", field(job, "id"));
    if let Some(rows) = job.get("rows_synced").and_then(Value::as_i64) {
        let _infallible = write!(line, ": {rows} rows");
        if let Some(bytes) = job.get("bytes_synced").and_then(Value::as_i64) {
            let _infallible = write!(line, ", {bytes} bytes");
        }
    }
    if let Some(error) = job.get("error").and_then(Value::as_str)
        && state != "succeeded"
    {
        let _infallible = write!(line, " ({error})");
    }
    line
}

/// `HH:MM:SS  state  detail` for one event of the stream.
pub(super) fn state_line(event: &Value) -> String {
    let at = event.get("at").and_then(Value::as_str).unwrap_or_default();
    let time = at
        .split_once('T')
        .map_or(at, |(_, t)| t.get(..8).unwrap_or(t));
    let state = field(event, "state");
    match event.get("detail").and_then(Value::as_str) {
        Some(detail) => format!("{time}  {state:<10} {detail}"),
        None => format!("{time}  {state}"),
    }
}

/// A job's approval request as `ID (state)`, or `-`.
fn approval_of(job: &Value) -> String {
    match job.get("approval") {
        Some(approval) if approval.is_object() => {
            format!("{} ({})", field(approval, "id"), field(approval, "state"))
        }
        _ => "-".to_owned(),
    }
}

/// A job as `key: value` lines.
pub(super) fn describe(job: &Value) -> String {
    let attempts = format!(
        "{} of {}",
        field(job, "attempts"),
        field(job, "max_attempts")
    );
    let pairs = [
        ("id", field(job, "id")),
        ("connection", field(job, "connection_id")),
        ("workspace", field(job, "workspace_id")),
        ("type", field(job, "type")),
        ("state", field(job, "state")),
        ("airbyte job", field(job, "airbyte_job_id")),
        ("attempts", attempts),
        ("requested by", field(job, "requested_by")),
        ("created", when(job, "created_at")),
        ("updated", when(job, "updated_at")),
        ("finished", when(job, "finished_at")),
        ("rows", field(job, "rows_synced")),
        ("bytes", field(job, "bytes_synced")),
        ("duration", field(job, "duration")),
        ("retry of", field(job, "retry_of")),
        ("approval", approval_of(job)),
        ("error", field(job, "error")),
    ];
    pairs
        .iter()
        .map(|(key, value)| format!("{key:<13}{value}\n"))
        .collect()
}
