//! `airlock serve`: the control plane, from a configuration file.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::app::{App, Extras};
use crate::config::Config;

/// Flags of `airlock serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: super::ConfigArg,
    /// Address to listen on (overrides `server.listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

pub(super) async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(args.config.config.as_deref(), &super::process_env())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let listen = config.server.listen;
    let request_log_flush = Duration::from_millis(config.server.request_log_flush_ms);
    // The trace export `[telemetry]` and the `OTEL_*` variables ask for,
    // refused before anything starts when it cannot be honoured.
    let traces = config
        .telemetry
        .export(&|name| std::env::var(name).ok())
        .context("invalid trace configuration")?;
    let app = App::build(config, Extras::default()).await?;
    if let Some(export) = traces {
        crate::telemetry::start_traces(&export, app.state().metrics().span_counters())?;
    }
    #[cfg(unix)]
    if let Some(path) = args.config.config.clone() {
        let state = app.state().clone();
        tokio::spawn(reload_on_sighup(state, path));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "airlock listening");
    crate::telemetry::gather_request_log(request_log_flush)?;
    let served = app.run(listener, crate::shutdown_signal()).await;
    crate::telemetry::flush_logs();
    crate::telemetry::flush_traces().await;
    served?;
    Ok(ExitCode::SUCCESS)
}

/// Reloads roles and grants from `path` on every SIGHUP. A file that does
/// not load, or whose policy is invalid, is refused and the old policy stays.
#[cfg(unix)]
async fn reload_on_sighup(state: crate::web::AppState, path: std::path::PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: policy reload disabled");
        return;
    };
    while hangups.recv().await.is_some() {
        match crate::app::reload_policy(&state, &path, &super::process_env()).await {
            Ok(grants) => tracing::info!(grants, path = %path.display(), "policy reloaded"),
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), path = %path.display(), "policy reload refused; keeping the current policy")
            }
        }
    }
}
