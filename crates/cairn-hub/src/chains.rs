//! The chain proofs of a pull page, snapshot page or a node's own ops,
//! planned op by op as the log is scanned: each op needs the seqs from
//! itself up to the first checkpoint its origin signed at or above it; the
//! seqs the answer does not carry travel as headers
//! (`cairn_core::provenance`), and the `hub:audit` acts that enrolled the
//! signing keys travel with them.

use crate::StorageError;
use crate::audit::{AUDIT_STREAM, HUB_NODE};
use crate::backend::{LogTx, StreamId};
use base64::Engine;
use cairn_proto::ChainSegment;
use std::collections::{BTreeMap, BTreeSet};

/// The plan, as ops are added.
#[derive(Default)]
pub struct ChainPlan {
    streams: BTreeMap<StreamId, StreamPlan>,
    /// Seqs spanned so far, over every stream.
    pub span: usize,
}

#[derive(Default)]
struct StreamPlan {
    /// Seqs of the ops carried in full.
    carried: BTreeSet<u64>,
    /// Checkpoint seqs used.
    checkpoints: BTreeSet<u64>,
    /// Highest seq spanned so far (ops come in increasing seq per stream).
    spanned_to: u64,
    /// Spans `[from, to]`, ascending and disjoint.
    spans: Vec<(u64, u64)>,
}

impl ChainPlan {
    /// The checkpoint that covers op `seq` of `stream_id` and how many seqs
    /// it adds to the span.
    pub fn cost(
        &self,
        tx: &dyn LogTx,
        stream_id: StreamId,
        seq: u64,
    ) -> Result<(u64, usize), StorageError> {
        let plan = self.streams.get(&stream_id);
        let cached = plan
            .and_then(|plan| plan.checkpoints.last().copied())
            .filter(|&checkpoint| checkpoint >= seq);
        let checkpoint = match cached {
            Some(checkpoint) => checkpoint,
            None => tx.checkpoint_covering(stream_id, seq)?.ok_or_else(|| {
                StorageError::Damaged(format!(
                    "no origin checkpoint covers seq {seq} of stream {stream_id}"
                ))
            })?,
        };
        let from = plan.map_or(seq, |plan| seq.max(plan.spanned_to + 1));
        Ok((checkpoint, (checkpoint + 1).saturating_sub(from) as usize))
    }

    /// Adds op `seq` of `stream_id`, carried in full, with its checkpoint.
    pub fn add(&mut self, stream_id: StreamId, seq: u64, checkpoint: u64, added: usize) {
        let plan = self.streams.entry(stream_id).or_default();
        plan.carried.insert(seq);
        plan.checkpoints.insert(checkpoint);
        match plan.spans.last_mut() {
            Some(last) if seq <= last.1 + 1 => last.1 = last.1.max(checkpoint),
            _ => plan.spans.push((seq, checkpoint)),
        }
        plan.spanned_to = plan.spanned_to.max(checkpoint);
        self.span += added;
    }

    /// Adds the `hub:audit` acts that enrolled the keys of the planned
    /// checkpoints, and returns them encoded: the receiver checks each key
    /// against the act, and the act against the hub's own key.
    pub fn add_enrollments(&mut self, tx: &dyn LogTx) -> Result<Vec<Vec<u8>>, StorageError> {
        let mut wanted = BTreeSet::new();
        for (&stream_id, plan) in &self.streams {
            let (node, _) = stream_name(tx, stream_id)?;
            if node == HUB_NODE {
                continue;
            }
            for &checkpoint in &plan.checkpoints {
                let key = origin_checkpoint(tx, stream_id, checkpoint)?.public_key;
                let seq = tx.enrollment_act(&node, &key)?.ok_or_else(|| {
                    StorageError::Damaged(format!("no enrollment of {node}'s signing key"))
                })?;
                wanted.insert(seq);
            }
        }
        let Some(audit) = tx.stream(HUB_NODE, AUDIT_STREAM)? else {
            return match wanted.first() {
                Some(seq) => Err(StorageError::Damaged(format!(
                    "hub:audit seq {seq} is not in the log"
                ))),
                None => Ok(Vec::new()),
            };
        };
        let mut ops = Vec::with_capacity(wanted.len());
        for seq in wanted {
            let bytes = tx
                .stream_ops(audit.id, seq, seq)?
                .pop()
                .map(|(_, bytes)| bytes)
                .ok_or_else(|| {
                    StorageError::Damaged(format!("hub:audit seq {seq} is not in the log"))
                })?;
            let (checkpoint, span) = self.cost(tx, audit.id, seq)?;
            self.add(audit.id, seq, checkpoint, span);
            ops.push(bytes);
        }
        Ok(ops)
    }

    /// Reads the checkpoints and the headers of the seqs not carried.
    pub fn finish(self, tx: &dyn LogTx) -> Result<Vec<ChainSegment>, StorageError> {
        let mut segments = Vec::new();
        for (stream_id, plan) in self.streams {
            let (node, stream) = stream_name(tx, stream_id)?;
            let mut headers: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            for &(from, to) in &plan.spans {
                for (seq, bytes) in tx.stream_ops(stream_id, from, to)? {
                    if plan.carried.contains(&seq) {
                        continue;
                    }
                    let header = cairn_core::op::Op::header_bytes(&bytes).map_err(|fault| {
                        StorageError::Damaged(format!("{node}:{stream} seq {seq}: {fault}"))
                    })?;
                    // Each header goes with the first checkpoint at or above it.
                    let checkpoint = plan.checkpoints.range(seq..).next().copied().unwrap_or(to);
                    headers
                        .entry(checkpoint)
                        .or_default()
                        .push(base64::engine::general_purpose::STANDARD.encode(header));
                }
            }
            for checkpoint in plan.checkpoints {
                let signed = origin_checkpoint(tx, stream_id, checkpoint)?;
                segments.push(ChainSegment {
                    node: node.clone(),
                    stream: stream.clone(),
                    seq: checkpoint,
                    head: signed.head.to_hex(),
                    signature: hex::encode(signed.signature),
                    public_key: hex::encode(signed.public_key),
                    headers: headers.remove(&checkpoint).unwrap_or_default(),
                });
            }
        }
        Ok(segments)
    }
}

fn stream_name(tx: &dyn LogTx, id: StreamId) -> Result<(String, String), StorageError> {
    tx.stream_name(id)?
        .ok_or_else(|| StorageError::Damaged(format!("no stream with id {id}")))
}

fn origin_checkpoint(
    tx: &dyn LogTx,
    id: StreamId,
    seq: u64,
) -> Result<crate::backend::OriginCheckpoint, StorageError> {
    tx.origin_checkpoint(id, seq)?.ok_or_else(|| {
        StorageError::Damaged(format!("no origin checkpoint at seq {seq} of stream {id}"))
    })
}
