//! The `/metrics` exposition: the in-memory families, then what the
//! database said (jobs by state, queue depth, audit records).

use airlock_domain::jobs::JobState;
use airlock_store::Store;

use super::{Metrics, header, sample};

/// The whole exposition: the in-memory families, then what the database
/// said (jobs by state, queue depth, audit records). A database that did
/// not answer leaves those out and says so in `airlock_metrics_database_up`.
pub fn render(metrics: &Metrics, figures: &StoreFigures) -> String {
    let mut out = String::with_capacity(8 * 1024);
    build_info(&mut out);
    metrics.encode(&mut out);
    database_up(
        &mut out,
        figures.counts.is_some() && figures.audit_seq.is_some(),
    );
    if let Some(counts) = &figures.counts {
        jobs_by_state(&mut out, counts);
    }
    if let Some(seq) = figures.audit_seq {
        audit_records(&mut out, seq);
    }
    out
}

/// What the metrics read from the database: jobs by state and the audit
/// trail's length (`None`: the database did not answer).
#[derive(Debug, Clone, Default)]
pub struct StoreFigures {
    counts: Option<Vec<(JobState, i64)>>,
    audit_seq: Option<i64>,
}

impl StoreFigures {
    /// Reads them (a failure is logged).
    pub async fn read(store: &Store) -> Self {
        let counts = store.count_jobs_by_state().await;
        let head = store.audit_head().await;
        if let Err(error) = &counts {
            tracing::warn!(error = %error, "metrics: cannot count jobs");
        }
        if let Err(error) = &head {
            tracing::warn!(error = %error, "metrics: cannot read the audit chain head");
        }
        Self {
            counts: counts.ok(),
            audit_seq: head.ok().map(|(seq, _)| seq),
        }
    }
}

/// `airlock_build_info`: the version of the running binary.
fn build_info(out: &mut String) {
    header(
        out,
        "airlock_build_info",
        "Always 1; the version of the running binary.",
        "gauge",
    );
    sample(
        out,
        "airlock_build_info",
        &["version"],
        &[env!("CARGO_PKG_VERSION").to_owned()],
        None,
        "1",
    );
}

/// `airlock_metrics_database_up`: whether the database answered.
fn database_up(out: &mut String, answered: bool) {
    header(
        out,
        "airlock_metrics_database_up",
        "1 when the database answered this scrape's queries (jobs, queue, audit), 0 otherwise.",
        "gauge",
    );
    let up = if answered { "1" } else { "0" };
    sample(out, "airlock_metrics_database_up", &[], &[], None, up);
}

/// `airlock_jobs` (one series per state) and `airlock_job_queue_depth`,
/// from the database's count of jobs by state.
fn jobs_by_state(out: &mut String, counts: &[(JobState, i64)]) {
    let of = |state: JobState| {
        counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    header(
        out,
        "airlock_jobs",
        "Jobs in the database, by state (all replicas).",
        "gauge",
    );
    for state in JobState::ALL {
        sample(
            out,
            "airlock_jobs",
            &["state"],
            &[state.as_str().to_owned()],
            None,
            &of(state).to_string(),
        );
    }
    header(
        out,
        "airlock_job_queue_depth",
        "Jobs waiting to be handed to Airbyte (state queued).",
        "gauge",
    );
    let queued = of(JobState::Queued).to_string();
    sample(out, "airlock_job_queue_depth", &[], &[], None, &queued);
}

/// `airlock_audit_records_total`: the audit chain head's sequence number.
fn audit_records(out: &mut String, seq: i64) {
    header(
        out,
        "airlock_audit_records_total",
        "Records written to the audit trail (the chain head's sequence number; all replicas).",
        "counter",
    );
    sample(
        out,
        "airlock_audit_records_total",
        &[],
        &[],
        None,
        &seq.to_string(),
    );
}
