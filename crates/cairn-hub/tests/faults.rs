//! Faults are not verdicts (issue 10, items 2 and 3): every read and write
//! a push makes through the backend is failed in turn, and each time the
//! push fails as a storage fault, nothing is stored or quarantined, and the
//! retry gives exactly the answers and state of a run without faults.

mod common;

use cairn_core::chain::StreamHead;
use cairn_core::clock::ManualClock;
use cairn_core::identity::NodeIdentity;
use cairn_hub::memory::MemoryBackend;
use cairn_hub::signer::LogSigner;
use cairn_hub::{Hub, PushError, PushRequest, StorageError};
use cairn_proto::{OpStatus, PushResponse};
use std::sync::Arc;

const NOW_MS: u64 = 1_700_000_000_000;

fn hub() -> Hub<MemoryBackend> {
    let backend = MemoryBackend::new();
    for node in ["a", "b"] {
        backend.enroll(node, common::identity(node).public_key());
    }
    Hub::new(
        backend,
        LogSigner::new(NodeIdentity::from_seed("hub", [9; 32]), "test.hub".into()),
        Arc::new(ManualClock::at(NOW_MS)),
    )
}

fn author(node: &str) -> NodeIdentity {
    common::identity(node)
}

/// The next `count` ops of `node`'s `standard` stream after `head`, with
/// payloads tagged `tag`, signed at the last.
fn push(node: &str, head: &mut StreamHead, count: usize, tag: &str) -> PushRequest {
    common::push(node, head, count, tag)
}

/// A scenario: pushes applied first, then the group under test.
struct Scenario {
    name: &'static str,
    setup: Vec<PushRequest>,
    group: Vec<PushRequest>,
}

fn scenarios() -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    // A stream's first push, long enough to store tree nodes (16 leaves).
    let mut head = StreamHead::EMPTY;
    scenarios.push(Scenario {
        name: "first push of a stream",
        setup: vec![],
        group: vec![push("a", &mut head, 20, "x")],
    });
    // Duplicates and new ops in one push, after an earlier one.
    let mut head = StreamHead::EMPTY;
    let first = push("a", &mut head, 10, "x");
    let mut again = StreamHead::EMPTY;
    let overlap = push("a", &mut again, 25, "x");
    scenarios.push(Scenario {
        name: "duplicates then new ops",
        setup: vec![first],
        group: vec![overlap],
    });
    // Forged material: a payload that no longer matches its hash, and a
    // whole push whose signature is not the node's.
    let mut head = StreamHead::EMPTY;
    let mut forged = push("a", &mut head, 5, "x");
    let last = forged.ops.len() - 1;
    *forged.ops[last].last_mut().unwrap() ^= 1;
    let mut stranger = StreamHead::EMPTY;
    let mut unsigned = push("b", &mut stranger, 3, "y");
    unsigned.checkpoint = author("a").sign_checkpoint("standard", stranger.seq, stranger.hash);
    scenarios.push(Scenario {
        name: "forged material is quarantined",
        setup: vec![],
        group: vec![forged, unsigned],
    });
    // An equivocation: the node signs another history over held seqs.
    let mut head = StreamHead::EMPTY;
    let held = push("a", &mut head, 6, "x");
    let mut fork = StreamHead::EMPTY;
    let rewrite = push("a", &mut fork, 8, "other");
    scenarios.push(Scenario {
        name: "an equivocation holds the stream",
        setup: vec![held],
        group: vec![rewrite],
    });
    // A group: one refused push (not enrolled), one gap, one good push,
    // and a clock far ahead.
    let mut head = StreamHead::EMPTY;
    let mut stranger = push("a", &mut head, 2, "x");
    stranger.node = "nobody".into();
    let mut head = StreamHead::EMPTY;
    let _skipped = push("b", &mut head, 3, "y");
    let gap = push("b", &mut head, 2, "y");
    let mut head = StreamHead::EMPTY;
    let mut good = push("a", &mut head, 17, "x");
    good.node_time_ms = Some(NOW_MS + 3_600_000);
    scenarios.push(Scenario {
        name: "a group with refusals, a gap and a fast clock",
        setup: vec![],
        group: vec![stranger, gap, good],
    });
    scenarios
}

type Answers = Vec<Result<PushResponse, String>>;

fn answers(hub: &Hub<MemoryBackend>, group: &[PushRequest]) -> Answers {
    hub.push_group(group.to_vec())
        .into_iter()
        .map(|answer| answer.map_err(|refusal| refusal.to_string()))
        .collect()
}

fn prepared(scenario: &Scenario) -> Hub<MemoryBackend> {
    let hub = hub();
    for request in &scenario.setup {
        hub.push(request.clone()).expect("the setup push goes in");
    }
    hub
}

