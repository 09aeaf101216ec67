//! The command line: parsing, dispatch and exit codes, one room per
//! command group (`args`, `edge`, `hub`, `pack`, `record`, `serve`, `sync`,
//! `status`), with how commands fail (`failure`) and reach a hub
//! (`connect`).

mod args;
mod artifact;
mod comply;
mod connect;
mod edge;
mod failure;
mod hub;
mod pack;
mod record;
mod report;
mod serve;
mod status;
mod sync;
mod write;

pub use args::*;
use connect::*;
use edge::*;
use failure::*;
use hub::*;
use record::*;
use serve::*;
use status::*;
use sync::*;

use crate::exit;
use anyhow::Context;
use cairn_core::pack::Violation;
use cairn_edge::clock::now_ms;
use cairn_edge::input;
use cairn_edge::{EdgeStore, InitOptions, ListQuery, Record, WriteError};
use cairn_tools::output;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let json_output = cli.json;
    match dispatch(cli) {
        Ok(()) => exit::OK,
        Err(failure) => {
            if json_output {
                output::json(&failure.json);
            } else {
                eprintln!("{}", failure.text);
            }
            failure.code
        }
    }
}

fn open(cli: &Cli) -> Result<EdgeStore, Failure> {
    if !cli.data.join("node.key").exists() {
        return Err(Failure {
            code: exit::NOT_FOUND,
            json: json!({"error": {"code": "no_node", "message": format!("{} holds no Cairn node", cli.data.display())}}),
            text: format!(
                "error: {} holds no Cairn node: run `cairn --data {} edge init` (or name another with --data)",
                cli.data.display(),
                cli.data.display()
            ),
        });
    }
    EdgeStore::open(&cli.data)
        .with_context(|| format!("cannot open the node in {}", cli.data.display()))
        .map_err(Failure::from)
}

/// A runtime for one command's requests.
fn one_shot_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")
        .map_err(Failure::from)
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Edge(command) => edge(&cli, command),
        Command::Pack(command) => pack::pack(&cli, command),
        Command::Record(command) => record(&cli, command),
        Command::Status(args) => status(&cli, args),
        Command::Verify(VerifyArgs { what: None }) => verify(&cli),
        Command::Verify(VerifyArgs {
            what: Some(VerifyCommand::Report { file, hub_key }),
        }) => report::verify_report(&cli, file, hub_key.as_deref()),
        Command::Report(args) => report::report(&cli, args),
        Command::Bench(BenchCommand::Push(args)) => {
            cairn_tools::bench::push(args, cli.json).map_err(Failure::from)
        }
        Command::Bench(BenchCommand::Judge(args)) => {
            cairn_tools::bench::judge(args, cli.json).map_err(Failure::from)
        }
        Command::Bench(BenchCommand::Link(args)) => {
            cairn_tools::bench::link(args, cli.json).map_err(Failure::from)
        }
        Command::Bench(BenchCommand::Edge(args)) => {
            cairn_tools::bench::edge(args, cli.json).map_err(Failure::from)
        }
        Command::Demo(args) => cairn_tools::demo::run(args, cli.json).map_err(Failure::from),
        Command::Hub(command) => hub(&cli, command),
        Command::Sync(args) => sync(&cli, args),
        Command::Review(command) => comply::review(&cli, command),
        Command::Artifact(command) => artifact::artifact(&cli, command),
    }
}
