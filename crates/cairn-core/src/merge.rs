//! The merge engine for entity and config collections.
//!
//! The state of an entity is a pure function of the *set* of ops written to
//! it ([`materialize`]): duplicates and arrival order cannot change a byte of
//! it. Causality comes from each op's `base` version vector (what its author
//! had seen of this entity), so concurrent edits are told apart from
//! sequential ones without trusting wall clocks:
//!
//! * an op is *dead* when a delete saw it (tombstones remove what they saw);
//! * a write to a field is *superseded* when another write to that field saw it;
//! * the *frontier* of a field is its live writes that nothing superseded; two
//!   frontier writes with different values are a conflict, kept as a record
//!   with every candidate while the deterministic winner applies at once.
//!
//! Rules per field: `lww` (greatest HLC, then node, among the frontier),
//! `counter` (live deltas add up), `set` (add-wins: a remove takes away only
//! the adds it saw), `max` / `min` (over live writes) and `prefer` (a group of
//! fields taken together from the frontier write whose `by` field is highest).
//! A config document is one `lww` register over the whole document.
//!
//! Recomputing from every op costs O(ops), so [`apply`] has a fast path for the
//! common case, an op that saw everything already applied (every local write
//! and most pulls). It must give exactly what [`materialize`] gives; property
//! tests check that, and callers fall back to [`materialize`] otherwise.

use crate::canonical;
use crate::hlc::Hlc;
use crate::op::VersionVector;
use serde_json::{Map, Value, json};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// Name of the conflict record for an update concurrent with a delete.
pub const TOMBSTONE_CONFLICT: &str = "$tombstone";
/// Name of the conflict record for concurrent config documents.
pub const DOCUMENT_CONFLICT: &str = "$document";

/// How one field of an entity merges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRule {
    /// Last writer wins, by HLC then node, among concurrent writes.
    Lww,
    /// Integer deltas that add up.
    Counter,
    /// Add-wins set of JSON values.
    Set,
    /// Greatest value written.
    Max,
    /// Least value written.
    Min,
    /// Taken with its group from the concurrent write whose `by` field is highest.
    Prefer {
        /// Name of the group of fields taken together.
        group: String,
        /// Field whose value decides between concurrent writes.
        by: String,
    },
}

/// Whether a collection merges per field (entity) or per document (config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    /// Fields merge by their own rules.
    Entity,
    /// The whole document is one last-writer-wins register.
    Config,
}

/// The merge rules of one collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeSchema {
    /// Entity or config.
    pub kind: MergeKind,
    /// Rule of each declared field.
    pub fields: BTreeMap<String, FieldRule>,
}

/// Identity of an op: its stream and seq.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// `node:stream`.
    pub stream_key: String,
    /// Seq in that stream.
    pub seq: u64,
}

impl std::fmt::Display for Dot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.stream_key, self.seq)
    }
}

/// One op as the merge engine sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeOp {
    /// Which op this is.
    pub dot: Dot,
    /// Author's HLC.
    pub hlc: Hlc,
    /// Author node (breaks HLC ties).
    pub node: String,
    /// What the author had seen of this entity.
    pub base: VersionVector,
    /// True for a tombstone.
    pub delete: bool,
    /// Field changes (entity) or the whole document (config); empty for deletes.
    pub changes: Map<String, Value>,
}

impl MergeOp {
    /// The merge view of an entity or config op; `None` for ledger ops or a
    /// payload that is not a JSON object.
    pub fn from_op(op: &crate::op::Op) -> Option<MergeOp> {
        use crate::op::Action;
        let delete = match op.draft.action {
            Action::Put => false,
            Action::Delete => true,
            Action::Append | Action::Correct => return None,
        };
        let changes = match serde_json::from_slice::<Value>(&op.draft.payload).ok()? {
            Value::Object(map) => map,
            _ => return None,
        };
        Some(MergeOp {
            dot: Dot {
                stream_key: op.stream_key(),
                seq: op.seq,
            },
            hlc: op.draft.hlc,
            node: op.draft.node.clone(),
            base: op.draft.base.clone(),
            delete,
            changes,
        })
    }

    fn order_key(&self) -> (Hlc, &str, &Dot) {
        (self.hlc, &self.node, &self.dot)
    }
}

