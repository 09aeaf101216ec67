//! The audit trail, read as one timeline: the hub's acts (its signed audit
//! stream: enrollments, revocations, resolutions, registry writes, pack
//! activations and refusals), every push attempt with its counts per
//! verdict, and every compliance state transition the judge recorded.
//! Each entry says who, what, when, and the state before and after. All
//! three are append-only; the acts are also in the Merkle log. No entry
//! carries a payload value: acts name fields and rules, never values.

use super::store::{ComplianceStore, VerdictRow};
use crate::backend::{HubBackend, LogTx};
use crate::{AUDIT_STREAM, HUB_NODE, Hub, StorageError};
use cairn_core::op::Op;
use serde_json::{Value, json};

/// Most entries of each kind one trail reads.
pub const TRAIL_MAX: usize = 10_000;

/// One entry of the trail.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    /// When, hub time, ms.
    pub at_ms: u64,
    /// `act`, `push` or `transition`.
    pub kind: &'static str,
    /// Who: the person or tool of an act, the node of a push, `judge`.
    pub who: String,
    /// What: the act's action, `push`, or the transition.
    pub what: String,
    /// The state before.
    pub before: Value,
    /// The state after.
    pub after: Value,
    /// The rest (counts, rules, the act as recorded).
    pub detail: Value,
}

/// Which entries to read.
#[derive(Clone, Debug, Default)]
pub struct TrailFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only entries by this person, tool or node.
    pub who: Option<String>,
    /// Only entries whose `what` starts with this.
    pub what: Option<String>,
    /// Only entries at or after this time, ms.
    pub since_ms: u64,
}

impl TrailFilter {
    fn keeps(&self, entry: &AuditEntry) -> bool {
        self.kind.as_deref().is_none_or(|kind| kind == entry.kind)
            && self.who.as_deref().is_none_or(|who| who == entry.who)
            && self
                .what
                .as_deref()
                .is_none_or(|what| entry.what.starts_with(what))
            && entry.at_ms >= self.since_ms
    }
}

impl<B: HubBackend> Hub<B> {
    /// The audit trail by time (see the module), filtered.
    pub fn audit_trail(&self, filter: &TrailFilter) -> Result<Vec<AuditEntry>, StorageError> {
        let tx = self.backend().read()?;
        let mut entries = acts(&tx)?;
        for (_, push) in tx.push_attempts(0, TRAIL_MAX)? {
            entries.push(AuditEntry {
                at_ms: push.at_ms,
                kind: "push",
                who: push.node.clone(),
                what: "push".into(),
                before: Value::Null,
                after: json!(if push.refused.is_some() {
                    "refused"
                } else {
                    "answered"
                }),
                detail: json!(push),
            });
        }
        for row in tx.verdicts_from(0, TRAIL_MAX)? {
            entries.push(transition(&row));
        }
        entries.retain(|entry| filter.keeps(entry));
        entries.sort_by_key(|entry| entry.at_ms);
        Ok(entries)
    }
}

/// The acts of the hub's audit stream.
fn acts(tx: &dyn LogTx) -> Result<Vec<AuditEntry>, StorageError> {
    let Some(row) = tx.stream(HUB_NODE, AUDIT_STREAM)? else {
        return Ok(Vec::new());
    };
    let mut entries = Vec::new();
    for (_, bytes) in tx.stream_ops(row.id, 1, row.head.seq)? {
        let op = Op::decode(&bytes)
            .map_err(|fault| StorageError::Damaged(format!("an audit act: {fault}")))?;
        let act: Value = serde_json::from_slice(&op.draft.payload)
            .map_err(|error| StorageError::Damaged(format!("an audit act: {error}")))?;
        entries.push(AuditEntry {
            at_ms: op.draft.hlc.wall_ms,
            kind: "act",
            who: act["by"].as_str().unwrap_or("hub").to_string(),
            what: act["action"].as_str().unwrap_or_default().to_string(),
            before: act.get("before").cloned().unwrap_or(Value::Null),
            after: act
                .get("after")
                .or_else(|| act.get("decision"))
                .cloned()
                .unwrap_or(Value::Null),
            detail: json!({"seq": op.seq, "op_hash": op.op_hash.to_hex(), "act": act}),
        });
    }
    Ok(entries)
}

/// A verdict run as the transitions it records.
fn transition(row: &VerdictRow) -> AuditEntry {
    let judgement = &row.judgement;
    let rules: Vec<Value> = judgement
        .violations
        .iter()
        .map(|violation| json!({"field": violation.field, "rule": violation.rule}))
        .collect();
    AuditEntry {
        at_ms: row.at_ms,
        kind: "transition",
        who: "judge".into(),
        what: format!(
            "validated -> compliance_checked -> {}",
            judgement.state.name()
        ),
        before: json!("validated"),
        after: json!(judgement.state.name()),
        detail: json!({
            "leaves": [row.begin, row.end],
            "pack": judgement.pack,
            "version": judgement.version,
            "rules": rules,
        }),
    }
}
