//! `airlock sim`: the Airbyte public API simulator on its own.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use airbyte_sim::{Sim, SimConfig};
use anyhow::Context;

/// Flags of `airlock sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (where a local Airbyte usually answers).
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The simulator's TOML configuration (credentials, world, faults).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
}

pub(super) async fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => SimConfig::from_file(path)?,
        None => SimConfig::default(),
    };
    let sim = Sim::new(config)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let (client_id, client_secret) = sim.credentials();
    tracing::info!(%addr, "Airbyte simulator listening");
    println!("{}", usage(addr, &client_id, &client_secret));
    sim.serve(listener, crate::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// The instructions printed at start: how to call the simulator with curl.
pub(super) fn usage(addr: SocketAddr, client_id: &str, client_secret: &str) -> String {
    let base = format!("http://{addr}/api/public/v1");
    format!(
        "Simulated Airbyte public API at {base}\n\
         \n\
         TOKEN=$(curl -s {base}/applications/token -H 'content-type: application/json' \\\n  \
           -d '{{\"client_id\":\"{client_id}\",\"client_secret\":\"{client_secret}\"}}' | jq -r .access_token)\n\
         curl -s {base}/connections -H \"authorization: Bearer $TOKEN\" | jq '.data[] | {{connectionId, name}}'\n\
         curl -s {base}/jobs -H \"authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\\n  \
           -d '{{\"connectionId\":\"CONNECTION_ID\",\"jobType\":\"sync\"}}'\n\
         curl -s {base}/jobs/JOB_ID -H \"authorization: Bearer $TOKEN\"\n"
    )
}
