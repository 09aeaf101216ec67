//! Reading records, lists and status.

use crate::schema::{SEQ_BITS, scope_text};
use crate::{NodeSettings, StoreError};
use cairn_core::merge::EntityState;
use cairn_core::op::{Action, Op};
use cairn_core::pack::{Collection, CollectionKind};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A ledger record: one append or correction op.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LedgerRecord {
    /// Always `ledger`.
    pub kind: &'static str,
    /// `node:stream:seq`.
    pub id: String,
    /// Collection.
    pub collection: String,
    /// `append` or `correct`.
    pub action: &'static str,
    /// Scope labels.
    pub scope: BTreeMap<String, String>,
    /// The record as written (after normalization).
    pub data: Value,
    /// HLC wall time of the write, ms since the epoch.
    pub hlc_ms: u64,
    /// HLC logical counter.
    pub hlc_counter: u32,
    /// Op hash, hex.
    pub op_hash: String,
    /// For a correction: the record it corrects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrects: Option<String>,
    /// For a correction: why it was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Corrections of this record, oldest first.
    pub corrected_by: Vec<String>,
    /// Records this node once wrote under the same id, before it was
    /// restored from a backup and took its stream back from the hub
    /// (`cairn edge recover`): where each went.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<Moved>,
    /// For this node's own records: what the hub made of it (pending,
    /// validated, persisted, or rejected with the rules it broke).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<crate::states::HubState>,
    /// For this node's own records: the pack and version it was validated
    /// under when it was written (`mro 1.1.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validated_under: Option<String>,
    /// The day the hub may let the record go, by its pack's retention
    /// class (the hub deletes nothing before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<String>,
}

/// A record that once had another id (see [`LedgerRecord::moved`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Moved {
    /// The id it had, and a client may hold.
    pub was: String,
    /// The id it has now.
    pub now: String,
    /// Its op hash as first written, hex: what the client's receipt says.
    pub op_hash: String,
}

/// An entity or config record: its materialized state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EntityRecord {
    /// `entity` or `config`.
    pub kind: &'static str,
    /// Collection.
    pub collection: String,
    /// Key.
    pub key: String,
    /// Scope labels of the latest op.
    pub scope: BTreeMap<String, String>,
    /// True once deleted.
    pub deleted: bool,
    /// Current field values.
    pub fields: BTreeMap<String, Value>,
    /// Open conflicts: field to candidates.
    pub conflicts: Value,
    /// Version vector of the ops applied.
    pub version: BTreeMap<String, u64>,
    /// When its newest op was written (HLC wall, ms), for collections
    /// that expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<u64>,
    /// True when not updated within its collection's `expire_after_hours`
    /// (kept, never deleted); absent for collections that do not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired: Option<bool>,
}

/// A record of any kind.
// A ledger record carries its compliance (hub state, pack version,
// retention) beside its data; records are read one or a page at a time, so
// the larger variant costs less than a box on every read.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Record {
    /// A ledger record.
    Ledger(LedgerRecord),
    /// An entity or config record.
    Entity(EntityRecord),
}

/// A list query.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Collection to list.
    pub collection: String,
    /// Labels every record must carry.
    pub scope: BTreeMap<String, String>,
    /// Resume after this id (ledger) or key (entity, config).
    pub after: Option<String>,
    /// Most records to return (bounded by `LIST_LIMIT_MAX`).
    pub limit: usize,
    /// Include deleted entities.
    pub include_deleted: bool,
}

