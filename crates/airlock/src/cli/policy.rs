//! `airlock policy explain`: what a principal may do, and which grant decided.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::Config;
use airlock_domain::policy::explain;

/// Flags of `airlock policy`.
#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Print the principal and, for each permission, allow or deny and why.
    Explain(ExplainArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["token", "claims"])))]
#[command(group(clap::ArgGroup::new("where").args(["connection", "workspace"])))]
struct ExplainArgs {
    #[command(flatten)]
    config: super::ConfigArg,
    /// A token, verified against the configured issuers.
    #[arg(long)]
    token: Option<String>,
    /// A JSON file of claims (not verified: to try a policy before any token exists).
    #[arg(long)]
    claims: Option<PathBuf>,
    /// A connection id or slug.
    #[arg(long)]
    connection: Option<String>,
    /// A workspace id or name.
    #[arg(long)]
    workspace: Option<String>,
    /// Tags of the connection (repeatable), since the check runs offline.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Do not read from the database what the grants' names are bound to.
    #[arg(long)]
    offline: bool,
}

pub(super) async fn run(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Explain(args) = args.command;
    let config = Config::load(args.config.config.as_deref(), &super::process_env())?;
    let principal = match (&args.token, &args.claims) {
        (Some(token), _) => explain::principal_from_token(&config.issuers, token).await?,
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let claims: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            explain::principal_from_claims(&config.issuers, &claims)?
        }
        (None, None) => anyhow::bail!("give --token or --claims"),
    };
    let resource = explain::resource_from_flags(
        args.connection.as_deref(),
        args.workspace.as_deref(),
        &args.tags,
    );
    let policy = config.policy().context("the policy is invalid")?;
    print!("{}", explain::explain(&policy, &principal, &resource));
    if !args.offline {
        let bindings = super::bindings::read(&config.storage.url).await;
        print!(
            "\n{}",
            super::bindings::section(policy.grants_for(&principal), &bindings)
        );
    }
    Ok(ExitCode::SUCCESS)
}
