//! `airlock audit verify|export|checkpoint`: check, ship and anchor the
//! audit trail, reading the database named by the configuration.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use airlock_domain::audit::Record;
use airlock_domain::audit::checkpoint::Checkpoint;
use airlock_domain::secret::Secret;
use airlock_store::Store;
use airlock_store::audit::AuditFilter;
use airlock_store::audit::verify_store;

/// Flags of `airlock audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain (and check checkpoints); exits 1 naming the
    /// first bad record.
    Verify {
        #[command(flatten)]
        config: super::ConfigArg,
        /// A file of checkpoints (JSON lines) taken earlier.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
    },
    /// Write records as JSON Lines, oldest first.
    Export {
        #[command(flatten)]
        config: super::ConfigArg,
        /// Only records after this sequence number.
        #[arg(long, default_value_t = 0)]
        from: i64,
        /// Append to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Keep running and write new records as they come.
        #[arg(long)]
        follow: bool,
    },
    /// Print (or append to a file) a checkpoint of the chain head.
    Checkpoint {
        #[command(flatten)]
        config: super::ConfigArg,
        /// Append to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

async fn open(config: &super::ConfigArg) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(config.config.as_deref(), &super::process_env())?;
    let store = Store::connect(&config.storage.url)
        .await
        .context("cannot open storage")?;
    Ok((config, store))
}

fn checkpoint_key(config: &Config) -> anyhow::Result<Option<Secret>> {
    config
        .audit
        .checkpoint_key
        .as_ref()
        .map(|source| source.resolve(&|name| std::env::var(name).ok()))
        .transpose()
        .map_err(|message| anyhow::anyhow!("audit.checkpoint_key: {message}"))
}

fn writer(output: Option<&PathBuf>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match output {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    })
}

pub(super) async fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify {
            config,
            checkpoints,
        } => verify(&config, checkpoints.as_deref()).await,
        AuditCommand::Export {
            config,
            from,
            output,
            follow,
        } => export(&config, from, output.as_ref(), follow).await,
        AuditCommand::Checkpoint { config, output } => checkpoint(&config, output.as_ref()).await,
    }
}

/// `audit verify`: recomputes the chain, and checks each checkpoint of the
/// file against it.
async fn verify(
    config: &super::ConfigArg,
    checkpoints: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (config, store) = open(config).await?;
    let key = checkpoint_key(&config)?;
    let checkpoints = match checkpoints {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let parsed = Checkpoint::parse_lines(&text)?;
            for checkpoint in &parsed {
                checkpoint.check(key.as_ref())?;
            }
            parsed
        }
        None => Vec::new(),
    };
    let report = verify_store(&store, &checkpoints).await?;
    match report.broken {
        None => {
            println!(
                "audit trail intact: {} records, head {}, {} checkpoints matched",
                report.records,
                report.head,
                checkpoints.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(broken) => {
            println!("audit trail BROKEN: {broken}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `audit export`: the records after `from` as JSON lines; with `follow`,
/// new ones as they come, until the process is asked to stop.
async fn export(
    config: &super::ConfigArg,
    from: i64,
    output: Option<&PathBuf>,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let (_, store) = open(config).await?;
    let mut out = writer(output)?;
    let mut after = from;
    loop {
        let batch = store
            .audit_records(&AuditFilter {
                after_seq: Some(after),
                ascending: true,
                limit: 1000,
                ..AuditFilter::default()
            })
            .await?;
        for record in &batch {
            writeln!(out, "{}", serde_json::to_string(&export_line(record))?)?;
            after = record.seq;
        }
        out.flush()?;
        if batch.len() == 1000 {
            continue;
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = crate::shutdown_signal() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// `audit checkpoint`: the chain's head now, signed with
/// `[audit] checkpoint_key` when one is set.
async fn checkpoint(
    config: &super::ConfigArg,
    output: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (config, store) = open(config).await?;
    let key = checkpoint_key(&config)?;
    let (seq, hash) = store.audit_head().await?;
    let checkpoint = Checkpoint {
        seq,
        hash,
        at: airlock_domain::clock::wall_ms(),
        signature: None,
    }
    .signed(key.as_ref());
    let mut out = writer(output)?;
    writeln!(out, "{}", serde_json::to_string(&checkpoint)?)?;
    Ok(ExitCode::SUCCESS)
}

/// One exported line: the record with a readable time next to `at`.
fn export_line(record: &Record) -> serde_json::Value {
    crate::api::render_audit(record)
}
