//! Compliance: what the hub's own rule packs say of each op the integrity
//! check accepted. Kept apart from the log: a REJECTED op stays a leaf (no
//! chain breaks), and its verdict is a record of its own, keyed by
//! `op_hash`, that a later judgement can supersede.
//!
//! An accepted op goes INGESTED -> VALIDATED (integrity) ->
//! COMPLIANCE_CHECKED (the pack) -> PERSISTED, or ends REJECTED naming the
//! pack version, the rule and the reason. Material refused for integrity is
//! QUARANTINED and never reaches the packs.

use crate::audit::HUB_NODE;
use cairn_core::op::{Action, Op};
use cairn_core::pack::{CollectionKind, RulePack, Violation};
use std::collections::BTreeMap;

/// Where an op stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Received.
    Ingested,
    /// Its integrity verified.
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
        [
            State::Ingested,
            State::Validated,
            State::ComplianceChecked,
            State::Persisted,
            State::Quarantined,
            State::Rejected,
        ]
        .into_iter()
        .find(|state| state.name() == name)
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

/// The hub's active rule packs, by collection.
#[derive(Debug, Default)]
pub struct Packs {
    packs: Vec<RulePack>,
    by_collection: BTreeMap<String, usize>,
}

impl Packs {
    /// `packs`, each collection defined once.
    pub fn new(packs: Vec<RulePack>) -> Result<Packs, String> {
        let mut by_collection = BTreeMap::new();
        for (index, pack) in packs.iter().enumerate() {
            for name in pack.collections.keys() {
                if let Some(other) = by_collection.insert(name.clone(), index) {
                    return Err(format!(
                        "collection {name} is defined by both pack {} and pack {}",
                        packs[other].name, pack.name
                    ));
                }
            }
        }
        Ok(Packs {
            packs,
            by_collection,
        })
    }

    /// The active packs.
    pub fn packs(&self) -> &[RulePack] {
        &self.packs
    }

    /// Judges `op` by the pack that defines its collection.
    pub fn judge(&self, op: &Op) -> Judgement {
        if op.draft.node == HUB_NODE {
            return Judgement {
                state: State::Persisted,
                pack: HUB_NODE.into(),
                version: String::new(),
                violations: Vec::new(),
            };
        }
        let collection = &op.draft.collection;
        let Some(&index) = self.by_collection.get(collection) else {
            return Judgement {
                state: State::Rejected,
                pack: String::new(),
                version: String::new(),
                violations: vec![Violation::new(
                    "collection",
                    "active_pack",
                    format!("no rule pack active at the hub defines {collection:?}"),
                )],
            };
        };
        let pack = &self.packs[index];
        let rules = &pack.collections[collection];
        let violations = match serde_json::from_slice::<serde_json::Value>(&op.draft.payload) {
            // A tombstone carries no document to judge.
            _ if op.draft.action == Action::Delete => Vec::new(),
            Ok(data) => {
                // The hub does not know whether an entity put creates the
                // entity; it judges the fields the put carries.
                let creating = rules.kind != CollectionKind::Entity;
                rules.validate(op.draft.action, &data, creating).violations
            }
            Err(error) => vec![Violation::new(
                "data",
                "json",
                format!("the payload is not JSON: {error}"),
            )],
        };
        Judgement {
            state: if violations.is_empty() {
                State::Persisted
            } else {
                State::Rejected
            },
            pack: pack.name.clone(),
            version: pack.version.clone(),
            violations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::chain::StreamHead;
    use cairn_core::op::OpDraft;

    fn op(collection: &str, action: Action, payload: &str) -> Op {
        let mut draft: OpDraft = cairn_core::testkit::note("a", 1, "n", &Default::default());
        draft.collection = collection.into();
        draft.action = action;
        if action == Action::Put {
            draft.key = "SN-1".into();
        }
        draft.payload = payload.as_bytes().to_vec();
        let (_, bytes) = StreamHead::EMPTY.clone().append(draft);
        Op::decode(&bytes).unwrap()
    }

    fn builtin() -> Packs {
        Packs::new(
            ["mro", "pharmacy", "field_service"]
                .into_iter()
                .map(|name| RulePack::builtin(name).unwrap())
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn ops_are_judged_by_the_pack_that_defines_their_collection() {
        let packs = builtin();
        let good = r#"{"action":"inspection","aircraft_registration":"N123AB","certificate_expiry":"2027-11-20","part_serial":"SN-1","performed_on":"2026-11-20","technician":"TECH-IA-4412","work_order":"WO-1"}"#;
        let judged = packs.judge(&op("maintenance_actions", Action::Append, good));
        assert_eq!(judged.state, State::Persisted);
        assert_eq!(
            (judged.pack.as_str(), judged.version.as_str()),
            ("mro", "1.0.0")
        );
        // A record the edge would have refused: named by field and rule.
        let bad = good.replace("WO-1", "work order one");
        let judged = packs.judge(&op("maintenance_actions", Action::Append, &bad));
        assert_eq!(judged.state, State::Rejected);
        assert_eq!(judged.violations[0].field, "work_order");
        assert_eq!(judged.violations[0].rule, "format");
        // A collection no active pack defines.
        let judged = packs.judge(&op("notes", Action::Append, "{}"));
        assert_eq!(judged.state, State::Rejected);
        assert_eq!(judged.violations[0].rule, "active_pack");
        // An entity put is judged by the fields it carries.
        let judged = packs.judge(&op("parts", Action::Put, r#"{"cycles":3}"#));
        assert_eq!(judged.state, State::Persisted, "{:?}", judged.violations);
        // The hub's own acts are its own.
        let mut act = op("hub_audit", Action::Append, "{}");
        act.draft.node = HUB_NODE.into();
        assert_eq!(packs.judge(&act).state, State::Persisted);
    }

    #[test]
    fn a_collection_is_defined_by_one_pack_only() {
        let twice = vec![
            RulePack::builtin("mro").unwrap(),
            RulePack::builtin("mro").unwrap(),
        ];
        assert!(Packs::new(twice).unwrap_err().contains("defined by both"));
        for state in [State::Persisted, State::Rejected, State::Quarantined] {
            assert_eq!(State::from_name(state.name()), Some(state));
        }
    }
}
