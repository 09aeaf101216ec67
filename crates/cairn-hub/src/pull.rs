//! What the hub hands out: pull pages (ops in a node's scopes, each with
//! its inclusion proof), snapshot pages (the same under one signed
//! manifest), and a node's own ops back (recovery), each with the chain
//! proofs that link its ops to what their origins signed.

use crate::StorageError;
use crate::backend::{LogTx, LoggedOp};
use crate::chains::ChainPlan;
use crate::error::PushError;
use crate::signer::LogSigner;
use crate::tree::TreeReader;
use base64::Engine;
use cairn_core::hash::Hash;
use cairn_core::merkle;
use cairn_core::snapshot::{SnapshotDigest, SnapshotManifest};
use cairn_proto::{OwnOps, PullPage, PulledOp};
use std::collections::{BTreeMap, BTreeSet};

/// Most ops in one pull page.
pub const PULL_OPS_MAX: usize = 1_000;
/// Most log entries one pull request scans (so a node with narrow scopes
/// cannot make one request walk the whole log).
pub const PULL_SCAN_MAX: usize = 20_000;
/// Most seqs one page's chain proofs may span (the ops and the headers
/// between them and their checkpoints). Every accepted op is at most
/// `PUSH_OPS_MAX` − 1 seqs below a checkpoint, so a page always fits at
/// least one op.
pub const CHAIN_SPAN_MAX: usize = 16_384;
/// Most ops in one snapshot page: a node holds one page at a time, so this
/// bounds its memory while it catches up.
pub const SNAPSHOT_OPS_MAX: usize = 2_000;
/// Most log leaves one snapshot scans.
pub const SNAPSHOT_SCAN_MAX: usize = 1_000_000;
/// Leaves read from the backend at a time while scanning.
const SCAN_CHUNK: usize = 1_000;

/// A snapshot page for one node: its signed manifest and the encoded ops.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The manifest as a signed note.
    pub manifest: String,
    /// The ops, in log order.
    pub ops: Vec<Vec<u8>>,
    /// The origins' checkpoints and the headers that link the ops (and
    /// `enrollments`) to them.
    pub chains: Vec<cairn_proto::ChainSegment>,
    /// The `hub:audit` ops that enrolled the keys that signed `chains`.
    pub enrollments: Vec<Vec<u8>>,
    /// True when leaves below the page's bound remain after `next`.
    pub more: bool,
}

/// Which part of the log a snapshot page covers.
#[derive(Clone, Debug, Default)]
pub struct SnapshotQuery {
    /// The first leaf to scan.
    pub from: u64,
    /// The first leaf not to scan (default: the log's size).
    pub to: Option<u64>,
    /// Only ops carrying one of these labels (`name=value`); empty: every
    /// op the node may see.
    pub labels: BTreeSet<String>,
}

impl SnapshotQuery {
    /// The labels as a manifest states them.
    pub fn labels_text(&self) -> String {
        if self.labels.is_empty() {
            "*".to_string()
        } else {
            self.labels.iter().cloned().collect::<Vec<_>>().join(",")
        }
    }
}

/// The scope labels `node` is granted, or `UnknownNode`.
fn grants(tx: &dyn LogTx, node: &str) -> Result<BTreeMap<String, String>, PushError> {
    tx.grants(node)?
        .ok_or_else(|| PushError::UnknownNode(node.to_string()))
}

/// Whether `node` may see an op of `origin` with `scope` (`,name=value,…,`):
/// never its own, and only when it holds every label (a grant of `*`, an
/// admin's explicit choice, holds every value of its label).
fn visible(node: &str, grants: &BTreeMap<String, String>, origin: &str, scope: &str) -> bool {
    origin != node
        && scope
            .split(',')
            .filter_map(|label| label.split_once('='))
            .all(|(name, value)| {
                grants
                    .get(name)
                    .is_some_and(|granted| granted == value || granted == ANY_VALUE)
            })
}