/// One side of a conflict.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The op that wrote this value.
    pub dot: Dot,
    /// The value it wrote (`"delete"` / `"put"` for tombstone conflicts).
    pub value: Value,
}

/// The materialized state of one entity or config key.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct EntityState {
    /// Every op applied, as a version vector.
    pub vv: VersionVector,
    /// True when the entity is deleted.
    pub deleted: bool,
    /// Current field values.
    pub fields: BTreeMap<String, Value>,
    /// Open conflicts by field, candidates sorted by dot.
    pub conflicts: BTreeMap<String, Vec<Candidate>>,
}

impl EntityState {
    /// The state as JSON, in a fixed shape.
    pub fn to_json(&self) -> Value {
        let conflicts: Map<String, Value> = self
            .conflicts
            .iter()
            .map(|(field, candidates)| {
                let list = candidates
                    .iter()
                    .map(|candidate| json!({"dot": candidate.dot.to_string(), "value": candidate.value}))
                    .collect();
                (field.clone(), Value::Array(list))
            })
            .collect();
        json!({
            "conflicts": conflicts,
            "deleted": self.deleted,
            "fields": self.fields,
            "vv": self.vv.0,
        })
    }

    /// Canonical bytes of [`EntityState::to_json`]: equal states give equal bytes.
    pub fn to_canonical_bytes(&self) -> Vec<u8> {
        canonical::encode_unchecked(&self.to_json())
    }

    /// Reads a state written by [`EntityState::to_json`].
    pub fn from_json(value: &Value) -> Option<EntityState> {
        let vv = value
            .get("vv")?
            .as_object()?
            .iter()
            .map(|(key, seq)| Some((key.clone(), seq.as_u64()?)))
            .collect::<Option<BTreeMap<_, _>>>()?;
        let fields = value
            .get("fields")?
            .as_object()?
            .iter()
            .map(|(key, field)| (key.clone(), field.clone()))
            .collect();
        let mut conflicts = BTreeMap::new();
        for (field, list) in value.get("conflicts")?.as_object()? {
            let mut candidates = Vec::new();
            for entry in list.as_array()? {
                candidates.push(Candidate {
                    dot: parse_dot(entry.get("dot")?.as_str()?)?,
                    value: entry.get("value")?.clone(),
                });
            }
            conflicts.insert(field.clone(), candidates);
        }
        Some(EntityState {
            vv: VersionVector(vv),
            deleted: value.get("deleted")?.as_bool()?,
            fields,
            conflicts,
        })
    }
}

fn parse_dot(text: &str) -> Option<Dot> {
    let (stream_key, seq) = text.rsplit_once(':')?;
    Some(Dot {
        stream_key: stream_key.to_string(),
        seq: seq.parse().ok()?,
    })
}

/// Orders JSON values for `max`/`min`: numbers numerically, RFC 3339
/// timestamps by the instant they name (whatever their offset or
/// precision), other strings by text (ISO dates order correctly),
/// otherwise by canonical bytes. Ties between different texts are broken
/// by the text, so every replica picks the same one.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
                .then_with(|| canonical::encode_unchecked(a).cmp(&canonical::encode_unchecked(b)))
        }
        (Value::String(x), Value::String(y)) => {
            match (
                crate::dates::datetime_instant(x),
                crate::dates::datetime_instant(y),
            ) {
                (Some(x_at), Some(y_at)) => x_at.cmp(&y_at).then_with(|| x.cmp(y)),
                _ => x.cmp(y),
            }
        }
        _ => canonical::encode_unchecked(a).cmp(&canonical::encode_unchecked(b)),
    }
}

/// Ops not seen by any other op in `ops` (the maximal ones).
fn frontier<'a>(ops: &[&'a MergeOp]) -> Vec<&'a MergeOp> {
    let mut seen = VersionVector::default();
    for op in ops {
        seen.join(&op.base);
    }
    ops.iter()
        .copied()
        .filter(|op| !seen.covers(&op.dot.stream_key, op.dot.seq))
        .collect()
}

