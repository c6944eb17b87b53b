//! The `airlock` command line. Each subcommand parses its flags here and
//! calls into the library; nothing here holds logic of its own.

mod audit;
mod bindings;
mod check_config;
mod client;
mod demo;
mod hash_secret;
mod mcp;
mod policy;
mod serve;
mod sim;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::telemetry::{self, LogFormat};

/// Airlock: an identity-aware control plane for Airbyte.
#[derive(Debug, Parser)]
#[command(name = "airlock", version, about, propagate_version = true)]
pub struct Cli {
    /// How log lines are written to standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "AIRLOCK_LOG_FORMAT")]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole stack on embedded defaults: a simulated Airbyte, a
    /// development identity provider and Airlock. No configuration needed.
    Demo(demo::DemoArgs),
    /// Run the control plane from a configuration file.
    Serve(serve::ServeArgs),
    /// Run the Airbyte public API simulator on its own.
    Sim(sim::SimArgs),
    /// Validate a configuration file and print it with secrets redacted.
    CheckConfig(check_config::CheckConfigArgs),
    /// Hash a service account's secret, read from standard input, for
    /// `[[service_accounts]] secret_hash`.
    HashSecret(hash_secret::HashSecretArgs),
    /// Verify, export or checkpoint the audit trail.
    Audit(audit::AuditArgs),
    /// Explain what a principal may do under a configuration.
    Policy(policy::PolicyArgs),
    /// Serve Airlock's MCP tools on stdio, for agents that launch tools as
    /// processes (acts as AIRLOCK_TOKEN against AIRLOCK_URL).
    Mcp(mcp::McpArgs),
    // `connections`, `sync`, `jobs`, `job`, `cancel`, `retry`: clients of a
    // running Airlock, listed at the same level as the others.
    #[command(flatten)]
    Client(client::ClientCommand),
}

/// The `--config` flag shared by the commands that read a configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The TOML configuration file.
    #[arg(long, short = 'c', env = "AIRLOCK_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Runs a parsed command line and turns its outcome into an exit code.
pub fn run(cli: Cli) -> ExitCode {
    telemetry::init(cli.log_format);
    let outcome = match cli.command {
        Command::CheckConfig(args) => block_on(check_config::run(&args)),
        Command::HashSecret(args) => hash_secret::run(&args),
        Command::Sim(args) => block_on(sim::run(args)),
        Command::Demo(args) => block_on(demo::run(args)),
        Command::Serve(args) => block_on(serve::run(args)),
        Command::Audit(args) => block_on(audit::run(args)),
        Command::Policy(args) => block_on(policy::run(args)),
        Command::Mcp(args) => block_on(mcp::run(args)),
        Command::Client(command) => block_on(client::run(command)),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: Future<Output = anyhow::Result<ExitCode>>>(future: F) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(future)
}

/// The process environment as pairs, for [`crate::config::Config::load`].
fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
