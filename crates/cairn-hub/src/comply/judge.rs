//! Judging one logged op by the pack that defines its collection: the
//! record's own shape (the rules the edge also checks), then the rules that
//! need what only the hub has (see `cairn_core::pack::rules`), read from and
//! written to a [`Ledger`].
//!
//! "When the record was written" is its HLC wall time: an offline node's
//! record is judged by the day it was made, not the day it arrived, so a
//! certificate that expired while the node was offline does not reject
//! work done before it expired.

use super::ledger::{Awaited, Claim, Ledger, RegistryEntry};
use super::{Judgement, Packs, State};
use crate::StorageError;
use cairn_core::dates::{format_date_days, parse_date_days, parse_datetime_ms};
use cairn_core::hash::Hash;
use cairn_core::merge::{self, EntityState, MergeOp};
use cairn_core::names::HUB_NODE;
use cairn_core::op::{Action, Op};
use cairn_core::pack::rules::{When, key_hash};
use cairn_core::pack::{Collection, CollectionKind, Violation};
use serde_json::{Map, Value};
use std::borrow::Cow;

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;

/// A review item the judge raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewDraft {
    /// `rejection`, `conflict`, `missing_follow_up` or `missed_deadline`.
    pub kind: &'static str,
    /// The leaf of the op it is about.
    pub leaf: u64,
    /// The rule.
    pub rule: String,
    /// What it says, for people (never a sensitive value).
    pub message: String,
}

/// What judging one op decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The verdict.
    pub judgement: Judgement,
    /// Review items it raises.
    pub reviews: Vec<ReviewDraft>,
    /// Leaves whose awaited follow-up this op is.
    pub fulfils: Vec<u64>,
    /// Fields of its entity whose open conflict this op settled (it saw
    /// every side): their review items close.
    pub settles: Vec<String>,
}

/// The op at `leaf`, logged at `received_ms`.
#[derive(Clone, Copy, Debug)]
pub struct Logged<'a> {
    /// Its leaf.
    pub leaf: u64,
    /// The op.
    pub op: &'a Op,
    /// When the hub logged it, ms.
    pub received_ms: u64,
}

impl Packs {
    /// Judges `logged`, reading and updating `ledger`.
    pub fn judge(&self, logged: Logged<'_>, ledger: &dyn Ledger) -> Result<Outcome, StorageError> {
        let op = logged.op;
        let outcome = |judgement: Judgement| Outcome {
            reviews: rejection_review(&judgement, logged.leaf),
            judgement,
            fulfils: Vec::new(),
            settles: Vec::new(),
        };
        let collection_name = &op.draft.collection;
        let Some(pack) = self.pack_of(collection_name) else {
            if op.draft.node == HUB_NODE {
                // The hub's own acts (its audit stream) are its own.
                return Ok(outcome(Judgement::persisted(HUB_NODE, "")));
            }
            return Ok(outcome(Judgement {
                state: State::Rejected,
                pack: String::new(),
                version: String::new(),
                violations: vec![Violation::new(
                    "collection",
                    "active_pack",
                    format!("no rule pack active at the hub defines {collection_name:?}"),
                )],
            }));
        };
        let collection = &pack.collections[collection_name];
        let mut judge = One {
            packs: self,
            collection,
            logged,
            ledger,
            written_ms: op.draft.hlc.wall_ms,
            violations: Vec::new(),
            payload: Map::new(),
        };
        judge.check_record();
        if judge.violations.is_empty() {
            judge.check_references()?;
        }
        let claims = if judge.violations.is_empty() {
            judge.check_claims()?
        } else {
            Vec::new()
        };
        let mut violations = std::mem::take(&mut judge.violations);
        violations.sort_by(|a, b| (&a.field, &a.rule).cmp(&(&b.field, &b.rule)));
        let judgement = Judgement {
            state: if violations.is_empty() {
                State::Persisted
            } else {
                State::Rejected
            },
            pack: pack.name.clone(),
            version: pack.version.clone(),
            violations,
        };
        if judgement.state == State::Rejected {
            return Ok(outcome(judgement));
        }
        for (key, claim) in claims {
            ledger.put_claim(&key, claim)?;
        }
        judge.keep_registry()?;
        let fulfils = judge.follow_ups()?;
        let (mut reviews, settles) = judge.conflicts()?;
        reviews.extend(judge.deadline());
        Ok(Outcome {
            reviews,
            judgement,
            fulfils,
            settles,
        })
    }
}

