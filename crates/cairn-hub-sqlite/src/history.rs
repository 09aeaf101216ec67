//! The hub's signed log checkpoints as a history, newest first, for
//! dashboards and metrics (what size, which root, when signed).

use crate::HubStore;
use cairn_hub::backend::HubBackend;
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
        let tx = self.hub().backend().read()?;
        let mut statement = tx.conn().prepare_cached(
            "SELECT size, root, created_ms FROM log_checkpoints ORDER BY size DESC LIMIT ?1",
        )?;
        let rows = statement.query_map([limit as i64], |row| {
            Ok(CheckpointRow {
                size: row.get::<_, i64>(0)? as u64,
                root: hex::encode(row.get::<_, Vec<u8>>(1)?),
                created_ms: row.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
