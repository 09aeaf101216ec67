//! What the judge remembers between ops: the keys uniqueness and
//! idempotency rules have claimed, the registries (config collections) as
//! they stand, and the follow-ups records are waiting for.
//!
//! The judge reads and writes it through [`Ledger`], so the same rules run
//! against the hub's store (every backend's transaction is a ledger) and
//! against a scratch [`LedgerData`] when a dry run replays history under a
//! new pack version without touching anything.

use crate::StorageError;
use cairn_core::hash::Hash;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Who holds a uniqueness or idempotency key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The leaf of the op that claimed it.
    pub leaf: u64,
    /// When that op was written (its HLC wall time), ms.
    pub written_ms: u64,
}

/// A registry entry as it stands: the newest write by HLC wins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The HLC of the write that set it: (wall ms, counter, node).
    pub hlc: (u64, u32, String),
    /// Its fields (parsed once, shared); `None` once deleted (revoked).
    pub fields: Option<Arc<Map<String, Value>>>,
}

/// A record waiting for its follow-up (a Schedule II dispense for its
/// second pharmacist's verification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Awaited {
    /// What ties them: hash of rule, collection and the matching value.
    pub key: Hash,
    /// The follow-up rule's name.
    pub rule: String,
    /// The waiting record's leaf.
    pub leaf: u64,
    /// Who wrote it (the value of the rule's `different` field).
    pub who: String,
    /// When the follow-up is due: the record's write time plus the window.
    pub due_ms: u64,
}

/// The judge's memory, as a store keeps it.
pub trait Ledger {
    /// Who holds `key`.
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError>;
    /// Gives `key` to `claim` (replacing an older holder).
    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError>;
    /// The registry entry `key` of config collection `collection`.
    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError>;
    /// Sets it.
    fn put_registry_entry(
        &self,
        collection: &str,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<(), StorageError>;
    /// Records that `item` waits for its follow-up.
    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError>;
    /// What waits under `key`.
    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError>;
    /// Stops waiting for the follow-up of `leaf` (it came, or it is overdue).
    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError>;
    /// What has waited past `now_ms`, oldest due first, at most `limit`.
    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError>;
    /// An entity's (or config entry's) merged state as the judge last left
    /// it: `EntityState` canonical JSON.
    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Sets it.
    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), StorageError>;
    /// Notes that the op at `leaf` changed the entity.
    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError>;
    /// The leaves of every op that changed the entity, ascending.
    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError>;
    /// The op logged at `leaf`, as encoded (to merge concurrent ops again).
    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError>;
}

/// A ledger as plain data: the memory backend's, and a dry run's scratch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerData {
    /// Claimed keys.
    pub claims: BTreeMap<Hash, Claim>,
    /// Registry entries by (collection, key).
    pub registry: BTreeMap<(String, String), RegistryEntry>,
    /// Awaited follow-ups by the waiting record's leaf.
    pub awaited: BTreeMap<u64, Awaited>,
    /// Entity states by (collection, key).
    pub entities: BTreeMap<(String, String), Vec<u8>>,
    /// The leaves of each entity's ops.
    pub entity_ops: BTreeMap<(String, String), Vec<u64>>,
}

impl LedgerData {
    /// See [`Ledger::put_claim`].
    pub fn put_claim(&mut self, key: &Hash, claim: Claim) {
        self.claims.insert(*key, claim);
    }

    /// See [`Ledger::put_registry_entry`].
    pub fn put_registry_entry(&mut self, collection: &str, key: &str, entry: &RegistryEntry) {
        self.registry
            .insert((collection.to_string(), key.to_string()), entry.clone());
    }

    /// See [`Ledger::awaited`].
    pub fn awaited(&self, key: &Hash) -> Vec<Awaited> {
        self.awaited
            .values()
            .filter(|item| item.key == *key)
            .cloned()
            .collect()
    }

    /// See [`Ledger::overdue`].
    pub fn overdue(&self, now_ms: u64, limit: usize) -> Vec<Awaited> {
        let mut items: Vec<Awaited> = self
            .awaited
            .values()
            .filter(|item| item.due_ms < now_ms)
            .cloned()
            .collect();
        items.sort_by_key(|item| (item.due_ms, item.leaf));
        items.truncate(limit);
        items
    }
}

/// A scratch ledger for one dry run: its state in memory, the log's ops
/// read from `source` (or, without one, kept as the judge meets them).
#[derive(Default)]
pub struct ScratchLedger<'a> {
    /// The state.
    pub data: RefCell<LedgerData>,
    /// Where logged ops are read from.
    pub source: Option<&'a dyn crate::backend::LogTx>,
    /// Ops kept when there is no source, by leaf.
    pub ops: RefCell<BTreeMap<u64, Vec<u8>>>,
}

impl ScratchLedger<'_> {
    /// Keeps the op at `leaf` when there is no log to read it from.
    pub fn keep_op(&self, leaf: u64, bytes: &[u8]) {
        if self.source.is_none() {
            self.ops.borrow_mut().insert(leaf, bytes.to_vec());
        }
    }
}

impl std::fmt::Debug for ScratchLedger<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchLedger")
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

impl Ledger for ScratchLedger<'_> {
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError> {
        Ok(self.data.borrow().claims.get(key).copied())
    }

    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError> {
        self.data.borrow_mut().put_claim(key, claim);
        Ok(())
    }

    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError> {
        Ok(self
            .data
            .borrow()
            .registry
            .get(&(collection.to_string(), key.to_string()))
            .cloned())
    }

    fn put_registry_entry(
        &self,
        collection: &str,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<(), StorageError> {
        self.data
            .borrow_mut()
            .put_registry_entry(collection, key, entry);
        Ok(())
    }

    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError> {
        self.data
            .borrow_mut()
            .awaited
            .insert(item.leaf, item.clone());
        Ok(())
    }

    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError> {
        Ok(self.data.borrow().awaited(key))
    }

    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError> {
        self.data.borrow_mut().awaited.remove(&leaf);
        Ok(())
    }

    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError> {
        Ok(self.data.borrow().overdue(now_ms, limit))
    }

    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .data
            .borrow()
            .entities
            .get(&(collection.to_string(), key.to_string()))
            .cloned())
    }

    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), StorageError> {
        self.data
            .borrow_mut()
            .entities
            .insert((collection.to_string(), key.to_string()), state.to_vec());
        Ok(())
    }

    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError> {
        self.data
            .borrow_mut()
            .entity_ops
            .entry((collection.to_string(), key.to_string()))
            .or_default()
            .push(leaf);
        Ok(())
    }

    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError> {
        Ok(self
            .data
            .borrow()
            .entity_ops
            .get(&(collection.to_string(), key.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError> {
        match self.source {
            Some(source) => Ok(source.leaves(leaf, leaf + 1, 1)?.pop().map(|op| op.bytes)),
            None => Ok(self.ops.borrow().get(&leaf).cloned()),
        }
    }
}
