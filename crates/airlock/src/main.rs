//! The `airlock` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the C library's allocator: Airlock allocates on one
/// runtime thread and frees on another all the time (requests, answers,
/// rows), which glibc's per-arena locks make contended; see BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = airlock::cli::Cli::parse();
    airlock::cli::run(cli)
}
