//! The hub's errors: storage faults, which are never verdicts, and the
//! refusals of a push as a whole.

/// A fault of the hub's storage. Whatever the backend (SQLite, PostgreSQL,
/// memory), a storage error fails the operation that met it and decides
/// nothing about anyone's data: the push answers 5xx and the node retries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend failed (I/O, lock, driver): the message is its own.
    #[error("{0}")]
    Fault(String),
    /// The disk is full: nothing was written.
    #[error("storage full: {0}")]
    Full(String),
    /// Stored data does not decode or a row is missing; `hub verify` says where.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    /// A bug: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StorageError {
    /// True when the backend said its disk is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Full(_))
    }
}

/// Why a push was refused as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The node is not enrolled.
    #[error("node {0:?} is not enrolled at this hub")]
    UnknownNode(String),
    /// The batch breaks a limit.
    #[error("{0}")]
    Invalid(String),
    /// The push starts past the stream's head: an earlier push of the
    /// stream has not arrived (or was refused). Nothing was stored; the
    /// node pushes again from `expected`.
    #[error("{stream}: the hub's head is seq {}, this push starts at seq {got}; push from seq {expected}", expected - 1)]
    Gap {
        /// `node:stream`.
        stream: String,
        /// The seq the hub expects next.
        expected: u64,
        /// The push's first seq.
        got: u64,
    },
    /// The ops were built by the hub on a stream head that another hub
    /// process moved since (a legacy client's records, which the hub signs
    /// on the client's behalf): nothing was stored, and no equivocation
    /// raised; the caller builds them again on the new head.
    #[error("{stream}: built on seq {built_on}, the head is seq {head} now; build them again")]
    HeadMoved {
        /// `node:stream`.
        stream: String,
        /// The head's seq the ops were built on.
        built_on: u64,
        /// The head's seq now.
        head: u64,
    },
    /// A storage fault; nothing was persisted.
    #[error("{0}")]
    Store(#[from] StorageError),
}
