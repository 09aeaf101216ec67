//! Entities as the judge merged them, for clients that ask the hub for the
//! current version of a record rather than pull its ops (seed 004's mobile
//! app): the merged fields, how many ops changed it, who wrote the last one
//! and when. Read after the judge has caught up (the caller runs
//! [`Hub::judge_all`] first), so every logged op is in the view.

use super::{ComplianceStore, Ledger};
use crate::backend::{HubBackend, LogTx};
use crate::{Hub, StorageError};
use cairn_core::merge::EntityState;
use cairn_core::op::Op;

/// The log's clock may step back a little between appends; a search by
/// time starts this much earlier and filters exactly.
const CLOCK_SLACK_MS: u64 = 60_000;

/// One entity as the hub holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityView {
    /// Its key.
    pub key: String,
    /// Its merged state.
    pub state: EntityState,
    /// How many logged ops changed it: its version.
    pub version: u64,
    /// The writer's time of its last op (HLC wall, ms).
    pub written_ms: u64,
    /// When the hub logged its last op, ms.
    pub logged_ms: u64,
    /// The node that wrote its last op.
    pub last_node: String,
    /// Its last op's scope labels (a deleted entity keeps no fields).
    pub scope: std::collections::BTreeMap<String, String>,
}

impl<B: HubBackend> Hub<B> {
    /// Entity `key` of `collection` as merged so far, if any op wrote it.
    pub fn entity(&self, collection: &str, key: &str) -> Result<Option<EntityView>, StorageError> {
        let tx = self.backend().read()?;
        let leaves = tx.entity_ops(collection, key)?;
        let Some(&last) = leaves.last() else {
            return Ok(None);
        };
        view(&tx, collection, key, last, leaves.len() as u64).map(Some)
    }

    /// Entities of `collection` whose last op the hub logged at `since_ms`
    /// or later, by key, at most `limit`.
    pub fn entities_changed_since(
        &self,
        collection: &str,
        since_ms: u64,
        limit: usize,
    ) -> Result<Vec<EntityView>, StorageError> {
        let tx = self.backend().read()?;
        let from = first_leaf_at(&tx, since_ms.saturating_sub(CLOCK_SLACK_MS))?;
        let mut views = Vec::new();
        for (key, last, version) in tx.changed_entities(collection, from, limit)? {
            let view = view(&tx, collection, &key, last, version)?;
            if view.logged_ms >= since_ms {
                views.push(view);
            }
        }
        Ok(views)
    }

    /// Appends `act` to the hub's audit stream; returns its seq.
    pub fn record_act(&self, act: &serde_json::Value) -> Result<u64, StorageError> {
        self.in_write(|tx, now| crate::audit::append_act(tx, self.signer(), act, now))
    }
}

/// The first leaf the hub logged at `ms` or later (the log's size if none):
/// a binary search, since leaves are logged in time order.
pub(crate) fn first_leaf_at(tx: &impl LogTx, ms: u64) -> Result<u64, StorageError> {
    let (mut low, mut high) = (0, tx.log_size()?);
    while low < high {
        let middle = low + (high - low) / 2;
        let logged = tx
            .leaves(middle, middle + 1, 1)?
            .first()
            .map_or(u64::MAX, |op| op.received_ms);
        if logged < ms {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    Ok(low)
}

fn view<T: LogTx + ComplianceStore>(
    tx: &T,
    collection: &str,
    key: &str,
    last: u64,
    version: u64,
) -> Result<EntityView, StorageError> {
    let damaged =
        |what: String| StorageError::Damaged(format!("entity {collection} {key}: {what}"));
    let state = tx
        .entity_state(collection, key)?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .and_then(|value| EntityState::from_json(&value))
        .ok_or_else(|| damaged("no merged state".into()))?;
    let logged = tx
        .leaves(last, last + 1, 1)?
        .pop()
        .ok_or_else(|| damaged(format!("leaf {last} is not logged")))?;
    let op = Op::decode_logged(&logged.bytes).map_err(|fault| damaged(fault.to_string()))?;
    Ok(EntityView {
        key: key.to_string(),
        state,
        version,
        written_ms: op.draft.hlc.wall_ms,
        logged_ms: logged.received_ms,
        last_node: op.draft.node,
        scope: op.draft.scope,
    })
}
