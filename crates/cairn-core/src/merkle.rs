//! The RFC 6962 / RFC 9162 Merkle tree the hub keeps over its log.
//!
//! `leaf = H(0x00 || data)`, `node = H(0x01 || left || right)`. Proofs are
//! generated from any [`SubtreeSource`], which answers the hash of a complete,
//! aligned subtree (`2^level` leaves starting at `index << level`); the hub
//! backs it with stored levels so a proof at ten million leaves touches
//! O(log² n) hashes. [`MemoryTree`] is the in-memory source used by tests and
//! small logs. Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and rejects
//! a proof of the wrong length before hashing.
//!
//! Hand-written rather than taken from `ct-merkle`: the hub needs proofs over
//! trees kept in a database, not in memory, and the algorithms are short.
//! The transparency-dev test vectors in `../shared/testdata` check it.

use crate::hash::Hash;
use sha2::{Digest, Sha256};

/// Hash of a leaf: `H(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    Hash(hasher.finalize().into())
}

/// Hash of an inner node: `H(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash(hasher.finalize().into())
}

/// Root of the empty tree: `H("")`.
pub fn empty_root() -> Hash {
    Hash::of(b"")
}

/// Answers hashes of complete, aligned subtrees of one tree.
pub trait SubtreeSource {
    /// Hash of the `2^level` leaves starting at `index << level`; the caller
    /// only asks for subtrees that lie wholly inside the tree. `None` when
    /// the source lacks it (a damaged store): proofs then fail, never panic.
    fn subtree(&self, level: u32, index: u64) -> Option<Hash>;
}

/// Largest power of two strictly less than `n` (n >= 2).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Root of the leaves `[start, end)`.
pub fn range_root(source: &impl SubtreeSource, start: u64, end: u64) -> Option<Hash> {
    let n = end - start;
    if n == 0 {
        return Some(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return source.subtree(n.trailing_zeros(), start >> n.trailing_zeros());
    }
    let k = split(n);
    Some(node_hash(
        &range_root(source, start, start + k)?,
        &range_root(source, start + k, end)?,
    ))
}

/// Root of a tree of `size` leaves.
pub fn root(source: &impl SubtreeSource, size: u64) -> Option<Hash> {
    range_root(source, 0, size)
}

/// Inclusion proof of leaf `index` in a tree of `size` leaves (RFC 6962 §2.1.1).
pub fn inclusion_proof(source: &impl SubtreeSource, index: u64, size: u64) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    path(source, index, 0, size, &mut proof)?;
    Some(proof)
}

fn path(
    source: &impl SubtreeSource,
    index: u64,
    start: u64,
    end: u64,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    let n = end - start;
    if n <= 1 {
        return Some(());
    }
    let k = split(n);
    if index < start + k {
        path(source, index, start, start + k, proof)?;
        proof.push(range_root(source, start + k, end)?);
    } else {
        path(source, index, start + k, end, proof)?;
        proof.push(range_root(source, start, start + k)?);
    }
    Some(())
}

/// Consistency proof from `old_size` to `new_size` (RFC 6962 §2.1.2).
pub fn consistency_proof(
    source: &impl SubtreeSource,
    old_size: u64,
    new_size: u64,
) -> Option<Vec<Hash>> {
    if old_size > new_size {
        return None;
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof(source, old_size, 0, new_size, true, &mut proof)?;
    }
    Some(proof)
}

