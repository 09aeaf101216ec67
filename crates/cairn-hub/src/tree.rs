//! The log's RFC 6962 tree over a backend: which nodes are stored, how a
//! leaf is appended, and a reader that serves proofs.

use crate::StorageError;
use crate::backend::{LeafRow, LogTx};
use cairn_core::hash::Hash;
use cairn_core::merkle::{self, SubtreeSource};
use std::cell::RefCell;
use std::collections::HashMap;

/// The lowest level of the tree the hub stores: complete subtrees of 16
/// leaves and up. Smaller ones are rehashed from the leaves' `op_hash` when
/// a proof needs them (at most 15 leaves, one range read). Storing every
/// node cost two tree rows per pushed op; this costs one per eight.
pub const TREE_STORED_LEVEL: u32 = 4;

/// Reads tree nodes through a transaction for proofs, remembering what it
/// read: the proofs of one batch share most of their nodes.
///
/// `SubtreeSource` can only say "no such node", so a read that fails is
/// kept: [`TreeReader::missing`] then names the storage fault instead of
/// calling the log damaged (a fault is never a verdict).
pub struct TreeReader<'t> {
    tx: &'t dyn LogTx,
    cache: RefCell<HashMap<(u32, u64), Hash>>,
    fault: RefCell<Option<StorageError>>,
}

impl<'t> TreeReader<'t> {
    /// A reader with an empty cache.
    pub fn new(tx: &'t dyn LogTx) -> TreeReader<'t> {
        TreeReader {
            tx,
            cache: RefCell::default(),
            fault: RefCell::default(),
        }
    }

    /// The error for a node the tree did not give: the storage fault that
    /// hid it, if a read failed, else damage described by `what`.
    pub fn missing(&self, what: impl Into<String>) -> StorageError {
        match self.fault.borrow_mut().take() {
            Some(fault) => fault,
            None => StorageError::Damaged(what.into()),
        }
    }

    /// The fault a read met since the last [`TreeReader::missing`], if any.
    pub fn take_fault(&self) -> Option<StorageError> {
        self.fault.borrow_mut().take()
    }

    /// Caches a node the caller just stored.
    fn remember(&self, level: u32, index: u64, hash: Hash) {
        self.cache.borrow_mut().insert((level, index), hash);
    }

    /// Keeps the first read fault; `None` for the caller to return.
    fn keep<T>(&self, result: Result<T, StorageError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.fault.borrow_mut().get_or_insert(error);
                None
            }
        }
    }

    /// Rehashes the complete subtree `(level, index)` from its leaves.
    fn compute(&self, level: u32, index: u64) -> Option<Hash> {
        let first = index.checked_shl(level)?;
        let count = 1u64 << level;
        let leaves = self.keep(self.tx.leaf_hashes(first, first + count))?;
        if leaves.len() as u64 != count {
            return None; // Not complete (yet).
        }
        let mut hashes: Vec<Hash> = leaves
            .iter()
            .map(|hash| merkle::leaf_hash(&hash.0))
            .collect();
        while hashes.len() > 1 {
            hashes = hashes
                .chunks(2)
                .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
                .collect();
        }
        hashes.pop()
    }
}

impl SubtreeSource for TreeReader<'_> {
    fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
        if let Some(hash) = self.cache.borrow().get(&(level, index)) {
            return Some(*hash);
        }
        let hash = if level < TREE_STORED_LEVEL {
            self.compute(level, index)?
        } else {
            self.keep(self.tx.tree_node(level, index))??
        };
        self.remember(level, index, hash);
        Some(hash)
    }
}

/// Appends `row` to the log and stores the tree nodes it completes,
/// remembering them in `reader`.
pub fn append_leaf(
    tx: &dyn LogTx,
    reader: &TreeReader<'_>,
    row: &LeafRow<'_>,
) -> Result<(), StorageError> {
    tx.append(row)?;
    let leaf = row.leaf;
    let nodes = merkle::append_nodes(
        leaf,
        merkle::leaf_hash(&row.op.op_hash.0),
        |level, index| reader.subtree(level, index),
    )
    .ok_or_else(|| {
        reader.missing(format!(
            "log tree is missing the left neighbour of leaf {leaf}"
        ))
    })?;
    for (level, index, hash) in nodes {
        reader.remember(level, index, hash);
        if level >= TREE_STORED_LEVEL {
            tx.put_tree_node(level, index, hash)?;
        }
    }
    Ok(())
}

/// The root of the log's first `size` leaves.
pub fn root(reader: &TreeReader<'_>, size: u64) -> Result<Hash, StorageError> {
    merkle::root(reader, size).ok_or_else(|| reader.missing("log tree is incomplete"))
}
