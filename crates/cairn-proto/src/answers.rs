//! The hub's answers to pulls, snapshots, recovery and log queries, typed
//! on both sides (the hub builds them, the edge's client reads them), with
//! the conversions into the core's types that name the field and rule of
//! whatever does not decode.

use crate::{OpStatus, PushResponse, RangeReceipt};
use base64::Engine;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::merkle::RangeProof;
use cairn_core::provenance::ChainProof;
use cairn_core::receipt::{Answered, Receipt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An answer that does not say what the protocol says: which field, why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// Reads a typed answer from JSON; an error names the path of the field
/// that does not fit (`chains[0].seq: invalid type: ...`).
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, WireError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        WireError(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// Decodes a list of base64 items (`field[i]` in errors).
pub fn decode_base64(field: &str, items: &[String]) -> Result<Vec<Vec<u8>>, WireError> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            base64::engine::general_purpose::STANDARD
                .decode(item)
                .map_err(|_| WireError(format!("{field}[{index}] must be base64")))
        })
        .collect()
}

/// A checkpoint an origin node signed, with the headers that link the ops
/// of an answer to it (`cairn_core::provenance`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainSegment {
    /// Origin node.
    pub node: String,
    /// Its stream.
    pub stream: String,
    /// Seq of the checkpoint.
    pub seq: u64,
    /// `op_hash` at that seq, hex.
    pub head: String,
    /// The origin's Ed25519 signature, hex.
    pub signature: String,
    /// The key that signed it, hex.
    pub public_key: String,
    /// Headers (`Op::header_bytes`) of the ops between the answer's ops and
    /// the checkpoint that the answer does not carry, base64, in seq order.
    pub headers: Vec<String>,
}

impl ChainSegment {
    /// The segment as a proof; `index` is its place in `chains`.
    pub fn proof(&self, index: usize) -> Result<ChainProof, WireError> {
        fn bytes<const N: usize>(
            index: usize,
            field: &str,
            text: &str,
        ) -> Result<[u8; N], WireError> {
            hex::decode(text)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| {
                    WireError(format!("chains[{index}].{field} must be {N} bytes of hex"))
                })
        }
        let headers = decode_base64(&format!("chains[{index}].headers"), &self.headers)?;
        Ok(ChainProof {
            checkpoint: Checkpoint {
                node: self.node.clone(),
                stream: self.stream.clone(),
                seq: self.seq,
                head: Hash(bytes::<32>(index, "head", &self.head)?),
                signature: bytes::<64>(index, "signature", &self.signature)?,
            },
            public_key: bytes::<32>(index, "public_key", &self.public_key)?,
            headers,
        })
    }
}

/// Every segment of `chains` as a proof.
pub fn chain_proofs(chains: &[ChainSegment]) -> Result<Vec<ChainProof>, WireError> {
    chains
        .iter()
        .enumerate()
        .map(|(index, segment)| segment.proof(index))
        .collect()
}

/// One op handed to a pulling node, with its receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PulledOp {
    /// Leaf index in the log.
    pub leaf: u64,
    /// The encoded op, base64.
    pub op: String,
    /// Inclusion proof against the page's checkpoint, hex.
    pub proof: Vec<String>,
}

/// A page of pulled ops (`GET /v1/pull`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullPage {
    /// Ops in the node's scopes, in log order.
    pub ops: Vec<PulledOp>,
    /// Cursor for the next page: the first leaf not yet scanned.
    pub next: u64,
    /// True when the log holds leaves beyond `next`.
    pub more: bool,
    /// The signed log checkpoint the proofs are against.
    pub checkpoint: String,
    /// Public keys of the nodes whose ops are in the page, hex.
    pub nodes: BTreeMap<String, String>,
    /// The origins' checkpoints and the headers that link every op of the
    /// page (and of `enrollments`) to one of them.
    pub chains: Vec<ChainSegment>,
    /// The hub's acts (`hub:audit` ops, base64) that enrolled the keys
    /// that signed those checkpoints.
    pub enrollments: Vec<String>,
    /// The scopes the node is granted now (a revoked label makes it purge).
    pub grants: BTreeMap<String, String>,
}

/// What the hub holds of one of a node's own streams (`GET /v1/own`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnOps {
    /// Encoded ops, base64, in seq order.
    pub ops: Vec<String>,
    /// The node's checkpoints over them, with the headers up to each.
    pub chains: Vec<ChainSegment>,
    /// The stream's head at the hub.
    pub head: u64,
    /// True while an equivocation holds the stream.
    pub held: bool,
}

/// A page of a snapshot (`GET /v1/snapshot`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPage {
    /// The signed manifest (`cairn_core::snapshot`).
    pub manifest: String,
    /// The ops, base64, in log order.
    pub ops: Vec<String>,
    /// The origins' checkpoints and the headers that link the ops (and
    /// `enrollments`) to them.
    pub chains: Vec<ChainSegment>,
    /// The `hub:audit` ops (base64) that enrolled the keys that signed `chains`.
    pub enrollments: Vec<String>,
    /// True when leaves below the page's bound remain after the manifest's `next`.
    pub more: bool,
}

/// A consistency proof between two log sizes (`GET /v1/log/consistency`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyAnswer {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The proof, hex.
    pub proof: Vec<String>,
}

/// Hex hashes (`field` in errors).
pub fn hashes(field: &str, items: &[String]) -> Result<Vec<Hash>, WireError> {
    items
        .iter()
        .map(|item| Hash::from_hex(item))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| WireError(format!("{field} holds a malformed hash")))
}

impl RangeReceipt {
    /// The receipt as the core checks it.
    pub fn to_receipt(&self) -> Result<Receipt, WireError> {
        Ok(Receipt {
            begin: self.begin,
            end: self.end,
            proof: RangeProof {
                left: hashes("the hub's receipt", &self.left)?,
                right: hashes("the hub's receipt", &self.right)?,
            },
        })
    }
}

impl PushResponse {
    /// The verdicts as the core reads them.
    pub fn answered(&self) -> Vec<Answered> {
        self.results
            .iter()
            .map(|result| match result.status {
                OpStatus::Accepted => Answered::Accepted { leaf: result.leaf },
                OpStatus::Duplicate => Answered::Duplicate { seq: result.seq },
                OpStatus::Quarantined => Answered::Quarantined {
                    seq: result.seq,
                    reason: result.reason.clone(),
                },
            })
            .collect()
    }
}

/// What the hub's rule packs made of one of a node's own streams
/// (`GET /v1/states`): its ops up to `judged_seq` are judged, and those
/// judged anything but persisted are listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesPage {
    /// The stream.
    pub stream: String,
    /// The highest seq judged that this answer covers.
    pub judged_seq: u64,
    /// Ops judged anything but persisted, by seq, after the one asked from.
    pub verdicts: Vec<StateVerdict>,
}

/// The verdict on one op (see [`StatesPage`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateVerdict {
    /// Its seq.
    pub seq: u64,
    /// `rejected` (logged, and a review item).
    pub state: String,
    /// The pack that judged it.
    pub pack: String,
    /// That pack's version.
    pub version: String,
    /// The rules it broke.
    pub violations: Vec<BrokenRule>,
}

/// A rule an op broke: the field, the rule, a sentence (never a sensitive
/// value).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenRule {
    /// The field.
    pub field: String,
    /// The rule's identifier.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}
