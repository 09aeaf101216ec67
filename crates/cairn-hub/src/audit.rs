//! The hub's own acts (enrollments, revocations, resolutions) as ops of a
//! stream it signs itself, `hub:audit`, appended to the log like any
//! node's ops: as tamper-evident as the records they govern.

use crate::StorageError;
use crate::backend::{LeafRow, LogTx};
use crate::signer::LogSigner;
use crate::tree::{self, TreeReader};
use cairn_core::chain::StreamHead;
use cairn_core::op::{Action, OpDraft};
use std::collections::BTreeMap;

pub use cairn_core::names::{AUDIT_COLLECTION, AUDIT_STREAM, HUB_NODE};

/// Appends the act `record` to `hub:audit` inside `tx`, signs the stream's
/// new head and the log's new size; returns the act's seq. The op carries
/// the scope `hub=audit`, which nodes are not granted, so pulls do not hand
/// it out (only beside the checkpoints of the keys it enrolled).
pub fn append_act(
    tx: &dyn LogTx,
    signer: &LogSigner,
    record: &serde_json::Value,
    now: u64,
) -> Result<u64, StorageError> {
    let payload = cairn_core::canonical::to_canonical_bytes(record)
        .map_err(|error| StorageError::Internal(error.to_string()))?;
    let scope: BTreeMap<String, String> = [(HUB_NODE.to_string(), AUDIT_STREAM.to_string())].into();
    append_own(
        tx,
        signer,
        HubWrite {
            stream: AUDIT_STREAM,
            collection: AUDIT_COLLECTION,
            action: Action::Append,
            key: "",
            scope,
            payload,
            base: Default::default(),
        },
        now,
    )
}

/// An op the hub writes to a stream of its own.
pub struct HubWrite<'a> {
    /// Its stream (`audit`, `registry`).
    pub stream: &'a str,
    /// The collection.
    pub collection: &'a str,
    /// Append, put or delete.
    pub action: Action,
    /// The record key (entities and registries).
    pub key: &'a str,
    /// Its scope labels.
    pub scope: BTreeMap<String, String>,
    /// The canonical payload.
    pub payload: Vec<u8>,
    /// What the hub had seen of the entity it writes (a conflict's
    /// resolution sees every side); empty otherwise.
    pub base: cairn_core::op::VersionVector,
}

/// Appends `write` to the hub's own stream inside `tx`, signs the stream's
/// new head and the log's new size; returns the op's seq.
pub fn append_own(
    tx: &dyn LogTx,
    signer: &LogSigner,
    write: HubWrite<'_>,
    now: u64,
) -> Result<u64, StorageError> {
    let (stream_id, head) = match tx.stream(HUB_NODE, write.stream)? {
        Some(row) => (row.id, row.head),
        None => (tx.create_stream(HUB_NODE, write.stream)?, StreamHead::EMPTY),
    };
    let mut head = head;
    let (op, bytes) = head.append(OpDraft {
        node: HUB_NODE.into(),
        stream: write.stream.into(),
        hlc: cairn_core::hlc::Hlc {
            wall_ms: now,
            counter: 0,
        },
        collection: write.collection.into(),
        action: write.action,
        key: write.key.into(),
        scope: write.scope,
        base: write.base,
        ref_hash: None,
        reason: String::new(),
        payload: write.payload,
    });
    let leaf = tx.log_size()?;
    let reader = TreeReader::new(tx);
    let row = LeafRow {
        leaf,
        stream_id,
        op: &op,
        bytes: &bytes,
        received_ms: now,
    };
    tree::append_leaf(tx, &reader, &row)?;
    let identity = signer.identity();
    let checkpoint = identity.sign_checkpoint(write.stream, op.seq, op.op_hash);
    tx.keep_origin_checkpoint(stream_id, &checkpoint, &identity.public_key())?;
    tx.set_stream(stream_id, head, false)?;
    signer.sign_log(tx, &reader, leaf + 1, now)?;
    Ok(op.seq)
}