/// Whether `grants` hold every label of `scope` (a grant of `*` holds
/// every value of its label).
pub fn grants_cover(grants: &BTreeMap<String, String>, scope: &BTreeMap<String, String>) -> bool {
    scope.iter().all(|(name, value)| {
        grants
            .get(name)
            .is_some_and(|granted| granted == value || granted == ANY_VALUE)
    })
}

/// The grant value that holds every value of its label.
pub const ANY_VALUE: &str = "*";

/// Walks the leaves `[from, to)`, at most `scan` of them, a chunk at a time;
/// `visit` returns false to stop.
fn scan(
    tx: &dyn LogTx,
    from: u64,
    to: u64,
    scan: usize,
    mut visit: impl FnMut(LoggedOp) -> Result<bool, StorageError>,
) -> Result<(), StorageError> {
    let (mut at, mut left) = (from, scan);
    while at < to && left > 0 {
        let chunk = tx.leaves(at, to, left.min(SCAN_CHUNK))?;
        let Some(last) = chunk.last().map(|op| op.leaf) else {
            return Ok(());
        };
        left = left.saturating_sub(chunk.len());
        for op in chunk {
            if !visit(op)? {
                return Ok(());
            }
        }
        at = last + 1;
    }
    Ok(())
}

/// The log only holds verified ops; a stored op that no longer decodes is
/// damage, reported rather than handed out.
fn decode(op: &LoggedOp) -> Result<cairn_core::op::Op, StorageError> {
    cairn_core::op::Op::decode(&op.bytes)
        .map_err(|fault| StorageError::Damaged(format!("log leaf {}: {fault}", op.leaf)))
}

/// Ops visible to `node` from leaf `from` on: in its granted scopes and not
/// its own (an op without labels is visible to all), each with its
/// inclusion proof against the page's signed log checkpoint.
pub fn pull_page(
    tx: &dyn LogTx,
    signer: &LogSigner,
    node: &str,
    from: u64,
    limit: usize,
) -> Result<PullPage, PushError> {
    let grants = grants(tx, node)?;
    let size = tx.log_size()?;
    let checkpoint = signer.checkpoint_at(tx, size)?;
    let (mut ops, mut next, mut origins) = (Vec::new(), from, BTreeSet::new());
    let mut chains = ChainPlan::default();
    let reader = TreeReader::new(tx);
    scan(tx, from, size, PULL_SCAN_MAX, |op| {
        if !visible(node, &grants, &op.node, &op.scope) {
            next = op.leaf + 1;
            return Ok(true);
        }
        let (covering, span) = chains.cost(tx, op.stream_id, op.seq)?;
        if !ops.is_empty() && chains.span + span > CHAIN_SPAN_MAX {
            return Ok(false); // This op starts the next page.
        }
        chains.add(op.stream_id, op.seq, covering, span);
        next = op.leaf + 1;
        decode(&op)?;
        let proof = merkle::inclusion_proof(&reader, op.leaf, size)
            .ok_or_else(|| reader.missing(format!("no proof for leaf {}", op.leaf)))?;
        ops.push(PulledOp {
            leaf: op.leaf,
            op: base64::engine::general_purpose::STANDARD.encode(&op.bytes),
            proof: proof.iter().map(Hash::to_hex).collect(),
        });
        origins.insert(op.node);
        Ok(ops.len() < limit.clamp(1, PULL_OPS_MAX))
    })?;
    let mut nodes = BTreeMap::new();
    for origin in origins {
        // The hub's own streams (its registry) are signed with its key.
        let key = match origin.as_str() {
            crate::HUB_NODE => Some(signer.identity().public_key()),
            _ => tx.node_key(&origin)?,
        };
        let key = key.ok_or_else(|| {
            StorageError::Damaged(format!("{origin} has ops in the log but no key"))
        })?;
        nodes.insert(origin, hex::encode(key));
    }
    let enrollments = chains
        .add_enrollments(tx)?
        .iter()
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .collect();
    Ok(PullPage {
        ops,
        next,
        more: next < size,
        checkpoint,
        nodes,
        chains: chains.finish(tx)?,
        enrollments,
        grants,
    })
}

