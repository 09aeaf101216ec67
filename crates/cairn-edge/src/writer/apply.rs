//! Applying an op inside the writer's transaction: its stream slot, the entity state it changes, the scope checks, this node's own ops and corrections.

use super::*;
use crate::schema::SEQ_BITS;

/// The stream slot for `name`, created (inside the transaction) if new.
pub(super) fn stream_slot<'a>(
    conn: &Connection,
    node: &str,
    streams: &'a mut HashMap<String, StreamSlot>,
    name: &str,
) -> Result<&'a mut StreamSlot, StoreError> {
    if !streams.contains_key(name) {
        conn.execute(
            "INSERT INTO streams (node, stream, head_seq, head_hash) VALUES (?1, ?2, 0, ?3)",
            params![node, name, Hash::ZERO.0.as_slice()],
        )?;
        let id = conn.last_insert_rowid();
        streams.insert(
            name.to_string(),
            StreamSlot {
                id,
                head: StreamHead::EMPTY,
                dirty: false,
            },
        );
    }
    Ok(streams.get_mut(name).expect("inserted above"))
}

/// Looks up the entity's stored state.
pub(super) fn load_state(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Option<EntityState>, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT state FROM entities WHERE collection = ?1 AND key = ?2")?
        .query_row(params![collection, key], |row| row.get(0))
        .optional()?;
    match bytes {
        None => Ok(None),
        Some(bytes) => {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Damaged(format!("state of {collection}/{key}: {e}")))?;
            EntityState::from_json(&value).map(Some).ok_or_else(|| {
                StoreError::Damaged(format!("state of {collection}/{key} has the wrong shape"))
            })
        }
    }
}

/// Every op of one entity, for a full merge.
pub(crate) fn entity_ops(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Vec<MergeOp>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT op FROM ops WHERE coll = (SELECT id FROM collections WHERE name = ?1)
         AND record_key = ?2 AND record_key != ''",
    )?;
    let blobs = statement
        .query_map(params![collection, key], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    blobs
        .iter()
        .map(|bytes| {
            let op = Op::decode(bytes).map_err(|fault| StoreError::Damaged(fault.to_string()))?;
            MergeOp::from_op(&op).ok_or_else(|| {
                StoreError::Damaged(format!("op {} is not an entity op", op.record_id()))
            })
        })
        .collect()
}

/// Turns a desired set (an array) into the add/remove change the merge takes.
pub(super) fn set_change(current: Option<&Value>, desired: &Value) -> Value {
    let key = canonical::encode_unchecked;
    let current: BTreeMap<Vec<u8>, &Value> = current
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|element| (key(element), element))
        .collect();
    let desired: BTreeMap<Vec<u8>, &Value> = desired
        .as_array()
        .into_iter()
        .flatten()
        .map(|element| (key(element), element))
        .collect();
    let add: Vec<&Value> = desired
        .iter()
        .filter(|(k, _)| !current.contains_key(*k))
        .map(|(_, v)| *v)
        .collect();
    let remove: Vec<&Value> = current
        .iter()
        .filter(|(k, _)| !desired.contains_key(*k))
        .map(|(_, v)| *v)
        .collect();
    serde_json::json!({"add": add, "remove": remove})
}

/// What applying an op needs besides the op: the group's transaction and
/// the writer's state.
pub(super) struct Applier<'a> {
    pub(super) conn: &'a Connection,
    pub(super) identity: &'a NodeIdentity,
    pub(super) clock: &'a mut HybridClock,
    pub(super) collections: &'a mut CollectionIds,
    pub(super) now_ms: u64,
    /// Set when a pulled op of the hub changed an active pack's version.
    pub(super) packs_changed: bool,
    /// The idempotency keys of the last window.
    pub(super) keys: &'a mut super::keys::RecentKeys,
    /// The claims the current job made, with who held each key before
    /// (undone when the job rolls back).
    pub(super) claimed: Vec<(Hash, Option<super::keys::Holder>)>,
}

