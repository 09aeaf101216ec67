//! The hub store's group commit: pushes applied together share one
//! transaction and one signed checkpoint, each with its own range receipt,
//! and a refused push in the group leaves nothing behind.

mod common;

use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::NodeIdentity;
use cairn_core::merkle;
use cairn_hub_sqlite::{HubStore, PushError, PushRequest};

/// The first `count` ops of `identity`'s stream, in one push.
fn batch(identity: &NodeIdentity, count: usize) -> PushRequest {
    let mut head = StreamHead::EMPTY;
    common::push_after(identity, &mut head, count, |_| "x")
}

#[test]
fn a_group_shares_one_checkpoint_and_a_refused_push_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let scopes = [("site".to_string(), "x".to_string())].into();
    let (a, b) = (
        NodeIdentity::from_seed("a", [1; 32]),
        NodeIdentity::from_seed("b", [2; 32]),
    );
    let ghost = NodeIdentity::from_seed("ghost", [3; 32]);
    hub.enroll("a", a.public_key(), &scopes).unwrap();
    hub.enroll("b", b.public_key(), &scopes).unwrap();
    let requests = [batch(&a, 3), batch(&ghost, 2), batch(&b, 4)];
    let mut answers = hub.push_group(requests.to_vec());
    assert!(matches!(answers[1], Err(PushError::UnknownNode(_))));
    let second = answers.remove(2).unwrap();
    let first = answers.remove(0).unwrap();
    assert_eq!(
        first.checkpoint, second.checkpoint,
        "one checkpoint per group"
    );
    let checkpoint =
        cairn_core::note::verify(&first.checkpoint, "test.hub", &hub.public_key()).unwrap();
    // Two enrollments (the hub's own audit ops) and 3 + 4 pushed ops.
    assert_eq!(checkpoint.size, 9, "the refused push took no leaves");
    for (answer, request) in [(&first, &requests[0]), (&second, &requests[2])] {
        let receipt = answer.receipt.as_ref().unwrap();
        let hashes = |hex: &[String]| -> Vec<Hash> {
            hex.iter().map(|h| Hash::from_hex(h).unwrap()).collect()
        };
        let proof = merkle::RangeProof {
            left: hashes(&receipt.left),
            right: hashes(&receipt.right),
        };
        let leaves: Vec<Hash> = request
            .ops
            .iter()
            .map(|op| merkle::leaf_hash(&cairn_core::op::Op::decode(op).unwrap().op_hash.0))
            .collect();
        merkle::verify_range(
            receipt.begin,
            &leaves,
            checkpoint.size,
            &proof,
            &checkpoint.root,
        )
        .unwrap();
    }
    // Pushed again, alone: duplicates, the log unchanged.
    let again = hub.push(requests[0].clone()).unwrap();
    assert!(again.results.iter().all(|r| r.status == "duplicate"));
    assert!(again.receipt.is_none());
    assert_eq!(hub.status().unwrap().log_size, 9);
}

#[test]
fn enrollments_and_revocations_are_ops_of_the_hub_in_its_own_log() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let a = NodeIdentity::from_seed("a", [1; 32]);
    let scopes = [("site".to_string(), "x".to_string())].into();
    hub.enroll("a", a.public_key(), &scopes).unwrap();
    assert!(hub.revoke("a", "site", "x").unwrap());
    // The hub's name is its own.
    let taken = hub.enroll("hub", a.public_key(), &scopes).unwrap_err();
    assert!(taken.to_string().contains("the hub's own"), "{taken}");
    assert!(
        hub.create_enrollment("hub", &scopes, 60_000, false)
            .is_err()
    );

    let status = hub.status().unwrap();
    assert_eq!(status.log_size, 2);
    assert_eq!(status.streams["hub:audit"], (2, false));
    // The ops chain, name the acts, and never reach a node's pull.
    let pulled = hub.pull("a", 0, 100).unwrap();
    assert!(pulled.ops.is_empty(), "audit ops are not handed to nodes");
    let snapshot = hub.snapshot("a", &Default::default()).unwrap();
    assert!(snapshot.ops.is_empty());
    let checkpoint =
        cairn_core::note::verify(&pulled.checkpoint, "test.hub", &hub.public_key()).unwrap();
    assert_eq!(checkpoint.size, 2);
    let export = hub.audit_ops().unwrap();
    let mut verifier =
        cairn_core::chain::StreamVerifier::new("hub", "audit", hub.public_key(), Vec::new());
    let mut actions = Vec::new();
    for (seq, bytes) in export.iter().enumerate() {
        let op = cairn_core::op::Op::decode(bytes).unwrap();
        verifier.push(seq as u64 + 1, op.op_hash, bytes).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&op.draft.payload).unwrap();
        actions.push(record["action"].as_str().unwrap().to_string());
    }
    assert_eq!(actions, ["enroll", "revoke"]);
}

