//! The memory backend's compliance store: plain maps, in the same
//! copy-on-write transaction as the rest of its state.

use super::MemoryTx;
use crate::StorageError;
use crate::backend::StreamId;
use crate::comply::store::{
    Closure, ComplianceStore, PushAttempt, Review, ReviewFilter, ReviewRow, VerdictRow,
};
use crate::comply::{Awaited, Claim, Ledger, LedgerData, RegistryEntry, State};
use cairn_core::hash::Hash;
use std::collections::BTreeMap;

/// Verdicts, the judge's ledger and the review queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ComplianceData {
    /// What the judge remembers.
    pub ledger: LedgerData,
    /// Leaves below this are judged.
    pub judged_through: u64,
    /// Verdict runs by first leaf.
    pub verdicts: BTreeMap<u64, VerdictRow>,
    /// Review items by id (from 1).
    pub reviews: BTreeMap<u64, Review>,
    /// Active pack sources by name.
    pub packs: BTreeMap<String, String>,
    /// Push attempts, in order.
    pub pushes: Vec<PushAttempt>,
}

impl Ledger for MemoryTx<'_> {
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError> {
        self.read("claim_of", |state| {
            state.compliance.ledger.claims.get(key).copied()
        })
    }

    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError> {
        self.write("put_claim", |state| {
            state.compliance.ledger.put_claim(key, claim);
            Ok(())
        })
    }

    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError> {
        self.read("registry_entry", |state| {
            state
                .compliance
                .ledger
                .registry
                .get(&(collection.to_string(), key.to_string()))
                .cloned()
        })
    }

    fn put_registry_entry(
        &self,
        collection: &str,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<(), StorageError> {
        self.write("put_registry_entry", |state| {
            state
                .compliance
                .ledger
                .put_registry_entry(collection, key, entry);
            Ok(())
        })
    }

    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError> {
        self.write("await_follow_up", |state| {
            state
                .compliance
                .ledger
                .awaited
                .insert(item.leaf, item.clone());
            Ok(())
        })
    }

    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError> {
        self.read("awaited", |state| state.compliance.ledger.awaited(key))
    }

    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError> {
        self.write("stop_waiting", |state| {
            state.compliance.ledger.awaited.remove(&leaf);
            Ok(())
        })
    }

    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError> {
        self.read("overdue", |state| {
            state.compliance.ledger.overdue(now_ms, limit)
        })
    }

    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.read("entity_state", |state| {
            state
                .compliance
                .ledger
                .entities
                .get(&(collection.to_string(), key.to_string()))
                .cloned()
        })
    }

    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        entity: &[u8],
    ) -> Result<(), StorageError> {
        self.write("put_entity_state", |state| {
            state
                .compliance
                .ledger
                .entities
                .insert((collection.to_string(), key.to_string()), entity.to_vec());
            Ok(())
        })
    }

    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError> {
        self.write("add_entity_op", |state| {
            state
                .compliance
                .ledger
                .entity_ops
                .entry((collection.to_string(), key.to_string()))
                .or_default()
                .push(leaf);
            Ok(())
        })
    }

    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError> {
        self.read("entity_ops", |state| {
            state
                .compliance
                .ledger
                .entity_ops
                .get(&(collection.to_string(), key.to_string()))
                .cloned()
                .unwrap_or_default()
        })
    }

    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.read("logged_op", |state| {
            state.log.get(leaf as usize).map(|leaf| leaf.bytes.clone())
        })
    }
}