/// A conflict record when the frontier holds more than one distinct value.
fn conflict_of(
    frontier: &[&MergeOp],
    value_of: impl Fn(&MergeOp) -> Value,
) -> Option<Vec<Candidate>> {
    let mut candidates: Vec<Candidate> = frontier
        .iter()
        .map(|op| Candidate {
            dot: op.dot.clone(),
            value: value_of(op),
        })
        .collect();
    candidates.sort_by(|a, b| a.dot.cmp(&b.dot));
    let distinct: BTreeSet<Vec<u8>> = candidates
        .iter()
        .map(|candidate| canonical::encode_unchecked(&candidate.value))
        .collect();
    (distinct.len() > 1).then_some(candidates)
}

/// The state given by a set of ops; `None` when there are none.
///
/// Ops with the same dot are the same op (their chain guarantees it), so
/// duplicates are dropped.
pub fn materialize(schema: &MergeSchema, ops: &[MergeOp]) -> Option<EntityState> {
    let unique: BTreeMap<&Dot, &MergeOp> = ops.iter().map(|op| (&op.dot, op)).collect();
    if unique.is_empty() {
        return None;
    }
    let all: Vec<&MergeOp> = unique.into_values().collect();
    let mut state = EntityState::default();
    let mut tomb = VersionVector::default();
    for op in &all {
        state.vv.observe(&op.dot.stream_key, op.dot.seq);
        if op.delete {
            tomb.join(&op.base);
        }
    }
    let top = frontier(&all);
    state.deleted = top.iter().all(|op| op.delete);
    if top.iter().any(|op| op.delete) && !state.deleted {
        let mut candidates: Vec<Candidate> = top
            .iter()
            .map(|op| Candidate {
                dot: op.dot.clone(),
                value: Value::from(if op.delete { "delete" } else { "put" }),
            })
            .collect();
        candidates.sort_by(|a, b| a.dot.cmp(&b.dot));
        state
            .conflicts
            .insert(TOMBSTONE_CONFLICT.to_string(), candidates);
    }
    let live = live_ops(&all, &tomb);
    match schema.kind {
        MergeKind::Config => materialize_document(&live, &mut state),
        MergeKind::Entity => materialize_fields(schema, &all, &live, &mut state),
    }
    Some(state)
}

/// The ops whose changes make the record: every op that is not a delete,
/// less what deletes removed.
///
/// A delete removes the ops it saw. But an update concurrent with a delete
/// wins (the record stays, with a conflict naming both), and the record it
/// keeps is the one its author edited: each live update also keeps alive
/// every op in its causal past that no delete its author saw had removed,
/// and so on down (a fixpoint). Without this the update would survive
/// alone, a record without the fields its create gave it (issue 9, item
/// 22). Deletes an author did see still remove what they saw, exactly as
/// for a sequential edit, so `apply` agrees whenever it accepts an op.
fn live_ops<'a>(all: &[&'a MergeOp], tomb: &VersionVector) -> Vec<&'a MergeOp> {
    let covered = |op: &MergeOp, vv: &VersionVector| vv.covers(&op.dot.stream_key, op.dot.seq);
    let mut live: Vec<bool> = all
        .iter()
        .map(|op| !op.delete && !covered(op, tomb))
        .collect();
    let deletes: Vec<&MergeOp> = all.iter().copied().filter(|op| op.delete).collect();
    // Ops a delete removed that a live update may still keep.
    let mut removed: Vec<usize> = (0..all.len())
        .filter(|&index| !all[index].delete && !live[index])
        .collect();
    let mut updates: Vec<usize> = (0..all.len()).filter(|&index| live[index]).collect();
    while let Some(update) = updates.pop() {
        if removed.is_empty() {
            break;
        }
        let update = all[update];
        let mut seen_tomb = VersionVector::default();
        for delete in deletes
            .iter()
            .filter(|delete| covered(delete, &update.base))
        {
            seen_tomb.join(&delete.base);
        }
        removed.retain(|&index| {
            let op = all[index];
            let kept = covered(op, &update.base) && !covered(op, &seen_tomb);
            if kept {
                live[index] = true;
                updates.push(index);
            }
            !kept
        });
    }
    all.iter()
        .zip(live)
        .filter_map(|(op, live)| live.then_some(*op))
        .collect()
}

