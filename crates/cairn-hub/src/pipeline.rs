//! The push pipeline: verify a group of pushes and persist them in one
//! transaction, ingest -> verify (`cairn_core::push`) -> persist (log
//! leaves, quarantine, stream heads, alerts) -> sign the log -> receipts.
//!
//! Everything it stores goes through [`LogTx`]; a storage error anywhere
//! fails the whole group with nothing committed (the nodes retry), and is
//! never turned into a verdict on an op.

use crate::backend::{AlertRow, LeafRow, LogTx, QuarantineRow, StreamId};
use crate::signer::LogSigner;
use crate::tree::{self, TreeReader};
use crate::{PushError, StorageError};
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::limits::CLOCK_DRIFT_MS_MAX_DEFAULT;
use cairn_core::merkle;
use cairn_core::push::{self, PushOutcome, StreamView, Verdict};
use cairn_proto::{OpResult, OpStatus, PushResponse, RangeReceipt};

pub use cairn_core::limits::PUSH_OPS_MAX;

/// One pushed batch.
#[derive(Clone, Debug)]
pub struct PushRequest {
    /// Node whose stream this is.
    pub node: String,
    /// Stream name.
    pub stream: String,
    /// Encoded ops, in seq order.
    pub ops: Vec<Vec<u8>>,
    /// The node's checkpoint of the batch's last op.
    pub checkpoint: Checkpoint,
    /// `ops` decoded by `cairn_core::push::decode_push`, when the caller did
    /// it already (the HTTP handler does, off the writer thread); `None`
    /// decodes them here.
    pub decoded: Option<Vec<push::Decoded>>,
    /// A key `checkpoint`'s signature already verified under (the HTTP
    /// handler checks it off the writer thread). The pipeline skips its own
    /// check only when this is the node's enrolled key as it reads it in
    /// the push's transaction; `None` checks it there.
    pub checkpoint_key: Option<[u8; 32]>,
    /// The node's own clock when it sent the push, ms (the hub records how
    /// far it is from its own).
    pub node_time_ms: Option<u64>,
    /// For ops the hub built and signed itself on a stream head it read (a
    /// legacy client's records): that head. When the stream's head is
    /// another by the push's transaction (another hub process appended in
    /// between), the push is refused whole (`PushError::HeadMoved`) rather
    /// than taken for an equivocation. `None` for a node's own pushes.
    pub built_on: Option<StreamHead>,
}

/// What one push of a group did, before the group's checkpoint exists.
struct Applied {
    results: Vec<OpResult>,
    watermark: u64,
    held: bool,
    /// Leaves `[begin, end)` its accepted ops took.
    leaves: Option<(u64, u64)>,
}

/// Verifies and persists a group of pushes inside `tx` (which the caller
/// commits): each push in a savepoint, so a refused push leaves nothing;
/// one signed log checkpoint for the group, each answer with its own range
/// receipt against it. An `Err` is a storage fault: the caller drops `tx`.
pub fn push_group(
    tx: &dyn LogTx,
    signer: &LogSigner,
    requests: &mut [PushRequest],
    now: u64,
) -> Result<Vec<Result<PushResponse, PushError>>, StorageError> {
    let mut size = tx.log_size()?;
    // One reader for the group: each leaf's left siblings are nodes the
    // previous leaves just completed, so they come from its cache.
    let mut reader = TreeReader::new(tx);
    let mut applied = Vec::with_capacity(requests.len());
    for request in requests.iter_mut() {
        tx.savepoint()?;
        let before = size;
        let mut attempt = crate::comply::store::PushAttempt {
            at_ms: now,
            node: request.node.clone(),
            stream: request.stream.clone(),
            accepted: 0,
            duplicate: 0,
            quarantined: 0,
            refused: None,
        };
        match push_one(tx, &reader, &mut size, request, now) {
            Ok(one) => {
                tx.release_savepoint()?;
                for result in &one.results {
                    match result.status {
                        OpStatus::Accepted => attempt.accepted += 1,
                        OpStatus::Duplicate => attempt.duplicate += 1,
                        OpStatus::Quarantined => attempt.quarantined += 1,
                    }
                }
                applied.push(Ok(one));
            }
            Err(PushError::Store(fault)) => return Err(fault),
            Err(refusal) => {
                tx.rollback_savepoint()?;
                // Nodes it remembered were rolled back with it.
                size = before;
                reader = TreeReader::new(tx);
                attempt.refused = Some(refusal.to_string());
                applied.push(Err(refusal));
            }
        }
        // Every push, kept or refused, is on the audit trail.
        tx.record_push(&attempt)?;
    }
    let signed = signer.sign_log(tx, &reader, size, now)?;
    let mut answers = Vec::with_capacity(applied.len());
    for one in applied {
        answers.push(match one {
            Err(refusal) => Err(refusal),
            Ok(one) => Ok(PushResponse {
                receipt: receipt(&reader, one.leaves, size)?,
                results: one.results,
                watermark: one.watermark,
                held: one.held,
                checkpoint: signed.clone(),
            }),
        });
    }
    Ok(answers)
}

