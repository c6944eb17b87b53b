//! Logging: human-readable lines by default (control characters in
//! values escaped, so that no request can add a line), one JSON object per
//! line with `--log-format json`. The filter comes from `AIRLOCK_LOG` (then `RUST_LOG`),
//! `info` by default (`rmcp`, the MCP SDK, at `warn`).
//!
//! Traces: the subscriber also carries an OTLP exporter ([`otlp`]), inert
//! until [`export_traces`] switches it on from `[telemetry]` (only `serve`
//! does). It is installed here, before any configuration is read, and
//! activated later, because the subscriber is the one global Airlock has and
//! cannot be replaced once installed; its own filter keeps it independent of
//! `AIRLOCK_LOG` (the Airbyte client's spans are at debug).

mod fields;
pub mod otlp;

use std::sync::{Arc, LazyLock};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use airlock_domain::settings::InvalidKey;

/// The process's trace exporter, switched on by [`export_traces`].
static TRACES: LazyLock<Arc<otlp::Traces>> = LazyLock::new(Arc::default);

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the process-wide subscriber (the one global Airlock has).
/// Calling it twice is harmless: the second call keeps the first subscriber.
pub fn init(format: LogFormat) {
    let filter = std::env::var("AIRLOCK_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        // The MCP SDK logs every stateless request's start and end at info.
        .unwrap_or_else(|| EnvFilter::new("info,rmcp=warn"));
    // Colours only for a person at a terminal: escape codes in a file or a
    // log shipper are noise (and cost a little on every line).
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let logs = match format {
        // Values from requests (client ids, paths, slugs) cannot forge a
        // line: every field is escaped ([`fields`]).
        LogFormat::Text => fmt
            .fmt_fields(fields::EscapedFields)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(logs)
        .with(TRACES.layer())
        .try_init();
    // An error only means a subscriber is already installed (tests).
    drop(result);
}

/// Starts exporting traces when `[telemetry] otlp_endpoint` is set; does
/// nothing otherwise, or when already started. Needs a Tokio runtime.
pub fn export_traces(config: &TelemetryConfig) -> anyhow::Result<()> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(());
    };
    let http = reqwest::Client::builder()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for traces: {e}"))?;
    let settings = otlp::Settings {
        endpoint: endpoint.clone(),
        service_name: config.service_name.clone(),
        sample_ratio: config.sample_ratio,
    };
    if TRACES.activate(settings, http) {
        // The endpoint without any credentials it may carry.
        let shown = reqwest::Url::parse(endpoint).map_or_else(
            |_| "?".to_owned(),
            |url| format!("{}://{}", url.scheme(), url.host_str().unwrap_or("?")),
        );
        tracing::info!(
            collector = %shown,
            sample_ratio = config.sample_ratio,
            "exporting traces over OTLP"
        );
    }
    Ok(())
}

/// Sends the spans still queued (bounded wait); for a clean stop.
pub async fn flush_traces() {
    TRACES.flush().await;
}

/// `[telemetry]`: OpenTelemetry traces of requests, dispatches and Airbyte
/// calls, POSTed as OTLP/HTTP JSON. Logs are set by flags, not here.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans
    /// go to `{otlp_endpoint}/v1/traces`. Absent: no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// The share of traces kept, from 0.0 to 1.0, decided at each root span.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "airlock".to_owned(),
            sample_ratio: 1.0,
        }
    }
}

impl TelemetryConfig {
    pub fn validate(&self) -> Result<(), InvalidKey> {
        if let Some(endpoint) = &self.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(InvalidKey::new(
                "telemetry.otlp_endpoint",
                format!("`{endpoint}` is not an http(s) URL"),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(InvalidKey::new(
                "telemetry.service_name",
                "must not be empty",
            ));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(InvalidKey::new(
                "telemetry.sample_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        Ok(())
    }
}
