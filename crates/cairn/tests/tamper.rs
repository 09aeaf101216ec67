//! Chain tests: any single-byte change, deletion, insertion or reordering of
//! a stored op, made directly in the edge's SQLite file, is found by
//! `cairn verify` (a real process), which exits 4 and names the right seq.

mod common;

use cairn_core::op::Action;
use cairn_edge::{EdgeStore, WriteRequest};
use common::{action, cairn, init_node, json_out};
use rusqlite::{Connection, params};
use std::path::Path;

const TAMPERED: i32 = 4;
/// Rowid bits that hold the seq (see FORMAT.md).
const SEQ_BITS: u32 = 40;

fn write(store: &EdgeStore, n: usize) -> WriteRequest {
    let _ = store;
    WriteRequest {
        collection: "maintenance_actions".into(),
        action: Action::Append,
        key: None,
        scope: Default::default(),
        data: action(&format!("WO-{n}")),
        corrects: None,
        reason: None,
        move_scope: false,
    }
}

/// A node with 12 ops on its standard stream: six single writes (six
/// checkpoints) and a batch of six (one checkpoint covering all six).
fn base_node(dir: &Path) {
    init_node(dir, "hangar-7");
    let store = EdgeStore::open(dir).unwrap();
    for n in 0..6 {
        store.write(write(&store, n)).unwrap();
    }
    store
        .write_batch((6..12).map(|n| write(&store, n)).collect())
        .unwrap();
    // Dropping the store closes every connection, which folds the WAL into cairn.db.
}

