//! `airlock mcp`: Airlock's MCP tools over stdio, for agents that launch
//! their tools as processes. Acts as the identity of `AIRLOCK_TOKEN`
//! against the Airlock at `AIRLOCK_URL`, whose `/mcp` decides and audits
//! every call. Standard output carries the protocol; logs go to standard
//! error.

use std::process::ExitCode;

use anyhow::Context;
use secrecy::SecretString;

use crate::mcp::bridge::Remote;

/// Flags of `airlock mcp`.
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// Airlock's base URL (its `/mcp` is used).
    #[arg(long, env = "AIRLOCK_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
}

pub(super) async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    // Only from the environment: a flag would show in process lists.
    let token = std::env::var("AIRLOCK_TOKEN")
        .map(SecretString::from)
        .context("AIRLOCK_TOKEN is not set: the stdio server acts as the identity of that token")?;
    let remote = Remote::connect(&args.url, &token).await?;
    tracing::info!(url = %args.url, "serving Airlock's MCP tools on stdio");
    remote.serve_stdio().await?;
    Ok(ExitCode::SUCCESS)
}
