//! What `cairn hub status` shows: the log's size and root, nodes, streams
//! and their holds, the quarantine, alerts and the nodes' clocks.

use crate::StorageError;
use crate::backend::LogTx;
use crate::tree::{self, TreeReader};
use std::collections::BTreeMap;

/// Figures for `cairn hub status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HubStatus {
    /// Log origin.
    pub origin: String,
    /// Leaves in the log.
    pub log_size: u64,
    /// Root hash, hex.
    pub root: String,
    /// Enrolled nodes.
    pub nodes: u64,
    /// Streams: `node:stream` to (head seq, held).
    pub streams: BTreeMap<String, (u64, bool)>,
    /// Quarantined items.
    pub quarantined: u64,
    /// Alerts raised.
    pub alerts: Vec<String>,
    /// Per node that pushed: when it last did, and its clock minus the
    /// hub's at that push, ms.
    pub clocks: BTreeMap<String, NodeClock>,
    /// The newest quarantined items (at most [`STATUS_QUARANTINE_MAX`]).
    pub quarantine: Vec<QuarantineItem>,
    /// Logged ops by compliance state (`persisted`, `rejected`, and
    /// `validated` for those the judge has yet to reach).
    pub states: BTreeMap<String, u64>,
    /// Open review items by kind.
    pub reviews_open: BTreeMap<String, u64>,
    /// The rule packs the hub judges by: name to version.
    pub packs: BTreeMap<String, String>,
}

/// Most quarantined items `status` lists.
pub const STATUS_QUARANTINE_MAX: usize = 100;

/// One item of the quarantine, as `status` lists it (the material itself
/// stays in the hub's database).
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuarantineItem {
    /// The node it was pushed as.
    pub node: String,
    /// The stream it was pushed to.
    pub stream: String,
    /// The seq it claims, when its header decodes.
    pub seq: Option<u64>,
    /// SHA-256 of the material, hex.
    pub material_hash: String,
    /// Why it was quarantined.
    pub reason: String,
    /// When, hub time, ms.
    pub received_ms: u64,
}

/// What the hub saw of a node's clock at its last push.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeClock {
    /// When the node last pushed, hub time, ms.
    pub pushed_ms: u64,
    /// The node's clock minus the hub's, ms.
    pub clock_offset_ms: i64,
}

/// The hub's figures as `tx` sees them, for the log named `origin`.
pub fn status(
    tx: &dyn LogTx,
    origin: &str,
    packs: &crate::comply::Packs,
) -> Result<HubStatus, StorageError> {
    let log_size = tx.log_size()?;
    let root = tree::root(&TreeReader::new(tx), log_size)?;
    let streams = tx
        .streams()?
        .into_iter()
        .map(|(node, stream, row)| (format!("{node}:{stream}"), (row.head.seq, row.held)))
        .collect();
    let alerts = tx
        .alerts()?
        .into_iter()
        .map(|alert| {
            format!(
                "{} {}:{}: {}",
                alert.kind, alert.node, alert.stream, alert.message
            )
        })
        .collect();
    let clocks = tx
        .clocks()?
        .into_iter()
        .map(|(node, pushed_ms, clock_offset_ms)| {
            let clock = NodeClock {
                pushed_ms,
                clock_offset_ms,
            };
            (node, clock)
        })
        .collect();
    let quarantine = tx
        .recent_quarantine(STATUS_QUARANTINE_MAX)?
        .into_iter()
        .map(|item| QuarantineItem {
            node: item.node,
            stream: item.stream,
            seq: item.seq,
            material_hash: item.material_hash.to_hex(),
            reason: item.reason,
            received_ms: item.received_ms,
        })
        .collect();
    Ok(HubStatus {
        origin: origin.to_string(),
        log_size,
        root: root.to_hex(),
        nodes: tx.node_count()?,
        streams,
        quarantined: tx.quarantine_count()?,
        alerts,
        clocks,
        quarantine,
        states: {
            let mut states = tx.state_counts()?;
            let pending = log_size - tx.judged_through()?;
            if pending > 0 {
                states.insert("validated".into(), pending);
            }
            states
        },
        reviews_open: tx.open_review_counts()?,
        packs: packs
            .packs()
            .iter()
            .map(|pack| (pack.name.clone(), pack.version.clone()))
            .collect(),
    })
}
