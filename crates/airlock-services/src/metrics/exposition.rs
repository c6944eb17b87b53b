//! The `/metrics` exposition: the in-memory families, then what the
//! database said (jobs by state, queue depth, audit records), registered
//! afresh at each scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use airlock_domain::jobs::JobState;
use airlock_store::Store;

use super::Metrics;

/// The whole exposition: the build, the in-memory families, then what the
/// database said (jobs by state, queue depth, audit records). A database
/// that did not answer leaves those out and says so in
/// `airlock_metrics_database_up`.
pub fn render(metrics: &Metrics, figures: &StoreFigures) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let scraped = figures.registry();
    // Writing to a String cannot fail; a label or help text that could not
    // be written would be a bug of this module, so it is logged, and the
    // scrape answers what was written.
    if let Err(error) = metrics
        .encode(&mut out)
        .and_then(|()| prometheus_client::encoding::prometheus_text::encode(&mut out, &scraped))
    {
        tracing::error!(error = %error, "metrics: cannot encode the exposition");
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
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

    /// The build, whether the database answered, and what it said.
    fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        registry.register(
            "airlock_build",
            "Always 1; the version of the running binary",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let answered = self.counts.is_some() && self.audit_seq.is_some();
        registry.register(
            "airlock_metrics_database_up",
            "1 when the database answered this scrape's queries (jobs, queue, audit), 0 otherwise",
            ConstGauge::new(i64::from(answered)),
        );
        if let Some(counts) = &self.counts {
            jobs_by_state(&mut registry, counts);
        }
        if let Some(seq) = self.audit_seq {
            registry.register(
                "airlock_audit_records",
                "Records written to the audit trail (the chain head's sequence number; all replicas)",
                ConstCounter::new(u64::try_from(seq).unwrap_or(0)),
            );
        }
        registry
    }
}

/// `airlock_jobs` (one series per state) and `airlock_job_queue_depth`,
/// from the database's count of jobs by state.
fn jobs_by_state(registry: &mut Registry, counts: &[(JobState, i64)]) {
    let of = |state: JobState| {
        counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    };
    let jobs = Family::<State, Gauge>::default();
    for state in JobState::ALL {
        jobs.get_or_create(&State {
            state: state.as_str(),
        })
        .set(of(state));
    }
    registry.register(
        "airlock_jobs",
        "Jobs in the database, by state (all replicas)",
        jobs,
    );
    registry.register(
        "airlock_job_queue_depth",
        "Jobs waiting to be handed to Airbyte (state queued)",
        ConstGauge::new(of(JobState::Queued)),
    );
}
