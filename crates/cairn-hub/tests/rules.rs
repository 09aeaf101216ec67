//! The hub's compliance rules, table by table, with records drawn from the
//! seeds: an MRO repair station's maintenance actions against its
//! authorized-technician registry (seeds 000, 001) and a pharmacy's
//! Schedule II dispensing with its second pharmacist (seed 003).
//!
//! Each case feeds ops to the judge in log order, against a scratch ledger,
//! and names what the verdict must be.

use cairn_core::chain::StreamHead;
use cairn_core::names::HUB_NODE;
use cairn_core::op::{Action, Op, OpDraft};
use cairn_hub::comply::judge::Logged;
use cairn_hub::comply::{Ledger, Outcome, Packs, ScratchLedger, State};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const DAY: u64 = 86_400_000;
const HOUR: u64 = 3_600_000;
/// 2026-11-20, 08:00 UTC.
const NOV_20: u64 = 1_795_593_600_000 + 8 * HOUR;

/// Feeds ops to the judge as the log would: leaf by leaf, each node's
/// stream chained.
struct Log {
    packs: Packs,
    ledger: ScratchLedger<'static>,
    heads: BTreeMap<String, StreamHead>,
    leaf: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            packs: Packs::builtin(),
            ledger: ScratchLedger::default(),
            heads: BTreeMap::new(),
            leaf: 0,
        }
    }

    /// Judges a write of `node` at `written_ms`, logged at `received_ms`.
    #[allow(clippy::too_many_arguments)]
    fn write(
        &mut self,
        node: &str,
        collection: &str,
        action: Action,
        key: &str,
        data: Value,
        written_ms: u64,
        received_ms: u64,
    ) -> Outcome {
        self.write_seeing(
            node,
            collection,
            action,
            key,
            data,
            (written_ms, received_ms),
            Default::default(),
        )
    }

    /// [`Log::write`] by a writer that had seen `base` of the entity.
    #[allow(clippy::too_many_arguments)]
    fn write_seeing(
        &mut self,
        node: &str,
        collection: &str,
        action: Action,
        key: &str,
        data: Value,
        (written_ms, received_ms): (u64, u64),
        base: cairn_core::op::VersionVector,
    ) -> Outcome {
        let head = self
            .heads
            .entry(node.to_string())
            .or_insert(StreamHead::EMPTY);
        let scope = match collection {
            "dispensing" | "dispense_verifications" => {
                [("pharmacy".to_string(), "p1".to_string())].into()
            }
            "authorized_technicians" => BTreeMap::new(),
            _ => [("site".to_string(), "hangar-2".to_string())].into(),
        };
        let (_, bytes) = head.append(OpDraft {
            node: node.into(),
            stream: "standard".into(),
            hlc: cairn_core::hlc::Hlc {
                wall_ms: written_ms,
                counter: 0,
            },
            collection: collection.into(),
            action,
            key: key.into(),
            scope,
            base,
            ref_hash: None,
            reason: String::new(),
            payload: cairn_core::canonical::to_canonical_bytes(&data).unwrap(),
        });
        let op = Op::decode(&bytes).unwrap();
        let leaf = self.leaf;
        self.leaf += 1;
        self.ledger.keep_op(leaf, &bytes);
        self.packs
            .judge(
                Logged {
                    leaf,
                    op: &op,
                    received_ms,
                },
                &self.ledger,
            )
            .unwrap()
    }

    /// A maintenance action of node `hangar` written at `at`, logged at once.
    fn action(&mut self, record: Value, at: u64) -> Outcome {
        self.action_logged(record, at, at + 1_000)
    }

    fn action_logged(&mut self, record: Value, at: u64, logged: u64) -> Outcome {
        self.write(
            "hangar",
            "maintenance_actions",
            Action::Append,
            "",
            record,
            at,
            logged,
        )
    }

    /// The hub puts (or with `None`, revokes) a registry entry.
    fn registry(&mut self, technician: &str, entry: Option<Value>, at: u64) -> Outcome {
        let (action, data) = match entry {
            Some(data) => (Action::Put, data),
            None => (Action::Delete, json!({})),
        };
        self.write(
            HUB_NODE,
            "authorized_technicians",
            action,
            technician,
            data,
            at,
            at,
        )
    }
}

fn technician(expiry: &str) -> Value {
    json!({
        "name": "Dana Okafor",
        "certificate": "IA",
        "certificate_number": "IA-3309121",
        "certificate_expiry": expiry,
        "authorized_actions": ["inspection", "repair", "return_to_service"],
    })
}

