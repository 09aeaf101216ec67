//! The store's errors: faults of the machine, and refusals of a write.

use cairn_core::pack::Violation;
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
    /// A fault the hub's logic met in its backend.
    #[error("{0}")]
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

    pub(crate) fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Why a write was not stored. Nothing of a refused write is stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The input broke rules; every violation is listed. `index` is the
    /// position in a batch.
    #[error("{}", describe(*.index, .violations))]
    Invalid {
        /// Position of the offending record in the batch.
        index: usize,
        /// Every rule it broke.
        violations: Vec<Violation>,
    },
    /// The storage quota or the disk is full; the store is intact.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The writer stopped (the store is closing).
    #[error("the store is closed")]
    Closed,
    /// A storage fault; the write was not acknowledged.
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn describe(index: usize, violations: &[Violation]) -> String {
    let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
    format!("record {index} refused: {}", list.join("; "))
}

impl WriteError {
    pub(crate) fn invalid(index: usize, violation: Violation) -> WriteError {
        WriteError::Invalid {
            index,
            violations: vec![violation],
        }
    }
}
