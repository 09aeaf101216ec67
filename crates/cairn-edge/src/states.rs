//! What the hub's rule packs made of this node's own ops, as learned at
//! each sync (`GET /v1/states`): an op is `pending` until the hub holds it,
//! `validated` once the hub logged it (integrity), then `persisted` or
//! `rejected` (compliance: logged and a review item at the hub, with the
//! rules it broke). Only what is not persisted is stored, per op; the rest
//! follows from how far the hub has judged each stream.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use std::collections::BTreeMap;

/// The tables (created on open when missing).
pub(crate) const STATES_DDL: &str = "
CREATE TABLE IF NOT EXISTS hub_verdicts (
    stream  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    state   TEXT NOT NULL,
    pack    TEXT NOT NULL,
    version TEXT NOT NULL,
    reason  TEXT NOT NULL,
    PRIMARY KEY (stream, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hub_judged (
    stream TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL
) STRICT;
";

/// One op's state at the hub, as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HubState {
    /// `pending`, `validated`, `persisted` or `rejected`.
    pub state: String,
    /// The pack (and version) that judged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    /// The rules it broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A verdict learned from the hub: seq, state, pack, version, reason.
pub type Learned = (u64, String, String, String, String);

/// Stores what the hub said of `stream`: judged up to `judged_seq`, with
/// these verdicts; returns how many verdicts were new.
pub(crate) fn record(
    conn: &Connection,
    stream: &str,
    judged_seq: u64,
    verdicts: &[Learned],
) -> Result<u64, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut added = 0;
    for (seq, state, pack, version, reason) in verdicts {
        added += tx.execute(
            "INSERT OR REPLACE INTO hub_verdicts (stream, seq, state, pack, version, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![stream, *seq as i64, state, pack, version, reason],
        )? as u64;
    }
    tx.execute(
        "INSERT INTO hub_judged (stream, seq) VALUES (?1, ?2)
         ON CONFLICT (stream) DO UPDATE SET seq = max(seq, excluded.seq)",
        params![stream, judged_seq as i64],
    )?;
    tx.commit()?;
    Ok(added)
}

/// How far the hub has judged `stream`, as last learned.
pub(crate) fn judged_seq(conn: &Connection, stream: &str) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM hub_judged WHERE stream = ?1",
            [stream],
            |row| row.get(0),
        )
        .optional()?;
    Ok(seq.map_or(0, |seq| seq as u64))
}

/// The state of this node's op `seq` of `stream`.
pub(crate) fn state_of(
    conn: &Connection,
    node: &str,
    stream: &str,
    seq: u64,
) -> Result<HubState, StoreError> {
    let verdict: Option<(String, String, String, String)> = conn
        .query_row(
            "SELECT state, pack, version, reason FROM hub_verdicts WHERE stream = ?1 AND seq = ?2",
            params![stream, seq as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    if let Some((state, pack, version, reason)) = verdict {
        return Ok(HubState {
            state,
            pack: Some(format!("{pack} {version}")),
            reason: Some(reason),
        });
    }
    let acked: i64 = conn
        .query_row(
            "SELECT acked_seq FROM streams WHERE node = ?1 AND stream = ?2",
            [node, stream],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let state = if seq <= judged_seq(conn, stream)? {
        "persisted"
    } else if seq <= acked as u64 {
        "validated"
    } else {
        "pending"
    };
    Ok(HubState {
        state: state.into(),
        pack: None,
        reason: None,
    })
}

/// This node's own ops by state, all streams.
pub(crate) fn counts(conn: &Connection, node: &str) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT s.stream, s.head_seq, s.acked_seq, ifnull(j.seq, 0),
                (SELECT count(*) FROM hub_verdicts v WHERE v.stream = s.stream AND v.state = 'rejected')
         FROM streams s LEFT JOIN hub_judged j ON j.stream = s.stream WHERE s.node = ?1",
    )?;
    let rows = statement
        .query_map([node], |row| {
            Ok((
                row.get::<_, i64>(1)? as u64,
                row.get::<_, i64>(2)? as u64,
                row.get::<_, i64>(3)? as u64,
                row.get::<_, i64>(4)? as u64,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut counts = BTreeMap::new();
    for (head, acked, judged, rejected) in rows {
        let judged = judged.min(acked);
        let mut add = |state: &str, count: u64| {
            if count > 0 {
                *counts.entry(state.to_string()).or_insert(0) += count;
            }
        };
        add("pending", head.saturating_sub(acked));
        add("validated", acked - judged);
        add("rejected", rejected);
        add("persisted", judged.saturating_sub(rejected));
    }
    Ok(counts)
}

/// Most pending ops looked at per collection for missed deadlines.
const DEADLINE_SCAN_MAX: i64 = 1_000;

/// Alerts for this node's records that have not reached the hub within
/// their collection's deadline (`rules.deadline`, e.g. a release to service
/// within 30 days): raised here as at the hub, where they become review
/// items once they arrive.
pub(crate) fn deadline_alerts(
    conn: &Connection,
    node: &str,
    collections: &BTreeMap<String, cairn_core::pack::Collection>,
    now_ms: u64,
) -> Result<Vec<String>, StoreError> {
    let mut alerts = Vec::new();
    for collection in collections.values() {
        let Some(deadline) = &collection.rules.deadline else {
            continue;
        };
        let due_before = now_ms.saturating_sub(deadline.days * 86_400_000);
        let mut statement = conn.prepare_cached(
            "SELECT o.op FROM ops o JOIN streams s ON s.id = (o.id >> 40)
             JOIN collections c ON c.id = o.coll
             WHERE s.node = ?1 AND c.name = ?2 AND (o.id & 1099511627775) > s.acked_seq
               AND o.written_ms < ?3
             ORDER BY o.written_ms LIMIT ?4",
        )?;
        let ops = statement
            .query_map(
                params![node, collection.name, due_before as i64, DEADLINE_SCAN_MAX],
                |row| row.get::<_, Vec<u8>>(0),
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let mut late = Vec::new();
        for bytes in ops {
            let op = cairn_core::op::Op::decode(&bytes)
                .map_err(|fault| StoreError::Damaged(fault.to_string()))?;
            let data: serde_json::Value =
                serde_json::from_slice(&op.draft.payload).unwrap_or_default();
            let applies = deadline.when.as_ref().is_none_or(|when| {
                when.matches(data.get(&when.field).and_then(serde_json::Value::as_str))
            });
            if applies {
                late.push(op.record_id());
            }
        }
        if let Some(oldest) = late.first() {
            alerts.push(format!(
                "deadline: {} record(s) of {} have not reached the hub within {} days of being written (oldest {oldest})",
                late.len(),
                collection.name,
                deadline.days
            ));
        }
    }
    Ok(alerts)
}