fn maintenance(work_order: &str, action: &str, performed_on: &str) -> Value {
    json!({
        "work_order": work_order,
        "aircraft_registration": "N123AB",
        "part_serial": "SN-88213",
        "technician": "TECH-IA-4412",
        "performed_on": performed_on,
        "certificate_expiry": "2027-06-30",
        "action": action,
        "description": "Borescope inspection of the HPT stage 1 blades",
    })
}

fn with(mut record: Value, field: &str, value: Value) -> Value {
    record[field] = value;
    record
}

/// The rules a verdict cites, sorted.
fn rules(outcome: &Outcome) -> Vec<&str> {
    let mut rules: Vec<&str> = outcome
        .judgement
        .violations
        .iter()
        .map(|violation| violation.rule.as_str())
        .collect();
    rules.sort();
    rules
}

/// A registry with TECH-IA-4412 valid until `expiry`, written on Nov 1.
fn log_with_technician(expiry: &str) -> Log {
    let mut log = Log::new();
    let put = log.registry("TECH-IA-4412", Some(technician(expiry)), NOV_20 - 19 * DAY);
    assert_eq!(put.judgement.state, State::Persisted, "{:?}", put.judgement);
    log
}

#[test]
fn duplicates_inside_and_outside_the_window_and_the_same_record_twice() {
    // (second record, written how long after the first, rules it breaks)
    let cases: [(Value, u64, &[&str]); 4] = [
        // The same record twice: its payload repeats (unique) and so does
        // its idempotency key, within the window.
        (
            maintenance("WO-7001", "inspection", "2026-11-20"),
            HOUR,
            &["idempotency", "unique"],
        ),
        // The same work order, part and technician an hour later with
        // other words: one request sent twice.
        (
            with(
                maintenance("WO-7001", "inspection", "2026-11-20"),
                "description",
                json!("re-sent"),
            ),
            HOUR,
            &["idempotency"],
        ),
        // The same key two days later: outside the 24 h window, new work.
        (maintenance("WO-7001", "repair", "2026-11-22"), 2 * DAY, &[]),
        // Another work order: unrelated.
        (
            maintenance("WO-7002", "inspection", "2026-11-20"),
            HOUR,
            &[],
        ),
    ];
    for (index, (second, after, broken)) in cases.into_iter().enumerate() {
        let mut log = log_with_technician("2027-06-30");
        let first = log.action(maintenance("WO-7001", "inspection", "2026-11-20"), NOV_20);
        assert_eq!(
            first.judgement.state,
            State::Persisted,
            "{:?}",
            first.judgement
        );
        let outcome = log.action(second, NOV_20 + after);
        assert_eq!(
            rules(&outcome),
            broken.to_vec(),
            "case {index}: {:?}",
            outcome.judgement
        );
        let expected = if broken.is_empty() {
            State::Persisted
        } else {
            State::Rejected
        };
        assert_eq!(outcome.judgement.state, expected, "case {index}");
        if !broken.is_empty() {
            assert_eq!(outcome.reviews.len(), 1, "a rejection is a review item");
            assert_eq!(outcome.reviews[0].kind, "rejection");
            assert!(
                outcome.judgement.reason().contains("leaf 1"),
                "names the first record"
            );
        }
    }
}

#[test]
fn technicians_are_checked_against_the_registry_by_the_day_they_wrote() {
    // (registry before the record, record written, rules it breaks)
    type Setup = fn(&mut Log);
    let cases: [(&str, Setup, Value, &[&str]); 6] = [
        (
            "registered and valid",
            |_| {},
            maintenance("WO-1", "inspection", "2026-11-20"),
            &[],
        ),
        (
            "unknown technician",
            |_| {},
            with(
                maintenance("WO-1", "inspection", "2026-11-20"),
                "technician",
                json!("TECH-XX-0001"),
            ),
            &["reference"],
        ),
        (
            "revoked",
            |log| {
                log.registry("TECH-IA-4412", None, NOV_20 - DAY);
            },
            maintenance("WO-1", "inspection", "2026-11-20"),
            &["revoked"],
        ),
        (
            "certificate expired before the write",
            |log| {
                log.registry("TECH-IA-4412", Some(technician("2026-11-19")), NOV_20 - DAY);
            },
            maintenance("WO-1", "inspection", "2026-11-20"),
            &["expired"],
        ),
        (
            "not authorized for the action",
            |_| {},
            maintenance("WO-1", "overhaul", "2026-11-20"),
            &["authorized"],
        ),
        (
            "the record's own certificate expiry before the write",
            |_| {},
            with(
                maintenance("WO-1", "inspection", "2026-11-10"),
                "certificate_expiry",
                json!("2026-11-15"),
            ),
            &["valid_at_write"],
        ),
    ];
    for (name, setup, record, broken) in cases {
        let mut log = log_with_technician("2027-06-30");
        setup(&mut log);
        let outcome = log.action(record, NOV_20);
        assert_eq!(
            rules(&outcome),
            broken.to_vec(),
            "{name}: {:?}",
            outcome.judgement
        );
    }
}

