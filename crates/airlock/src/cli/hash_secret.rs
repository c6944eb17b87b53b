//! `airlock hash-secret`: the `secret_hash` of a `[[service_accounts]]`
//! entry, from a secret read on standard input (never a flag: flags show
//! in process lists and shell history).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;

use airlock_domain::secret::hash::{DEFAULT_ITERATIONS, MIN_ITERATIONS, hash_secret};

/// Flags of `airlock hash-secret`.
#[derive(Debug, clap::Args)]
pub struct HashSecretArgs {
    /// PBKDF2-HMAC-SHA256 iterations.
    #[arg(long, default_value_t = DEFAULT_ITERATIONS, value_parser = clap::value_parser!(u32).range(i64::from(MIN_ITERATIONS)..))]
    iterations: u32,
}

pub(super) fn run(args: &HashSecretArgs) -> anyhow::Result<ExitCode> {
    let mut secret = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut secret)
        .context("cannot read the secret from standard input")?;
    let secret = secret.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        anyhow::bail!(
            "no secret on standard input (e.g. `printf %s \"$SECRET\" | airlock hash-secret`)"
        );
    }
    let hash = hash_secret(secret, args.iterations).map_err(anyhow::Error::msg)?;
    println!("{hash}");
    Ok(ExitCode::SUCCESS)
}
