//! Compliance: what the hub's rule packs say of each op its integrity check
//! logged. Kept apart from the log: a REJECTED op stays a leaf (no chain
//! breaks), and its verdict is a record of its own that a later judgement
//! (a dry run of a new pack version) can be compared with.
//!
//! An op goes INGESTED -> VALIDATED when the push pipeline logs it (the
//! integrity check), and the judge ([`run::judge_pending`]) takes the log
//! in leaf order from there: COMPLIANCE_CHECKED by the pack that defines its
//! collection, then PERSISTED or REJECTED naming the pack version, the rule
//! and the reason. Material refused for integrity is QUARANTINED and never
//! reaches the packs. Judging runs behind the push path, in log order, so a
//! push costs no more than its integrity check and every verdict can be
//! replayed: the same log and the same packs give the same verdicts.

pub mod acts;
pub mod conflict;
pub mod entities;
pub mod judge;
pub mod ledger;
pub mod overlay;
pub mod run;
pub mod store;
pub mod trail;
pub mod view;
pub mod worker;

use cairn_core::pack::rules::FollowUp;
use cairn_core::pack::{RulePack, Violation};
use std::collections::BTreeMap;

pub use judge::{Outcome, ReviewDraft};
pub use ledger::{Awaited, Claim, Ledger, LedgerData, RegistryEntry, ScratchLedger};
pub use store::{Closure, ComplianceStore, Review, ReviewFilter, ReviewRow, VerdictRow};

/// Where an op stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Received.
    Ingested,
    /// Its integrity verified and logged; the packs have yet to judge it.
    Validated,
    /// Judged by a rule pack.
    ComplianceChecked,
    /// Kept: integrity and compliance both hold.
    Persisted,
    /// Refused for integrity, kept in the quarantine.
    Quarantined,
    /// Logged, but a rule of the pack refuses it: a review item.
    Rejected,
}

impl State {
    /// Every state, in order.
    pub const ALL: [State; 6] = [
        State::Ingested,
        State::Validated,
        State::ComplianceChecked,
        State::Persisted,
        State::Quarantined,
        State::Rejected,
    ];

    /// The state as stored and sent.
    pub fn name(self) -> &'static str {
        match self {
            State::Ingested => "ingested",
            State::Validated => "validated",
            State::ComplianceChecked => "compliance_checked",
            State::Persisted => "persisted",
            State::Quarantined => "quarantined",
            State::Rejected => "rejected",
        }
    }

    /// Parses [`State::name`].
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.name() == name)
    }
}

/// The packs' verdict on one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// [`State::Persisted`] or [`State::Rejected`].
    pub state: State,
    /// The pack that judged it (`hub` for the hub's own acts).
    pub pack: String,
    /// That pack's version.
    pub version: String,
    /// Every rule it broke (empty when persisted).
    pub violations: Vec<Violation>,
}

impl Judgement {
    /// Persisted by `pack` at `version`.
    pub fn persisted(pack: &str, version: &str) -> Judgement {
        Judgement {
            state: State::Persisted,
            pack: pack.to_string(),
            version: version.to_string(),
            violations: Vec::new(),
        }
    }

    /// The rules broken, as one line (empty when persisted).
    pub fn reason(&self) -> String {
        let broken: Vec<String> = self.violations.iter().map(ToString::to_string).collect();
        broken.join("; ")
    }
}

/// The hub's active rule packs, by collection.
#[derive(Clone, Debug, Default)]
pub struct Packs {
    packs: Vec<RulePack>,
    by_collection: BTreeMap<String, usize>,
    /// Follow-up rules by the collection their follow-ups are written to.
    follow_ups_into: BTreeMap<String, Vec<FollowUp>>,
}

impl Packs {
    /// `packs`, each collection defined once.
    pub fn new(packs: Vec<RulePack>) -> Result<Packs, String> {
        let mut by_collection = BTreeMap::new();
        let mut follow_ups_into: BTreeMap<String, Vec<FollowUp>> = BTreeMap::new();
        for (index, pack) in packs.iter().enumerate() {
            for (name, collection) in &pack.collections {
                if let Some(other) = by_collection.insert(name.clone(), index) {
                    return Err(format!(
                        "collection {name} is defined by both pack {} and pack {}",
                        packs[other].name, pack.name
                    ));
                }
                for follow_up in &collection.rules.follow_ups {
                    follow_ups_into
                        .entry(follow_up.collection.clone())
                        .or_default()
                        .push(follow_up.clone());
                }
            }
        }
        Ok(Packs {
            packs,
            by_collection,
            follow_ups_into,
        })
    }

    /// The built-in packs.
    pub fn builtin() -> Packs {
        let builtin = cairn_core::pack::BUILTIN_PACKS
            .iter()
            .filter_map(|(name, _)| RulePack::builtin(name))
            .collect();
        Packs::new(builtin).expect("the built-in packs define each collection once")
    }

    /// The active packs.
    pub fn packs(&self) -> &[RulePack] {
        &self.packs
    }

    /// These packs with `pack` in place of the one of its name (or added).
    pub fn with(&self, pack: RulePack) -> Result<Packs, String> {
        let mut packs: Vec<RulePack> = self
            .packs
            .iter()
            .filter(|old| old.name != pack.name)
            .cloned()
            .collect();
        packs.push(pack);
        packs.sort_by(|a, b| a.name.cmp(&b.name));
        Packs::new(packs)
    }

    /// The pack defining `collection`.
    pub fn pack_of(&self, collection: &str) -> Option<&RulePack> {
        self.by_collection
            .get(collection)
            .map(|&index| &self.packs[index])
    }

    /// The follow-up rules whose follow-ups go to `collection`.
    pub(crate) fn follow_ups_into(&self, collection: &str) -> &[FollowUp] {
        self.follow_ups_into
            .get(collection)
            .map_or(&[], Vec::as_slice)
    }

    /// How many years records of `collection` are kept, if its pack says.
    pub fn retention_years(&self, collection: &str) -> Option<u32> {
        self.pack_of(collection)?.collections[collection]
            .rules
            .retention_years
    }
}
