//! Logging: human-readable lines by default, one JSON object per line with
//! `--log-format json`. The filter comes from `AIRLOCK_LOG` (then `RUST_LOG`),
//! `info` by default (`rmcp`, the MCP SDK, at `warn`).

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // An error only means a subscriber is already installed (tests).
    drop(result);
}
