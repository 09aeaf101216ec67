//! The storage error both stores share: faults of the machine, never
//! verdicts about anyone's data.

use cairn_hub::{PushError, StorageError};
use std::path::Path;

/// A fault reading or opening the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store's settings or packs are unusable.
    #[error("{0}")]
    Config(String),
    /// A collection no active pack defines.
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    /// Stored data does not decode; `cairn verify` says where.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
    /// The disk is full: nothing was written, the store is intact.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// A fault the hub's logic met in its backend (said once: it is the
    /// whole error, not a cause of another).
    #[error(transparent)]
    Storage(#[from] cairn_hub::StorageError),
}

impl StoreError {
    /// True when SQLite said the disk (or its file) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::StorageFull(_))
            || matches!(self, StoreError::Storage(error) if error.is_disk_full())
            || matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, _))
                if code.code == rusqlite::ErrorCode::DiskFull)
    }

    /// The same fault, for a second caller (a group commit answers each
    /// push of the group): a full disk stays a full disk.
    pub fn for_another(&self) -> StoreError {
        if self.is_disk_full() {
            StoreError::StorageFull(self.to_string())
        } else {
            StoreError::Internal(self.to_string())
        }
    }

    /// A fault of the file at `path`.
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// A fault of SQLite, as the hub's logic sees it: a full disk stays one.
pub fn sqlite_fault(error: rusqlite::Error) -> StorageError {
    match &error {
        rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::DiskFull => {
            StorageError::Full(format!("database: {error}"))
        }
        _ => StorageError::Fault(format!("database: {error}")),
    }
}

impl From<StoreError> for StorageError {
    fn from(error: StoreError) -> StorageError {
        match error {
            StoreError::Sqlite(error) => sqlite_fault(error),
            StoreError::Storage(error) => error,
            StoreError::StorageFull(message) => StorageError::Full(message),
            StoreError::Damaged(message) => StorageError::Damaged(message),
            StoreError::Internal(message) => StorageError::Internal(message),
            other @ (StoreError::Io { .. }
            | StoreError::Config(_)
            | StoreError::UnknownCollection(_)) => StorageError::Fault(other.to_string()),
        }
    }
}

/// A store's fault refuses a push as a fault, never as a verdict.
impl From<StoreError> for PushError {
    fn from(error: StoreError) -> PushError {
        PushError::Store(error.into())
    }
}
