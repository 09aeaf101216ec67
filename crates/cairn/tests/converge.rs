//! Convergence through a real hub: two pharmacy tills edit the same stock
//! offline, sync, and end with identical state (the counter takes both sales,
//! a concurrent description edit leaves a conflict record), while a hangar
//! node granted other scopes receives none of it.

mod common;

use common::{Edge, cairn, enrolled_node, ok};
use serde_json::json;
use std::path::Path;

fn sync(dir: &Path, hub: &Edge) -> serde_json::Value {
    ok(&cairn(dir, &["--json", "sync", "--hub", &hub.url]))
}

fn put(dir: &Path, data: serde_json::Value) {
    ok(&cairn(
        dir,
        &[
            "--json",
            "record",
            "add",
            "inventory",
            &data.to_string(),
            "--key",
            "00002-1433-80",
        ],
    ));
}

#[test]
fn two_offline_tills_converge_through_the_hub_and_scopes_hold() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let till_a = enrolled_node(work.path(), &hub_dir, "till-a", "pharmacy=main-st");
    let till_b = enrolled_node(work.path(), &hub_dir, "till-b", "pharmacy=main-st");
    let hangar = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    let hub = Edge::start_hub(&hub_dir);

    put(
        &till_a,
        json!({"ndc": "00002-1433-80", "quantity": 100, "description": "insulin pens"}),
    );
    // Last in till-a's push, a record of another pharmacy, which till-b
    // may not see: till-b proves the op it pulls against till-a's signed
    // checkpoint through this one's header, never receiving its payload.
    ok(&cairn(
        &till_a,
        &[
            "--json",
            "record",
            "add",
            "inventory",
            &json!({"ndc": "00169-7501-11", "quantity": 7}).to_string(),
            "--key",
            "00169-7501-11",
            "--scope",
            "pharmacy=elm-st",
        ],
    ));
    sync(&till_a, &hub);
    let pulled = sync(&till_b, &hub);
    assert_eq!(pulled["pulled"]["applied"], 1, "{pulled}");
    assert_eq!(pulled["pulled"]["origins_verified"], 1, "{pulled}");
    // till-a's checkpoint, and the hub's over the act that enrolled its key.
    assert_eq!(pulled["pulled"]["origin_checkpoints"], 2, "{pulled}");
    assert_eq!(
        cairn(&till_b, &["record", "get", "inventory", "00169-7501-11"])
            .status
            .code(),
        Some(6),
        "the other pharmacy's record stays out"
    );

    // Offline on both tills: two sales and two different descriptions.
    put(
        &till_a,
        json!({"quantity": -3, "description": "insulin pens, fridge 1"}),
    );
    put(
        &till_b,
        json!({"quantity": -2, "description": "insulin pens, fridge 2"}),
    );
    sync(&till_a, &hub);
    sync(&till_b, &hub);
    sync(&till_a, &hub);

    let get = |dir: &Path| {
        ok(&cairn(
            dir,
            &["--json", "record", "get", "inventory", "00002-1433-80"],
        ))
    };
    let (a, b) = (get(&till_a), get(&till_b));
    assert_eq!(a["fields"]["quantity"], 95, "both sales count: {a}");
    assert_eq!(a["fields"], b["fields"]);
    assert_eq!(a["conflicts"], b["conflicts"]);
    assert_eq!(a["version"], b["version"]);
    assert_eq!(
        a["conflicts"]["description"].as_array().map(Vec::len),
        Some(2),
        "a conflict record holds both values: {a}"
    );

    // The hangar is granted another scope: nothing of the pharmacy reaches it.
    let report = sync(&hangar, &hub);
    assert_eq!(report["pulled"]["applied"], 0);
    assert_eq!(
        cairn(&hangar, &["record", "get", "inventory", "00002-1433-80"])
            .status
            .code(),
        Some(6)
    );

    // The hub revokes till-b's pharmacy scope: at its next sync till-b
    // purges what it pulled under it; its own writes stay.
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "revoke",
            "till-b",
            "--scope",
            "pharmacy=main-st",
        ],
    ));
    let report = sync(&till_b, &hub);
    assert_eq!(
        report["pulled"]["purged_labels"],
        json!(["pharmacy=main-st"]),
        "{report}"
    );
    let b = get(&till_b);
    assert_eq!(
        b["fields"]["quantity"], -2,
        "only till-b's own sale is left: {b}"
    );
    assert_eq!(b["version"].as_object().unwrap().len(), 1, "{b}");
    let output = cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "revoke",
            "till-b",
            "--scope",
            "pharmacy=main-st",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(3),
        "revoking twice names the rule"
    );
    for dir in [&till_a, &till_b, &hangar] {
        let verified = cairn(dir, &["--json", "verify"]);
        assert_eq!(
            verified.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
    hub.kill();
}

#[test]
fn a_late_node_bootstraps_from_a_signed_snapshot_then_pulls() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let till_a = enrolled_node(work.path(), &hub_dir, "till-a", "pharmacy=main-st");
    let hub = Edge::start_hub(&hub_dir);
    let stock = |dir: &Path, ndc: &str, quantity: i64| {
        ok(&cairn(
            dir,
            &[
                "--json",
                "record",
                "add",
                "inventory",
                &json!({"ndc": ndc, "quantity": quantity}).to_string(),
                "--key",
                ndc,
            ],
        ));
    };
    for n in 0..30 {
        stock(&till_a, &format!("00002-1433-{n:02}"), 10 + n);
    }
    sync(&till_a, &hub);

    // A new till enrolls with a one-time token, so it pins the hub's key.
    let token = ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "till-z",
            "--scope",
            "pharmacy=main-st",
        ],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let till_z = work.path().join("till-z");
    ok(&cairn(
        &till_z,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "till-z",
            "--scope",
            "pharmacy=main-st",
            "--hub",
            &hub.url,
            "--token",
            &token,
        ],
    ));
    let first = ok(&cairn(&till_z, &["--json", "sync"]));
    assert_eq!(first["pulled"]["snapshot_ops"], 30, "{first}");
    assert_eq!(first["pulled"]["applied"], 30, "{first}");
    assert_eq!(first["pulled"]["origins_verified"], 30, "{first}");
    assert_eq!(
        first["pulled"]["receipts_verified"], 0,
        "a snapshot needs no proof per op: {first}"
    );
    let list = |dir: &Path| {
        ok(&cairn(
            dir,
            &["--json", "record", "list", "inventory", "--limit", "100"],
        ))
    };
    assert_eq!(list(&till_a), list(&till_z));

    // After the snapshot, new ops come page by page with their receipts.
    stock(&till_a, "00002-1433-00", -4);
    sync(&till_a, &hub);
    let second = ok(&cairn(&till_z, &["--json", "sync"]));
    assert_eq!(second["pulled"]["snapshot_ops"], 0, "{second}");
    assert_eq!(second["pulled"]["applied"], 1, "{second}");
    assert_eq!(second["pulled"]["receipts_verified"], 1, "{second}");
    assert_eq!(second["pulled"]["origins_verified"], 1, "{second}");
    assert_eq!(list(&till_a), list(&till_z));
    assert_eq!(ok(&cairn(&till_z, &["--json", "verify"]))["intact"], true);

    // The endpoint's bad input: no token, a cursor that is no leaf.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (anonymous, unknown) = runtime.block_on(async {
        let client = cairn_http::tls::builder().build().unwrap();
        let get = |query: &str| client.get(format!("{}/v1/snapshot{query}", hub.url)).send();
        let anonymous = get("").await.unwrap().status();
        let unknown = get("?from=x").await.unwrap();
        (
            anonymous,
            (
                unknown.status(),
                unknown.json::<serde_json::Value>().await.unwrap(),
            ),
        )
    });
    assert_eq!(anonymous, 401);
    assert_eq!(unknown.0, 400);
    assert_eq!(
        unknown.1["error"]["violations"][0]["field"], "from",
        "{}",
        unknown.1
    );
}