/// The scope labels of an entity or config write, against the record it
/// changes: labels the write does not give come from the record, and a
/// write that would give a live record other labels (moving it) is refused
/// unless it says so.
pub(super) fn check_scope(
    conn: &Connection,
    collection: &Collection,
    item: &mut Prepared,
    exists: bool,
) -> Result<(), WriteError> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT scope FROM entities WHERE collection = ?1 AND key = ?2")
        .and_then(|mut statement| {
            statement
                .query_row(params![collection.name, item.key], |row| row.get(0))
                .optional()
        })
        .map_err(StoreError::from)?;
    let stored: BTreeMap<String, String> = stored
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|label| label.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let mut violations = Vec::new();
    for label in std::mem::take(&mut item.scope_missing) {
        match stored.get(&label) {
            Some(value) => {
                item.scope.insert(label, value.clone());
            }
            None => violations.push(Violation::new(
                "scope",
                "required",
                format!(
                    "{} records carry the scope label {label:?}",
                    collection.name
                ),
            )),
        }
    }
    if violations.is_empty() && exists && item.scope != stored && !item.move_scope {
        violations.push(Violation::new(
            "scope",
            "move",
            format!(
                "{} {:?} is in {}; this write gives it {}: say so to move it (--move, or \"move\": true)",
                collection.name,
                item.key,
                labels_text(&stored),
                labels_text(&item.scope)
            ),
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(WriteError::Invalid {
            index: item.index,
            violations,
        })
    }
}

/// Labels as `name=value, name=value` for messages.
pub(super) fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "no scope".into();
    }
    labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a record whose idempotency key a record this node holds (its
/// own or pulled) took within the window: the hub would reject it as a
/// duplicate, so it is refused here, where the person writing still is.
fn refuse_duplicate(
    (conn, keys): (&Connection, &super::keys::RecentKeys),
    collection: &Collection,
    index: usize,
    key: &Hash,
    (written_ms, window_ms): (u64, u64),
) -> Result<(), WriteError> {
    let Some((op_id, held_ms)) = keys.holder(key) else {
        return Ok(());
    };
    if held_ms.abs_diff(written_ms) > window_ms {
        return Ok(());
    }
    let stream: Option<(String, String)> = conn
        .prepare_cached("SELECT node, stream FROM streams WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([op_id >> SEQ_BITS], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(StoreError::from)?;
    let record = match stream {
        Some((node, stream)) => format!("{node}:{stream}:{}", op_id & ((1 << SEQ_BITS) - 1)),
        None => "a record this node holds".into(),
    };
    let fields = collection
        .rules
        .idempotency
        .as_ref()
        .map(|rule| rule.fields.join(","))
        .unwrap_or_default();
    Err(WriteError::invalid(
        index,
        Violation::new(
            fields,
            "idempotency",
            format!(
                "a duplicate of {record}, written within the {} h window",
                window_ms / 3_600_000
            ),
        ),
    ))
}

pub(super) fn apply_item(
    applier: &mut Applier<'_>,
    streams: &mut HashMap<String, StreamSlot>,
    collection: &Collection,
    item: &mut Prepared,
) -> Result<WriteReceipt, WriteError> {
    let (conn, identity, now_ms) = (applier.conn, applier.identity, applier.now_ms);
    let clock = &mut *applier.clock;
    let collections = &mut *applier.collections;
    let index = item.index;
    let mut ref_hash = None;
    let mut base = VersionVector::default();
    let mut state = None;
    let (payload_bytes, payload_hash) = match collection.kind {
        CollectionKind::Ledger => {
            if let Some(target) = &item.corrects {
                ref_hash = Some(correction_target(conn, collection, target).map_err(
                    |message| {
                        WriteError::invalid(index, Violation::new("corrects", "exists", message))
                    },
                )??);
            }
            match std::mem::replace(&mut item.payload, Payload::Rewrite(Map::new())) {
                Payload::Encoded(bytes, hash) => (bytes, hash),
                Payload::Rewrite(_) => unreachable!("only entity payloads are rewritten"),
            }
        }
        CollectionKind::Entity | CollectionKind::Config => {
            state = load_state(conn, &collection.name, &item.key)?;
            let exists = state.as_ref().is_some_and(|state| !state.deleted);
            check_scope(conn, collection, item, exists)?;
            if item.action == Action::Delete && !exists {
                return Err(WriteError::invalid(
                    index,
                    Violation::new(
                        "key",
                        "exists",
                        format!(
                            "{} has no live record {:?} to delete",
                            collection.name, item.key
                        ),
                    ),
                ));
            }
            if !exists && !item.missing.is_empty() {
                return Err(WriteError::Invalid {
                    index,
                    violations: std::mem::take(&mut item.missing),
                });
            }
            base = state
                .as_ref()
                .map(|state| state.vv.clone())
                .unwrap_or_default();
            match std::mem::replace(&mut item.payload, Payload::Rewrite(Map::new())) {
                Payload::Encoded(bytes, hash) => (bytes, hash),
                Payload::Rewrite(mut payload) => {
                    // Set fields arrive as the desired set and become the
                    // add/remove change against what this node holds now.
                    for (name, value) in payload.iter_mut() {
                        if collection
                            .fields
                            .get(name)
                            .is_some_and(|field| field.merge == cairn_core::merge::FieldRule::Set)
                        {
                            let current = state
                                .as_ref()
                                .filter(|state| !state.deleted)
                                .and_then(|state| state.fields.get(name));
                            *value = set_change(current, value);
                        }
                    }
                    let bytes = canonical::encode_unchecked(&Value::Object(payload));
                    check_payload_size(index, &bytes)?;
                    let hash = canonical::payload_hash(&bytes);
                    (bytes, hash)
                }
            }
        }
    };
    let stream = std::mem::take(&mut item.stream);
    let draft = OpDraft {
        node: identity.node.clone(),
        stream: stream.clone(),
        hlc: clock.send(now_ms),
        collection: collection.name.clone(),
        action: item.action,
        key: item.key.clone(),
        scope: std::mem::take(&mut item.scope),
        base,
        ref_hash,
        reason: std::mem::take(&mut item.reason),
        payload: payload_bytes,
    };
    if let Err(error) = draft.check_header() {
        return Err(WriteError::invalid(
            index,
            Violation::new(error.field, "format", error.message),
        ));
    }
    if let Some((key, window_ms)) = &item.idempotency {
        let seen = (conn, &*applier.keys);
        refuse_duplicate(
            seen,
            collection,
            index,
            key,
            (draft.hlc.wall_ms, *window_ms),
        )?;
    }
    let slot = stream_slot(conn, &identity.node, streams, &stream)?;
    let (op, bytes) = slot.head.append_prehashed(draft, payload_hash);
    slot.dirty = true;
    if let Some((key, _)) = item.idempotency {
        let before = applier
            .keys
            .claim(key, (op_rowid(slot.id, op.seq), op.draft.hlc.wall_ms));
        applier.claimed.push((key, before));
    }
    let scope = scope_text(&op.draft.scope);
    let coll = collections.id(conn, &collection.name)?;
    conn.prepare_cached(
        "INSERT INTO ops (id, op_hash, op, coll, action, record_key, scope, ref_id, written_ms, pack)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .map_err(StoreError::from)?
    .execute(params![
        op_rowid(slot.id, op.seq),
        op.op_hash.0.as_slice(),
        bytes,
        coll,
        op.draft.action.code(),
        op.draft.key,
        scope,
        item.corrects,
        now_ms as i64,
        item.validated_under,
    ])
    .map_err(StoreError::from)?;
    if let Some(schema) = collection.merge_schema() {
        let merge_op = MergeOp::from_op(&op).expect("entity ops carry an object payload");
        let next = match merge::apply(&schema, state.as_ref(), &merge_op) {
            Some(next) => next,
            // A local write saw the whole local state, so this is a bug; recover by recomputing.
            None => merge::materialize(&schema, &entity_ops(conn, &collection.name, &item.key)?)
                .ok_or_else(|| StoreError::Internal("an entity with ops has no state".into()))?,
        };
        conn.prepare_cached(
            "INSERT INTO entities (collection, key, scope, deleted, conflicted, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (collection, key) DO UPDATE SET scope = ?3, deleted = ?4, conflicted = ?5, state = ?6",
        )
        .map_err(StoreError::from)?
        .execute(params![
            collection.name,
            item.key,
            scope,
            next.deleted,
            !next.conflicts.is_empty(),
            next.to_canonical_bytes()
        ])
        .map_err(StoreError::from)?;
    }
    let id = match collection.kind {
        CollectionKind::Ledger => op.record_id(),
        CollectionKind::Entity | CollectionKind::Config => item.key.clone(),
    };
    Ok(WriteReceipt {
        id,
        collection: collection.name.clone(),
        stream,
        seq: op.seq,
        op_hash: op.op_hash.to_hex(),
    })
}

/// Inserts one of this node's own ops (not written here: taken back from
/// the hub, or re-appended) into its stream's rows.
pub(super) fn insert_own(
    applier: &mut Applier<'_>,
    op: &Op,
    bytes: &[u8],
    stream_id: i64,
) -> Result<(), StoreError> {
    let conn = applier.conn;
    // A correction's reference, as the record id the listing joins on.
    let ref_id = match op.draft.ref_hash {
        None => None,
        Some(target) => conn
            .query_row(
                "SELECT s.node || ':' || s.stream || ':' || (o.id & 1099511627775) FROM ops o
                 JOIN streams s ON s.id = (o.id >> 40) WHERE o.op_hash = ?1",
                [target.0.as_slice()],
                |row| row.get::<_, String>(0),
            )
            .optional()?,
    };
    conn.prepare_cached(
        "INSERT INTO ops (id, op_hash, op, coll, action, record_key, scope, ref_id, written_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        op_rowid(stream_id, op.seq),
        op.op_hash.0.as_slice(),
        bytes,
        applier.collections.id(conn, &op.draft.collection)?,
        op.draft.action.code(),
        op.draft.key,
        scope_text(&op.draft.scope),
        ref_id,
        applier.now_ms as i64,
    ])?;
    Ok(())
}

/// The op hash of the ledger record `id` in `collection`, or why it cannot be corrected.
pub(super) fn correction_target(
    conn: &Connection,
    collection: &Collection,
    id: &str,
) -> Result<Result<Hash, WriteError>, String> {
    let Some((node, stream, seq)) = crate::read::parse_record_id(id) else {
        return Err(format!("{id:?} is not a record id (node:stream:seq)"));
    };
    let row: Option<(Vec<u8>, String, i64)> = conn
        .query_row(
            "SELECT o.op_hash, c.name, o.action FROM ops o JOIN streams s ON o.id = (s.id << 40) | ?3
             JOIN collections c ON c.id = o.coll
             WHERE s.node = ?1 AND s.stream = ?2",
            params![node, stream, seq as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(|error| error.to_string())?;
    match row {
        None => Err(format!("no record {id} in {}", collection.name)),
        Some((_, other, _)) if other != collection.name => Err(format!(
            "record {id} belongs to {other}, not {}",
            collection.name
        )),
        Some((hash, _, _)) => Ok(Hash::from_slice(&hash)
            .ok_or_else(|| WriteError::Store(StoreError::Damaged(format!("op hash of {id}"))))),
    }
}
