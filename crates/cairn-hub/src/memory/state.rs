//! What the in-memory backend holds: plain data, public so tests can
//! compare the states two runs leave.

use crate::backend::{EnrollToken, FleetReport, LogNote, StreamId, StreamRow};
use cairn_core::hash::Hash;
use std::collections::BTreeMap;

/// One leaf of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// Its stream.
    pub stream_id: StreamId,
    /// Its seq in the stream.
    pub seq: u64,
    /// Its `op_hash`.
    pub op_hash: Hash,
    /// The node that wrote it.
    pub node: String,
    /// Its scope labels as stored (`cairn_core::names::scope_text`).
    pub scope: String,
    /// The op as encoded.
    pub bytes: Vec<u8>,
    /// When the hub logged it, ms.
    pub received_ms: u64,
}

/// One quarantined item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// The seq it claims.
    pub seq: Option<u64>,
    /// The material.
    pub bytes: Vec<u8>,
    /// Why.
    pub reason: String,
    /// When, hub time, ms.
    pub received_ms: u64,
    /// Its place in the order items arrived.
    pub order: u64,
}

/// Everything the backend holds. Public so tests can compare states.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Enrolled nodes and their keys.
    pub nodes: BTreeMap<String, [u8; 32]>,
    /// Enrolled nodes' granted scope labels.
    pub grants: BTreeMap<String, BTreeMap<String, String>>,
    /// Which `hub:audit` act enrolled each (node, key).
    pub node_keys: BTreeMap<(String, [u8; 32]), u64>,
    /// One-time enrollment tokens by hash.
    pub tokens: BTreeMap<Hash, EnrollToken>,
    /// Per node: when it last pushed and its clock offset.
    pub clocks: BTreeMap<String, (u64, i64)>,
    /// Streams by id (`id - 1` is the index): node, stream, row.
    pub streams: Vec<(String, String, StreamRow)>,
    /// The log, in leaf order.
    pub log: Vec<Leaf>,
    /// The stored tree nodes.
    pub tree: BTreeMap<(u32, u64), Hash>,
    /// Quarantine, by node, stream and material hash.
    pub quarantine: BTreeMap<(String, String, Hash), Quarantined>,
    /// Alerts: kind, node, stream, message.
    pub alerts: Vec<(String, String, String, String)>,
    /// Origin checkpoints kept, by stream and seq: signature and key.
    pub origin_checkpoints: BTreeMap<(StreamId, u64), ([u8; 64], [u8; 32])>,
    /// Signed log checkpoints by size.
    pub notes: BTreeMap<u64, LogNote>,
    /// Fleet reports by (name, kind).
    pub fleet: BTreeMap<(String, String), FleetReport>,
    /// Verdicts, the judge's ledger and the review queue.
    pub compliance: super::comply::ComplianceData,
}
