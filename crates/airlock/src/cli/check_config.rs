//! `airlock check-config`: validate a configuration and print it redacted.

use std::process::ExitCode;

use crate::config::{Config, ConfigError};

/// Flags of `airlock check-config`.
#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    #[command(flatten)]
    config: super::ConfigArg,
    /// Print nothing on success.
    #[arg(long, short)]
    quiet: bool,
    /// Do not read from the database what the grants' names are bound to.
    #[arg(long)]
    offline: bool,
}

pub(super) async fn run(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let env = super::process_env();
    let lookup = |name: &str| std::env::var(name).ok();
    // Beyond the file: the credential it points at, and the `OTEL_*`
    // variables `serve` would read.
    let checked = Config::load(args.config.config.as_deref(), &env).and_then(|config| {
        let resolved = config
            .airbyte
            .auth(&lookup)
            .and_then(|_| config.telemetry.export(&lookup));
        match resolved {
            Ok(_) => Ok(config),
            Err(error) => Err(ConfigError::from(error)),
        }
    });
    match checked {
        Ok(config) => {
            if !args.quiet {
                print!("{}", config.to_redacted_toml());
                if !args.offline
                    && let Ok(policy) = config.policy()
                {
                    let bindings = super::bindings::read(&config.storage.url).await;
                    // As TOML comments, so that the output stays a configuration.
                    for line in super::bindings::section(policy.grants(), &bindings).lines() {
                        println!("# {line}");
                    }
                }
                eprintln!("configuration is valid");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("invalid configuration: {error}");
            Ok(ExitCode::from(2))
        }
    }
}
