//! `cairn verify`: re-checks every stream end to end, the columns kept beside
//! each op, and every materialized state, and names the first broken link.

use crate::schema::{SEQ_BITS, scope_text};
use crate::{Catalog, StoreError};
use cairn_core::chain::{ChainFault, StreamVerifier};
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::merge::{self, MergeOp};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// What one verified stream holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// `node:stream`.
    pub stream: String,
    /// Ops verified.
    pub ops: u64,
    /// Checkpoints whose signatures verified.
    pub checkpoints: u64,
}

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyFault {
    /// A broken chain link or checkpoint.
    Chain(ChainFault),
    /// A column kept beside an op disagrees with the op.
    Column {
        /// `node:stream`.
        stream: String,
        /// Seq of the op.
        seq: u64,
        /// The column.
        column: &'static str,
    },
    /// An op row belongs to no known stream.
    Orphan {
        /// Its row id.
        rowid: i64,
    },
    /// A stream's recorded head is not the verified head.
    Head {
        /// `node:stream`.
        stream: String,
        /// Seq of the recorded head.
        recorded_seq: u64,
        /// Seq of the verified head.
        verified_seq: u64,
    },
    /// A materialized state differs from the state its ops give.
    State {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
    },
    /// The node signing a stream has no known key.
    UnknownNode {
        /// The node.
        node: String,
    },
    /// A stream of this node no longer reaches a head it once had: its tail
    /// was cut off (or rewritten), though the chain left verifies.
    Cut {
        /// `node:stream`.
        stream: String,
        /// Where the chain now ends.
        verified_seq: u64,
        /// The seq it once reached.
        expected_seq: u64,
        /// Who says so: the heads file, or the hub's acknowledgement.
        witness: &'static str,
    },
}

impl fmt::Display for VerifyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFault::Chain(fault) => write!(f, "{fault}"),
            VerifyFault::Column {
                stream,
                seq,
                column,
            } => {
                write!(
                    f,
                    "stream {stream}, seq {seq}: the {column} column does not match the op (altered index)"
                )
            }
            VerifyFault::Orphan { rowid } => write!(
                f,
                "stream id {}, seq {}: op row belongs to no known stream (inserted)",
                rowid >> SEQ_BITS,
                rowid & ((1 << SEQ_BITS) - 1)
            ),
            VerifyFault::Head {
                stream,
                recorded_seq,
                verified_seq,
            } if recorded_seq == verified_seq => write!(
                f,
                "stream {stream}, seq {verified_seq}: the recorded head hash is not the hash of the op there"
            ),
            VerifyFault::Head {
                stream,
                recorded_seq,
                verified_seq,
            } => write!(
                f,
                "stream {stream}, seq {}: the recorded head is seq {recorded_seq} but the chain ends at seq {verified_seq}",
                verified_seq.min(recorded_seq) + 1
            ),
            VerifyFault::State { collection, key } => {
                write!(
                    f,
                    "{collection}/{key}: materialized state differs from the state its ops give"
                )
            }
            VerifyFault::UnknownNode { node } => write!(f, "node {node}: no public key is known"),
            VerifyFault::Cut {
                stream,
                verified_seq,
                expected_seq,
                witness,
            } if verified_seq >= expected_seq => write!(
                f,
                "stream {stream}, seq {expected_seq}: the op there is not the one {witness} recorded (rewritten)"
            ),
            VerifyFault::Cut {
                stream,
                verified_seq,
                expected_seq,
                witness,
            } => write!(
                f,
                "stream {stream}, seq {}: the chain ends at seq {verified_seq} but {witness} recorded seq {expected_seq} (ops deleted)",
                verified_seq + 1
            ),
        }
    }
}

