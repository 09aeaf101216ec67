//! The hub's signed log checkpoints as a history, newest first, for
//! dashboards and metrics (what size, which root, when signed).

use crate::HubStore;
use cairn_hub::backend::LogTx;
use cairn_sqlite::StoreError;

/// One signed checkpoint of the log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointRow {
    /// The log's size it signs.
    pub size: u64,
    /// The root hash, hex.
    pub root: String,
    /// When the hub signed it, ms.
    pub created_ms: u64,
}

impl HubStore {
    /// The newest `limit` signed checkpoints, newest first.
    pub fn checkpoint_history(&self, limit: usize) -> Result<Vec<CheckpointRow>, StoreError> {
        let notes = self.read()?.log_notes(i64::MAX as u64, limit)?;
        Ok(notes
            .into_iter()
            .map(|note| CheckpointRow {
                size: note.size,
                root: note.root.to_hex(),
                created_ms: note.created_ms,
            })
            .collect())
    }
}
