//! Resolving a merge conflict from the hub: an operator picks the value
//! that stands; the hub writes it as an op of its own `resolutions` stream
//! that has seen every side (its base covers the conflicting ops), in the
//! entity's scope, so every replica that holds the entity merges it and
//! converges on that value at its next sync. The decision is an act of the
//! audit stream, naming who, why and which value (unless the field is
//! sensitive), and closes the review item.

use super::acts::ReviewError;
use super::store::Closure;
use crate::audit;
use crate::backend::{HubBackend, LogTx};
use crate::{Hub, StorageError};
use cairn_core::merge::{EntityState, TOMBSTONE_CONFLICT};
use cairn_core::op::{Action, Op};
use serde_json::{Map, Value, json};

/// The hub's stream of conflict resolutions.
pub const RESOLUTIONS_STREAM: &str = "resolutions";

impl<B: HubBackend> Hub<B> {
    /// Closes conflict review item `id` with `value` standing for its
    /// field, as `by`, because `note`.
    pub fn resolve_conflict(
        &self,
        id: u64,
        value: &Value,
        note: &str,
        by: &str,
    ) -> Result<Closure, ReviewError> {
        let note = super::acts::check_note(note)?;
        let packs = self.packs();
        self.in_write(|tx, now| {
            let review = tx.review(id)?.ok_or(ReviewError::Unknown(id))?;
            if review.closure.is_some() {
                return Err(ReviewError::Closed(id));
            }
            if review.row.kind != "conflict" {
                return Err(ReviewError::Invalid(
                    "value",
                    format!("review item {id} is a {}, not a conflict: close it with a decision", review.row.kind),
                ));
            }
            let field = review.row.rule.clone();
            if field == TOMBSTONE_CONFLICT {
                return Err(ReviewError::Invalid(
                    "value",
                    "a delete beside a write is resolved by deleting or writing the record again from an edge".into(),
                ));
            }
            let op = conflicting_op(tx, review.row.leaf)?;
            let (name, key) = (&op.draft.collection, &op.draft.key);
            let collection = packs
                .pack_of(name)
                .map(|pack| pack.collections[name].clone())
                .ok_or_else(|| {
                    ReviewError::Invalid("value", format!("no active pack defines {name} any more"))
                })?;
            let data = json!({ field.clone(): value });
            let checked = collection.validate(Action::Put, &data, false);
            if let Some(first) = checked.violations.first() {
                return Err(ReviewError::Invalid("value", first.to_string()));
            }
            let base = entity_versions(tx, name, key)?;
            let payload = cairn_core::canonical::to_canonical_bytes(&Value::Object(
                checked.payload.into_iter().collect::<Map<String, Value>>(),
            ))
            .map_err(|error| ReviewError::Invalid("value", error.to_string()))?;
            let seq = audit::append_own(
                tx,
                self.signer(),
                audit::HubWrite {
                    stream: RESOLUTIONS_STREAM,
                    collection: name,
                    action: Action::Put,
                    key,
                    scope: op.draft.scope.clone(),
                    payload,
                    base,
                },
                now,
            )?;
            let chosen = if collection.is_sensitive(&field) {
                json!(super::view::REDACTED)
            } else {
                value.clone()
            };
            let act = json!({
                "action": "review.resolve",
                "review": id,
                "kind": "conflict",
                "collection": name,
                "key": key,
                "field": field,
                "before": review.row.message,
                "after": chosen,
                "decision": "value chosen",
                "resolution_seq": seq,
                "note": note,
                "by": by,
            });
            let audit_seq = audit::append_act(tx, self.signer(), &act, now)?;
            let closure = Closure {
                at_ms: now,
                by: by.to_string(),
                decision: "value chosen".into(),
                note: note.to_string(),
                audit_seq: Some(audit_seq),
            };
            tx.close_review(id, &closure)?;
            Ok(closure)
        })
    }
}

/// The op that opened the conflict.
fn conflicting_op(tx: &dyn LogTx, leaf: Option<u64>) -> Result<Op, ReviewError> {
    let leaf = leaf.ok_or_else(|| StorageError::Damaged("a conflict without its op".into()))?;
    let bytes = tx
        .logged_op(leaf)?
        .ok_or_else(|| StorageError::Damaged(format!("leaf {leaf} is not logged")))?;
    Ok(Op::decode(&bytes)
        .map_err(|fault| StorageError::Damaged(format!("leaf {leaf}: {fault}")))?)
}

/// Every version of the entity the judge has merged: the resolution's base.
fn entity_versions(
    tx: &dyn LogTx,
    collection: &str,
    key: &str,
) -> Result<cairn_core::op::VersionVector, ReviewError> {
    let bytes = tx
        .entity_state(collection, key)?
        .ok_or_else(|| StorageError::Damaged(format!("no state of {collection} {key:?}")))?;
    let state = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|value| EntityState::from_json(&value))
        .ok_or_else(|| StorageError::Damaged(format!("the state of {collection} {key:?}")))?;
    Ok(state.vv)
}
