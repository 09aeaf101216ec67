//! Ops of other nodes: storing what the sync client verified, and purging what a revoked scope no longer lets this node hold.

use super::*;

/// Deletes pulled ops that carry any of `labels` (`name=value`) and
/// recomputes the entities they touched; this node's own ops are never
/// touched. Returns one receipt per entity recomputed or removed.
pub(super) fn purge_pulled(
    conn: &Connection,
    catalog: &Catalog,
    labels: &[String],
) -> Result<Vec<WriteReceipt>, StoreError> {
    let mut touched = BTreeMap::new();
    for label in labels {
        let needle = format!(",{label},");
        let rows: Vec<(String, String)> = conn
            .prepare_cached(
                "SELECT DISTINCT c.name, o.record_key FROM ops o JOIN streams s ON s.id = (o.id >> 40)
                 JOIN collections c ON c.id = o.coll
                 WHERE s.foreign_ = 1 AND instr(o.scope, ?1) > 0 AND o.record_key != ''",
            )?
            .query_map([&needle], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        touched.extend(rows.into_iter().map(|key| (key, ())));
        conn.prepare_cached(
            "DELETE FROM ops WHERE id IN (SELECT o.id FROM ops o JOIN streams s ON s.id = (o.id >> 40)
             WHERE s.foreign_ = 1 AND instr(o.scope, ?1) > 0)",
        )?
        .execute([&needle])?;
    }
    let mut receipts = Vec::new();
    for ((collection, key), ()) in touched {
        recompute_entity(conn, catalog, &collection, &key, None)?;
        receipts.push(WriteReceipt {
            id: key,
            collection,
            stream: String::new(),
            seq: 0,
            op_hash: String::new(),
        });
    }
    Ok(receipts)
}

/// Recomputes an entity from the ops left of it: updated, created (with
/// `scope`, when given and the entity is new) or removed when none is left.
pub(super) fn recompute_entity(
    conn: &Connection,
    catalog: &Catalog,
    collection: &str,
    key: &str,
    scope: Option<&str>,
) -> Result<(), StoreError> {
    let ops = entity_ops(conn, collection, key)?;
    let schema = catalog
        .collections
        .get(collection)
        .and_then(Collection::merge_schema);
    match schema.and_then(|schema| merge::materialize(&schema, &ops)) {
        Some(state) => {
            let (deleted, conflicted, bytes) = (
                state.deleted,
                !state.conflicts.is_empty(),
                state.to_canonical_bytes(),
            );
            match scope {
                Some(scope) => conn.execute(
                    "INSERT INTO entities (collection, key, scope, deleted, conflicted, state) VALUES (?1, ?2, ?6, ?3, ?4, ?5)
                     ON CONFLICT (collection, key) DO UPDATE SET deleted = ?3, conflicted = ?4, state = ?5",
                    params![collection, key, deleted, conflicted, bytes, scope],
                )?,
                None => conn.execute(
                    "UPDATE entities SET deleted = ?3, conflicted = ?4, state = ?5 WHERE collection = ?1 AND key = ?2",
                    params![collection, key, deleted, conflicted, bytes],
                )?,
            };
        }
        None => {
            conn.execute(
                "DELETE FROM entities WHERE collection = ?1 AND key = ?2",
                params![collection, key],
            )?;
        }
    }
    Ok(())
}