/// Splits `node:stream:seq`.
pub(crate) fn parse_record_id(id: &str) -> Option<(&str, &str, u64)> {
    let mut parts = id.split(':');
    let (node, stream, seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let seq: u64 = seq.parse().ok()?;
    (1..1 << SEQ_BITS)
        .contains(&seq)
        .then_some((node, stream, seq))
}

fn scope_from_text(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|label| label.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn ledger_record(
    conn: &Connection,
    bytes: &[u8],
    ref_id: Option<String>,
) -> Result<LedgerRecord, StoreError> {
    let op = Op::decode(bytes).map_err(|fault| StoreError::Damaged(fault.to_string()))?;
    let id = op.record_id();
    let data: Value = serde_json::from_slice(&op.draft.payload)
        .map_err(|e| StoreError::Damaged(format!("{id}: {e}")))?;
    let corrected_by = conn
        .prepare_cached("SELECT o.op FROM ops o WHERE o.ref_id = ?1 ORDER BY o.id")?
        .query_map([&id], |row| row.get::<_, Vec<u8>>(0))?
        .map(|bytes| {
            let bytes = bytes?;
            Op::decode(&bytes)
                .map(|op| op.record_id())
                .map_err(|fault| StoreError::Damaged(fault.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LedgerRecord {
        kind: "ledger",
        id,
        collection: op.draft.collection.clone(),
        action: op.draft.action.name(),
        scope: op.draft.scope.clone(),
        data,
        hlc_ms: op.draft.hlc.wall_ms,
        hlc_counter: op.draft.hlc.counter,
        op_hash: op.op_hash.to_hex(),
        corrects: ref_id,
        reason: (op.draft.action == Action::Correct).then(|| op.draft.reason.clone()),
        corrected_by,
        moved: Vec::new(),
        hub: None,
        validated_under: None,
        retain_until: None,
    })
}

fn entity_record(
    (conn, now_ms): (&Connection, u64),
    collection: &Collection,
    key: String,
    scope: &str,
    state: &[u8],
) -> Result<EntityRecord, StoreError> {
    let value: Value = serde_json::from_slice(state)
        .map_err(|e| StoreError::Damaged(format!("state of {key}: {e}")))?;
    let state = EntityState::from_json(&value)
        .ok_or_else(|| StoreError::Damaged(format!("state of {key} has the wrong shape")))?;
    let updated_ms = match collection.sync.expire_after_ms() {
        Some(_) => last_update_ms(conn, &collection.name, &key)?,
        None => None,
    };
    Ok(EntityRecord {
        kind: collection.kind.name(),
        collection: collection.name.clone(),
        key,
        scope: scope_from_text(scope),
        deleted: state.deleted,
        fields: state.fields,
        conflicts: value["conflicts"].clone(),
        version: state.vv.0,
        updated_ms,
        expired: updated_ms.map(|updated| collection.sync.expired(updated, now_ms)),
    })
}

/// The newest write time (HLC wall) among the ops of entity `key`: its
/// last update, whichever node made it.
fn last_update_ms(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Option<u64>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT op FROM ops WHERE coll = (SELECT id FROM collections WHERE name = ?1) AND record_key = ?2",
    )?;
    let mut rows = statement.query(params![collection, key])?;
    let mut newest = None;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(0)?;
        let op = cairn_core::op::Op::decode_logged(&bytes)
            .map_err(|fault| StoreError::Damaged(format!("an op of {key}: {fault}")))?;
        newest = newest.max(Some(op.draft.hlc.wall_ms));
    }
    Ok(newest)
}

/// One record by id.
pub(crate) fn get(
    conn: &Connection,
    collection: &Collection,
    id: &str,
    now_ms: u64,
) -> Result<Option<Record>, StoreError> {
    match collection.kind {
        CollectionKind::Ledger => {
            let Some((node, stream, seq)) = parse_record_id(id) else {
                return Ok(None);
            };
            // op, collection, ref_id, pack
            type Row = (Vec<u8>, String, Option<String>, Option<String>);
            let row: Option<Row> = conn
                .prepare_cached(
                    "SELECT o.op, c.name, o.ref_id, o.pack FROM streams s JOIN ops o ON o.id = (s.id << 40) | ?3
                     JOIN collections c ON c.id = o.coll WHERE s.node = ?1 AND s.stream = ?2",
                )?
                .query_row(params![node, stream, seq as i64], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                .optional()?;
            match row {
                Some((bytes, name, ref_id, pack)) if name == collection.name => {
                    let mut record = ledger_record(conn, &bytes, ref_id)?;
                    record.moved = moved(conn, node, stream, seq)?;
                    record.validated_under = pack.filter(|pack| !pack.is_empty());
                    Ok(Some(Record::Ledger(record)))
                }
                _ => Ok(None),
            }
        }
        CollectionKind::Entity | CollectionKind::Config => {
            let row: Option<(String, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT scope, state FROM entities WHERE collection = ?1 AND key = ?2",
                )?
                .query_row(params![collection.name, id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            row.map(|(scope, state)| {
                entity_record((conn, now_ms), collection, id.to_string(), &scope, &state)
                    .map(Record::Entity)
            })
            .transpose()
        }
    }
}

/// Records of a collection matching a scope filter.
pub(crate) fn list(
    conn: &Connection,
    collection: &Collection,
    query: &ListQuery,
    now_ms: u64,
) -> Result<Vec<Record>, StoreError> {
    let limit = query.limit.clamp(1, crate::limits::LIST_LIMIT_MAX) as i64;
    let labels: Vec<String> = query
        .scope
        .iter()
        .map(|(name, value)| scope_text(&[(name.clone(), value.clone())].into()))
        .collect();
    let matches = |scope: &str| labels.iter().all(|label| scope.contains(label.as_str()));
    let mut records = Vec::new();
    match collection.kind {
        CollectionKind::Ledger => {
            let after_rowid = match &query.after {
                None => 0,
                Some(id) => {
                    let (node, stream, seq) = parse_record_id(id).ok_or_else(|| {
                        StoreError::Config(format!("after: {id:?} is not a record id"))
                    })?;
                    let stream_id: Option<i64> = conn
                        .query_row(
                            "SELECT id FROM streams WHERE node = ?1 AND stream = ?2",
                            params![node, stream],
                            |row| row.get(0),
                        )
                        .optional()?;
                    stream_id.map_or(0, |stream_id| (stream_id << SEQ_BITS) | seq as i64)
                }
            };
            let mut statement = conn.prepare_cached(
                "SELECT op, ref_id, scope FROM ops WHERE coll = (SELECT id FROM collections WHERE name = ?1)
                 AND record_key = '' AND id > ?2 ORDER BY id",
            )?;
            let mut rows = statement.query(params![collection.name, after_rowid])?;
            while let Some(row) = rows.next()? {
                let scope: String = row.get(2)?;
                if !matches(&scope) {
                    continue;
                }
                let bytes: Vec<u8> = row.get(0)?;
                records.push(Record::Ledger(ledger_record(conn, &bytes, row.get(1)?)?));
                if records.len() as i64 >= limit {
                    break;
                }
            }
        }
        CollectionKind::Entity | CollectionKind::Config => {
            let mut statement = conn.prepare_cached(
                "SELECT key, scope, state FROM entities WHERE collection = ?1 AND key > ?2 AND (deleted = 0 OR ?3) ORDER BY key",
            )?;
            let mut rows = statement.query(params![
                collection.name,
                query.after.clone().unwrap_or_default(),
                query.include_deleted
            ])?;
            while let Some(row) = rows.next()? {
                let scope: String = row.get(1)?;
                if !matches(&scope) {
                    continue;
                }
                let state: Vec<u8> = row.get(2)?;
                records.push(Record::Entity(entity_record(
                    (conn, now_ms),
                    collection,
                    row.get(0)?,
                    &scope,
                    &state,
                )?));
                if records.len() as i64 >= limit {
                    break;
                }
            }
        }
    }
    Ok(records)
}

/// Queue and storage figures of one stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamStatus {
    /// Stream name.
    pub stream: String,
    /// Seq of the newest op.
    pub head_seq: u64,
    /// Newest seq the hub acknowledged.
    pub acked_seq: u64,
    /// Ops not yet acknowledged.
    pub pending: u64,
    /// Age of the oldest unacknowledged op, ms.
    pub oldest_pending_age_ms: Option<u64>,
}

/// The node's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    /// Node name.
    pub node: String,
    /// Per stream.
    pub streams: Vec<StreamStatus>,
    /// Ops not yet acknowledged, all streams.
    pub pending_total: u64,
    /// Age of the oldest unacknowledged op, ms.
    pub oldest_pending_age_ms: Option<u64>,
    /// Bytes used by the database files.
    pub storage_bytes: u64,
    /// Quota in bytes (0: none).
    pub quota_bytes: u64,
    /// Entities and config keys with an open conflict.
    pub conflicts: u64,
    /// The sync client's last known state (online, breaker, last sync), if it ever ran.
    pub sync: Option<Value>,
    /// This node's own ops by their state at the hub (pending, validated,
    /// persisted, rejected), as learned at the last sync.
    pub states: BTreeMap<String, u64>,
    /// What a person should look at: thresholds crossed (oldest pending
    /// op, storage) and the conditions the node raised (a hub whose log
    /// went back, a clock far off the hub's), newest first.
    pub alerts: Vec<String>,
}

/// When `cairn status` and `GET /v1/status` raise an alert (SPEC §8).
#[derive(Clone, Copy, Debug)]
pub struct AlertThresholds {
    /// Oldest unacknowledged op, ms.
    pub pending_age_ms: u64,
    /// Storage use, percent of the quota.
    pub storage_percent: u64,
}

impl Default for AlertThresholds {
    fn default() -> AlertThresholds {
        AlertThresholds {
            pending_age_ms: 120_000,
            storage_percent: 80,
        }
    }
}

/// The records this node once wrote as `node:stream:seq` and set aside
/// when it took the stream back from the hub, with where each went.
fn moved(conn: &Connection, node: &str, stream: &str, seq: u64) -> Result<Vec<Moved>, StoreError> {
    let own: bool = conn
        .prepare_cached("SELECT 1 FROM streams WHERE node = ?1 AND stream = ?2 AND foreign_ = 0")?
        .exists(params![node, stream])?;
    if !own {
        return Ok(Vec::new());
    }
    let rows = conn
        .prepare_cached(
            "SELECT op_hash, new_seq FROM displaced WHERE stream = ?1 AND seq = ?2 ORDER BY id",
        )?
        .query_map(params![stream, seq as i64], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Option<i64>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(hash, new_seq)| {
            Some(Moved {
                was: format!("{node}:{stream}:{seq}"),
                now: format!("{node}:{stream}:{}", new_seq?),
                op_hash: hex::encode(hash),
            })
        })
        .collect())
}

/// Queue depth per stream, oldest pending age and storage use.
pub(crate) fn status(
    conn: &Connection,
    settings: &NodeSettings,
    now_ms: u64,
    storage_bytes: u64,
    thresholds: &AlertThresholds,
) -> Result<Status, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT id, stream, head_seq, acked_seq FROM streams WHERE node = ?1 ORDER BY stream",
    )?;
    let rows = statement
        .query_map([&settings.node], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut streams = Vec::new();
    for (id, stream, head, acked) in rows {
        let (head, acked) = (head as u64, acked as u64);
        let oldest_pending_age_ms = if head > acked {
            let written: Option<i64> = conn
                .query_row(
                    "SELECT written_ms FROM ops WHERE id = ?1",
                    [(id << SEQ_BITS) | (acked + 1) as i64],
                    |row| row.get(0),
                )
                .optional()?;
            written.map(|written| now_ms.saturating_sub(written as u64))
        } else {
            None
        };
        streams.push(StreamStatus {
            stream,
            head_seq: head,
            acked_seq: acked,
            // Above the head only when the tail was cut (`cairn verify`
            // reports it): nothing is pending then.
            pending: head.saturating_sub(acked),
            oldest_pending_age_ms,
        });
    }
    let conflicts: i64 = conn.query_row(
        "SELECT count(*) FROM entities WHERE conflicted = 1",
        [],
        |row| row.get(0),
    )?;
    let sync: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'sync_state'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    let oldest_pending_age_ms = streams
        .iter()
        .filter_map(|stream| stream.oldest_pending_age_ms)
        .max();
    let mut alerts = Vec::new();
    if let Some(age) = oldest_pending_age_ms.filter(|age| *age > thresholds.pending_age_ms) {
        alerts.push(format!(
            "oldest pending op is {} s old (threshold {} s)",
            age / 1000,
            thresholds.pending_age_ms / 1000
        ));
    }
    if settings.quota_bytes > 0
        && storage_bytes.saturating_mul(100)
            > settings
                .quota_bytes
                .saturating_mul(thresholds.storage_percent)
    {
        alerts.push(format!(
            "storage at {storage_bytes} bytes of a {} byte quota (threshold {} %): raise it with `cairn edge config --quota-bytes`, or free disk space",
            settings.quota_bytes, thresholds.storage_percent
        ));
    }
    let mut statement = conn.prepare_cached(
        "SELECT kind, message, count FROM alerts ORDER BY last_ms DESC LIMIT 100",
    )?;
    let raised = statement.query_map([], |row| {
        let (kind, message, count): (String, String, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        Ok(if count > 1 {
            format!("{kind}: {message} ({count} times)")
        } else {
            format!("{kind}: {message}")
        })
    })?;
    for alert in raised {
        alerts.push(alert?);
    }
    Ok(Status {
        node: settings.node.clone(),
        pending_total: streams.iter().map(|stream| stream.pending).sum(),
        oldest_pending_age_ms,
        streams,
        storage_bytes,
        quota_bytes: settings.quota_bytes,
        conflicts: conflicts as u64,
        sync: sync.and_then(|text| serde_json::from_str(&text).ok()),
        alerts,
        states: BTreeMap::new(),
    })
}

/// Streams of `node`, critical first.
pub(crate) fn own_streams(conn: &Connection, node: &str) -> Result<Vec<String>, StoreError> {
    let mut streams: Vec<String> = conn
        .prepare_cached("SELECT stream FROM streams WHERE node = ?1 ORDER BY stream")?
        .query_map([node], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    // The critical lane first; within a lane evidence, config, tracks.
    streams.sort_by_key(|stream| cairn_core::pack::sync::stream_rank(stream));
    Ok(streams)
}

/// The next unacknowledged ops of a stream, ending at a checkpoint.
pub(crate) fn pending_batch(
    conn: &Connection,
    node: &str,
    stream: &str,
    after_seq: Option<u64>,
    ops_max: usize,
) -> Result<Option<crate::PendingBatch>, StoreError> {
    let row: Option<(i64, i64)> = conn
        .prepare_cached("SELECT id, acked_seq FROM streams WHERE node = ?1 AND stream = ?2")?
        .query_row(params![node, stream], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((stream_id, acked)) = row else {
        return Ok(None);
    };
    let acked = acked.max(after_seq.map_or(0, |seq| seq as i64));
    let limit = acked + ops_max.max(1) as i64;
    // The furthest checkpoint within the limit, or else the first one past the acknowledged seq.
    let end: Option<(i64, Vec<u8>, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT seq, head, signature FROM checkpoints WHERE stream_id = ?1 AND seq > ?2
             ORDER BY (seq <= ?3) DESC, CASE WHEN seq <= ?3 THEN -seq ELSE seq END LIMIT 1",
        )?
        .query_row(params![stream_id, acked, limit], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((end_seq, head, signature)) = end else {
        return Ok(None);
    };
    let ops = conn
        .prepare_cached("SELECT op FROM ops WHERE id > ?1 AND id <= ?2 ORDER BY id")?
        .query_map(
            params![
                (stream_id << SEQ_BITS) | acked,
                (stream_id << SEQ_BITS) | end_seq
            ],
            |row| row.get::<_, Vec<u8>>(0),
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let checkpoint = cairn_core::identity::Checkpoint {
        node: node.to_string(),
        stream: stream.to_string(),
        seq: end_seq as u64,
        head: cairn_core::hash::Hash::from_slice(&head)
            .ok_or_else(|| StoreError::Damaged(format!("checkpoint {stream}:{end_seq}")))?,
        signature: signature
            .try_into()
            .map_err(|_| StoreError::Damaged(format!("checkpoint signature {stream}:{end_seq}")))?,
    };
    Ok(Some(crate::PendingBatch {
        stream: stream.to_string(),
        ops,
        checkpoint,
    }))
}

/// Raises the acknowledged watermark of a stream (never lowers it).
pub(crate) fn acknowledge(
    conn: &Connection,
    node: &str,
    stream: &str,
    seq: u64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE streams SET acked_seq = max(acked_seq, min(?3, head_seq)) WHERE node = ?1 AND stream = ?2",
        params![node, stream, seq as i64],
    )?;
    Ok(())
}

/// The hash of op `seq` of a stream of `node`.
pub(crate) fn own_op_hash(
    conn: &Connection,
    node: &str,
    stream: &str,
    seq: u64,
) -> Result<Option<cairn_core::hash::Hash>, StoreError> {
    let hash: Option<Vec<u8>> = conn
        .prepare_cached("SELECT o.op_hash FROM streams s JOIN ops o ON o.id = (s.id << 40) | ?3 WHERE s.node = ?1 AND s.stream = ?2")?
        .query_row(params![node, stream, seq as i64], |row| row.get(0))
        .optional()?;
    Ok(hash.and_then(|hash| cairn_core::hash::Hash::from_slice(&hash)))
}
