//! `airlock serve`: the control plane, from a configuration file.

use std::net::SocketAddr;
use std::process::ExitCode;

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
    let app = App::build(config, Extras::default()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "airlock listening");
    app.run(listener, crate::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
