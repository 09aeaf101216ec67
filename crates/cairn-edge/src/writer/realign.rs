//! Taking a stream back from the hub after a restore from an old backup: the diverged tail set aside and appended again, in one transaction.

use super::*;

/// Takes one of this node's streams back from the hub after the node was
/// restored from an old backup and wrote on: the hub holds the node's own
/// ops up to its head `h`, the node's stream diverges from seq `k`.
///
/// Nothing is lost. The node's diverged ops `k..` are kept in `displaced`,
/// replaced by the hub's `k..=h` (its own ops, signed with its own key,
/// with the checkpoints it signed then), and appended again after `h` as
/// new ops: same drafts (clock, payload, and base version vectors, so an
/// edit that never saw the hub's ops stays concurrent with them), their
/// references to each other renumbered. Entities they touch are recomputed.
pub(super) fn realign(
    applier: &mut Applier<'_>,
    streams: &mut HashMap<String, StreamSlot>,
    catalog: &Catalog,
    work: Realign,
) -> Result<Vec<WriteReceipt>, StoreError> {
    let (conn, identity, now_ms) = (applier.conn, applier.identity, applier.now_ms);
    let node = identity.node.clone();
    let Some(slot) = streams.get(&work.stream) else {
        return Err(StoreError::Config(format!(
            "this node has no stream {:?}",
            work.stream
        )));
    };
    let (stream_id, local_head) = (slot.id, slot.head);
    let own_hash = |seq: u64| -> Result<Option<Hash>, StoreError> {
        let hash: Option<Vec<u8>> = conn
            .prepare_cached("SELECT op_hash FROM ops WHERE id = ?1")?
            .query_row([op_rowid(stream_id, seq)], |row| row.get(0))
            .optional()?;
        Ok(hash.and_then(|hash| Hash::from_slice(&hash)))
    };
    // Where the node and the hub part: the first of the hub's ops the node
    // does not hold as it is.
    let mut diverge = None;
    for (op, _) in &work.ops {
        if own_hash(op.seq)? != Some(op.op_hash) {
            diverge = Some(op.seq);
            break;
        }
    }
    let Some(from) = diverge else {
        return Ok(Vec::new());
    };
    let hub_head = work.ops.last().map_or(0, |(op, _)| op.seq);
    // The diverged ops, kept aside for good.
    let displaced: Vec<(u64, Vec<u8>)> = conn
        .prepare_cached("SELECT id, op FROM ops WHERE id >= ?1 AND id <= ?2 ORDER BY id")?
        .query_map(
            params![
                op_rowid(stream_id, from),
                op_rowid(stream_id, local_head.seq.max(from))
            ],
            |row| {
                Ok((
                    (row.get::<_, i64>(0)? & ((1 << 40) - 1)) as u64,
                    row.get(1)?,
                ))
            },
        )?
        .collect::<Result<_, _>>()?;
    let mut touched = std::collections::BTreeSet::new();
    let mut old_ops = Vec::with_capacity(displaced.len());
    for (seq, bytes) in &displaced {
        let op = Op::decode(bytes)
            .map_err(|fault| StoreError::Damaged(format!("{} seq {seq}: {fault}", work.stream)))?;
        conn.prepare_cached(
            "INSERT INTO displaced (stream, seq, op_hash, op, displaced_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![work.stream, *seq as i64, op.op_hash.0.as_slice(), bytes, now_ms as i64])?;
        if !op.draft.key.is_empty() {
            touched.insert((
                op.draft.collection.clone(),
                op.draft.key.clone(),
                scope_text(&op.draft.scope),
            ));
        }
        old_ops.push(op);
    }
    conn.prepare_cached("DELETE FROM ops WHERE id >= ?1 AND id <= ?2")?
        .execute(params![
            op_rowid(stream_id, from),
            op_rowid(stream_id, (1 << 40) - 1)
        ])?;
    conn.prepare_cached("DELETE FROM checkpoints WHERE stream_id = ?1 AND seq >= ?2")?
        .execute(params![stream_id, from as i64])?;
    // The hub's ops from the parting seq on: this node's own, come back.
    let mut head = StreamHead::EMPTY;
    for (op, bytes) in &work.ops {
        if op.seq < from {
            head = StreamHead {
                seq: op.seq,
                hash: op.op_hash,
            };
            continue;
        }
        insert_own(applier, op, bytes, stream_id)?;
        // Written before the restore, perhaps later than anything the
        // backup's clock saw: the clock must not fall behind them.
        let _ = applier.clock.receive(op.draft.hlc, now_ms);
        if !op.draft.key.is_empty() {
            touched.insert((
                op.draft.collection.clone(),
                op.draft.key.clone(),
                scope_text(&op.draft.scope),
            ));
        }
        head = StreamHead {
            seq: op.seq,
            hash: op.op_hash,
        };
    }
    if head.seq == 0 && from > 1 {
        let hash = own_hash(from - 1)?.ok_or_else(|| {
            StoreError::Damaged(format!("{} seq {} is missing", work.stream, from - 1))
        })?;
        head = StreamHead {
            seq: from - 1,
            hash,
        };
    }
    for checkpoint in work
        .checkpoints
        .iter()
        .filter(|c| c.seq >= from && c.seq <= hub_head)
    {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO checkpoints (stream_id, seq, head, signature) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            stream_id,
            checkpoint.seq as i64,
            checkpoint.head.0.as_slice(),
            checkpoint.signature.as_slice()
        ])?;
    }
    // The diverged ops again, after the hub's head: same drafts, renumbered.
    let own_key = cairn_core::op::stream_key(&node, &work.stream);
    let mut renumbered: HashMap<u64, u64> = HashMap::new();
    let mut rehashed: HashMap<Hash, Hash> = HashMap::new();
    let mut receipts = Vec::new();
    for old in old_ops {
        let mut draft = old.draft.clone();
        if let Some(seen) = draft.base.0.get_mut(&own_key)
            && let Some(new) = renumbered.get(seen)
        {
            *seen = *new;
        }
        if let Some(target) = draft.ref_hash
            && let Some(new) = rehashed.get(&target)
        {
            draft.ref_hash = Some(*new);
        }
        let (op, bytes) = head.append(draft);
        renumbered.insert(old.seq, op.seq);
        rehashed.insert(old.op_hash, op.op_hash);
        insert_own(applier, &op, &bytes, stream_id)?;
        // Where it went: the id it had keeps saying so (`read::get`).
        conn.prepare_cached(
            "UPDATE displaced SET new_seq = ?1 WHERE stream = ?2 AND seq = ?3 AND op_hash = ?4",
        )?
        .execute(params![
            op.seq as i64,
            work.stream,
            old.seq as i64,
            old.op_hash.0.as_slice()
        ])?;
        receipts.push(WriteReceipt {
            id: if op.draft.key.is_empty() {
                op.record_id()
            } else {
                op.draft.key.clone()
            },
            collection: op.draft.collection.clone(),
            stream: work.stream.clone(),
            seq: op.seq,
            op_hash: op.op_hash.to_hex(),
        });
    }
    for (collection, key, scope) in touched {
        recompute_entity(conn, catalog, &collection, &key, Some(&scope))?;
    }
    conn.prepare_cached(
        "UPDATE streams SET head_seq = ?1, head_hash = ?2, acked_seq = ?3 WHERE id = ?4",
    )?
    .execute(params![
        head.seq as i64,
        head.hash.0.as_slice(),
        hub_head as i64,
        stream_id
    ])?;
    let slot = streams.get_mut(&work.stream).expect("looked up above");
    slot.head = head;
    // Re-appended ops need a checkpoint of their own (signed at commit).
    slot.dirty = !receipts.is_empty();
    Ok(receipts)
}
