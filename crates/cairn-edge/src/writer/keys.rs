//! The idempotency keys of the records this node holds (its own and the
//! ones it pulled) written within their collection's window, in the writer
//! thread's memory: a record repeating one is refused at write time, as the
//! hub would reject it. Only keys inside the window can refuse anything, so
//! only those are kept: loaded from the ops of the last window when the
//! writer starts (and when the packs or its state reload), pruned as they
//! age, never written to disk (the ops are the record; the hub is the
//! judge of what a node could not see).

use crate::{Catalog, StoreError};
use cairn_core::hash::Hash;
use cairn_core::op::{Action, Op};
use rusqlite::{Connection, params};
use serde_json::Value;
use std::collections::HashMap;

/// Keys kept before old ones are first pruned.
const PRUNE_AT: usize = 1 << 16;

/// Who holds a key: the op (`ops.id`) and when it was written, ms.
pub(super) type Holder = (i64, u64);

/// The keys of the last window.
#[derive(Debug, Default)]
pub(super) struct RecentKeys {
    held: HashMap<Hash, Holder>,
    /// The longest window of any collection, ms.
    horizon_ms: u64,
    /// How many keys are kept before the next pruning: twice what the last
    /// one left, so pruning costs O(1) per claim amortized.
    prune_at: usize,
}

impl RecentKeys {
    /// The keys of the records written within the longest window before
    /// `now_ms`, read from the ops of the collections that declare one.
    pub(super) fn load(
        conn: &Connection,
        catalog: &Catalog,
        now_ms: u64,
    ) -> Result<RecentKeys, StoreError> {
        let mut keys = RecentKeys::default();
        for collection in catalog.collections.values() {
            let Some(rule) = &collection.rules.idempotency else {
                continue;
            };
            keys.horizon_ms = keys.horizon_ms.max(rule.window_ms());
            let mut statement = conn.prepare(
                "SELECT o.id, o.op FROM ops o JOIN collections c ON c.id = o.coll
                 WHERE c.name = ?1 AND o.record_key = '' AND o.written_ms >= ?2",
            )?;
            let since = now_ms.saturating_sub(rule.window_ms()) as i64;
            let rows = statement.query_map(params![collection.name, since], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?;
            for row in rows {
                let (id, bytes) = row?;
                let Ok(op) = Op::decode(&bytes) else {
                    continue; // `cairn verify` reports a damaged op; it holds no key.
                };
                if let Some(key) = key_of(catalog, &op) {
                    keys.claim(key, (id, op.draft.hlc.wall_ms));
                }
            }
        }
        Ok(keys)
    }

    /// Who holds `key`, if anyone.
    pub(super) fn holder(&self, key: &Hash) -> Option<Holder> {
        self.held.get(key).copied()
    }

    /// Gives `key` to `holder`; returns who held it before.
    pub(super) fn claim(&mut self, key: Hash, holder: Holder) -> Option<Holder> {
        if self.held.len() >= self.prune_at.max(PRUNE_AT) {
            let newest = self.held.values().map(|(_, ms)| *ms).max().unwrap_or(0);
            let horizon = self.horizon_ms;
            self.held
                .retain(|_, (_, ms)| ms.saturating_add(horizon) >= newest);
            self.prune_at = 2 * self.held.len();
        }
        self.held.insert(key, holder)
    }

    /// Takes back a claim a rolled-back job made.
    pub(super) fn undo(&mut self, key: Hash, before: Option<Holder>) {
        match before {
            Some(holder) => self.held.insert(key, holder),
            None => self.held.remove(&key),
        };
    }
}

/// The idempotency key of a ledger record `op`, when its collection
/// declares one and it has every field of it.
pub(super) fn key_of(catalog: &Catalog, op: &Op) -> Option<Hash> {
    if op.draft.action != Action::Append {
        return None;
    }
    let rule = catalog
        .collections
        .get(&op.draft.collection)?
        .rules
        .idempotency
        .as_ref()?;
    match serde_json::from_slice::<Value>(&op.draft.payload).ok()? {
        Value::Object(payload) => rule.key_of(&op.draft.collection, &payload),
        _ => None,
    }
}