impl ComplianceStore for MemoryTx<'_> {
    fn judged_through(&self) -> Result<u64, StorageError> {
        self.read("judged_through", |state| state.compliance.judged_through)
    }

    fn set_judged_through(&self, leaf: u64) -> Result<(), StorageError> {
        self.write("set_judged_through", |state| {
            state.compliance.judged_through = leaf;
            Ok(())
        })
    }

    fn record_verdict(&self, row: &VerdictRow) -> Result<(), StorageError> {
        self.write("record_verdict", |state| {
            state.compliance.verdicts.insert(row.begin, row.clone());
            Ok(())
        })
    }

    fn verdict_at(&self, leaf: u64) -> Result<Option<VerdictRow>, StorageError> {
        self.read("verdict_at", |state| {
            state
                .compliance
                .verdicts
                .range(..=leaf)
                .next_back()
                .map(|(_, row)| row)
                .filter(|row| leaf < row.end)
                .cloned()
        })
    }

    fn state_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        self.read("state_counts", |state| {
            let mut counts = BTreeMap::new();
            for row in state.compliance.verdicts.values() {
                *counts
                    .entry(row.judgement.state.name().to_string())
                    .or_default() += row.end - row.begin;
            }
            counts
        })
    }

    fn unpersisted_leaves(&self) -> Result<Vec<u64>, StorageError> {
        self.read("unpersisted_leaves", |state| {
            state
                .compliance
                .verdicts
                .values()
                .filter(|row| row.judgement.state != State::Persisted)
                .flat_map(|row| row.begin..row.end)
                .collect()
        })
    }

    fn stream_verdicts(
        &self,
        stream_id: StreamId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, VerdictRow)>, StorageError> {
        self.read("stream_verdicts", |state| {
            let mut found: Vec<(u64, VerdictRow)> = state
                .compliance
                .verdicts
                .values()
                .filter(|row| row.judgement.state != State::Persisted)
                .filter_map(|row| {
                    let leaf = state.log.get(row.begin as usize)?;
                    (leaf.stream_id == stream_id && leaf.seq > after_seq)
                        .then(|| (leaf.seq, row.clone()))
                })
                .collect();
            found.sort_by_key(|(seq, _)| *seq);
            found.truncate(limit);
            found
        })
    }

    fn judged_seq(&self, stream_id: StreamId) -> Result<u64, StorageError> {
        self.read("judged_seq", |state| {
            let through = state.compliance.judged_through as usize;
            state.log[..through.min(state.log.len())]
                .iter()
                .filter(|leaf| leaf.stream_id == stream_id)
                .map(|leaf| leaf.seq)
                .max()
                .unwrap_or(0)
        })
    }

    fn raise_review(&self, row: &ReviewRow) -> Result<Option<u64>, StorageError> {
        self.write("raise_review", |state| {
            let reviews = &mut state.compliance.reviews;
            let raised = reviews.values().any(|review| {
                review.row.kind == row.kind
                    && review.row.leaf == row.leaf
                    && review.row.rule == row.rule
                    && review.row.material_hash == row.material_hash
            });
            if raised {
                return Ok(None);
            }
            let id = reviews.len() as u64 + 1;
            reviews.insert(
                id,
                Review {
                    id,
                    row: row.clone(),
                    closure: None,
                },
            );
            Ok(Some(id))
        })
    }

    fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>, StorageError> {
        self.read("reviews", |state| {
            state
                .compliance
                .reviews
                .range(filter.after_id + 1..)
                .map(|(_, review)| review)
                .filter(|review| !filter.open_only || review.closure.is_none())
                .filter(|review| {
                    filter
                        .kind
                        .as_ref()
                        .is_none_or(|kind| *kind == review.row.kind)
                })
                .take(filter.limit)
                .cloned()
                .collect()
        })
    }

    fn review(&self, id: u64) -> Result<Option<Review>, StorageError> {
        self.read("review", |state| state.compliance.reviews.get(&id).cloned())
    }

    fn close_review(&self, id: u64, closure: &Closure) -> Result<bool, StorageError> {
        self.write("close_review", |state| {
            match state.compliance.reviews.get_mut(&id) {
                Some(review) if review.closure.is_none() => {
                    review.closure = Some(closure.clone());
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn open_reviews_of(&self, kind: &str, leaf: u64) -> Result<Vec<u64>, StorageError> {
        self.read("open_reviews_of", |state| {
            state
                .compliance
                .reviews
                .values()
                .filter(|review| {
                    review.closure.is_none()
                        && review.row.kind == kind
                        && review.row.leaf == Some(leaf)
                })
                .map(|review| review.id)
                .collect()
        })
    }

    fn open_review_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        self.read("open_review_counts", |state| {
            let mut counts = BTreeMap::new();
            for review in state.compliance.reviews.values() {
                if review.closure.is_none() {
                    *counts.entry(review.row.kind.clone()).or_default() += 1;
                }
            }
            counts
        })
    }

    fn pack_sources(&self) -> Result<Vec<String>, StorageError> {
        self.read("pack_sources", |state| {
            state.compliance.packs.values().cloned().collect()
        })
    }

    fn put_pack(
        &self,
        pack: &cairn_core::pack::RulePack,
        source: &str,
        _at_ms: u64,
    ) -> Result<(), StorageError> {
        self.write("put_pack", |state| {
            state
                .compliance
                .packs
                .insert(pack.name.clone(), source.to_string());
            Ok(())
        })
    }

    fn record_push(&self, attempt: &PushAttempt) -> Result<(), StorageError> {
        self.write("record_push", |state| {
            state.compliance.pushes.push(attempt.clone());
            Ok(())
        })
    }

    fn push_attempts(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PushAttempt)>, StorageError> {
        self.read("push_attempts", |state| {
            state
                .compliance
                .pushes
                .iter()
                .enumerate()
                .map(|(index, attempt)| (index as u64 + 1, attempt.clone()))
                .filter(|(id, _)| *id > after_id)
                .take(limit)
                .collect()
        })
    }

    fn changed_entities(
        &self,
        collection: &str,
        from_leaf: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>, StorageError> {
        self.read("changed_entities", |state| {
            state
                .compliance
                .ledger
                .entity_ops
                .iter()
                .filter(|((name, _), _)| name == collection)
                .filter_map(|((_, key), leaves)| {
                    let last = *leaves.iter().max()?;
                    (last >= from_leaf).then(|| (key.clone(), last, leaves.len() as u64))
                })
                .take(limit)
                .collect()
        })
    }

    fn verdicts_from(&self, from: u64, limit: usize) -> Result<Vec<VerdictRow>, StorageError> {
        self.read("verdicts_from", |state| {
            state
                .compliance
                .verdicts
                .range(from..)
                .take(limit)
                .map(|(_, row)| row.clone())
                .collect()
        })
    }
}
