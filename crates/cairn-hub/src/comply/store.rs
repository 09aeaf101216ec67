//! What the hub's store keeps for compliance, beside the log: verdicts,
//! how far the judge has come, and the review queue.

use super::Judgement;
use super::ledger::Ledger;
use crate::StorageError;
use cairn_core::hash::Hash;
use std::collections::BTreeMap;

/// The verdict on the logged ops of the leaves `[begin, end)`, as stored:
/// consecutive ops one pack version persisted share a row, each rejected op
/// has its own (so a batch of a thousand good ops costs one row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerdictRow {
    /// The first leaf.
    pub begin: u64,
    /// One past the last.
    pub end: u64,
    /// The verdict on each of them.
    pub judgement: Judgement,
    /// When, hub time, ms.
    pub at_ms: u64,
}

/// A review item as raised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewRow {
    /// `rejection`, `quarantine`, `missing_follow_up` or `missed_deadline`.
    pub kind: String,
    /// The logged op it is about (none for quarantined material).
    pub leaf: Option<u64>,
    /// The node, stream and seq of the op.
    pub node: String,
    /// Its stream.
    pub stream: String,
    /// Its seq, when known.
    pub seq: Option<u64>,
    /// Its collection, when known.
    pub collection: String,
    /// The rule (or rules, comma-separated).
    pub rule: String,
    /// What it says, for people (never a sensitive value).
    pub message: String,
    /// When it was raised, hub time, ms.
    pub raised_ms: u64,
    /// The quarantined material's hash (quarantine items).
    pub material_hash: Option<Hash>,
}

/// How a review item was closed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Closure {
    /// When, hub time, ms.
    pub at_ms: u64,
    /// Who (`hub` when the data closed it, e.g. a late follow-up).
    pub by: String,
    /// What was decided.
    pub decision: String,
    /// Why.
    pub note: String,
    /// The seq of the act in the hub's audit stream that records it.
    pub audit_seq: Option<u64>,
}

/// A review item as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    /// Its number.
    pub id: u64,
    /// What was raised.
    pub row: ReviewRow,
    /// How it was closed; open while `None`.
    pub closure: Option<Closure>,
}

/// Which review items to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    /// Only open ones.
    pub open_only: bool,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only ids above this (paging).
    pub after_id: u64,
    /// At most this many.
    pub limit: usize,
}

/// One push as the audit trail keeps it: who, when, and how many ops got
/// each verdict (or why the whole push was refused).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PushAttempt {
    /// When, hub time, ms.
    pub at_ms: u64,
    /// The node it came as.
    pub node: String,
    /// The stream.
    pub stream: String,
    /// Ops logged.
    pub accepted: u64,
    /// Ops the hub held already.
    pub duplicate: u64,
    /// Ops quarantined.
    pub quarantined: u64,
    /// Why the whole push was refused, if it was.
    pub refused: Option<String>,
}

/// The compliance half of a hub transaction.
pub trait ComplianceStore: Ledger {
    /// Leaves below this have been judged.
    fn judged_through(&self) -> Result<u64, StorageError>;
    /// Moves it.
    fn set_judged_through(&self, leaf: u64) -> Result<(), StorageError>;
    /// Keeps a verdict.
    fn record_verdict(&self, row: &VerdictRow) -> Result<(), StorageError>;
    /// The verdict on `leaf`, if judged.
    fn verdict_at(&self, leaf: u64) -> Result<Option<VerdictRow>, StorageError>;
    /// How many logged ops stand in each state (judged ones only).
    fn state_counts(&self) -> Result<BTreeMap<String, u64>, StorageError>;
    /// The leaves judged anything but persisted, ascending.
    fn unpersisted_leaves(&self) -> Result<Vec<u64>, StorageError>;
    /// Verdicts other than persisted on ops of stream `stream_id` with seq
    /// above `after_seq`, by seq, at most `limit`: (seq, verdict).
    fn stream_verdicts(
        &self,
        stream_id: crate::backend::StreamId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, VerdictRow)>, StorageError>;
    /// The highest seq of stream `stream_id` the judge has judged.
    fn judged_seq(&self, stream_id: crate::backend::StreamId) -> Result<u64, StorageError>;
    /// Raises a review item (once per kind, leaf and rule, or material);
    /// returns its id, or `None` if it was raised before.
    fn raise_review(&self, row: &ReviewRow) -> Result<Option<u64>, StorageError>;
    /// Review items by `filter`, by id.
    fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>, StorageError>;
    /// One review item.
    fn review(&self, id: u64) -> Result<Option<Review>, StorageError>;
    /// Closes an open item; false if it was closed already.
    fn close_review(&self, id: u64, closure: &Closure) -> Result<bool, StorageError>;
    /// Open items of `kind` about `leaf`.
    fn open_reviews_of(&self, kind: &str, leaf: u64) -> Result<Vec<u64>, StorageError>;
    /// How many items are open, by kind.
    fn open_review_counts(&self) -> Result<BTreeMap<String, u64>, StorageError>;
    /// Appends a push attempt to the audit trail.
    fn record_push(&self, attempt: &PushAttempt) -> Result<(), StorageError>;
    /// Push attempts after `after_id` (ids from 1), at most `limit`.
    fn push_attempts(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PushAttempt)>, StorageError>;
    /// Verdict runs from leaf `from` on, by first leaf, at most `limit`.
    fn verdicts_from(&self, from: u64, limit: usize) -> Result<Vec<VerdictRow>, StorageError>;
    /// Entities of `collection` changed by an op at leaf `from_leaf` or
    /// later, by key, at most `limit`: (key, leaf of its last op, how many
    /// ops changed it).
    fn changed_entities(
        &self,
        collection: &str,
        from_leaf: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>, StorageError>;
    /// The active packs' TOML sources, by pack name.
    fn pack_sources(&self) -> Result<Vec<String>, StorageError>;
    /// Makes `source`, parsed as `pack`, the active version of its pack.
    fn put_pack(
        &self,
        pack: &cairn_core::pack::RulePack,
        source: &str,
        at_ms: u64,
    ) -> Result<(), StorageError>;
}