/// Rebuilds the hub's Merkle tree over its (edited) log and drops every
/// signed log checkpoint, so the hub signs a fresh one over the edit: what
/// an operator with the hub's key could do.
fn rebuild_tree(conn: &rusqlite::Connection) {
    let hashes: Vec<Vec<u8>> = conn
        .prepare("SELECT op_hash FROM log ORDER BY leaf")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut tree = std::collections::HashMap::new();
    for (index, hash) in hashes.iter().enumerate() {
        let leaf_hash = cairn_core::merkle::leaf_hash(hash);
        let nodes = cairn_core::merkle::append_nodes(index as u64, leaf_hash, |level, at| {
            tree.get(&(level, at)).copied()
        })
        .unwrap();
        for (level, at, node) in nodes {
            tree.insert((level, at), node);
        }
    }
    conn.execute_batch("DELETE FROM tree; DELETE FROM log_checkpoints;")
        .unwrap();
    for ((level, at), node) in &tree {
        conn.execute(
            "INSERT INTO tree (level, idx, hash) VALUES (?1, ?2, ?3)",
            rusqlite::params![level, *at as i64, node.0.as_slice()],
        )
        .unwrap();
    }
}

/// Rewrites op `seq` of till-a in the hub's log: its quantity becomes
/// `quantity`, and it is resealed after `prev` (its own prev_hash if none).
fn forge(
    conn: &rusqlite::Connection,
    seq: u64,
    quantity: i64,
    prev: Option<cairn_core::hash::Hash>,
) -> cairn_core::op::Op {
    let bytes: Vec<u8> = conn
        .query_row(
            "SELECT op FROM log WHERE node = 'till-a' AND seq = ?1",
            [seq as i64],
            |row| row.get(0),
        )
        .unwrap();
    let op = cairn_core::op::Op::decode(&bytes).unwrap();
    let mut draft = op.draft.clone();
    let mut payload: serde_json::Value = serde_json::from_slice(&draft.payload).unwrap();
    payload["quantity"] = json!(quantity);
    draft.payload = cairn_core::canonical::to_canonical_bytes(&payload).unwrap();
    let (forged, forged_bytes) = draft.seal(op.seq, prev.unwrap_or(op.prev_hash));
    let changed = conn
        .execute(
            "UPDATE log SET op = ?1, op_hash = ?2 WHERE node = 'till-a' AND seq = ?3",
            rusqlite::params![forged_bytes, forged.op_hash.0.as_slice(), seq as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    forged
}

/// A hub that rewrites an op it holds, rebuilds its Merkle tree and signs a
/// fresh log checkpoint over it hands out a page whose receipts all verify.
/// The pulling node still refuses it: the op no longer chains to the
/// checkpoint its origin signed. Re-signing the forged chain with a key of
/// the hub's choosing fails too: that key was never enrolled in the hub's
/// own signed stream. Nothing of either page is merged.
#[test]
fn a_hub_that_rewrites_an_op_cannot_make_a_node_take_it() {
    if common::sqlite_file_only("the hub's log is rewritten in hub.db") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    let hub_key = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let till_a = enrolled_node(work.path(), &hub_dir, "till-a", "pharmacy=main-st");
    let till_b = enrolled_node(work.path(), &hub_dir, "till-b", "pharmacy=main-st");
    let hub = Edge::start_hub(&hub_dir);
    // till-b knows the hub's key, so it checks the keys that sign what it pulls.
    let sync_b = |url: &str| {
        cairn(
            &till_b,
            &[
                "--json",
                "sync",
                "--hub",
                url,
                "--hub-key",
                &hub_key,
                "--hub-origin",
                "test.hub",
            ],
        )
    };
    // till-b starts from an (empty) snapshot, so what follows comes by pages.
    let first = ok(&sync_b(&hub.url));
    assert_eq!(first["pulled"]["snapshot_ops"], 0, "{first}");
    for n in 0..3 {
        let ndc = format!("00002-1433-{n:02}");
        ok(&cairn(
            &till_a,
            &[
                "--json",
                "record",
                "add",
                "inventory",
                &json!({"ndc": ndc, "quantity": 10}).to_string(),
                "--key",
                &ndc,
            ],
        ));
    }
    sync(&till_a, &hub);
    hub.kill();
    let audit = |expected: Option<&str>| {
        let output = cairn(&hub_dir, &["--json", "hub", "verify"]);
        let report = common::json_out(&output);
        match expected {
            None => assert_eq!(output.status.code(), Some(0), "{report}"),
            Some(fault) => {
                assert_eq!(output.status.code(), Some(4), "{report}");
                assert!(
                    report["report"]["faults"].to_string().contains(fault),
                    "hub verify names {fault:?}: {report}"
                );
            }
        }
    };
    audit(None);
    let pull = |expected: &str, fork: bool| {
        let hub = Edge::start_hub(&hub_dir);
        if fork {
            // till-b holds the log as the last rewrite left it: another
            // root at the same size is a fork, named before anything is
            // pulled.
            let forked = sync_b(&hub.url);
            assert_eq!(forked.status.code(), Some(7));
            assert!(
                String::from_utf8_lossy(&forked.stdout).contains("fork"),
                "{}",
                String::from_utf8_lossy(&forked.stdout)
            );
            // A node that never saw the log before (it forgets what it
            // held) still refuses the rewritten op, by its origin's
            // signature.
            rusqlite::Connection::open(till_b.join("cairn.db"))
                .unwrap()
                .execute_batch("DELETE FROM meta WHERE key = 'log_checkpoint'; DELETE FROM alerts;")
                .unwrap();
        }
        let refused = sync_b(&hub.url);
        let said = String::from_utf8_lossy(&refused.stderr).to_string()
            + &String::from_utf8_lossy(&refused.stdout);
        assert_ne!(refused.status.code(), Some(0), "{said}");
        assert!(
            said.contains(expected) && said.contains("till-a"),
            "the refusal says {expected:?} and names the stream: {said}"
        );
        assert!(!said.contains("receipt"), "the receipts did verify: {said}");
        assert!(!said.contains("snapshot"), "this was a pull page: {said}");
        let listed = ok(&cairn(&till_b, &["--json", "record", "list", "inventory"]));
        assert_eq!(listed["records"], json!([]), "nothing merged: {listed}");
        hub.kill();
    };

    // The hub's operator (or an intruder with its key) turns 10 into 99.
    let conn = rusqlite::Connection::open(hub_dir.join("hub.db")).unwrap();
    let forged = forge(&conn, 2, 99, None);
    rebuild_tree(&conn);
    drop(conn);
    pull("not what its origin node signed", false);
    audit(Some(
        "till-a:standard seq 3: prev_hash does not match seq 2",
    ));

    // Then reseals the rest of the chain and signs it with a key of its own,
    // which it claims till-a uses.
    let conn = rusqlite::Connection::open(hub_dir.join("hub.db")).unwrap();
    let last = forge(&conn, 3, 10, Some(forged.op_hash));
    let rogue = cairn_core::identity::NodeIdentity::from_seed("till-a", [66; 32]);
    let checkpoint = rogue.sign_checkpoint("standard", 3, last.op_hash);
    let changed = conn
        .execute(
            "UPDATE origin_checkpoints SET signature = ?1, public_key = ?2
             WHERE seq = 3 AND stream_id = (SELECT id FROM streams WHERE node = 'till-a')",
            rusqlite::params![
                checkpoint.signature.as_slice(),
                rogue.public_key().as_slice()
            ],
        )
        .unwrap();
    assert_eq!(changed, 1);
    conn.execute(
        "INSERT INTO node_keys (node, public_key, audit_seq)
         SELECT node, ?1, audit_seq FROM node_keys WHERE node = 'till-a'",
        [rogue.public_key().as_slice()],
    )
    .unwrap();
    rebuild_tree(&conn);
    drop(conn);
    pull("is not one the hub enrolled", true);
    audit(Some(
        "till-a:standard checkpoint seq 3: signed by a key the hub never enrolled",
    ));
}