impl VerifyFault {
    /// The seq the fault is at, when it is in a stream.
    pub fn seq(&self) -> Option<u64> {
        match self {
            VerifyFault::Chain(fault) => Some(fault.seq),
            VerifyFault::Column { seq, .. } => Some(*seq),
            VerifyFault::Orphan { rowid } => Some((*rowid & ((1 << SEQ_BITS) - 1)) as u64),
            VerifyFault::Head {
                recorded_seq,
                verified_seq,
                ..
            } => Some(if recorded_seq == verified_seq {
                *verified_seq
            } else {
                verified_seq.min(recorded_seq) + 1
            }),
            VerifyFault::Cut {
                verified_seq,
                expected_seq,
                ..
            } => Some((*verified_seq + 1).min(*expected_seq)),
            _ => None,
        }
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Streams verified (up to the fault, if any).
    pub streams: Vec<StreamReport>,
    /// Entity and config states recomputed.
    pub states: u64,
    /// The first fault, or `None` when everything is intact.
    pub fault: Option<VerifyFault>,
}

/// What this node recorded of its own heads outside the database: the
/// heads file, and one the writer found cut at start.
pub(crate) type RecordedHeads = Vec<(&'static str, BTreeMap<String, (u64, Hash)>)>;

pub(crate) fn verify(
    conn: &Connection,
    own_node: &str,
    own_key: [u8; 32],
    catalog: &Catalog,
    recorded_heads: &RecordedHeads,
) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport {
        streams: Vec::new(),
        states: 0,
        fault: None,
    };
    let streams: Vec<(i64, String, String, i64, Vec<u8>)> = conn
        .prepare("SELECT id, node, stream, head_seq, head_hash FROM streams ORDER BY node, stream")?
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (id, node, stream, head_seq, head_hash) in &streams {
        if node != own_node {
            // Pulled ops of other nodes arrive filtered by scope, so their
            // streams have gaps: each op is checked on its own (it came with
            // a verified receipt of the hub's log).
            match verify_pulled_stream(conn, *id, node, stream)? {
                Err(fault) => {
                    report.fault = Some(fault);
                    return Ok(report);
                }
                Ok(summary) => report.streams.push(summary),
            }
            continue;
        }
        let key = if node == own_node {
            // Our own key comes from node.key, not from the database an attacker could edit.
            Some(own_key)
        } else {
            let stored: Option<Vec<u8>> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT public_key FROM nodes WHERE node = ?1",
                [node],
                |row| row.get(0),
            ))?;
            stored.and_then(|bytes| bytes.try_into().ok())
        };
        let Some(key) = key else {
            report.fault = Some(VerifyFault::UnknownNode { node: node.clone() });
            return Ok(report);
        };
        match verify_stream(conn, *id, node, stream, key)? {
            Err(fault) => {
                report.fault = Some(fault);
                return Ok(report);
            }
            Ok((summary, verified_head)) => {
                let recorded = Hash::from_slice(head_hash).unwrap_or(Hash::ZERO);
                if *head_seq as u64 != verified_head.seq || recorded != verified_head.hash {
                    report.fault = Some(VerifyFault::Head {
                        stream: format!("{node}:{stream}"),
                        recorded_seq: *head_seq as u64,
                        verified_seq: verified_head.seq,
                    });
                    return Ok(report);
                }
                if let Some(fault) =
                    cut_tail(conn, *id, node, stream, verified_head, recorded_heads)?
                {
                    report.fault = Some(fault);
                    return Ok(report);
                }
                report.streams.push(summary);
            }
        }
    }
    // A stream the heads file names that has no row at all lost every op.
    for (witness, heads) in recorded_heads {
        for (stream, (seq, _)) in heads {
            if !streams
                .iter()
                .any(|(_, node, name, ..)| node == own_node && name == stream)
            {
                report.fault = Some(VerifyFault::Cut {
                    stream: format!("{own_node}:{stream}"),
                    verified_seq: 0,
                    expected_seq: *seq,
                    witness,
                });
                return Ok(report);
            }
        }
    }
    // Rows outside every known stream's range were inserted behind our back.
    let orphan: Option<i64> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT o.id FROM ops o WHERE NOT EXISTS (SELECT 1 FROM streams s WHERE s.id = o.id >> 40) LIMIT 1",
        [],
        |row| row.get(0),
    ))?;
    if let Some(rowid) = orphan {
        report.fault = Some(VerifyFault::Orphan { rowid });
        return Ok(report);
    }
    verify_states(conn, catalog, &mut report)?;
    Ok(report)
}

/// Whether the verified chain of one of this node's streams still reaches
/// the heads recorded outside the database and the seq the hub
/// acknowledged.
fn cut_tail(
    conn: &Connection,
    stream_id: i64,
    node: &str,
    stream: &str,
    verified: cairn_core::chain::StreamHead,
    recorded: &RecordedHeads,
) -> Result<Option<VerifyFault>, StoreError> {
    let cut = |expected_seq: u64, witness: &'static str| VerifyFault::Cut {
        stream: format!("{node}:{stream}"),
        verified_seq: verified.seq,
        expected_seq,
        witness,
    };
    let acked: i64 = conn.query_row(
        "SELECT acked_seq FROM streams WHERE id = ?1",
        [stream_id],
        |row| row.get(0),
    )?;
    if acked as u64 > verified.seq {
        return Ok(Some(cut(acked as u64, "the hub's acknowledgement")));
    }
    for (witness, heads) in recorded {
        let Some(&(seq, hash)) = heads.get(stream) else {
            continue;
        };
        if seq > verified.seq {
            return Ok(Some(cut(seq, witness)));
        }
        let stored: Option<Vec<u8>> = rusqlite::OptionalExtension::optional(conn.query_row(
            "SELECT op_hash FROM ops WHERE id = ?1",
            [(stream_id << SEQ_BITS) | seq as i64],
            |row| row.get(0),
        ))?;
        if stored.as_deref() != Some(hash.0.as_slice()) {
            return Ok(Some(cut(seq, witness)));
        }
    }
    Ok(None)
}

