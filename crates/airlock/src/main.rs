//! The `airlock` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = airlock::cli::Cli::parse();
    airlock::cli::run(cli)
}