/// One page of a snapshot for `node` (`cairn_core::snapshot`): the ops it
/// may see in the leaves from `query.from` on (below `query.to`, when
/// given, and carrying one of `query.labels`, when given), up to
/// [`SNAPSHOT_OPS_MAX`] ops or [`SNAPSHOT_SCAN_MAX`] leaves, under a signed
/// manifest: how a node catches up without an inclusion proof per op, one
/// bounded page at a time.
pub fn snapshot_page(
    tx: &dyn LogTx,
    signer: &LogSigner,
    node: &str,
    query: &SnapshotQuery,
) -> Result<Snapshot, PushError> {
    let grants = grants(tx, node)?;
    let size = tx.log_size()?;
    let to = query.to.map_or(size, |to| to.min(size));
    let wanted = |scope: &str| {
        query.labels.is_empty()
            || query
                .labels
                .iter()
                .any(|label| scope.contains(&format!(",{label},")))
    };
    let (mut ops, mut next) = (Vec::new(), query.from);
    let mut digest = SnapshotDigest::default();
    let mut chains = ChainPlan::default();
    scan(tx, query.from, to, SNAPSHOT_SCAN_MAX, |op| {
        if !visible(node, &grants, &op.node, &op.scope) || !wanted(&op.scope) {
            next = op.leaf + 1;
            return Ok(true);
        }
        let (covering, span) = chains.cost(tx, op.stream_id, op.seq)?;
        if !ops.is_empty() && chains.span + span > SNAPSHOT_OPS_MAX + CHAIN_SPAN_MAX {
            return Ok(false); // The next page starts with this op.
        }
        chains.add(op.stream_id, op.seq, covering, span);
        next = op.leaf + 1;
        digest.push(&decode(&op)?.op_hash);
        ops.push(op.bytes);
        Ok(ops.len() < SNAPSHOT_OPS_MAX)
    })?;
    let enrollments = chains.add_enrollments(tx)?;
    let chains = chains.finish(tx)?;
    let (count, digest) = digest.finish();
    let manifest = SnapshotManifest {
        origin: signer.origin().to_string(),
        node: node.to_string(),
        from: query.from,
        next,
        labels: query.labels_text(),
        ops: count,
        digest,
    };
    Ok(Snapshot {
        manifest: manifest.sign(signer.identity()),
        ops,
        chains,
        enrollments,
        more: next < to,
    })
}

/// A node's own ops of `stream` from seq `from` on (at most `limit`), with
/// the checkpoints it signed over them: how a node restored from an old
/// backup takes back what the hub holds of its history.
pub fn own_ops(
    tx: &dyn LogTx,
    node: &str,
    stream: &str,
    from: u64,
    limit: usize,
) -> Result<OwnOps, StorageError> {
    let Some(row) = tx.stream(node, stream)? else {
        return Ok(OwnOps {
            ops: Vec::new(),
            chains: Vec::new(),
            head: 0,
            held: false,
        });
    };
    // Seqs start at 1; a stream's logged ops are every seq up to its head.
    let first = from.max(1);
    let limit = limit.clamp(1, crate::PUSH_OPS_MAX) as u64;
    let last = first.saturating_add(limit - 1).min(row.head.seq);
    let rows = if first > last {
        Vec::new()
    } else {
        tx.stream_ops(row.id, first, last)?
    };
    let mut chains = ChainPlan::default();
    for (seq, _) in &rows {
        let (covering, span) = chains.cost(tx, row.id, *seq)?;
        chains.add(row.id, *seq, covering, span);
    }
    Ok(OwnOps {
        ops: rows
            .iter()
            .map(|(_, bytes)| base64::engine::general_purpose::STANDARD.encode(bytes))
            .collect(),
        chains: chains.finish(tx)?,
        head: row.head.seq,
        held: row.held,
    })
}