/// The range receipt of the leaves a push took, against the log at `size`.
fn receipt(
    reader: &TreeReader<'_>,
    leaves: Option<(u64, u64)>,
    size: u64,
) -> Result<Option<RangeReceipt>, StorageError> {
    let Some((begin, end)) = leaves else {
        return Ok(None);
    };
    let proof = merkle::range_proof(reader, begin, end, size)
        .ok_or_else(|| reader.missing(format!("no range proof for leaves {begin}..{end}")))?;
    let hex = |hashes: &[Hash]| hashes.iter().map(Hash::to_hex).collect();
    Ok(Some(RangeReceipt {
        begin,
        end,
        left: hex(&proof.left),
        right: hex(&proof.right),
    }))
}

/// Refuses a push whose shape breaks a limit, before anything is read.
fn check_shape(request: &PushRequest) -> Result<(), PushError> {
    if request.ops.is_empty() || request.ops.len() > PUSH_OPS_MAX {
        return Err(PushError::Invalid(format!(
            "ops: a push holds 1 to {PUSH_OPS_MAX} ops, got {}",
            request.ops.len()
        )));
    }
    if cairn_core::names::check_name(&request.stream).is_err() {
        return Err(PushError::Invalid(format!(
            "stream: {:?} is not a stream name",
            request.stream
        )));
    }
    Ok(())
}

/// What the hub holds of the pushed stream: its row (once it has one),
/// head and hold.
struct Stream {
    id: Option<StreamId>,
    head: StreamHead,
    held: bool,
}

/// Verifies one push and applies it inside the group's transaction.
fn push_one(
    tx: &dyn LogTx,
    reader: &TreeReader<'_>,
    size: &mut u64,
    request: &mut PushRequest,
    now: u64,
) -> Result<Applied, PushError> {
    check_shape(request)?;
    let public_key = tx
        .node_key(&request.node)?
        .ok_or_else(|| PushError::UnknownNode(request.node.clone()))?;
    let stream = match tx.stream(&request.node, &request.stream)? {
        Some(row) => Stream {
            id: Some(row.id),
            head: row.head,
            held: row.held,
        },
        None => Stream {
            id: None,
            head: StreamHead::EMPTY,
            held: false,
        },
    };
    let view = StreamView {
        node: &request.node,
        stream: &request.stream,
        head: stream.head,
        held: stream.held,
        public_key,
        checkpoint_verified: request.checkpoint_key == Some(public_key),
    };
    // A storage error, or a seq below the head the log cannot find, is a
    // fault of the hub's: the push fails (5xx, the node retries) and no op
    // is judged by it.
    let logged_hash = |seq: u64| -> Result<Hash, StorageError> {
        let logged = match stream.id {
            Some(id) => tx.logged(id, seq)?,
            None => None,
        };
        logged.map(|(_, hash)| hash).ok_or_else(|| {
            StorageError::Damaged(format!(
                "the log holds no op at seq {seq} of {}:{}, below the stream's head",
                request.node, request.stream
            ))
        })
    };
    let decoded = match request.decoded.take() {
        Some(decoded) if decoded.len() == request.ops.len() => decoded,
        _ => push::decode_push(&request.ops),
    };
    check_order(request, &stream, &decoded)?;
    let outcome = push::verify_decoded(
        &view,
        decoded,
        &request.checkpoint,
        logged_hash,
        now,
        CLOCK_DRIFT_MS_MAX_DEFAULT,
    )?;
    let mut persist = Persist {
        tx,
        reader,
        request,
        stream_id: stream.id,
        begin: None,
        quarantined: Quarantined::default(),
        now,
    };
    let results = persist.verdicts(&outcome, size)?;
    let now_held = stream.held || outcome.equivocation.is_some();
    raise_alerts(tx, request, &outcome, &persist.quarantined, now)?;
    record_clock(tx, request, now)?;
    if let Some(id) = persist.stream_id
        && (outcome.head != stream.head || now_held != stream.held)
    {
        tx.set_stream(id, outcome.head, now_held)?;
    }
    if let (Some(id), Some(_)) = (persist.stream_id, persist.begin) {
        // Ops are accepted only when the checkpoint proves the whole batch,
        // so they end at the op it signs: it is kept for that op alone.
        if (outcome.head.seq, outcome.head.hash)
            != (request.checkpoint.seq, request.checkpoint.head)
        {
            return Err(PushError::Store(StorageError::Internal(format!(
                "accepted ops of {}:{} end at seq {}, not at the checkpoint's seq {}",
                request.node, request.stream, outcome.head.seq, request.checkpoint.seq
            ))));
        }
        tx.keep_origin_checkpoint(id, &request.checkpoint, &public_key)?;
    }
    Ok(Applied {
        results,
        watermark: outcome.head.seq,
        held: now_held,
        leaves: persist.begin.map(|begin| (begin, *size)),
    })
}

