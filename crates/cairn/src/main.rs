//! The `cairn` binary: a thin shell that parses the command line, opens the
//! store and hands the work to the library crates.
//!
//! Exit codes mean something to scripts; see [`cairn::exit`].

use clap::Parser;

// The writer thread frees what client threads allocated (requests, payloads);
// glibc's malloc serializes those cross-thread frees on arena locks, which
// showed as a quarter of the writer's time under load. mimalloc frees them
// without a global lock.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cairn::cli::Cli::parse();
    std::process::exit(cairn::cli::run(cli));
}
