//! `cairn hub verify`: an auditor's check of the whole hub log, from the
//! database alone and the hub's public key.
//!
//! It re-derives everything the hub signed or was handed: each leaf decodes
//! and hashes to its stored `op_hash`; each stream runs from seq 1 without
//! gaps, every `prev_hash` naming the op before and its head being the
//! stream's recorded head; each origin checkpoint verifies with its key, and
//! that key is one an enrollment act of the hub's own stream (`hub:audit`)
//! names (the `node_keys` table is only an index, and is not trusted) or
//! the hub's own; every stream's head is signed; and every signed log checkpoint
//! verifies with the hub's key and its root is the tree recomputed from the
//! leaves. The first fault of each kind is named; the rest are counted.
//!
//! It reads through [`LogTx`] only, so it checks every backend alike, a
//! page of leaves at a time: what it keeps is a hash per leaf (the tree)
//! and the walk of each stream.

use crate::StorageError;
use crate::backend::{LogTx, StreamId};
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::merkle::{self, MemoryTree};
use cairn_core::names::{AUDIT_STREAM, HUB_NODE};
use std::collections::{HashMap, HashSet};

/// What [`verify_log`] checked, and what it found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HubVerifyReport {
    /// Leaves read.
    pub leaves: u64,
    /// Streams whose chains were walked.
    pub streams: u64,
    /// Origin checkpoint signatures verified.
    pub origin_checkpoints: u64,
    /// Signed log checkpoints whose signature and root were verified.
    pub log_checkpoints: u64,
    /// Faults found, in the order met (at most [`FAULTS_MAX`]).
    pub faults: Vec<String>,
}

/// Most faults a report lists.
pub const FAULTS_MAX: usize = 100;

impl HubVerifyReport {
    fn fault(&mut self, fault: String) {
        if self.faults.len() < FAULTS_MAX {
            self.faults.push(fault);
        }
    }
}

/// A stream as the walk has seen it so far.
struct Walk {
    name: String,
    seq: u64,
    hash: Hash,
}

/// Leaves read per page.
const PAGE: usize = 10_000;

/// Verifies the whole log in `tx` (see the module documentation), whose
/// checkpoints name `origin` and are signed by `hub_key`. Faults are in the
/// report; an error means the store could not be read.
pub fn verify_log(
    tx: &dyn LogTx,
    origin: &str,
    hub_key: &[u8; 32],
) -> Result<HubVerifyReport, StorageError> {
    let mut report = HubVerifyReport::default();
    let streams = tx.streams()?;
    let names: HashMap<StreamId, (String, String)> = streams
        .iter()
        .map(|(node, stream, row)| (row.id, (node.clone(), stream.clone())))
        .collect();
    let mut chains = Chains::default();
    let mut next_leaf = 0;
    loop {
        let page = tx.leaves(next_leaf, i64::MAX as u64, PAGE)?;
        let Some(last) = page.last().map(|logged| logged.leaf) else {
            break;
        };
        for logged in &page {
            if logged.leaf != next_leaf {
                report.fault(format!(
                    "leaf {} comes where leaf {next_leaf} should: the log has a hole",
                    logged.leaf
                ));
            }
            next_leaf = logged.leaf + 1;
            chains.walk(logged, &names, &mut report);
        }
        debug_assert_eq!(next_leaf, last + 1);
    }
    report.streams = chains.walks.len() as u64;

    check_streams(tx, &streams, &chains, hub_key, &mut report)?;
    check_log_notes(tx, &chains.tree, origin, hub_key, &mut report)?;
    Ok(report)
}

/// Each stream's recorded head is the last op walked and is signed; each
/// origin checkpoint verifies with a key the hub enrolled for its node.
fn check_streams(
    tx: &dyn LogTx,
    streams: &[(String, String, crate::backend::StreamRow)],
    chains: &Chains,
    hub_key: &[u8; 32],
    report: &mut HubVerifyReport,
) -> Result<(), StorageError> {
    for (node, stream, row) in streams {
        let name = format!("{node}:{stream}");
        let checkpoints = tx.origin_checkpoints_of(row.id)?;
        if row.head.seq > 0 {
            let walked = chains.walks.get(&row.id).map(|walk| (walk.seq, walk.hash));
            if walked != Some((row.head.seq, row.head.hash)) {
                report.fault(format!(
                    "{name}: the recorded head (seq {}) is not the last op of the log",
                    row.head.seq
                ));
            }
            if checkpoints.last().map(|(seq, _)| *seq) != Some(row.head.seq) {
                report.fault(format!(
                    "{name}: no origin checkpoint signs its head (seq {})",
                    row.head.seq
                ));
            }
        }
        for (seq, checkpoint) in checkpoints {
            let Some(checkpoint) = checkpoint else {
                report.fault(format!(
                    "{name} checkpoint seq {seq}: signs no op of the log"
                ));
                continue;
            };
            let signed = Checkpoint {
                node: node.clone(),
                stream: stream.clone(),
                seq,
                head: checkpoint.head,
                signature: checkpoint.signature,
            };
            if let Err(error) = signed.verify(&checkpoint.public_key) {
                report.fault(format!("{name} checkpoint seq {seq}: {error}"));
            }
            let known = if node == HUB_NODE {
                checkpoint.public_key == *hub_key
            } else {
                chains
                    .enrolled
                    .contains(&(node.clone(), hex::encode(checkpoint.public_key)))
            };
            if !known {
                report.fault(format!(
                    "{name} checkpoint seq {seq}: signed by a key the hub never enrolled"
                ));
            }
            report.origin_checkpoints += 1;
        }
    }

    Ok(())
}