/// A push that starts past the head is out of order, not damaged: it is
/// refused whole (the writer first lets it wait for its predecessor). So
/// is one the hub built on a head that has moved since (`built_on`).
fn check_order(
    request: &PushRequest,
    stream: &Stream,
    decoded: &[push::Decoded],
) -> Result<(), PushError> {
    if let Some(built_on) = request.built_on
        && built_on != stream.head
    {
        return Err(PushError::HeadMoved {
            stream: format!("{}:{}", request.node, request.stream),
            built_on: built_on.seq,
            head: stream.head.seq,
        });
    }
    if let Some(Ok(first)) = decoded.first()
        && !stream.held
        && first.draft.node == request.node
        && first.draft.stream == request.stream
        && first.seq > stream.head.seq + 1
    {
        return Err(PushError::Gap {
            stream: format!("{}:{}", request.node, request.stream),
            expected: stream.head.seq + 1,
            got: first.seq,
        });
    }
    Ok(())
}

/// The seq a malformed op claims, when its header still decodes (its
/// payload hash was what failed): for the report, never for the log.
fn claimed_seq(bytes: &[u8]) -> Option<u64> {
    cairn_core::op::Op::header_bytes(bytes)
        .ok()
        .and_then(|header| cairn_core::op::OpHeader::decode(header).ok())
        .map(|header| header.seq)
}

/// Persists one push's verdicts.
struct Persist<'p, 't> {
    tx: &'t dyn LogTx,
    reader: &'p TreeReader<'t>,
    request: &'p PushRequest,
    /// The stream's row, created with its first accepted op.
    stream_id: Option<StreamId>,
    /// The first leaf this push took.
    begin: Option<u64>,
    quarantined: Quarantined,
    now: u64,
}

impl Persist<'_, '_> {
    /// Appends accepted ops to the log (from leaf `size` on), finds the
    /// leaves of duplicates and keeps quarantined material.
    fn verdicts(
        &mut self,
        outcome: &PushOutcome,
        size: &mut u64,
    ) -> Result<Vec<OpResult>, StorageError> {
        let (tx, request) = (self.tx, self.request);
        let mut results = Vec::with_capacity(request.ops.len());
        for ((op, verdict), bytes) in outcome.verdicts.iter().zip(&request.ops) {
            let seq = match op {
                Some(op) => Some(op.seq),
                None => claimed_seq(bytes),
            };
            let (status, reason, leaf) = match verdict {
                Verdict::Accepted => {
                    let op = op.as_ref().expect("accepted ops decoded");
                    let id = match self.stream_id {
                        Some(id) => id,
                        None => *self
                            .stream_id
                            .insert(tx.create_stream(&request.node, &request.stream)?),
                    };
                    let row = LeafRow {
                        leaf: *size,
                        stream_id: id,
                        op,
                        bytes,
                        received_ms: self.now,
                    };
                    tree::append_leaf(tx, self.reader, &row)?;
                    *size += 1;
                    self.begin.get_or_insert(row.leaf);
                    (OpStatus::Accepted, None, Some(row.leaf))
                }
                Verdict::Duplicate => {
                    let leaf = match (self.stream_id, seq) {
                        (Some(id), Some(seq)) => tx.logged(id, seq)?.map(|(leaf, _)| leaf),
                        _ => None,
                    };
                    (OpStatus::Duplicate, None, leaf)
                }
                Verdict::Quarantined(reason) => {
                    self.quarantined
                        .keep(tx, request, seq, bytes, reason, self.now)?;
                    (OpStatus::Quarantined, Some(reason.clone()), None)
                }
            };
            results.push(OpResult {
                seq,
                status,
                reason,
                leaf,
            });
        }
        Ok(results)
    }
}