/// The hub stores only subtrees of 16 leaves and up and rehashes smaller
/// ones from the log: every root, inclusion proof and consistency proof it
/// serves must still be those of the full RFC 6962 tree, at every size.
#[test]
fn proofs_from_a_partly_stored_tree_match_the_full_tree_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let scopes = [("site".to_string(), "x".to_string())].into();
    let author = NodeIdentity::from_seed("a", [1; 32]);
    let reader = NodeIdentity::from_seed("r", [2; 32]);
    hub.enroll("a", author.public_key(), &scopes).unwrap();
    hub.enroll("r", reader.public_key(), &scopes).unwrap();
    // One push per op, so the log passes through every size.
    let all = batch(&author, 70);
    let mut mirror = merkle::MemoryTree::default();
    let mut roots = Vec::new();
    // The two enrollments are the first leaves.
    let enrolled =
        cairn_core::note::verify(&hub.checkpoint().unwrap(), "test.hub", &hub.public_key())
            .unwrap();
    assert_eq!(enrolled.size, 2);
    for bytes in hub.audit_ops().unwrap() {
        let op = cairn_core::op::Op::decode(&bytes).unwrap();
        mirror.push(merkle::leaf_hash(&op.op_hash.0));
    }
    for (n, bytes) in all.ops.iter().enumerate() {
        let op = cairn_core::op::Op::decode(bytes).unwrap();
        let request = PushRequest {
            decoded: None,
            checkpoint_key: None,
            node_time_ms: None,
            built_on: None,
            node: "a".into(),
            stream: "standard".into(),
            ops: vec![bytes.clone()],
            checkpoint: author.sign_checkpoint("standard", op.seq, op.op_hash),
        };
        let answer = hub.push(request).unwrap();
        assert_eq!(answer.results[0].status, "accepted", "op {n}");
        mirror.push(merkle::leaf_hash(&op.op_hash.0));
        let signed =
            cairn_core::note::verify(&answer.checkpoint, "test.hub", &hub.public_key()).unwrap();
        assert_eq!(signed.size, mirror.size());
        assert_eq!(
            Some(signed.root),
            merkle::root(&mirror, mirror.size()),
            "size {}",
            signed.size
        );
        roots.push((signed.size, signed.root));
    }
    roots.insert(0, (2, merkle::root(&mirror, 2).unwrap()));
    for &(old, old_root) in &roots {
        for &(new, new_root) in &roots {
            if old > new || old == 0 {
                continue;
            }
            let proof: Vec<Hash> = hub
                .consistency_proof(old, new)
                .unwrap()
                .unwrap()
                .iter()
                .map(|hex| Hash::from_hex(hex).unwrap())
                .collect();
            merkle::verify_consistency(old, new, &old_root, &new_root, &proof)
                .unwrap_or_else(|error| panic!("{old} -> {new}: {error}"));
        }
    }
    // Inclusion proofs of every pulled op against the final checkpoint.
    let page = hub.pull("r", 0, 1_000).unwrap();
    assert_eq!(page.ops.len(), 70);
    let last = roots.last().unwrap();
    for item in &page.ops {
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &item.op).unwrap();
        let op = cairn_core::op::Op::decode(&bytes).unwrap();
        let proof: Vec<Hash> = item
            .proof
            .iter()
            .map(|hex| Hash::from_hex(hex).unwrap())
            .collect();
        merkle::verify_inclusion(
            item.leaf,
            last.0,
            &merkle::leaf_hash(&op.op_hash.0),
            &proof,
            &last.1,
        )
        .unwrap_or_else(|error| panic!("leaf {}: {error}", item.leaf));
    }
}