#[test]
fn issue_10_3_every_failed_read_or_write_of_a_push_fails_it_and_stores_nothing() {
    for scenario in scenarios() {
        let name = scenario.name;
        let reference = prepared(&scenario);
        reference.backend().fail_call(None);
        let expected = answers(&reference, &scenario.group);
        let calls = reference.backend().calls();
        let after = reference.backend().state();
        assert!(calls.len() > 5, "{name}: {calls:?}");
        for n in 1..=calls.len() as u64 {
            let hub = prepared(&scenario);
            let before = hub.backend().state();
            hub.backend().fail_call(Some(n));
            let failed = hub.push_group(scenario.group.clone());
            let call = calls[n as usize - 1];
            for answer in &failed {
                assert!(
                    matches!(answer, Err(PushError::Store(StorageError::Fault(_)))),
                    "{name}: failing call {n} ({call}) gave {answer:?}"
                );
            }
            assert_eq!(
                hub.backend().state(),
                before,
                "{name}: failing call {n} ({call}) left something stored"
            );
            hub.backend().fail_call(None);
            assert_eq!(
                answers(&hub, &scenario.group),
                expected,
                "{name}: the retry after failing call {n} ({call}) answered differently"
            );
            assert_eq!(hub.backend().state(), after, "{name}: retry after call {n}");
        }
    }
}

/// The scenarios do what they say without faults, so the test above covers
/// every path: accepted, duplicate, quarantined, equivocation, refusals.
#[test]
fn the_fault_scenarios_cover_every_verdict() {
    let statuses = |answers: &Answers| -> Vec<OpStatus> {
        answers
            .iter()
            .flatten()
            .flat_map(|answer| answer.results.iter().map(|result| result.status))
            .collect()
    };
    let scenarios = scenarios();
    let run = |index: usize| {
        let hub = prepared(&scenarios[index]);
        let answers = answers(&hub, &scenarios[index].group);
        (answers, hub.backend().state())
    };
    let (first, _) = run(0);
    assert!(
        statuses(&first)
            .iter()
            .all(|status| *status == OpStatus::Accepted)
    );
    let (overlap, _) = run(1);
    assert_eq!(
        statuses(&overlap)
            .iter()
            .filter(|s| **s == OpStatus::Duplicate)
            .count(),
        10
    );
    let (forged, state) = run(2);
    assert!(statuses(&forged).contains(&OpStatus::Quarantined));
    assert!(state.log.is_empty(), "nothing of a forged push is logged");
    assert_eq!(state.quarantine.len(), 5 + 3);
    let (equivocation, state) = run(3);
    assert!(equivocation[0].as_ref().unwrap().held);
    assert!(state.alerts.iter().any(|alert| alert.0 == "equivocation"));
    let (group, state) = run(4);
    assert!(group[0].as_ref().unwrap_err().contains("not enrolled"));
    assert!(group[1].as_ref().unwrap_err().contains("push from seq 1"));
    assert_eq!(group[2].as_ref().unwrap().receipt.as_ref().unwrap().end, 17);
    assert!(state.alerts.iter().any(|alert| alert.0 == "clock_skew"));
}

/// One read of the hub, its answer or its error, as text.
type Read<'a> = dyn Fn() -> Result<String, String> + 'a;