fn subproof(
    source: &impl SubtreeSource,
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    let n = end - start;
    if m == n {
        if !complete {
            proof.push(range_root(source, start, end)?);
        }
        return Some(());
    }
    let k = split(n);
    if m <= k {
        subproof(source, m, start, start + k, complete, proof)?;
        proof.push(range_root(source, start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, proof)?;
        proof.push(range_root(source, start, start + k)?);
    }
    Some(())
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index is not inside the tree, or the sizes are out of order.
    #[error("index or sizes out of range")]
    Range,
    /// The proof has the wrong number of hashes.
    #[error("proof has {got} hashes, {expected} expected")]
    Length {
        /// Hashes given.
        got: usize,
        /// Hashes a proof for these sizes has.
        expected: usize,
    },
    /// The proof does not lead to the given root(s).
    #[error("proof does not match the root")]
    Mismatch,
}

/// Number of hashes in an inclusion proof of `index` in a tree of `size`.
fn inclusion_length(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    (inner + (index >> inner).count_ones()) as usize
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Range);
    }
    let expected = inclusion_length(index, size);
    if proof.len() != expected {
        return Err(ProofError::Length {
            got: proof.len(),
            expected,
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(ProofError::Mismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn == 0 && r == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// Verifies that the tree of `new_size` with `new_root` extends the tree of
/// `old_size` with `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::Range);
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::Length {
                got: proof.len(),
                expected: 0,
            });
        }
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::Mismatch)
        };
    }
    if old_size == 0 {
        // Every tree extends the empty tree; a proof of that proves nothing
        // and is refused rather than accepted by accident.
        return Err(ProofError::Range);
    }
    if proof.is_empty() {
        return Err(ProofError::Length {
            got: 0,
            expected: 1,
        });
    }
    let mut hashes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        hashes.push(*old_root);
    }
    hashes.extend_from_slice(proof);
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (hashes[0], hashes[0]);
    for c in &hashes[1..] {
        if sn == 0 {
            return Err(ProofError::Mismatch);
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if fr == *old_root && sr == *new_root && sn == 0 {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

/// An in-memory tree keeping every complete subtree, level by level.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of the `2^l` leaves starting at `i << l`.
    levels: Vec<Vec<Hash>>,
}

impl MemoryTree {
    /// Appends a leaf hash; returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() as u64 - 1;
        let mut level = 0;
        while self.levels[level].len().is_multiple_of(2) {
            let nodes = &self.levels[level];
            let parent = node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
        index
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }
}

impl SubtreeSource for MemoryTree {
    fn subtree(&self, level: u32, index: u64) -> Option<Hash> {
        self.levels
            .get(level as usize)?
            .get(index as usize)
            .copied()
    }
}

/// The parents a new leaf completes: appending leaf `index` (hash `leaf`)
/// completes one subtree per trailing one bit of `index`. `sibling(level, i)`
/// returns the stored left neighbour; the result is `(level, index, hash)`
/// for every node to store, the leaf included.
pub fn append_nodes(
    index: u64,
    leaf: Hash,
    sibling: impl Fn(u32, u64) -> Option<Hash>,
) -> Option<Vec<(u32, u64, Hash)>> {
    let mut nodes = vec![(0, index, leaf)];
    let (mut level, mut at, mut hash) = (0u32, index, leaf);
    while at & 1 == 1 {
        let left = sibling(level, at - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        at >>= 1;
        nodes.push((level, at, hash));
    }
    Some(nodes)
}

/// The aligned, complete subtrees that cover `[begin, end)`, left to right,
/// as `(level, index)`: the "compact range" of transparency-dev's
/// `merkle/compact`. `[0, n)` is the binary decomposition of `n`.
pub fn compact_range(begin: u64, end: u64) -> Vec<(u32, u64)> {
    let mut nodes = Vec::new();
    let mut at = begin;
    while at < end {
        // The largest aligned subtree starting at `at` that fits.
        let mut level = if at == 0 { 63 } else { at.trailing_zeros() };
        while (1u64 << level) > end - at {
            level -= 1;
        }
        nodes.push((level, at >> level));
        at += 1 << level;
    }
    nodes
}

/// A proof that the contiguous leaves `[begin, end)` are in the tree of
/// `size` leaves: the compact ranges of `[0, begin)` and `[end, size)`. One
/// proof per pushed batch, about `2 log2(size)` hashes, instead of an
/// inclusion proof per leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeProof {
    /// Hashes of `compact_range(0, begin)`.
    pub left: Vec<Hash>,
    /// Hashes of `compact_range(end, size)`.
    pub right: Vec<Hash>,
}

/// The range proof of `[begin, end)` in the tree of `size` leaves.
pub fn range_proof(
    source: &impl SubtreeSource,
    begin: u64,
    end: u64,
    size: u64,
) -> Option<RangeProof> {
    if begin >= end || end > size {
        return None;
    }
    let hashes = |from, to| {
        compact_range(from, to)
            .into_iter()
            .map(|(level, index)| source.subtree(level, index))
            .collect::<Option<Vec<Hash>>>()
    };
    Some(RangeProof {
        left: hashes(0, begin)?,
        right: hashes(end, size)?,
    })
}

/// Checks that `leaves` (leaf hashes) are the leaves `[begin, begin + len)`
/// of the tree of `size` leaves whose root is `root`.
pub fn verify_range(
    begin: u64,
    leaves: &[Hash],
    size: u64,
    proof: &RangeProof,
    root: &Hash,
) -> Result<(), ProofError> {
    let end = begin + leaves.len() as u64;
    if leaves.is_empty() || end > size {
        return Err(ProofError::Range);
    }
    let left = compact_range(0, begin);
    let right = compact_range(end, size);
    let (got, expected) = (
        proof.left.len() + proof.right.len(),
        left.len() + right.len(),
    );
    if proof.left.len() != left.len() || got != expected {
        return Err(ProofError::Length { got, expected });
    }
    // Append every node left to right, merging siblings as they complete;
    // what remains covers [0, size) and folds right to left into the root.
    let mut stack: Vec<(u32, u64, Hash)> = Vec::with_capacity(64);
    let mut push = |level: u32, index: u64, hash: Hash| {
        let (mut level, mut index, mut hash) = (level, index, hash);
        while let Some(&(top_level, top_index, top_hash)) = stack.last() {
            if top_level != level || index & 1 == 0 || top_index != index - 1 {
                break;
            }
            stack.pop();
            hash = node_hash(&top_hash, &hash);
            level += 1;
            index >>= 1;
        }
        stack.push((level, index, hash));
    };
    for (&(level, index), hash) in left.iter().zip(&proof.left) {
        push(level, index, *hash);
    }
    for (offset, leaf) in leaves.iter().enumerate() {
        push(0, begin + offset as u64, *leaf);
    }
    for (&(level, index), hash) in right.iter().zip(&proof.right) {
        push(level, index, *hash);
    }
    let computed = stack
        .iter()
        .rev()
        .map(|&(_, _, hash)| hash)
        .reduce(|right, left| node_hash(&left, &right))
        .ok_or(ProofError::Range)?;
    if computed == *root {
        Ok(())
    } else {
        Err(ProofError::Mismatch)
    }
}

#[cfg(test)]
mod tests;