/// A push that starts past the stream's head (its predecessor has not
/// arrived) is refused whole, with the seq to push from, and leaves
/// nothing behind: no leaf, no quarantine. Once the predecessor is in, the
/// same push is accepted.
#[test]
fn a_push_past_the_head_is_refused_whole_until_its_predecessor_is_in() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let author = NodeIdentity::from_seed("a", [1; 32]);
    hub.enroll("a", author.public_key(), &Default::default())
        .unwrap();
    let all = batch(&author, 6);
    let split = |from: usize, to: usize| {
        let last = cairn_core::op::Op::decode(&all.ops[to - 1]).unwrap();
        PushRequest {
            decoded: None,
            checkpoint_key: None,
            node_time_ms: None,
            built_on: None,
            node: "a".into(),
            stream: "standard".into(),
            ops: all.ops[from..to].to_vec(),
            checkpoint: author.sign_checkpoint("standard", last.seq, last.op_hash),
        }
    };
    let before = hub.status().unwrap();
    match hub.push(split(3, 6)) {
        Err(PushError::Gap {
            stream,
            expected,
            got,
        }) => assert_eq!((stream.as_str(), expected, got), ("a:standard", 1, 4)),
        other => panic!("expected a gap, got {other:?}"),
    }
    let after = hub.status().unwrap();
    assert_eq!(after.log_size, before.log_size, "no leaf");
    assert_eq!(after.quarantined, 0, "nothing quarantined");
    assert!(
        !after.streams.contains_key("a:standard"),
        "not even the stream"
    );
    for (from, to) in [(0, 3), (3, 6)] {
        let answer = hub.push(split(from, to)).unwrap();
        assert!(
            answer
                .results
                .iter()
                .all(|result| result.status == "accepted"),
            "{answer:?}"
        );
    }
}

/// `HubStore::verify` finds an intact log intact, and a stored hash edited
/// in the database both as a hash the op does not have and as signed log
/// checkpoints whose roots the leaves no longer give.
#[test]
fn the_hub_verifies_its_log_and_names_an_edited_hash() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let author = NodeIdentity::from_seed("a", [1; 32]);
    {
        let hub = HubStore::open(dir.path()).unwrap();
        hub.enroll("a", author.public_key(), &Default::default())
            .unwrap();
        hub.push(batch(&author, 5)).unwrap();
        let report = hub.verify().unwrap();
        assert!(report.faults.is_empty(), "{:?}", report.faults);
        assert_eq!(
            (report.leaves, report.streams, report.origin_checkpoints),
            (6, 2, 2)
        );
        assert!(report.log_checkpoints >= 2);
    }
    let conn = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    conn.execute(
        "UPDATE log SET op_hash = zeroblob(32) WHERE node = 'a' AND seq = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let report = HubStore::open(dir.path()).unwrap().verify().unwrap();
    let faults = report.faults.join("\n");
    assert!(
        faults.contains("a:standard seq 2): the op hashes to"),
        "{faults}"
    );
    assert!(faults.contains("its root is not the tree"), "{faults}");

    // A leaf removed: the hole and the chain's gap are both named.
    let conn = rusqlite::Connection::open(dir.path().join("hub.db")).unwrap();
    conn.execute("DELETE FROM log WHERE node = 'a' AND seq = 4", [])
        .unwrap();
    drop(conn);
    let report = HubStore::open(dir.path()).unwrap().verify().unwrap();
    let faults = report.faults.join("\n");
    assert!(faults.contains("the log has a hole"), "{faults}");
    assert!(
        faults.contains("a:standard seq 5: expected seq 4"),
        "{faults}"
    );
}

/// A caller's word that the checkpoint verified counts only for the key
/// the hub holds for the node: a checkpoint signed by another key, vouched
/// for under that key, is still checked, quarantined and kept.
#[test]
fn a_checkpoint_vouched_for_under_another_key_is_checked_again() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let scopes = [("site".to_string(), "x".to_string())].into();
    let a = NodeIdentity::from_seed("a", [1; 32]);
    let rogue = NodeIdentity::from_seed("a", [9; 32]);
    hub.enroll("a", a.public_key(), &scopes).unwrap();
    let mut forged = batch(&a, 2);
    forged.checkpoint = rogue.sign_checkpoint("standard", 2, forged.checkpoint.head);
    forged.checkpoint_key = Some(rogue.public_key());
    let answer = hub.push(forged).unwrap();
    assert!(
        answer
            .results
            .iter()
            .all(|result| result.status == "quarantined"),
        "{:?}",
        answer.results
    );
    assert_eq!(
        answer.results[0].reason.as_deref(),
        Some("checkpoint signature does not verify with the node's key")
    );
    assert_eq!(hub.status().unwrap().quarantined, 2);
    // Vouched for under the node's own key, a good checkpoint is taken.
    let mut good = batch(&a, 2);
    good.checkpoint_key = Some(a.public_key());
    let answer = hub.push(good).unwrap();
    assert!(
        answer
            .results
            .iter()
            .all(|result| result.status == "accepted")
    );
}