#[test]
fn offline_work_is_judged_by_when_it_was_written_not_when_it_arrived() {
    // The certificate expires on Nov 25; the hangar was offline and its
    // record of Nov 20 reaches the hub on Dec 10. Not rejected for that.
    let mut log = log_with_technician("2026-11-25");
    let late = log.action_logged(
        maintenance("WO-1", "inspection", "2026-11-20"),
        NOV_20,
        NOV_20 + 20 * DAY,
    );
    assert_eq!(
        late.judgement.state,
        State::Persisted,
        "{:?}",
        late.judgement
    );
    assert!(late.reviews.is_empty());
    // A record written on Nov 26, after the expiry, is.
    let after = log.action(
        maintenance("WO-2", "inspection", "2026-11-26"),
        NOV_20 + 6 * DAY,
    );
    assert_eq!(rules(&after), ["expired"]);
}

#[test]
fn only_the_hub_writes_the_registry() {
    let mut log = Log::new();
    let outcome = log.write(
        "hangar",
        "authorized_technicians",
        Action::Put,
        "TECH-IA-9999",
        technician("2030-01-01"),
        NOV_20,
        NOV_20,
    );
    assert_eq!(rules(&outcome), ["written_by"]);
    // And the entry it tried to add does not exist.
    assert_eq!(
        log.ledger
            .registry_entry("authorized_technicians", "TECH-IA-9999")
            .unwrap(),
        None
    );
}

#[test]
fn a_release_to_service_that_misses_its_deadline_is_a_review_item_not_a_rejection() {
    // (action, days between the write and the hub, review raised)
    let cases = [
        ("return_to_service", 29, false),
        ("return_to_service", 31, true),
        // The 30-day rule is for releases to service only.
        ("inspection", 45, false),
    ];
    for (action, days, raised) in cases {
        let mut log = log_with_technician("2027-06-30");
        let outcome = log.action_logged(
            maintenance("WO-9", action, "2026-11-20"),
            NOV_20,
            NOV_20 + days * DAY,
        );
        assert_eq!(
            outcome.judgement.state,
            State::Persisted,
            "{action} after {days} days"
        );
        let kinds: Vec<&str> = outcome.reviews.iter().map(|review| review.kind).collect();
        assert_eq!(
            kinds == ["missed_deadline"],
            raised,
            "{action} after {days} days: {kinds:?}"
        );
    }
}

fn dispense(schedule: &str, pharmacist: &str) -> Value {
    json!({
        "ndc": "00093-7180-01",
        "quantity": 30,
        "dea_schedule": schedule,
        "prescription_id": "RX-55102",
        "pharmacist_npi": pharmacist,
        "dispensed_at": "2026-11-20T08:00:00Z",
        "patient_ref": "PT-0042",
    })
}

fn verification(pharmacist: &str) -> Value {
    json!({
        "prescription_id": "RX-55102",
        "pharmacist_npi": pharmacist,
        "verified_at": "2026-11-20T10:00:00Z",
    })
}

