//! The `portier` binary: the command-line edge of the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// Counts heap allocations for `portier bench`, and only on a thread that asks. Only with the
/// `alloc-count` feature (on in test builds): elsewhere, the server, it would cost a
/// thread-local flag test per allocation for nothing (see BENCHMARKS.md).
#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOC: portier::alloc_count::CountingAlloc = portier::alloc_count::CountingAlloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("portier: {e:#}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
