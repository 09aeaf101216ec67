//! The files of a data directory: key, database, and their sizes.

use crate::StoreError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The node's key file (mode 0600).
pub(crate) fn key_path(dir: &Path) -> PathBuf {
    dir.join("node.key")
}

/// The SQLite database.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join("cairn.db")
}

/// 32 bytes from the operating system's random source, for a new key.
pub(crate) fn random_seed() -> Result<[u8; 32], StoreError> {
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

/// Bytes used by the database and its WAL.
pub(crate) fn storage_bytes(dir: &Path) -> u64 {
    ["cairn.db", "cairn.db-wal", "cairn.db-shm"]
        .iter()
        .filter_map(|name| std::fs::metadata(dir.join(name)).ok())
        .map(|meta| meta.len())
        .sum()
}