/// Reads are held to the same rule: a pull, a snapshot page or a node's
/// own ops whose every read fails in turn is a storage fault each time,
/// never a refusal of the node ("not enrolled") or a short page.
#[test]
fn issue_10_3_every_failed_read_of_a_pull_is_a_fault_not_an_answer() {
    let hub = hub();
    let reader = NodeIdentity::from_seed("r", [3; 32]);
    hub.backend().enroll("r", reader.public_key());
    hub.backend()
        .grant("r", [("site".to_string(), "x".to_string())].into());
    for node in ["a", "r"] {
        let key = hub.backend().state().nodes[node];
        let tx = cairn_hub::backend::HubBackend::write(hub.backend()).unwrap();
        let act =
            serde_json::json!({"action": "enroll", "node": node, "public_key": hex::encode(key)});
        let seq = cairn_hub::audit::append_act(&tx, hub.signer(), &act, NOW_MS).unwrap();
        cairn_hub::backend::LogTx::commit(tx).unwrap();
        hub.backend().record_enrollment(node, key, seq);
    }
    let mut head = StreamHead::EMPTY;
    hub.push(push("a", &mut head, 20, "x")).unwrap();
    let query = cairn_hub::pull::SnapshotQuery::default();
    let reads: [(&str, Box<Read<'_>>); 4] = [
        (
            "pull",
            Box::new(|| {
                hub.pull("r", 0, 1_000)
                    .map(|page| format!("{page:?}"))
                    .map_err(|e| format!("{e:?}"))
            }),
        ),
        (
            "snapshot",
            Box::new(|| {
                hub.snapshot("r", &query)
                    .map(|page| format!("{:?}", page.ops))
                    .map_err(|e| format!("{e:?}"))
            }),
        ),
        (
            "own ops",
            Box::new(|| {
                hub.own_ops("a", "standard", 1, 1_000)
                    .map(|own| format!("{own:?}"))
                    .map_err(|e| format!("{e:?}"))
            }),
        ),
        (
            "status",
            Box::new(|| {
                hub.status()
                    .map(|status| format!("{status:?}"))
                    .map_err(|e| format!("{e:?}"))
            }),
        ),
    ];
    for (what, read) in reads {
        hub.backend().fail_call(None);
        let expected = read().unwrap();
        let calls = hub.backend().calls();
        assert!(calls.len() > 3, "{what}: {calls:?}");
        for n in 1..=calls.len() as u64 {
            hub.backend().fail_call(Some(n));
            let failed = read().unwrap_err();
            assert!(
                failed.contains("Fault(\"injected fault"),
                "{what}: failing call {n} ({}) gave {failed}",
                calls[n as usize - 1]
            );
        }
        hub.backend().fail_call(None);
        assert_eq!(read().unwrap(), expected, "{what}: the retry");
    }
}

/// One administrative act on a hub, its outcome as text.
type Act = fn(&Hub<MemoryBackend>) -> Result<String, String>;

/// The hub's own acts too: enrolling (directly and by token), re-keying,
/// voiding tokens, revoking a label and resolving a held stream each fail
/// whole on any failed call, and the retry does what a run without faults
/// does.
#[test]
fn issue_10_3_every_failed_call_of_an_administrative_act_stores_nothing() {
    fn text<T: std::fmt::Debug, E: std::fmt::Debug>(
        result: Result<T, E>,
    ) -> Result<String, String> {
        result
            .map(|value| format!("{value:?}"))
            .map_err(|error| format!("{error:?}"))
    }
    let r = NodeIdentity::from_seed("r", [3; 32]).public_key();
    let site: std::collections::BTreeMap<String, String> =
        [("site".to_string(), "x".to_string())].into();
    let acts: [(&str, Act); 6] = [
        ("enroll", |hub| {
            let r = NodeIdentity::from_seed("r", [3; 32]).public_key();
            text(hub.enroll("r", r, &Default::default(), false, "test"))
        }),
        ("rekey", |hub| {
            let other = NodeIdentity::from_seed("a", [7; 32]).public_key();
            text(hub.enroll("a", other, &Default::default(), true, "test"))
        }),
        ("token", |hub| {
            text(hub.create_enrollment("secret", "s", &Default::default(), 60_000, false))
        }),
        ("redeem", |hub| {
            let s = NodeIdentity::from_seed("t", [4; 32]).public_key();
            text(hub.redeem_enrollment("t", s, "ticket"))
        }),
        ("revoke label", |hub| {
            text(hub.revoke_scope("r", "site", "x"))
        }),
        ("resolve", |hub| {
            text(hub.resolve("a", "standard", "kept the hub's version", "test"))
        }),
    ];
    let setup = || {
        let hub = hub();
        hub.enroll("r", r, &site, false, "setup").unwrap();
        hub.create_enrollment("ticket", "t", &site, 60_000, false)
            .unwrap();
        // Hold a:standard with an equivocation.
        let mut head = StreamHead::EMPTY;
        hub.push(push("a", &mut head, 3, "x")).unwrap();
        let mut fork = StreamHead::EMPTY;
        assert!(hub.push(push("a", &mut fork, 3, "other")).unwrap().held);
        hub
    };
    for (what, act) in acts {
        let reference = setup();
        reference.backend().fail_call(None);
        let expected = act(&reference).unwrap_or_else(|error| panic!("{what}: {error}"));
        let calls = reference.backend().calls();
        let after = reference.backend().state();
        for n in 1..=calls.len() as u64 {
            let hub = setup();
            let before = hub.backend().state();
            hub.backend().fail_call(Some(n));
            let failed = act(&hub).unwrap_err();
            let call = calls[n as usize - 1];
            assert!(
                failed.contains("Fault(\"injected fault"),
                "{what}: failing call {n} ({call}) gave {failed}"
            );
            assert_eq!(hub.backend().state(), before, "{what}: call {n} ({call})");
            hub.backend().fail_call(None);
            assert_eq!(act(&hub).unwrap(), expected, "{what}: retry after call {n}");
            assert_eq!(hub.backend().state(), after, "{what}: retry after call {n}");
        }
    }
}