fn verify_stream(
    conn: &Connection,
    stream_id: i64,
    node: &str,
    stream: &str,
    key: [u8; 32],
) -> Result<Result<(StreamReport, cairn_core::chain::StreamHead), VerifyFault>, StoreError> {
    let checkpoints: Vec<Checkpoint> = conn
        .prepare_cached(
            "SELECT seq, head, signature FROM checkpoints WHERE stream_id = ?1 ORDER BY seq",
        )?
        .query_map([stream_id], |row| {
            let head: Vec<u8> = row.get(1)?;
            let signature: Vec<u8> = row.get(2)?;
            Ok((row.get::<_, i64>(0)?, head, signature))
        })?
        .map(|row| {
            let (seq, head, signature) = row?;
            Ok(Checkpoint {
                node: node.to_string(),
                stream: stream.to_string(),
                seq: seq as u64,
                head: Hash::from_slice(&head).unwrap_or(Hash::ZERO),
                signature: signature.try_into().unwrap_or([0; 64]),
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let mut verifier = StreamVerifier::new(node, stream, key, checkpoints);
    let mut statement = conn.prepare_cached(
        "SELECT o.id, o.op_hash, o.op, c.name, o.action, o.record_key, o.scope, o.ref_id
         FROM ops o LEFT JOIN collections c ON c.id = o.coll WHERE o.id > ?1 AND o.id < ?2 ORDER BY o.id",
    )?;
    let mut rows = statement.query(params![stream_id << SEQ_BITS, (stream_id + 1) << SEQ_BITS])?;
    let mut ops = 0;
    let stream_key = format!("{node}:{stream}");
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        let seq = (rowid & ((1 << SEQ_BITS) - 1)) as u64;
        let stored_hash: Vec<u8> = row.get(1)?;
        let bytes: Vec<u8> = row.get(2)?;
        let op = match verifier.push(
            seq,
            Hash::from_slice(&stored_hash).unwrap_or(Hash::ZERO),
            &bytes,
        ) {
            Ok(op) => op,
            Err(fault) => return Ok(Err(VerifyFault::Chain(fault))),
        };
        let column = |column: &'static str| {
            Ok(Err(VerifyFault::Column {
                stream: stream_key.clone(),
                seq,
                column,
            }))
        };
        if row.get::<_, Option<String>>(3)?.as_deref() != Some(op.draft.collection.as_str()) {
            return column("collection");
        }
        if row.get::<_, i64>(4)? != i64::from(op.draft.action.code()) {
            return column("action");
        }
        if row.get::<_, String>(5)? != op.draft.key {
            return column("record_key");
        }
        if row.get::<_, String>(6)? != scope_text(&op.draft.scope) {
            return column("scope");
        }
        let ref_id: Option<String> = row.get(7)?;
        if !ref_matches(conn, ref_id.as_deref(), op.draft.ref_hash)? {
            return column("ref_id");
        }
        ops += 1;
    }
    match verifier.finish() {
        Ok(summary) => Ok(Ok((
            StreamReport {
                stream: stream_key,
                ops,
                checkpoints: summary.checkpoints,
            },
            summary.head,
        ))),
        Err(fault) => Ok(Err(VerifyFault::Chain(fault))),
    }
}

/// Checks each stored op of another node on its own: hashes, position, columns.
fn verify_pulled_stream(
    conn: &Connection,
    stream_id: i64,
    node: &str,
    stream: &str,
) -> Result<Result<StreamReport, VerifyFault>, StoreError> {
    let stream_key = format!("{node}:{stream}");
    let mut statement = conn.prepare_cached(
        "SELECT o.id, o.op_hash, o.op, c.name, o.action, o.record_key, o.scope
         FROM ops o LEFT JOIN collections c ON c.id = o.coll WHERE o.id > ?1 AND o.id < ?2 ORDER BY o.id",
    )?;
    let mut rows = statement.query(params![stream_id << SEQ_BITS, (stream_id + 1) << SEQ_BITS])?;
    let mut ops = 0;
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        let seq = (rowid & ((1 << SEQ_BITS) - 1)) as u64;
        let stored: Vec<u8> = row.get(1)?;
        let bytes: Vec<u8> = row.get(2)?;
        let fault = |kind| {
            Ok(Err(VerifyFault::Chain(ChainFault {
                stream: stream_key.clone(),
                seq,
                kind,
            })))
        };
        let op = match cairn_core::op::Op::decode(&bytes) {
            Ok(op) => op,
            Err(error) => return fault(cairn_core::chain::ChainFaultKind::Op(error)),
        };
        if op.seq != seq {
            return fault(cairn_core::chain::ChainFaultKind::SeqMismatch { encoded: op.seq });
        }
        if op.stream_key() != stream_key {
            return fault(cairn_core::chain::ChainFaultKind::WrongStream {
                encoded: op.stream_key(),
            });
        }
        if stored.as_slice() != op.op_hash.0.as_slice() {
            return fault(cairn_core::chain::ChainFaultKind::OpHash {
                stored: Hash::from_slice(&stored).unwrap_or(Hash::ZERO),
                computed: op.op_hash,
            });
        }
        let columns_match = row.get::<_, Option<String>>(3)?.as_deref()
            == Some(op.draft.collection.as_str())
            && row.get::<_, i64>(4)? == i64::from(op.draft.action.code())
            && row.get::<_, String>(5)? == op.draft.key
            && row.get::<_, String>(6)? == scope_text(&op.draft.scope);
        if !columns_match {
            return Ok(Err(VerifyFault::Column {
                stream: stream_key.clone(),
                seq,
                column: "collection/action/record_key/scope",
            }));
        }
        ops += 1;
    }
    Ok(Ok(StreamReport {
        stream: stream_key,
        ops,
        checkpoints: 0,
    }))
}

/// The `ref_id` column names the op whose hash the correction carries.
fn ref_matches(
    conn: &Connection,
    ref_id: Option<&str>,
    ref_hash: Option<Hash>,
) -> Result<bool, StoreError> {
    match (ref_id, ref_hash) {
        (None, None) => Ok(true),
        (Some(id), Some(hash)) => {
            let Some((node, stream, seq)) = crate::read::parse_record_id(id) else {
                return Ok(false);
            };
            let stored: Option<Vec<u8>> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT o.op_hash FROM streams s JOIN ops o ON o.id = (s.id << 40) | ?3 WHERE s.node = ?1 AND s.stream = ?2",
                params![node, stream, seq as i64],
                |row| row.get(0),
            ))?;
            Ok(stored.as_deref() == Some(hash.0.as_slice()))
        }
        _ => Ok(false),
    }
}