fn copy_node(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in ["cairn.db", "node.key"] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

/// A stored op: (rowid, op_hash, op).
type Row = (i64, Vec<u8>, Vec<u8>);
/// A stored op without its position: (op_hash, op).
type Stored = (Vec<u8>, Vec<u8>);

/// The standard stream's rows.
fn rows(conn: &Connection) -> (i64, Vec<Row>) {
    let stream_id: i64 = conn
        .query_row(
            "SELECT id FROM streams WHERE stream = 'standard'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let mut statement = conn
        .prepare("SELECT id, op_hash, op FROM ops WHERE id >> 40 = ?1 ORDER BY id")
        .unwrap();
    let rows = statement
        .query_map([stream_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (stream_id, rows)
}

/// Runs `cairn verify` and returns (exit code, reported seq).
fn verify(dir: &Path) -> (i32, Option<u64>, String) {
    let output = cairn(dir, &["--json", "verify"]);
    let body = json_out(&output);
    let code = output.status.code().unwrap_or(-1);
    (
        code,
        body["fault"]["seq"].as_u64(),
        body["fault"]["message"].as_str().unwrap_or("").to_string(),
    )
}

fn rewrite(conn: &Connection, stream_id: i64, rows: &[Stored]) {
    conn.execute("DELETE FROM ops WHERE id >> 40 = ?1", [stream_id])
        .unwrap();
    for (index, (hash, op)) in rows.iter().enumerate() {
        conn.execute(
            "INSERT INTO ops (id, op_hash, op, coll, action, record_key, scope, written_ms)
             VALUES (?1, ?2, ?3, (SELECT id FROM collections WHERE name = 'maintenance_actions'),
                     1, '', ',site=hangar-7,', 0)",
            params![(stream_id << SEQ_BITS) | (index as i64 + 1), hash, op],
        )
        .unwrap();
    }
}

#[test]
fn every_kind_of_damage_is_found_at_the_right_seq() {
    let seed = common::seed_from("CAIRN_TAMPER_SEED");
    println!("tamper seed {seed} (replay with CAIRN_TAMPER_SEED={seed})");
    let mut random = common::seeded(seed);
    let mut below = |bound: usize| random(bound as u64) as usize;
    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("base");
    base_node(&base);
    assert_eq!(verify(&base).0, 0, "the untouched node verifies");
    let original: Vec<Stored> = {
        let conn = Connection::open(base.join("cairn.db")).unwrap();
        rows(&conn)
            .1
            .into_iter()
            .map(|(_, hash, op)| (hash, op))
            .collect()
    };
    let count = original.len();
    assert_eq!(count, 12);
    let mut case = 0;
    let mut check = |what: String, expected: u64, damage: &dyn Fn(&Connection, i64, &[Stored])| {
        case += 1;
        let dir = work.path().join(format!("case-{case}"));
        copy_node(&base, &dir);
        {
            let conn = Connection::open(dir.join("cairn.db")).unwrap();
            let (stream_id, _) = rows(&conn);
            damage(&conn, stream_id, &original);
        }
        let (code, seq, message) = verify(&dir);
        assert_eq!(code, TAMPERED, "{what}: verify must fail (seed {seed})");
        assert_eq!(seq, Some(expected), "{what}: {message} (seed {seed})");
        std::fs::remove_dir_all(&dir).unwrap();
    };
    for seq in 1..=count {
        // A single flipped byte anywhere in the stored op, three times per op.
        for _ in 0..3 {
            let at = below(original[seq - 1].1.len());
            let bit = 1u8 << below(8);
            check(
                format!("flip byte {at} of seq {seq}"),
                seq as u64,
                &|conn, stream_id, rows| {
                    let mut op = rows[seq - 1].1.clone();
                    op[at] ^= bit;
                    conn.execute(
                        "UPDATE ops SET op = ?1 WHERE id = ?2",
                        params![op, (stream_id << SEQ_BITS) | seq as i64],
                    )
                    .unwrap();
                },
            );
        }
        check(
            format!("delete seq {seq}"),
            seq as u64,
            &|conn, stream_id, _| {
                conn.execute(
                    "DELETE FROM ops WHERE id = ?1",
                    [(stream_id << SEQ_BITS) | seq as i64],
                )
                .unwrap();
            },
        );
        let copy_of = below(count);
        let mut inserted = original.clone();
        inserted.insert(seq - 1, original[copy_of].clone());
        let first_difference = inserted
            .iter()
            .zip(&original)
            .position(|(a, b)| a != b)
            .unwrap_or(count)
            + 1;
        check(
            format!("insert a copy of seq {} before seq {seq}", copy_of + 1),
            first_difference as u64,
            &|conn, stream_id, _| {
                rewrite(conn, stream_id, &inserted);
            },
        );
        if seq < count {
            check(
                format!("swap seq {seq} and {}", seq + 1),
                seq as u64,
                &|conn, stream_id, rows| {
                    let mut swapped = rows.to_vec();
                    swapped.swap(seq - 1, seq);
                    rewrite(conn, stream_id, &swapped);
                },
            );
        }
        check(
            format!("replace the stored op_hash of seq {seq}"),
            seq as u64,
            &|conn, stream_id, _| {
                conn.execute(
                    "UPDATE ops SET op_hash = zeroblob(32) WHERE id = ?1",
                    [(stream_id << SEQ_BITS) | seq as i64],
                )
                .unwrap();
            },
        );
        check(
            format!("edit the collection column of seq {seq}"),
            seq as u64,
            &|conn, stream_id, _| {
                conn.execute(
                    "UPDATE ops SET coll = (SELECT id FROM collections WHERE name = 'parts') WHERE id = ?1",
                    [(stream_id << SEQ_BITS) | seq as i64],
                )
                .unwrap();
            },
        );
    }
    // A forged checkpoint signature is named at its seq.
    check(
        "forge the checkpoint at seq 3".into(),
        3,
        &|conn, stream_id, _| {
            conn.execute(
                "UPDATE checkpoints SET signature = zeroblob(64) WHERE stream_id = ?1 AND seq = 3",
                [stream_id],
            )
            .unwrap();
        },
    );
}

#[test]
fn tampered_materialized_state_is_found() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "pharmacy-1");
    let output = cairn(
        dir.path(),
        &[
            "record",
            "add",
            "inventory",
            r#"{"ndc": "00002-1433-80", "quantity": 10}"#,
            "--key",
            "00002-1433-80",
        ],
    );
    assert!(output.status.success());
    {
        let conn = Connection::open(dir.path().join("cairn.db")).unwrap();
        let state: Vec<u8> = conn
            .query_row("SELECT state FROM entities", [], |row| row.get(0))
            .unwrap();
        let edited = String::from_utf8(state)
            .unwrap()
            .replace("\"quantity\":10", "\"quantity\":99");
        conn.execute("UPDATE entities SET state = ?1", [edited.as_bytes()])
            .unwrap();
    }
    let output = cairn(dir.path(), &["verify"]);
    assert_eq!(output.status.code(), Some(TAMPERED));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("inventory/00002-1433-80"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Cuts the standard stream back to `keep` ops: the ops and checkpoints
/// after it deleted, the head moved back, as a careful editor would.
fn cut_tail(dir: &Path, keep: u64) {
    let conn = Connection::open(dir.join("cairn.db")).unwrap();
    let (stream_id, rows) = rows(&conn);
    let head: Vec<u8> = if keep == 0 {
        vec![0; 32]
    } else {
        rows[keep as usize - 1].1.clone()
    };
    conn.execute(
        "DELETE FROM ops WHERE id >> 40 = ?1 AND (id & 1099511627775) > ?2",
        params![stream_id, keep as i64],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM checkpoints WHERE stream_id = ?1 AND seq > ?2",
        params![stream_id, keep as i64],
    )
    .unwrap();
    conn.execute(
        "UPDATE streams SET head_seq = ?1, head_hash = ?2 WHERE id = ?3",
        params![keep as i64, head, stream_id],
    )
    .unwrap();
}

#[test]
fn issue_9_7_a_dropped_unsynced_tail_does_not_verify() {
    let work = tempfile::tempdir().unwrap();
    // The newest ops deleted with their checkpoints, the head moved back.
    let node = work.path().join("tail");
    base_node(&node);
    assert_eq!(verify(&node).0, 0);
    // Seq 6 ends a checkpoint (the batch 7..12 has one at 12).
    cut_tail(&node, 6);
    let (code, seq, message) = verify(&node);
    assert_eq!((code, seq), (TAMPERED, Some(7)), "{message}");
    assert!(message.contains("ops deleted"), "{message}");
    // The node writes on: the evidence is kept, and verify still fails.
    let written = cairn(
        &node,
        &[
            "record",
            "add",
            "maintenance_actions",
            &action("WO-X").to_string(),
        ],
    );
    assert!(written.status.success());
    assert!(node.join("heads.cut").exists());
    let (code, _, message) = verify(&node);
    assert_eq!(code, TAMPERED, "{message}");
    assert!(
        message.contains("kept at a start recorded seq 12"),
        "{message}"
    );

    // Every op deleted.
    let node = work.path().join("all");
    base_node(&node);
    cut_tail(&node, 0);
    let (code, seq, message) = verify(&node);
    assert_eq!((code, seq), (TAMPERED, Some(1)), "{message}");

    // No heads file (an older node), but the hub acknowledged more.
    let node = work.path().join("acked");
    base_node(&node);
    Connection::open(node.join("cairn.db"))
        .unwrap()
        .execute("UPDATE streams SET acked_seq = 12", [])
        .unwrap();
    std::fs::remove_file(node.join("heads")).unwrap();
    cut_tail(&node, 6);
    let (code, seq, message) = verify(&node);
    assert_eq!((code, seq), (TAMPERED, Some(7)), "{message}");
    assert!(message.contains("acknowledgement"), "{message}");
}

#[test]
fn issue_9_15_a_tampered_head_hash_is_named_at_its_own_seq() {
    let work = tempfile::tempdir().unwrap();
    let node = work.path().join("node");
    base_node(&node);
    Connection::open(node.join("cairn.db"))
        .unwrap()
        .execute(
            "UPDATE streams SET head_hash = zeroblob(32) WHERE stream = 'standard'",
            [],
        )
        .unwrap();
    let (code, seq, message) = verify(&node);
    assert_eq!((code, seq), (TAMPERED, Some(12)), "{message}");
    assert!(message.contains("head hash"), "{message}");
}