fn rejection_review(judgement: &Judgement, leaf: u64) -> Vec<ReviewDraft> {
    if judgement.state != State::Rejected {
        return Vec::new();
    }
    let rules: Vec<&str> = judgement
        .violations
        .iter()
        .map(|violation| violation.rule.as_str())
        .collect();
    vec![ReviewDraft {
        kind: "rejection",
        leaf,
        rule: rules.join(","),
        message: judgement.reason(),
    }]
}

/// One op being judged.
struct One<'a> {
    packs: &'a Packs,
    collection: &'a Collection,
    logged: Logged<'a>,
    ledger: &'a dyn Ledger,
    /// When the record was written (HLC wall time), ms.
    written_ms: u64,
    violations: Vec<Violation>,
    /// The checked payload.
    payload: Map<String, Value>,
}

impl One<'_> {
    fn op(&self) -> &Op {
        self.logged.op
    }

    fn written_day(&self) -> i64 {
        (self.written_ms / DAY_MS) as i64
    }

    /// A field's value as text (strings as they are, others as JSON).
    fn text(&self, field: &str) -> Option<Cow<'_, str>> {
        match self.payload.get(field)? {
            Value::String(text) => Some(Cow::Borrowed(text)),
            Value::Null => None,
            other => Some(Cow::Owned(other.to_string())),
        }
    }

    fn shown(&self, field: &str, value: &str) -> String {
        if self.collection.is_sensitive(field) {
            "the value".into()
        } else {
            format!("{value:?}")
        }
    }

    /// The record's own rules: who may write, its shape, dates at write.
    fn check_record(&mut self) {
        let op = self.logged.op;
        let rules = &self.collection.rules;
        if rules.written_by.as_deref() == Some("hub") && op.draft.node != HUB_NODE {
            self.violations.push(Violation::new(
                "collection",
                "written_by",
                format!(
                    "{} is a registry only the hub (or an admin) writes",
                    self.collection.name
                ),
            ));
            return;
        }
        if op.draft.action == Action::Delete {
            return;
        }
        let data: Value = match serde_json::from_slice(&op.draft.payload) {
            Ok(data) => data,
            Err(error) => {
                self.violations.push(Violation::new(
                    "data",
                    "json",
                    format!("the payload is not JSON: {error}"),
                ));
                return;
            }
        };
        // The hub does not know whether an entity put creates the entity;
        // it judges the fields the put carries.
        let creating = self.collection.kind != CollectionKind::Entity;
        let checked = self.collection.validate(op.draft.action, &data, creating);
        self.violations.extend(checked.violations);
        self.payload = checked.payload;
        let written = self.written_day();
        for field in &rules.valid_at_write {
            let Some(text) = self.text(field) else {
                continue;
            };
            let day = parse_date_days(&text)
                .or_else(|| parse_datetime_ms(&text).map(|ms| ms.div_euclid(DAY_MS as i64)));
            if day.is_some_and(|day| day < written) {
                self.violations.push(Violation::new(
                    field.clone(),
                    "valid_at_write",
                    format!(
                        "{} is before {}, the day the record was written",
                        self.shown(field, &text),
                        format_date_days(written)
                    ),
                ));
            }
        }
    }

    /// Reference checks against the registries.
    fn check_references(&mut self) -> Result<(), StorageError> {
        let written = self.written_day();
        for reference in &self.collection.rules.references {
            let Some(key) = self.text(&reference.field) else {
                continue;
            };
            let shown = self.shown(&reference.field, &key);
            let entry = self.ledger.registry_entry(&reference.registry, &key)?;
            let fields = match entry {
                None => {
                    self.violations.push(Violation::new(
                        reference.field.clone(),
                        "reference",
                        format!("{shown} is not in the {} registry", reference.registry),
                    ));
                    continue;
                }
                Some(RegistryEntry { fields: None, .. }) => {
                    self.violations.push(Violation::new(
                        reference.field.clone(),
                        "revoked",
                        format!(
                            "{shown} was revoked from the {} registry",
                            reference.registry
                        ),
                    ));
                    continue;
                }
                Some(RegistryEntry {
                    fields: Some(fields),
                    ..
                }) => fields,
            };
            if let Some(expiry) = &reference.expiry
                && let Some(Value::String(date)) = fields.get(expiry)
                && parse_date_days(date).is_some_and(|day| day < written)
            {
                self.violations.push(Violation::new(
                    reference.field.clone(),
                    "expired",
                    format!(
                        "{shown}'s {expiry} {date} is before {}, the day the record was written",
                        format_date_days(written)
                    ),
                ));
            }
            if let (Some(allows), Some(action)) = (&reference.allows, &reference.action) {
                let allowed = fields.get(allows).and_then(Value::as_array);
                let wanted = self.text(action).unwrap_or_default();
                if !allowed.is_some_and(|set| set.iter().any(|item| item.as_str() == Some(&wanted)))
                {
                    self.violations.push(Violation::new(
                        action.clone(),
                        "authorized",
                        format!("{shown} is not authorized for {wanted:?}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Uniqueness and idempotency: the keys this record would claim, or
    /// violations if another record holds them.
    fn check_claims(&mut self) -> Result<Vec<(Hash, Claim)>, StorageError> {
        let rules = &self.collection.rules;
        let claim = Claim {
            leaf: self.logged.leaf,
            written_ms: self.written_ms,
        };
        let mut claims = Vec::new();
        for unique in &rules.unique {
            let Some(mut parts) = self.key_parts(&unique.fields) else {
                continue;
            };
            parts.insert(
                0,
                format!("unique\0{}\0{}", self.collection.name, unique.name),
            );
            if unique.payload {
                parts.push(self.op().payload_hash.to_hex());
            }
            let key = key_hash(&parts);
            if let Some(holder) = self.ledger.claim_of(&key)? {
                self.violations.push(Violation::new(
                    unique.fields.join(","),
                    "unique",
                    format!(
                        "{} ({}) repeats the record at leaf {}",
                        unique.name,
                        unique.fields.join(", "),
                        holder.leaf
                    ),
                ));
            } else {
                claims.push((key, claim));
            }
        }
        if let Some(idempotency) = &rules.idempotency
            && let Some(key) = idempotency.key_of(&self.collection.name, &self.payload)
        {
            let window = idempotency.window_ms();
            match self.ledger.claim_of(&key)? {
                Some(holder) if holder.written_ms.abs_diff(self.written_ms) <= window => {
                    self.violations.push(Violation::new(
                        idempotency.fields.join(","),
                        "idempotency",
                        format!(
                            "a duplicate of the record at leaf {}, written within the {} h window",
                            holder.leaf, idempotency.window_hours
                        ),
                    ));
                }
                _ => claims.push((key, claim)),
            }
        }
        Ok(claims)
    }

    /// The values of `fields`, if the record has them all.
    fn key_parts(&self, fields: &[String]) -> Option<Vec<String>> {
        fields
            .iter()
            .map(|field| self.text(field).map(Cow::into_owned))
            .collect()
    }

    /// A registry write stands if it is the newest by HLC (on a tie, the
    /// later in the log: the judge goes in log order).
    fn keep_registry(&self) -> Result<(), StorageError> {
        let op = self.op();
        if self.collection.kind != CollectionKind::Config {
            return Ok(());
        }
        let hlc = (
            op.draft.hlc.wall_ms,
            op.draft.hlc.counter,
            op.draft.node.clone(),
        );
        let current = self
            .ledger
            .registry_entry(&self.collection.name, &op.draft.key)?;
        if current.is_some_and(|current| current.hlc > hlc) {
            return Ok(());
        }
        let fields = match op.draft.action {
            Action::Delete => None,
            _ => Some(std::sync::Arc::new(self.payload.clone())),
        };
        self.ledger.put_registry_entry(
            &self.collection.name,
            &op.draft.key,
            &RegistryEntry { hlc, fields },
        )
    }

    /// Follow-ups this record needs, and the ones it is.
    fn follow_ups(&self) -> Result<Vec<u64>, StorageError> {
        for rule in &self.collection.rules.follow_ups {
            if !applies(rule.when.as_ref(), |field| self.text(field)) {
                continue;
            }
            let (Some(matching), Some(who)) =
                (self.text(&rule.matching), self.text(&rule.different))
            else {
                continue;
            };
            self.ledger.await_follow_up(&Awaited {
                key: key_hash(&[rule.name.as_str(), rule.collection.as_str(), &matching]),
                rule: rule.name.clone(),
                leaf: self.logged.leaf,
                who: who.into_owned(),
                due_ms: self.written_ms + rule.within_hours * HOUR_MS,
            })?;
        }
        let mut fulfils = Vec::new();
        for rule in self.packs.follow_ups_into(&self.collection.name) {
            let (Some(matching), Some(who)) =
                (self.text(&rule.matching), self.text(&rule.different))
            else {
                continue;
            };
            let key = key_hash(&[rule.name.as_str(), rule.collection.as_str(), &matching]);
            for item in self.ledger.awaited(&key)? {
                if item.who != who && self.written_ms <= item.due_ms {
                    self.ledger.stop_waiting(item.leaf)?;
                    fulfils.push(item.leaf);
                }
            }
        }
        Ok(fulfils)
    }

    /// Merges an entity op into the entity's state as the judge keeps it;
    /// a conflict it opens (concurrent writes of a field with different
    /// values, or a delete beside a write) is a review item naming both
    /// values side by side. Also returns the fields whose conflict it
    /// settled.
    fn conflicts(&self) -> Result<(Vec<ReviewDraft>, Vec<String>), StorageError> {
        let op = self.op();
        let (Some(schema), Some(merge_op)) = (self.collection.merge_schema(), MergeOp::from_op(op))
        else {
            return Ok((Vec::new(), Vec::new()));
        };
        let (name, key) = (&self.collection.name, &op.draft.key);
        let state = match self.ledger.entity_state(name, key)? {
            Some(bytes) => Some(
                serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|value| EntityState::from_json(&value))
                    .ok_or_else(|| StorageError::Damaged(format!("entity state {name} {key}")))?,
            ),
            None => None,
        };
        let next = match merge::apply(&schema, state.as_ref(), &merge_op) {
            Some(next) => next,
            None => {
                // Concurrent with what the entity holds: merge every op again.
                let mut ops = Vec::new();
                for leaf in self.ledger.entity_ops(name, key)? {
                    let bytes = self.ledger.logged_op(leaf)?.ok_or_else(|| {
                        StorageError::Damaged(format!("entity op at leaf {leaf} is not logged"))
                    })?;
                    let logged = Op::decode_logged(&bytes)
                        .map_err(|fault| StorageError::Damaged(format!("leaf {leaf}: {fault}")))?;
                    ops.extend(MergeOp::from_op(&logged));
                }
                ops.push(merge_op);
                merge::materialize(&schema, &ops).unwrap_or_default()
            }
        };
        self.ledger.add_entity_op(name, key, self.logged.leaf)?;
        self.ledger
            .put_entity_state(name, key, &next.to_canonical_bytes())?;
        let before = state.map(|state| state.conflicts).unwrap_or_default();
        let settles = before
            .keys()
            .filter(|field| !next.conflicts.contains_key(*field))
            .cloned()
            .collect();
        let opened = next
            .conflicts
            .iter()
            .filter(|(field, candidates)| before.get(*field) != Some(candidates))
            .map(|(field, candidates)| {
                let sides: Vec<String> = candidates
                    .iter()
                    .map(|candidate| {
                        let value = if self.collection.is_sensitive(field) {
                            "the value".to_string()
                        } else {
                            candidate.value.to_string()
                        };
                        format!("{value} by {}", candidate.dot)
                    })
                    .collect();
                ReviewDraft {
                    kind: "conflict",
                    leaf: self.logged.leaf,
                    rule: field.clone(),
                    message: format!(
                        "{name} {key:?}, field {field}: concurrent writes disagree: {}",
                        sides.join(" vs ")
                    ),
                }
            })
            .collect();
        Ok((opened, settles))
    }

    /// A record that reached the hub after its deadline: a review item.
    fn deadline(&self) -> Option<ReviewDraft> {
        let deadline = self.collection.rules.deadline.as_ref()?;
        if !applies(deadline.when.as_ref(), |field| self.text(field)) {
            return None;
        }
        let late = self.logged.received_ms.saturating_sub(self.written_ms);
        (late > deadline.days * DAY_MS).then(|| ReviewDraft {
            kind: "missed_deadline",
            leaf: self.logged.leaf,
            rule: "deadline".into(),
            message: format!(
                "reached the hub {} days after it was written; {} must arrive within {} days",
                late / DAY_MS,
                self.collection.name,
                deadline.days
            ),
        })
    }
}

/// Whether a rule with condition `when` applies to a record.
fn applies<'a>(when: Option<&When>, text: impl Fn(&str) -> Option<Cow<'a, str>>) -> bool {
    when.is_none_or(|when| when.matches(text(&when.field).as_deref()))
}