/// Pulls read the log's size, its leaves and their proofs from one
/// snapshot: a push that commits in between is never reported as damage
/// (issue 9, item 20: "no proof for leaf N" about 2 in 100 concurrent syncs).
#[test]
fn issue_9_20_a_pull_racing_pushes_reads_one_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = std::sync::Arc::new(HubStore::open(dir.path()).unwrap());
    let author = NodeIdentity::from_seed("a", [1; 32]);
    let reader = NodeIdentity::from_seed("r", [2; 32]);
    let scopes: std::collections::BTreeMap<String, String> =
        [("site".to_string(), "x".to_string())].into();
    hub.enroll("a", author.public_key(), &scopes).unwrap();
    hub.enroll("r", reader.public_key(), &scopes).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pusher = {
        let (hub, done) = (hub.clone(), done.clone());
        std::thread::spawn(move || {
            let mut head = StreamHead::EMPTY;
            for _ in 0..400 {
                hub.push(common::push_after(&author, &mut head, 1, |_| "x"))
                    .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut pulls = 0;
    while !done.load(std::sync::atomic::Ordering::SeqCst) && pulls < 100_000 {
        let page = hub
            .pull("r", 0, 1_000)
            .expect("a pull never meets a half-seen push");
        let note =
            cairn_core::note::verify(&page.checkpoint, "test.hub", &hub.public_key()).unwrap();
        for item in &page.ops {
            let bytes =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &item.op)
                    .unwrap();
            let op = cairn_core::op::Op::decode(&bytes).unwrap();
            let proof: Vec<Hash> = item
                .proof
                .iter()
                .map(|hash| Hash::from_hex(hash).unwrap())
                .collect();
            cairn_core::merkle::verify_inclusion(
                item.leaf,
                note.size,
                &cairn_core::merkle::leaf_hash(&op.op_hash.0),
                &proof,
                &note.root,
            )
            .unwrap();
        }
        pulls += 1;
    }
    pusher.join().unwrap();
    assert!(pulls > 10, "the pulls ran beside the pushes ({pulls})");
}

/// A fault is never a verdict (issue 10, item 3; STYLE 31): a held op the
/// hub's store cannot read fails the push, and nothing of the node's is
/// quarantined for it. (It used to read as "below the head but not held"
/// and quarantine a good op for good.)
#[test]
fn issue_10_3_a_held_op_the_store_cannot_read_fails_the_push_and_quarantines_nothing() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let author = NodeIdentity::from_seed("a", [1; 32]);
    hub.enroll("a", author.public_key(), &Default::default())
        .unwrap();
    let mut head = StreamHead::EMPTY;
    let first = common::push_after(&author, &mut head, 3, |_| "x");
    hub.push(first.clone()).unwrap();
    // The row of seq 2 out of the store's sight (as a storage fault would
    // hide it); the tree and every other row intact.
    rusqlite::Connection::open(dir.path().join("hub.db"))
        .unwrap()
        .execute("UPDATE log SET seq = 1002 WHERE seq = 2 AND node = 'a'", [])
        .unwrap();
    let retried = hub.push(first).unwrap_err();
    assert!(matches!(retried, PushError::Store(_)), "{retried:?}");
    assert_eq!(hub.status().unwrap().quarantined, 0);
}

/// A tree node the hub cannot read is a storage fault, named as one, not
/// damage (issue 10, item 3): the tree reader used to turn every SQL error
/// into "missing" and report "stored data is damaged: no proof for leaf".
#[test]
fn issue_10_3_a_tree_read_that_fails_is_a_fault_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let author = NodeIdentity::from_seed("a", [1; 32]);
    let reader = NodeIdentity::from_seed("r", [2; 32]);
    let scopes: std::collections::BTreeMap<String, String> =
        [("site".to_string(), "x".to_string())].into();
    hub.enroll("a", author.public_key(), &scopes).unwrap();
    hub.enroll("r", reader.public_key(), &scopes).unwrap();
    let mut head = StreamHead::EMPTY;
    // Enough leaves that proofs need stored tree nodes (16 and up).
    hub.push(common::push_after(&author, &mut head, 40, |_| "x"))
        .unwrap();
    assert!(hub.pull("r", 0, 1_000).is_ok());
    rusqlite::Connection::open(dir.path().join("hub.db"))
        .unwrap()
        .execute_batch("ALTER TABLE tree RENAME TO tree_elsewhere")
        .unwrap();
    let fault = hub.pull("r", 0, 1_000).unwrap_err();
    let said = fault.to_string();
    assert!(
        said.contains("no such table") && !said.contains("damaged"),
        "{said}"
    );
}
