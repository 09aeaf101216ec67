//! A pass of the judge reads the store and writes nothing until it is done:
//! its ledger writes gather in an [`Overlay`] over a read transaction (later
//! ops of the pass see them), and go to the store in one short write
//! transaction at the end. So the writer lock, which the pushes need, is
//! held only to store the results, not while ops are parsed and judged.

use super::ledger::{Awaited, Claim, Ledger, RegistryEntry};
use crate::StorageError;
use cairn_core::hash::Hash;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Ledger writes not yet stored, over a store's ledger.
pub struct Overlay<'a> {
    base: &'a dyn Ledger,
    writes: RefCell<Writes>,
    /// Registry entries read from the base, kept for the pass.
    read_registry: RefCell<HashMap<(String, String), Option<RegistryEntry>>>,
}

/// What a pass wrote to its ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writes {
    /// Claims given, by key.
    pub claims: BTreeMap<Hash, Claim>,
    /// Registry entries set.
    pub registry: BTreeMap<(String, String), RegistryEntry>,
    /// Follow-ups now awaited, by leaf.
    pub awaited: BTreeMap<u64, Awaited>,
    /// Follow-ups no longer awaited (leaves).
    pub stopped: BTreeSet<u64>,
    /// Entity states set.
    pub entities: BTreeMap<(String, String), Vec<u8>>,
    /// Entity ops noted, in order.
    pub entity_ops: Vec<(String, String, u64)>,
}

impl<'a> Overlay<'a> {
    /// No writes yet over `base`.
    pub fn new(base: &'a dyn Ledger) -> Overlay<'a> {
        Overlay {
            base,
            writes: RefCell::default(),
            read_registry: RefCell::default(),
        }
    }

    /// The writes, to store.
    pub fn into_writes(self) -> Writes {
        self.writes.into_inner()
    }
}

impl Writes {
    /// Stores the writes in `ledger` (inside the pass's write transaction).
    pub fn store(&self, ledger: &dyn Ledger) -> Result<(), StorageError> {
        // In key order: neighbouring inserts touch neighbouring pages.
        for (key, claim) in &self.claims {
            ledger.put_claim(key, *claim)?;
        }
        for ((collection, key), entry) in &self.registry {
            ledger.put_registry_entry(collection, key, entry)?;
        }
        for item in self.awaited.values() {
            ledger.await_follow_up(item)?;
        }
        for leaf in &self.stopped {
            ledger.stop_waiting(*leaf)?;
        }
        for ((collection, key), state) in &self.entities {
            ledger.put_entity_state(collection, key, state)?;
        }
        for (collection, key, leaf) in &self.entity_ops {
            ledger.add_entity_op(collection, key, *leaf)?;
        }
        Ok(())
    }
}

impl Ledger for Overlay<'_> {
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError> {
        if let Some(claim) = self.writes.borrow().claims.get(key) {
            return Ok(Some(*claim));
        }
        self.base.claim_of(key)
    }

    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError> {
        self.writes.borrow_mut().claims.insert(*key, claim);
        Ok(())
    }

    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError> {
        let id = (collection.to_string(), key.to_string());
        if let Some(entry) = self.writes.borrow().registry.get(&id) {
            return Ok(Some(entry.clone()));
        }
        if let Some(entry) = self.read_registry.borrow().get(&id) {
            return Ok(entry.clone());
        }
        let entry = self.base.registry_entry(collection, key)?;
        self.read_registry.borrow_mut().insert(id, entry.clone());
        Ok(entry)
    }

    fn put_registry_entry(
        &self,
        collection: &str,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<(), StorageError> {
        self.writes
            .borrow_mut()
            .registry
            .insert((collection.to_string(), key.to_string()), entry.clone());
        Ok(())
    }

    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError> {
        let mut writes = self.writes.borrow_mut();
        writes.stopped.remove(&item.leaf);
        writes.awaited.insert(item.leaf, item.clone());
        Ok(())
    }

    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError> {
        let writes = self.writes.borrow();
        let mut items: Vec<Awaited> = self
            .base
            .awaited(key)?
            .into_iter()
            .filter(|item| !writes.stopped.contains(&item.leaf))
            .filter(|item| !writes.awaited.contains_key(&item.leaf))
            .collect();
        items.extend(
            writes
                .awaited
                .values()
                .filter(|item| item.key == *key)
                .cloned(),
        );
        items.sort_by_key(|item| item.leaf);
        Ok(items)
    }

    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError> {
        let mut writes = self.writes.borrow_mut();
        if writes.awaited.remove(&leaf).is_none() {
            writes.stopped.insert(leaf);
        }
        Ok(())
    }

    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError> {
        let writes = self.writes.borrow();
        // The base may list items this pass stopped: ask for enough more.
        let mut items: Vec<Awaited> = self
            .base
            .overdue(now_ms, limit + writes.stopped.len())?
            .into_iter()
            .filter(|item| !writes.stopped.contains(&item.leaf))
            .filter(|item| !writes.awaited.contains_key(&item.leaf))
            .collect();
        items.extend(
            writes
                .awaited
                .values()
                .filter(|item| item.due_ms < now_ms)
                .cloned(),
        );
        items.sort_by_key(|item| (item.due_ms, item.leaf));
        items.truncate(limit);
        Ok(items)
    }

    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let id = (collection.to_string(), key.to_string());
        if let Some(state) = self.writes.borrow().entities.get(&id) {
            return Ok(Some(state.clone()));
        }
        self.base.entity_state(collection, key)
    }

    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), StorageError> {
        self.writes
            .borrow_mut()
            .entities
            .insert((collection.to_string(), key.to_string()), state.to_vec());
        Ok(())
    }

    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError> {
        self.writes
            .borrow_mut()
            .entity_ops
            .push((collection.to_string(), key.to_string(), leaf));
        Ok(())
    }

    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError> {
        let mut leaves = self.base.entity_ops(collection, key)?;
        leaves.extend(
            self.writes
                .borrow()
                .entity_ops
                .iter()
                .filter(|(c, k, _)| c == collection && k == key)
                .map(|(_, _, leaf)| *leaf),
        );
        Ok(leaves)
    }

    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.base.logged_op(leaf)
    }
}