/// Stores one verified op of another node (unless already held), advances
/// the clock past it and merges it into the entity it changes.
pub(super) fn apply_pulled(
    applier: &mut Applier<'_>,
    catalog: &Catalog,
    op: &Op,
    bytes: Vec<u8>,
) -> Result<Option<WriteReceipt>, StoreError> {
    let (conn, identity, now_ms) = (applier.conn, applier.identity, applier.now_ms);
    let clock = &mut *applier.clock;
    let collections = &mut *applier.collections;
    if op.draft.node == identity.node {
        // Our own ops come from our own chain, never back from the hub.
        return Ok(None);
    }
    let stream_id: Option<i64> = conn
        .prepare_cached("SELECT id FROM streams WHERE node = ?1 AND stream = ?2")?
        .query_row(params![op.draft.node, op.draft.stream], |row| row.get(0))
        .optional()?;
    let stream_id = match stream_id {
        Some(id) => id,
        None => {
            conn.execute(
                "INSERT INTO streams (node, stream, head_seq, head_hash, foreign_) VALUES (?1, ?2, 0, ?3, 1)",
                params![op.draft.node, op.draft.stream, Hash::ZERO.0.as_slice()],
            )?;
            conn.last_insert_rowid()
        }
    };
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO ops (id, op_hash, op, coll, action, record_key, scope, ref_id, written_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            op_rowid(stream_id, op.seq),
            op.op_hash.0.as_slice(),
            bytes,
            collections.id(conn, &op.draft.collection)?,
            op.draft.action.code(),
            op.draft.key,
            scope_text(&op.draft.scope),
            Option::<String>::None,
            now_ms as i64,
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    conn.prepare_cached("UPDATE streams SET head_seq = max(head_seq, ?1) WHERE id = ?2")?
        .execute(params![op.seq as i64, stream_id])?;
    // A clock days ahead is reported by the hub; here it only must not drag ours.
    let _ = clock.receive(op.draft.hlc, now_ms);
    what_it_holds(applier, catalog, op, stream_id)?;
    if let Some(schema) = catalog
        .collections
        .get(&op.draft.collection)
        .and_then(Collection::merge_schema)
        && let Some(merge_op) = MergeOp::from_op(op)
    {
        let state = load_state(conn, &op.draft.collection, &op.draft.key)?;
        let next = match merge::apply(&schema, state.as_ref(), &merge_op) {
            Some(next) => next,
            None => merge::materialize(
                &schema,
                &entity_ops(conn, &op.draft.collection, &op.draft.key)?,
            )
            .ok_or_else(|| StoreError::Internal("an entity with ops has no state".into()))?,
        };
        conn.prepare_cached(
            "INSERT INTO entities (collection, key, scope, deleted, conflicted, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (collection, key) DO UPDATE SET scope = ?3, deleted = ?4, conflicted = ?5, state = ?6",
        )?
        .execute(params![
            op.draft.collection,
            op.draft.key,
            scope_text(&op.draft.scope),
            next.deleted,
            !next.conflicts.is_empty(),
            next.to_canonical_bytes()
        ])?;
    }
    Ok(Some(WriteReceipt {
        id: if op.draft.key.is_empty() {
            op.record_id()
        } else {
            op.draft.key.clone()
        },
        collection: op.draft.collection.clone(),
        stream: op.stream_key(),
        seq: op.seq,
        op_hash: op.op_hash.to_hex(),
    }))
}

/// A pack version the hub distributed (an op of its `packs` stream, proven
/// by the hub's key like every pulled op): stored as this node's version
/// of that pack when the node runs the pack, and the new set of packs
/// holds together. Returns whether the active packs changed. A version
/// that does not parse or fit is left aside with a warning: the node
/// keeps judging by the version it has, and the hub's judgement stands.
fn adopt_pack(
    conn: &Connection,
    catalog: &Catalog,
    op: &Op,
    now_ms: u64,
) -> Result<bool, StoreError> {
    let refuse = |why: String| {
        tracing::warn!(compliance_boundary = "rule_pack", %why, "left aside a pack version from the hub");
        Ok(false)
    };
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(&op.draft.payload) else {
        return refuse("its payload is not JSON".into());
    };
    let Some(source) = payload["source"].as_str() else {
        return refuse("it carries no source".into());
    };
    let pack = match cairn_core::pack::RulePack::from_toml(source) {
        Ok(pack) => pack,
        Err(error) => return refuse(error.to_string()),
    };
    let Some(active) = catalog.packs.iter().find(|active| active.name == pack.name) else {
        return Ok(false); // A pack this node does not run.
    };
    if active.source_hash == pack.source_hash {
        return Ok(false);
    }
    let mut packs: Vec<cairn_core::pack::RulePack> = catalog
        .packs
        .iter()
        .filter(|other| other.name != pack.name)
        .cloned()
        .collect();
    packs.push(pack.clone());
    if let Err(error) = Catalog::new(packs) {
        return refuse(error.to_string());
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO packs (name, version, source, source_hash, activated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        pack.name,
        pack.version,
        source,
        pack.source_hash.to_hex(),
        now_ms as i64
    ])?;
    Ok(true)
}

/// What a pulled op gives besides its record: another node's record takes
/// its idempotency key here too (a duplicate of it written on this node is
/// refused locally), and a pack version of the hub is adopted.
fn what_it_holds(
    applier: &mut Applier<'_>,
    catalog: &Catalog,
    op: &Op,
    stream_id: i64,
) -> Result<(), StoreError> {
    if let Some(key) = super::keys::key_of(catalog, op) {
        applier
            .keys
            .claim(key, (op_rowid(stream_id, op.seq), op.draft.hlc.wall_ms));
    }
    if op.draft.node == cairn_core::names::HUB_NODE
        && op.draft.collection == cairn_core::names::PACKS_COLLECTION
    {
        applier.packs_changed |= adopt_pack(applier.conn, catalog, op, applier.now_ms)?;
    }
    Ok(())
}