fn materialize_document(live: &[&MergeOp], state: &mut EntityState) {
    let top = frontier(live);
    if let Some(winner) = top.iter().max_by(|a, b| a.order_key().cmp(&b.order_key())) {
        state.fields = winner
            .changes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    if let Some(candidates) = conflict_of(&top, |op| Value::Object(op.changes.clone())) {
        state
            .conflicts
            .insert(DOCUMENT_CONFLICT.to_string(), candidates);
    }
}

fn materialize_fields(
    schema: &MergeSchema,
    all: &[&MergeOp],
    live: &[&MergeOp],
    state: &mut EntityState,
) {
    let mut groups_done = BTreeSet::new();
    for (field, rule) in &schema.fields {
        let writes: Vec<&MergeOp> = live
            .iter()
            .copied()
            .filter(|op| op.changes.contains_key(field))
            .collect();
        match rule {
            FieldRule::Lww => {
                let top = frontier(&writes);
                let winner = top.iter().max_by(|a, b| a.order_key().cmp(&b.order_key()));
                if let Some(value) = winner.map(|op| &op.changes[field])
                    && !value.is_null()
                {
                    state.fields.insert(field.clone(), value.clone());
                }
                if let Some(candidates) = conflict_of(&top, |op| op.changes[field].clone()) {
                    state.conflicts.insert(field.clone(), candidates);
                }
            }
            FieldRule::Counter => {
                if !writes.is_empty() {
                    let total = writes
                        .iter()
                        .map(|op| op.changes[field].as_i64().unwrap_or(0))
                        .fold(0i64, i64::saturating_add);
                    state.fields.insert(field.clone(), Value::from(total));
                }
            }
            FieldRule::Set => {
                if !writes.is_empty() {
                    state
                        .fields
                        .insert(field.clone(), materialize_set(field, &writes, all));
                }
            }
            FieldRule::Max | FieldRule::Min => {
                let values = writes
                    .iter()
                    .map(|op| &op.changes[field])
                    .filter(|value| !value.is_null());
                let best = if *rule == FieldRule::Max {
                    values.max_by(|a, b| compare_values(a, b))
                } else {
                    values.min_by(|a, b| compare_values(a, b))
                };
                if let Some(best) = best {
                    state.fields.insert(field.clone(), best.clone());
                }
            }
            FieldRule::Prefer { group, by } => {
                if !groups_done.insert(group.clone()) {
                    continue;
                }
                let members: Vec<&String> = schema
                    .fields
                    .iter()
                    .filter(|(_, rule)| matches!(rule, FieldRule::Prefer { group: g, .. } if g == group))
                    .map(|(name, _)| name)
                    .collect();
                let group_writes: Vec<&MergeOp> = live
                    .iter()
                    .copied()
                    .filter(|op| {
                        members
                            .iter()
                            .any(|member| op.changes.contains_key(*member))
                    })
                    .collect();
                let top = frontier(&group_writes);
                let winner = top.iter().max_by(|a, b| {
                    let rank = |op: &MergeOp| op.changes.get(by).cloned().unwrap_or(Value::Null);
                    compare_values(&rank(a), &rank(b))
                        .then_with(|| a.order_key().cmp(&b.order_key()))
                });
                if let Some(winner) = winner {
                    for member in members {
                        if let Some(value) =
                            winner.changes.get(member).filter(|value| !value.is_null())
                        {
                            state.fields.insert(member.clone(), value.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Elements of a set field: an add survives unless a remove of that element saw it.
fn materialize_set(field: &str, writes: &[&MergeOp], all: &[&MergeOp]) -> Value {
    let mut adds: BTreeMap<Vec<u8>, (Value, Vec<&Dot>)> = BTreeMap::new();
    let mut removes_seen: BTreeMap<Vec<u8>, VersionVector> = BTreeMap::new();
    let elements = |op: &MergeOp, side: &str| -> Vec<Value> {
        op.changes[field]
            .get(side)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for op in writes {
        for element in elements(op, "add") {
            let key = canonical::encode_unchecked(&element);
            adds.entry(key)
                .or_insert_with(|| (element, Vec::new()))
                .1
                .push(&op.dot);
        }
    }
    // Removes count even from ops a tombstone later killed: they only ever
    // take away adds their author had seen.
    for op in all {
        if op.delete || !op.changes.contains_key(field) {
            continue;
        }
        for element in elements(op, "remove") {
            removes_seen
                .entry(canonical::encode_unchecked(&element))
                .or_default()
                .join(&op.base);
        }
    }
    let present: Vec<Value> = adds
        .into_iter()
        .filter(|(key, (_, dots))| {
            let seen = removes_seen.get(key);
            dots.iter()
                .any(|dot| !seen.is_some_and(|seen| seen.covers(&dot.stream_key, dot.seq)))
        })
        .map(|(_, (element, _))| element)
        .collect();
    Value::Array(present)
}

/// Applies one op to a state if it saw everything the state holds.
///
/// Returns `None` when the op is concurrent with (or older than) something
/// already applied; the caller then recomputes with [`materialize`].
pub fn apply(
    schema: &MergeSchema,
    state: Option<&EntityState>,
    op: &MergeOp,
) -> Option<EntityState> {
    let mut next = state.cloned().unwrap_or_default();
    if !op.base.dominates(&next.vv) || next.vv.covers(&op.dot.stream_key, op.dot.seq) {
        return None;
    }
    next.vv.observe(&op.dot.stream_key, op.dot.seq);
    if op.delete {
        next.deleted = true;
        next.fields.clear();
        next.conflicts.clear();
        return Some(next);
    }
    next.deleted = false;
    next.conflicts.remove(TOMBSTONE_CONFLICT);
    if schema.kind == MergeKind::Config {
        next.conflicts.remove(DOCUMENT_CONFLICT);
        next.fields = op
            .changes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        return Some(next);
    }
    for (field, value) in &op.changes {
        let Some(rule) = schema.fields.get(field) else {
            continue;
        };
        match rule {
            FieldRule::Lww | FieldRule::Prefer { .. } => {
                next.conflicts.remove(field);
                if value.is_null() {
                    next.fields.remove(field);
                } else {
                    next.fields.insert(field.clone(), value.clone());
                }
            }
            FieldRule::Counter => {
                let current = next.fields.get(field).and_then(Value::as_i64).unwrap_or(0);
                let total = current.saturating_add(value.as_i64().unwrap_or(0));
                next.fields.insert(field.clone(), Value::from(total));
            }
            FieldRule::Set => {
                let mut members: BTreeMap<Vec<u8>, Value> = next
                    .fields
                    .get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|element| (canonical::encode_unchecked(element), element.clone()))
                    .collect();
                for side in ["remove", "add"] {
                    for element in value
                        .get(side)
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let key = canonical::encode_unchecked(element);
                        if side == "add" {
                            members.insert(key, element.clone());
                        } else {
                            members.remove(&key);
                        }
                    }
                }
                next.fields
                    .insert(field.clone(), Value::Array(members.into_values().collect()));
            }
            FieldRule::Max | FieldRule::Min => {
                if value.is_null() {
                    continue;
                }
                let keep_new = match next.fields.get(field) {
                    None => true,
                    Some(current) => {
                        let order = compare_values(value, current);
                        if *rule == FieldRule::Max {
                            order == Ordering::Greater
                        } else {
                            order == Ordering::Less
                        }
                    }
                };
                if keep_new {
                    next.fields.insert(field.clone(), value.clone());
                }
            }
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod compare_tests {
    use super::*;

    #[test]
    fn issue_9_21_max_on_datetimes_compares_instants() {
        let later = |a: &str, b: &str| {
            compare_values(&Value::from(a), &Value::from(b)) == Ordering::Greater
        };
        // 10:00+05:00 is 05:00Z and 10:00+02:00 is 08:00Z: both before 09:00Z.
        assert!(later("2026-11-20T09:00:00Z", "2026-11-20T10:00:00+05:00"));
        assert!(later("2026-11-20T09:00:00Z", "2026-11-20T10:00:00+02:00"));
        assert!(later("2026-11-20T10:00:00.5Z", "2026-11-20T10:00:00Z"));
        assert!(later(
            "2026-11-20T10:00:00.0000002Z",
            "2026-11-20T10:00:00.0000001Z"
        ));
        // The same instant in two spellings: ordered by text, both ways alike.
        let (a, b) = ("2026-11-20T10:00:00Z", "2026-11-20T11:00:00+01:00");
        assert_eq!(
            compare_values(&Value::from(a), &Value::from(b)),
            compare_values(&Value::from(b), &Value::from(a)).reverse()
        );
        assert_ne!(
            compare_values(&Value::from(a), &Value::from(b)),
            Ordering::Equal
        );
        // Dates and other text keep their text order.
        assert!(later("2026-11-21", "2026-11-20"));
        assert!(later("b", "a"));
    }
}
