//! The `cairn` command line: it parses arguments and wires the crates
//! together (`cli`); the exit codes and logging of the process live here.
//!
//! Each module wires configuration and I/O around the core and the store; no
//! domain rule lives here.

pub mod cli;

/// Process exit codes.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// A fault (I/O, database, internal).
    pub const FAULT: i32 = 1;
    /// Bad usage of the command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// Input refused: a rule was broken; nothing was stored.
    pub const INVALID: i32 = 3;
    /// `cairn verify` found a broken chain, checkpoint or state.
    pub const TAMPERED: i32 = 4;
    /// Storage full or quota reached; nothing was stored.
    pub const STORAGE_FULL: i32 = 5;
    /// The record asked for does not exist.
    pub const NOT_FOUND: i32 = 6;
    /// A sync round ended with ops the hub quarantined, or the hub unreachable.
    pub const SYNC_INCOMPLETE: i32 = 7;
}

/// Structured JSON logs on stderr; `RUST_LOG` sets the level (default info).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