/// Recomputes every entity and config state from its ops.
fn verify_states(
    conn: &Connection,
    catalog: &Catalog,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let keys: Vec<(String, String, Vec<u8>)> = conn
        .prepare("SELECT collection, key, state FROM entities ORDER BY collection, key")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<Result<_, _>>()?;
    for (collection, key, state) in keys {
        let fault = || VerifyFault::State {
            collection: collection.clone(),
            key: key.clone(),
        };
        let Some(schema) = catalog
            .collections
            .get(&collection)
            .and_then(|c| c.merge_schema())
        else {
            report.fault = Some(fault());
            return Ok(());
        };
        let ops: Vec<MergeOp> = match crate::writer::entity_ops(conn, &collection, &key) {
            Ok(ops) => ops,
            Err(_) => {
                report.fault = Some(fault());
                return Ok(());
            }
        };
        let expected = merge::materialize(&schema, &ops).map(|state| state.to_canonical_bytes());
        if expected.as_deref() != Some(state.as_slice()) {
            report.fault = Some(fault());
            return Ok(());
        }
        report.states += 1;
    }
    // Entity ops whose state row is missing.
    let missing: Option<(String, String)> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT c.name, o.record_key FROM ops o JOIN collections c ON c.id = o.coll WHERE o.record_key != ''
         AND NOT EXISTS (SELECT 1 FROM entities e WHERE e.collection = c.name AND e.key = o.record_key) LIMIT 1",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    ))?;
    if let Some((collection, key)) = missing {
        report.fault = Some(VerifyFault::State { collection, key });
    }
    Ok(())
}
