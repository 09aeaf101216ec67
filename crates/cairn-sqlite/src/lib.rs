//! How Cairn keeps its files, for both stores (the edge's and the hub's
//! SQLite backend): a connection opened with Cairn's pragmas, the thread
//! that folds the WAL into the database, key files written private and
//! durable, the operating system's randomness and clock, and the storage
//! error they report.
#![deny(missing_docs)]

mod checkpointer;
pub mod clock;
mod error;

pub use checkpointer::{WAL_PAGES_CHECKPOINT, WAL_PAGES_HARD, WalCheckpointer};
pub use error::{StoreError, sqlite_fault};

use rusqlite::Connection;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How long a connection waits for a lock, in milliseconds.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Opens a connection with the pragmas every connection needs.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit returns only after the WAL is fsynced. Acks depend on it.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    // Fold the WAL into the database every ~16 MiB instead of every 4 MiB:
    // fewer checkpoint fsyncs on the write path, bounded WAL growth.
    conn.pragma_update(None, "wal_autocheckpoint", 4096)?;
    // 16 MiB of page cache per connection (negative = KiB).
    conn.pragma_update(None, "cache_size", -16384)?;
    // Savepoint (statement) journals in memory, not in a temp file: every
    // push on the hub and every batch on the edge runs in a savepoint, and
    // each one copied the pages it touched to that file with a write(2).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// 32 bytes from the operating system's random source, for a new key.
pub fn random_seed() -> Result<[u8; 32], StoreError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|error| StoreError::Internal(format!("no random source: {error}")))?;
    Ok(seed)
}

/// Creates `path` with mode 0600 and writes `bytes`, fsyncing file and directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|error| StoreError::io(path, error))?;
    file.write_all(bytes)
        .map_err(|error| StoreError::io(path, error))?;
    file.sync_all()
        .map_err(|error| StoreError::io(path, error))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        // Make the new directory entry durable too; failure here only risks
        // losing a key that was never used to sign anything.
        let _ = dir.sync_all();
    }
    Ok(())
}

pub use cairn_core::names::scope_text;