#[test]
fn schedule_two_needs_a_second_different_pharmacist_in_time() {
    // (schedule, verifier and hours after the dispense, still awaited at +25 h)
    type Verifier = Option<(&'static str, u64)>;
    let cases: [(&str, Verifier, bool); 5] = [
        ("II", Some(("2222222222", 2)), false),
        // The same pharmacist cannot verify their own dispense.
        ("II", Some(("1111111111", 2)), true),
        // Too late: after the 24 h window.
        ("II", Some(("2222222222", 30)), true),
        ("II", None, true),
        // Schedule IV needs no second pharmacist.
        ("IV", None, false),
    ];
    for (schedule, verifier, awaited) in cases {
        let mut log = Log::new();
        let dispensed = log.write(
            "till-1",
            "dispensing",
            Action::Append,
            "",
            dispense(schedule, "1111111111"),
            NOV_20,
            NOV_20,
        );
        assert_eq!(
            dispensed.judgement.state,
            State::Persisted,
            "{:?}",
            dispensed.judgement
        );
        if let Some((npi, hours)) = verifier {
            let at = NOV_20 + hours * HOUR;
            let verified = log.write(
                "till-2",
                "dispense_verifications",
                Action::Append,
                "",
                verification(npi),
                at,
                at,
            );
            assert_eq!(
                verified.judgement.state,
                State::Persisted,
                "{:?}",
                verified.judgement
            );
            assert_eq!(verified.fulfils == [0], !awaited, "{schedule} {verifier:?}");
        }
        let overdue = log.ledger.overdue(NOV_20 + 25 * HOUR, 10).unwrap();
        assert_eq!(!overdue.is_empty(), awaited, "{schedule} {verifier:?}");
        if awaited {
            assert_eq!(overdue[0].rule, "second_pharmacist");
        }
    }
}

#[test]
fn sensitive_values_never_appear_in_verdicts() {
    let mut log = Log::new();
    // A bad prescription id: the message says which field and rule, not
    // the value.
    let bad = with(
        dispense("II", "1111111111"),
        "prescription_id",
        json!("PATIENT-SECRET-42"),
    );
    let outcome = log.write(
        "till-1",
        "dispensing",
        Action::Append,
        "",
        bad,
        NOV_20,
        NOV_20,
    );
    assert_eq!(rules(&outcome), ["format"]);
    let text = format!("{:?} {:?}", outcome.judgement, outcome.reviews);
    assert!(!text.contains("PATIENT-SECRET-42"), "{text}");
}

#[test]
fn a_collection_no_pack_defines_is_rejected_and_hub_acts_are_its_own() {
    let mut log = Log::new();
    let outcome = log.write(
        "hangar",
        "notes",
        Action::Append,
        "",
        json!({"n": 1}),
        NOV_20,
        NOV_20,
    );
    assert_eq!(rules(&outcome), ["active_pack"]);
    let act = log.write(
        HUB_NODE,
        "hub_audit",
        Action::Append,
        "",
        json!({"action": "x"}),
        NOV_20,
        NOV_20,
    );
    assert_eq!(act.judgement.state, State::Persisted);
}

#[test]
fn concurrent_edits_open_a_conflict_review_and_a_write_that_saw_both_closes_it() {
    let mut log = Log::new();
    let key = "00093-7180-01";
    let stock = |description: &str, quantity: i64| json!({"ndc": key, "description": description, "quantity": quantity});
    // Two tills, offline, each edits the same stock without seeing the other.
    let a = log.write(
        "till-a",
        "inventory",
        Action::Put,
        key,
        stock("insulin pens", 10),
        NOV_20,
        NOV_20 + DAY,
    );
    assert!(a.reviews.is_empty(), "{:?}", a.reviews);
    let b = log.write(
        "till-b",
        "inventory",
        Action::Put,
        key,
        stock("insulin pen 3ml", -2),
        NOV_20 + HOUR,
        NOV_20 + DAY,
    );
    assert_eq!(
        b.judgement.state,
        State::Persisted,
        "a conflict is not a rejection"
    );
    let kinds: Vec<(&str, &str)> = b
        .reviews
        .iter()
        .map(|r| (r.kind, r.rule.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("conflict", "description")],
        "the counter merges, the text conflicts"
    );
    let message = &b.reviews[0].message;
    assert!(
        message.contains("\"insulin pens\" by till-a:standard:1")
            && message.contains("\"insulin pen 3ml\" by till-b:standard:1"),
        "both values side by side: {message}"
    );
    // A write that saw both (the hub's resolution, or a technician's)
    // closes it; nothing new is raised.
    let mut both = cairn_core::op::VersionVector::default();
    both.observe("till-a:standard", 1);
    both.observe("till-b:standard", 1);
    let chosen = log.write_seeing(
        HUB_NODE,
        "inventory",
        Action::Put,
        key,
        json!({"description": "insulin pen 3ml"}),
        (NOV_20 + 2 * DAY, NOV_20 + 2 * DAY),
        both,
    );
    assert!(chosen.reviews.is_empty(), "{:?}", chosen.reviews);
    let state: Value =
        serde_json::from_slice(&log.ledger.entity_state("inventory", key).unwrap().unwrap())
            .unwrap();
    assert_eq!(state["conflicts"], json!({}), "{state}");
    assert_eq!(state["fields"]["description"], "insulin pen 3ml");
    assert_eq!(state["fields"]["quantity"], 8, "both sales count");
}