/// The material a push put in quarantine: each distinct op once, however
/// often it is pushed again.
#[derive(Default)]
struct Quarantined {
    /// Items new to the quarantine.
    added: u64,
    /// The first reason given in this push.
    first_reason: Option<String>,
}

impl Quarantined {
    fn keep(
        &mut self,
        tx: &dyn LogTx,
        request: &PushRequest,
        seq: Option<u64>,
        bytes: &[u8],
        reason: &str,
        now: u64,
    ) -> Result<(), StorageError> {
        let added = tx.quarantine(&QuarantineRow {
            node: &request.node,
            stream: &request.stream,
            seq,
            material_hash: Hash::of(bytes),
            bytes,
            reason,
            received_ms: now,
        })?;
        self.added += u64::from(added);
        self.first_reason.get_or_insert_with(|| reason.to_string());
        if added {
            // Quarantined material is a review item too: someone looks at
            // it beside what the hub logged at that seq.
            tx.raise_review(&crate::comply::ReviewRow {
                kind: "quarantine".into(),
                leaf: None,
                node: request.node.clone(),
                stream: request.stream.clone(),
                seq,
                collection: String::new(),
                rule: "integrity".into(),
                message: reason.to_string(),
                raised_ms: now,
                material_hash: Some(Hash::of(bytes)),
            })?;
        }
        Ok(())
    }
}

/// Records when the node last pushed and how far its clock is from the
/// hub's, raising a `clock_skew` alert when it goes beyond the bound
/// (ahead or behind), once, not at every push.
fn record_clock(tx: &dyn LogTx, request: &PushRequest, now: u64) -> Result<(), StorageError> {
    let Some(node_ms) = request.node_time_ms else {
        return Ok(());
    };
    let offset = node_ms as i64 - now as i64;
    let bound = CLOCK_DRIFT_MS_MAX_DEFAULT as i64;
    let previous = tx.clock_offset(&request.node)?;
    tx.set_clock(&request.node, now, offset)?;
    if offset.abs() > bound && previous.is_none_or(|previous| previous.abs() <= bound) {
        let side = if offset > 0 { "ahead of" } else { "behind" };
        let message = format!(
            "the node's clock is {} s {side} the hub's (bound {} s); its tokens are signed at the hub's time",
            offset.unsigned_abs() / 1000,
            bound / 1000
        );
        tx.alert(&AlertRow {
            kind: "clock_skew",
            node: &request.node,
            stream: &request.stream,
            message: &message,
            created_ms: now,
        })?;
    }
    Ok(())
}

/// Raises the alerts a push calls for: an equivocation, material newly
/// quarantined for integrity, ops written with a clock far ahead.
fn raise_alerts(
    tx: &dyn LogTx,
    request: &PushRequest,
    outcome: &PushOutcome,
    quarantined: &Quarantined,
    now: u64,
) -> Result<(), StorageError> {
    let mut alerts = Vec::new();
    if let Some(equivocation) = &outcome.equivocation {
        alerts.push(("equivocation", format!(
            "seq {} pushed with hash {} but {} is held; stream held until an operator resolves it",
            equivocation.seq, equivocation.pushed, equivocation.logged
        )));
    } else if quarantined.added > 0 {
        alerts.push((
            "integrity",
            format!(
                "{} pushed ops quarantined: {}",
                quarantined.added,
                quarantined.first_reason.as_deref().unwrap_or("")
            ),
        ));
    }
    if !outcome.clock_skew.is_empty() {
        alerts.push((
            "clock_skew",
            format!(
                "{} ops written with a clock more than {} ms ahead",
                outcome.clock_skew.len(),
                CLOCK_DRIFT_MS_MAX_DEFAULT
            ),
        ));
    }
    for (kind, message) in alerts {
        tx.alert(&AlertRow {
            kind,
            node: &request.node,
            stream: &request.stream,
            message: &message,
            created_ms: now,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_never_asks_for_more_than_a_push_may_hold() {
        let config = cairn_core::link::LinkConfig::default();
        assert!(config.batch_ops_max <= PUSH_OPS_MAX);
        assert!(config.batch_ops_min >= 1);
    }
}
