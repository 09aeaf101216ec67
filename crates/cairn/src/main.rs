//! The `cairn` binary: a thin shell that parses the command line, opens the
//! store and hands the work to the library crates.
//!
//! Exit codes mean something to scripts; see [`cairn::exit`].

use clap::Parser;

fn main() {
    let cli = cairn::cli::Cli::parse();
    std::process::exit(cairn::cli::run(cli));
}
