//! `airlock demo`: the whole stack on embedded defaults, for a newcomer.
//!
//! For now the stack is the Airbyte simulator with its scheduler on (so the
//! job list is alive); the identity provider and Airlock's own API join it
//! as they land.

use std::net::SocketAddr;
use std::process::ExitCode;

use airbyte_sim::{Sim, SimConfig};
use anyhow::Context;

/// Flags of `airlock demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let config = SimConfig {
        scheduler: true,
        ..SimConfig::default()
    };
    let sim = Sim::new(config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (client_id, client_secret) = sim.credentials();
    println!("Airlock demo (Ctrl-C to stop)\n");
    println!("{}", super::sim::usage(addr, &client_id, &client_secret));
    sim.serve(listener, crate::shutdown_signal()).await?;
    eprintln!("demo stopped");
    Ok(ExitCode::SUCCESS)
}