/// Every signed log checkpoint verifies with the hub's key and its root is
/// the tree of the leaves walked, newest first.
fn check_log_notes(
    tx: &dyn LogTx,
    tree: &MemoryTree,
    origin: &str,
    hub_key: &[u8; 32],
    report: &mut HubVerifyReport,
) -> Result<(), StorageError> {
    let mut below = i64::MAX as u64;
    loop {
        let notes = tx.log_notes(below, PAGE)?;
        let Some(oldest) = notes.last().map(|note| note.size) else {
            break;
        };
        for kept in &notes {
            let size = kept.size;
            match cairn_core::note::verify(&kept.note, origin, hub_key) {
                Err(error) => report.fault(format!("log checkpoint {size}: {error}")),
                Ok(signed) if signed.size != size => report.fault(format!(
                    "log checkpoint {size}: the note says size {}",
                    signed.size
                )),
                Ok(signed) => {
                    if size > tree.size() || merkle::root(tree, size) != Some(signed.root) {
                        report.fault(format!(
                            "log checkpoint {size}: its root is not the tree of the log's first {size} leaves"
                        ));
                    }
                }
            }
            report.log_checkpoints += 1;
        }
        below = oldest;
    }
    Ok(())
}

/// What the walk over the leaves keeps.
#[derive(Default)]
struct Chains {
    /// Each stream as walked so far.
    walks: HashMap<StreamId, Walk>,
    /// (node, key) of every enrollment act met in the log.
    enrolled: HashSet<(String, String)>,
    /// The tree over the stored hashes, as the hub signed it.
    tree: MemoryTree,
}

impl Chains {
    /// Checks one leaf and walks its stream on.
    fn walk(
        &mut self,
        logged: &crate::backend::LoggedOp,
        names: &HashMap<StreamId, (String, String)>,
        report: &mut HubVerifyReport,
    ) {
        let (leaf, seq, stored) = (logged.leaf, logged.seq, logged.op_hash);
        report.leaves += 1;
        // A stored hash that is not the op's is a fault of its own.
        self.tree.push(merkle::leaf_hash(&stored.0));
        let name = names
            .get(&logged.stream_id)
            .map(|(node, stream)| format!("{node}:{stream}"))
            .unwrap_or_else(|| format!("stream {}", logged.stream_id));
        let op = match cairn_core::op::Op::decode(&logged.bytes) {
            Ok(op) => op,
            Err(fault) => {
                report.fault(format!("leaf {leaf} ({name} seq {seq}): {fault}"));
                return;
            }
        };
        if op.op_hash != stored {
            report.fault(format!(
                "leaf {leaf} ({name} seq {seq}): the op hashes to {}, the log says {stored}",
                op.op_hash
            ));
        }
        if op.seq != seq
            || Some(&(op.draft.node.clone(), op.draft.stream.clone()))
                != names.get(&logged.stream_id)
        {
            report.fault(format!(
                "leaf {leaf}: the op is {} but is filed as {name} seq {seq}",
                op.record_id()
            ));
        }
        if op.draft.node == HUB_NODE && op.draft.stream == AUDIT_STREAM {
            let act: serde_json::Value =
                serde_json::from_slice(&op.draft.payload).unwrap_or_default();
            if let (Some("enroll"), Some(node), Some(key)) = (
                act["action"].as_str(),
                act["node"].as_str(),
                act["public_key"].as_str(),
            ) {
                self.enrolled.insert((node.to_string(), key.to_string()));
            }
        }
        let walk = self.walks.entry(logged.stream_id).or_insert(Walk {
            name,
            seq: 0,
            hash: Hash::ZERO,
        });
        if op.seq != walk.seq + 1 {
            report.fault(format!(
                "{} seq {}: expected seq {}",
                walk.name,
                op.seq,
                walk.seq + 1
            ));
        } else if op.prev_hash != walk.hash {
            report.fault(format!(
                "{} seq {}: prev_hash does not match seq {}",
                walk.name, op.seq, walk.seq
            ));
        }
        walk.seq = op.seq;
        walk.hash = op.op_hash;
    }
}
