//! Cairn's wire: the types and codecs both sides of a sync speak, so that
//! the edge's client never imports the hub's server module (STYLE 35).
//! Push bodies (JSON and the compact postcard+zstd form), the push answer
//! with its verdicts and range receipt (typed on both sides), the headers that
//! carry time and congestion, and the zstd contexts both sides reuse.
#![deny(missing_docs)]

mod answers;
pub mod bundle;
pub mod json;

pub use answers::{
    BrokenRule, ChainSegment, ConsistencyAnswer, OwnOps, PullPage, PulledOp, SnapshotPage,
    StateVerdict, StatesPage, WireError, chain_proofs, decode_base64, from_value, hashes,
};

use base64::Engine;
use cairn_core::identity::Checkpoint;
use serde_json::{Value, json};

/// Media type of the compact binary push body.
pub const BINARY_PUSH: &str = "application/vnd.cairn.push+postcard";
/// Largest decompressed binary push body, bytes.
pub const BINARY_PUSH_BYTES_MAX: usize = 64 * 1024 * 1024;

thread_local! {
    /// zstd contexts, one per thread and reused: a context is a few hundred
    /// kilobytes of tables, and allocating one per answer had the kernel
    /// zeroing fresh pages for a tenth of the hub's handler time when a
    /// thousand nodes pushed at once.
    static ZSTD: std::cell::RefCell<Option<(zstd::bulk::Compressor<'static>, zstd::bulk::Decompressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `work` with this thread's zstd contexts.
pub fn with_zstd<T>(
    work: impl FnOnce(
        &mut zstd::bulk::Compressor<'static>,
        &mut zstd::bulk::Decompressor<'static>,
    ) -> std::io::Result<T>,
) -> std::io::Result<T> {
    ZSTD.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some((
                zstd::bulk::Compressor::new(zstd::DEFAULT_COMPRESSION_LEVEL)?,
                zstd::bulk::Decompressor::new()?,
            ));
        }
        let (compressor, decompressor) = cell.as_mut().expect("just set");
        work(compressor, decompressor)
    })
}

/// Compresses `data` at `level` with this thread's context.
pub fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    with_zstd(|compressor, _| {
        compressor.set_compression_level(level)?;
        compressor.compress(data)
    })
}

/// The compact binary form of a push body (postcard, optionally zstd-compressed).
/// Ops travel as their raw encoding: no base64, no JSON around them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushWire {
    /// Node whose stream this is.
    pub node: String,
    /// Stream name.
    pub stream: String,
    /// Encoded ops, in seq order.
    #[serde(with = "op_bytes")]
    pub ops: Vec<Vec<u8>>,
    /// Seq of the checkpoint (the batch's last op).
    pub checkpoint_seq: u64,
    /// Head hash the checkpoint signs.
    pub checkpoint_head: [u8; 32],
    /// The node's Ed25519 signature (64 bytes).
    pub checkpoint_signature: Vec<u8>,
}

/// Ops as byte strings rather than sequences of `u8`: the same postcard
/// bytes (a length, then the bytes), copied whole instead of one element
/// at a time.
mod op_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ops: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(ops.iter().map(|op| serde_bytes::Bytes::new(op)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let ops = Vec::<serde_bytes::ByteBuf>::deserialize(deserializer)?;
        Ok(ops
            .into_iter()
            .map(serde_bytes::ByteBuf::into_vec)
            .collect())
    }
}

impl PushWire {
    /// Encodes as postcard, then zstd.
    pub fn encode(&self) -> Vec<u8> {
        let raw = postcard::to_allocvec(self).expect("a push body always serializes");
        compress(&raw, 3).expect("zstd compresses any input")
    }
}

/// A push body in its JSON form: `{"node", "stream", "ops": [base64],
/// "checkpoint": {"seq", "head", "signature"}}` (also one line of an
/// offline bundle).
pub fn push_json(node: &str, stream: &str, ops: &[Vec<u8>], checkpoint: &Checkpoint) -> Value {
    json!({
        "node": node,
        "stream": stream,
        "ops": ops.iter().map(|op| base64::engine::general_purpose::STANDARD.encode(op)).collect::<Vec<_>>(),
        "checkpoint": {"seq": checkpoint.seq, "head": checkpoint.head.to_hex(), "signature": hex::encode(checkpoint.signature)},
    })
}

/// The header (W3C Server Timing) of a push answer that carries the hub's
/// time with the push, as `hub;dur=MS`.
pub const SERVER_TIMING: &str = "server-timing";
/// Its metric name.
pub const SERVER_TIMING_HUB: &str = "hub";

/// The hub's time with a push, ms, read from a `Server-Timing` value.
pub fn hub_time_ms(server_timing: &str) -> Option<u64> {
    server_timing.split(',').find_map(|metric| {
        let mut parts = metric.trim().split(';');
        (parts.next()? == SERVER_TIMING_HUB).then_some(())?;
        parts.find_map(|param| {
            let milliseconds = param.trim().strip_prefix("dur=")?;
            milliseconds
                .parse::<f64>()
                .ok()
                .map(|ms| ms.max(0.0) as u64)
        })
    })
}

/// Header on every hub answer: the hub's time, ms since the epoch.
pub const HUB_TIME_HEADER: &str = "cairn-time-ms";
/// Header on a node's push: the node's own time, ms since the epoch.
pub const NODE_TIME_HEADER: &str = "cairn-node-time-ms";

/// The hub's answer for one op.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpResult {
    /// Seq of the op, when it decoded.
    pub seq: Option<u64>,
    /// What the hub made of it.
    pub status: OpStatus,
    /// Why it was quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its leaf index in the log (accepted and duplicate ops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<u64>,
}

/// The receipt of a push's accepted ops, which take the contiguous leaves
/// `[begin, end)`: a range proof (`cairn_core::merkle::RangeProof`) against
/// the returned checkpoint, one per push rather than one per op.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RangeReceipt {
    /// First leaf of the accepted ops.
    pub begin: u64,
    /// One past the last.
    pub end: u64,
    /// Compact range of `[0, begin)`, hex.
    pub left: Vec<String>,
    /// Compact range of `[end, size)`, hex.
    pub right: Vec<String>,
}

/// The hub's answer to a push.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PushResponse {
    /// One result per pushed op.
    pub results: Vec<OpResult>,
    /// Highest seq of the stream the hub holds (the acknowledged watermark).
    pub watermark: u64,
    /// True when the stream is held after an equivocation.
    pub held: bool,
    /// The receipt of the accepted ops, when there are any.
    #[serde(default)]
    pub receipt: Option<RangeReceipt>,
    /// The signed log checkpoint the receipt is against.
    pub checkpoint: String,
}

/// The hub's verdict on one pushed op, as the wire says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpStatus {
    /// New and intact; logged.
    Accepted,
    /// Already logged with the same hash.
    Duplicate,
    /// Kept for forensics, not logged; `reason` says why.
    Quarantined,
}

impl OpStatus {
    /// The word the wire uses.
    pub fn name(self) -> &'static str {
        match self {
            OpStatus::Accepted => "accepted",
            OpStatus::Duplicate => "duplicate",
            OpStatus::Quarantined => "quarantined",
        }
    }
}

impl PartialEq<&str> for OpStatus {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}
