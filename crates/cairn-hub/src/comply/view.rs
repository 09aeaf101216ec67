//! Compliance as people and edges read it: review items, the ops they are
//! about (sensitive fields redacted), and a stream's states, as JSON the
//! CLI and the HTTP API share.

use super::Packs;
use super::acts::{ReviewDetail, StreamStates};
use super::store::Review;
use cairn_core::op::Op;
use cairn_proto::{BrokenRule, StateVerdict, StatesPage};
use serde_json::{Value, json};

/// What sensitive values are replaced with.
pub const REDACTED: &str = "[redacted]";

/// A review item.
pub fn review_json(review: &Review) -> Value {
    let row = &review.row;
    json!({
        "id": review.id,
        "kind": row.kind,
        "state": if review.closure.is_some() { "closed" } else { "open" },
        "leaf": row.leaf,
        "node": row.node,
        "stream": row.stream,
        "seq": row.seq,
        "collection": row.collection,
        "rule": row.rule,
        "message": row.message,
        "raised_ms": row.raised_ms,
        "material_hash": row.material_hash.map(|hash| hash.to_hex()),
        "closure": review.closure,
    })
}

/// A review item with what it is about, side by side: the logged op (for
/// a quarantine item, the one the hub logged at that seq) and the
/// quarantined material.
pub fn detail_json(detail: &ReviewDetail, packs: &Packs) -> Value {
    let mut value = review_json(&detail.review);
    value["logged"] = detail
        .logged
        .as_deref()
        .map_or(Value::Null, |bytes| op_json(bytes, packs));
    value["quarantined"] = detail
        .quarantined
        .as_deref()
        .map_or(Value::Null, |bytes| op_json(bytes, packs));
    value
}

/// An encoded op for people: its header, and its payload with the fields
/// its pack marks sensitive redacted. Material that does not decode is
/// shown by size and hash only.
pub fn op_json(bytes: &[u8], packs: &Packs) -> Value {
    let op = match Op::decode(bytes) {
        Ok(op) => op,
        Err(fault) => {
            return json!({
                "undecodable": fault.to_string(),
                "bytes": bytes.len(),
                "hash": cairn_core::hash::Hash::of(bytes).to_hex(),
            });
        }
    };
    let collection = packs
        .pack_of(&op.draft.collection)
        .map(|pack| &pack.collections[&op.draft.collection]);
    let mut payload: Value = serde_json::from_slice(&op.draft.payload).unwrap_or(Value::Null);
    if let Some(fields) = payload.as_object_mut() {
        for (name, value) in fields.iter_mut() {
            if collection.is_some_and(|collection| collection.is_sensitive(name)) {
                *value = json!(REDACTED);
            }
        }
    }
    // The hub deletes nothing; this is the day the record may go.
    let retain_until = packs
        .retention_years(&op.draft.collection)
        .map(|years| cairn_core::dates::years_after(op.draft.hlc.wall_ms, years));
    json!({
        "node": op.draft.node,
        "stream": op.draft.stream,
        "seq": op.seq,
        "collection": op.draft.collection,
        "action": op.draft.action.name(),
        "key": op.draft.key,
        "written_ms": op.draft.hlc.wall_ms,
        "op_hash": op.op_hash.to_hex(),
        "payload": payload,
        "retain_until": retain_until,
    })
}

/// A stream's states as the edges read them (`GET /v1/states`).
pub fn states_page(stream: &str, states: &StreamStates) -> StatesPage {
    StatesPage {
        stream: stream.to_string(),
        judged_seq: states.judged_seq,
        verdicts: states
            .verdicts
            .iter()
            .map(|(seq, row)| StateVerdict {
                seq: *seq,
                state: row.judgement.state.name().to_string(),
                pack: row.judgement.pack.clone(),
                version: row.judgement.version.clone(),
                violations: row
                    .judgement
                    .violations
                    .iter()
                    .map(|violation| BrokenRule {
                        field: violation.field.clone(),
                        rule: violation.rule.clone(),
                        message: violation.message.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
