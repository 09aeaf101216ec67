//! The edge store's errors: faults of the machine (`StoreError`, shared
//! with the hub), and refusals of a write.

use cairn_core::pack::Violation;
pub use cairn_sqlite::StoreError;

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
