//! The edge store through its public API: writes, reads, group commit and verification.

use cairn_core::op::Action;
use cairn_edge::{EdgeStore, InitOptions, ListQuery, Record, WriteError, WriteRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn init(dir: &std::path::Path) -> EdgeStore {
    EdgeStore::init(
        dir,
        &InitOptions {
            node: "hangar-7".into(),
            packs: vec!["mro".into(), "pharmacy".into(), "field_service".into()],
            default_scope: [("site".to_string(), "hangar-7".to_string())].into(),
            quota_bytes: 0,
            custom_packs: Vec::new(),
        },
    )
    .unwrap();
    EdgeStore::open(dir).unwrap()
}

fn action(work_order: &str) -> WriteRequest {
    WriteRequest {
        collection: "maintenance_actions".into(),
        action: Action::Append,
        key: None,
        scope: BTreeMap::new(),
        data: json!({
            "work_order": work_order,
            "aircraft_registration": "N123AB",
            "part_serial": "SN-1",
            "technician": "TECH-IA-4412",
            "performed_on": "2026-11-20",
            "certificate_expiry": "2027-11-20",
            "action": "inspection",
        }),
        corrects: None,
        reason: None,
        move_scope: false,
    }
}

fn put(collection: &str, key: &str, scope: (&str, &str), data: Value) -> WriteRequest {
    WriteRequest {
        collection: collection.into(),
        action: Action::Put,
        key: Some(key.into()),
        scope: [(scope.0.to_string(), scope.1.to_string())].into(),
        data,
        corrects: None,
        reason: None,
        move_scope: false,
    }
}

#[test]
fn ledger_write_get_correct_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let receipt = store.write(action("WO-1")).unwrap();
    assert_eq!(receipt.id, "hangar-7:standard:1");
    let mut correction = action("WO-1");
    correction.action = Action::Correct;
    correction.corrects = Some(receipt.id.clone());
    correction.reason = Some("wrong part serial".into());
    correction.data["part_serial"] = json!("SN-2");
    let fixed = store.write(correction).unwrap();
    let Some(Record::Ledger(original)) = store.get("maintenance_actions", &receipt.id).unwrap()
    else {
        panic!("no record");
    };
    assert_eq!(
        original.data["part_serial"],
        json!("SN-1"),
        "the original never changes"
    );
    assert_eq!(original.corrected_by, vec![fixed.id.clone()]);
    let Some(Record::Ledger(correction)) = store.get("maintenance_actions", &fixed.id).unwrap()
    else {
        panic!("no correction");
    };
    assert_eq!(correction.corrects.as_deref(), Some(receipt.id.as_str()));
    assert_eq!(correction.reason.as_deref(), Some("wrong part serial"));
    let report = store.verify().unwrap();
    assert_eq!(report.fault, None);
    assert_eq!(report.streams[0].ops, 2);
}

#[test]
fn entities_merge_counters_sets_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let scope = ("pharmacy", "main-st");
    store
        .write(put(
            "inventory",
            "00002-1433-80",
            scope,
            json!({"ndc": "00002-1433-80", "quantity": 100}),
        ))
        .unwrap();
    store
        .write(put(
            "inventory",
            "00002-1433-80",
            scope,
            json!({"quantity": -3}),
        ))
        .unwrap();
    let Some(Record::Entity(item)) = store.get("inventory", "00002-1433-80").unwrap() else {
        panic!("no entity");
    };
    assert_eq!(item.fields["quantity"], json!(97));
    let building = ("building", "B12");
    store
        .write(put(
            "equipment",
            "pump-1",
            building,
            json!({"building_id": "B12", "name": "Pump", "tags": ["hvac", "roof"]}),
        ))
        .unwrap();
    store
        .write(put(
            "equipment",
            "pump-1",
            building,
            json!({"tags": ["roof", "critical"]}),
        ))
        .unwrap();
    let Some(Record::Entity(pump)) = store.get("equipment", "pump-1").unwrap() else {
        panic!("no pump");
    };
    assert_eq!(pump.fields["tags"], json!(["critical", "roof"]));
    let mut delete = put("equipment", "pump-1", building, json!({}));
    delete.action = Action::Delete;
    store.write(delete.clone()).unwrap();
    let listed = store
        .list(&ListQuery {
            collection: "equipment".into(),
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert!(listed.is_empty());
    // Deleting again: there is nothing to delete.
    assert!(matches!(
        store.write(delete),
        Err(WriteError::Invalid { .. })
    ));
    assert_eq!(store.verify().unwrap().fault, None);
}

#[test]
fn a_bad_record_in_a_batch_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let mut bad = action("WO-2");
    bad.data["technician"] = json!(42);
    let error = store.write_batch(vec![action("WO-1"), bad]).unwrap_err();
    let WriteError::Invalid { index, violations } = error else {
        panic!("expected a refusal");
    };
    assert_eq!(index, 1);
    assert_eq!(violations[0].field, "technician");
    assert_eq!(violations[0].rule, "type");
    assert_eq!(store.status(0).unwrap().pending_total, 0);
    // A refusal found only by the writer (creating an entity without its
    // required fields) also leaves nothing behind, not even a stream.
    let error = store
        .write_batch(vec![
            action("WO-3"),
            put("parts", "p1", ("site", "x"), json!({"status": "installed"})),
        ])
        .unwrap_err();
    assert!(
        matches!(error, WriteError::Invalid { index: 1, .. }),
        "{error}"
    );
    assert_eq!(store.status(0).unwrap().pending_total, 0);
    store.write(action("WO-4")).unwrap();
    assert_eq!(store.verify().unwrap().fault, None);
}

#[test]
fn concurrent_writers_share_commits_and_every_ack_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(init(dir.path()));
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|n| store.write(action(&format!("WO-{thread}-{n}"))).unwrap().id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 800);
    let report = store.verify().unwrap();
    assert_eq!(report.fault, None);
    assert_eq!(report.streams[0].ops, 800);
    // Group commit signed fewer checkpoints than ops.
    assert!(report.streams[0].checkpoints <= 800);
}

#[test]
fn reopening_resumes_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = init(dir.path());
        store.write(action("WO-1")).unwrap();
    }
    let store = EdgeStore::open(dir.path()).unwrap();
    let receipt = store.write(action("WO-2")).unwrap();
    assert_eq!(receipt.seq, 2);
    assert_eq!(store.verify().unwrap().fault, None);
    assert!(
        EdgeStore::init(
            dir.path(),
            &InitOptions {
                node: "x".into(),
                packs: vec![],
                default_scope: BTreeMap::new(),
                quota_bytes: 0,
                custom_packs: Vec::new(),
            }
        )
        .is_err()
    );
}

#[test]
fn the_quota_refuses_writes_and_keeps_the_store_intact() {
    let dir = tempfile::tempdir().unwrap();
    EdgeStore::init(
        dir.path(),
        &InitOptions {
            node: "tiny".into(),
            packs: vec!["mro".into()],
            default_scope: [("site".to_string(), "s".to_string())].into(),
            quota_bytes: 1,
            custom_packs: Vec::new(),
        },
    )
    .unwrap();
    let store = EdgeStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.write(action("WO-1")),
        Err(WriteError::StorageFull(_))
    ));
    assert_eq!(store.verify().unwrap().fault, None);
}

#[cfg(unix)]
#[test]
fn the_key_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let _store = init(dir.path());
    let mode = std::fs::metadata(dir.path().join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// Regression: entity writes (read, then write) failed with SQLITE_BUSY_SNAPSHOT
/// when the sync connection committed between the read and the write; the
/// writer now takes the write lock up front.
#[test]
fn entity_writes_survive_concurrent_sync_state_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(init(dir.path()));
    let scope = ("pharmacy", "main-st");
    store
        .write(put(
            "inventory",
            "00002-1433-80",
            scope,
            json!({"ndc": "00002-1433-80", "quantity": 1000}),
        ))
        .unwrap();
    let syncing = {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 0..400 {
                store.set_sync_state(&json!({"n": n})).unwrap();
                store.acknowledge("standard", n).unwrap();
            }
        })
    };
    for _ in 0..300 {
        store
            .write(put(
                "inventory",
                "00002-1433-80",
                scope,
                json!({"quantity": -1}),
            ))
            .unwrap();
    }
    syncing.join().unwrap();
    let Some(Record::Entity(item)) = store.get("inventory", "00002-1433-80").unwrap() else {
        panic!("no entity");
    };
    assert_eq!(item.fields["quantity"], json!(700));
}

/// Batch number `batch` of 1,000 ledger records of about 1 KiB each: 80 of
/// them make about 90 MiB of WAL frames.
fn large_batch(batch: u64) -> Vec<WriteRequest> {
    (0..1000)
        .map(|n| {
            let mut request = action(&format!("WO-{batch}-{n}"));
            request.data["description"] = json!("x".repeat(700));
            request
        })
        .collect()
}

#[test]
fn the_wal_stays_bounded_while_checkpoints_run_off_the_writer() {
    // About 90 MiB of WAL frames, more than the writer's own 64 MiB bound:
    // whether or not the checkpoint thread keeps up, the WAL must be folded
    // back into the database while writes go on, and nothing may be lost.
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let batches = 80;
    for batch in 0..batches {
        store.write_batch(large_batch(batch)).unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("cairn.db-wal"))
        .unwrap()
        .len();
    let bound = 64 * 1024 * 1024 + 16 * 1024 * 1024;
    assert!(
        wal <= bound,
        "the WAL grew to {wal} bytes, over {bound}: checkpoints are not running"
    );
    let report = store.verify().unwrap();
    assert!(report.fault.is_none(), "{:?}", report.fault);
    let ops: u64 = report.streams.iter().map(|stream| stream.ops).sum();
    assert_eq!(ops, batches * 1000);
}

#[test]
fn a_busy_checkpoint_never_fails_a_write_that_was_stored() {
    // A reader holds an old snapshot, so the WAL cannot restart and grows
    // past the writer's own 64 MiB bound; another connection checkpoints
    // without pause, so the writer's checkpoint often finds the lock taken.
    // SQLite reports a WAL hook's error as the COMMIT's, although the commit
    // is durable: every write must still be answered Ok.
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    let db = dir.path().join("cairn.db");
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let held: i64 = reader
        .query_row("SELECT count(*) FROM ops", [], |row| row.get(0))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hammer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            let mut runs = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                runs += 1;
            }
            runs
        })
    };
    let batches = 80;
    for batch in 0..batches {
        if let Err(error) = store.write_batch(large_batch(batch)) {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            panic!("batch {batch} was refused: {error}");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(hammer.join().unwrap() > 0);
    assert_eq!(held, 0);
    reader.execute_batch("COMMIT").unwrap();
    let report = store.verify().unwrap();
    assert!(report.fault.is_none(), "{:?}", report.fault);
    let ops: u64 = report.streams.iter().map(|stream| stream.ops).sum();
    assert_eq!(ops, batches * 1000);
}

#[test]
fn a_restored_store_that_wrote_nothing_new_takes_back_only_what_it_lost() {
    // The node, then a copy of it as a backup taken after three writes; the
    // node writes two more, which the backup never saw.
    let work = tempfile::tempdir().unwrap();
    let (node_dir, backup_dir) = (work.path().join("node"), work.path().join("backup"));
    let node = init(&node_dir);
    for n in 0..3 {
        node.write(action(&format!("WO-{n}"))).unwrap();
    }
    drop(node);
    std::fs::create_dir_all(&backup_dir).unwrap();
    for name in ["cairn.db", "node.key"] {
        std::fs::copy(node_dir.join(name), backup_dir.join(name)).unwrap();
    }
    let node = EdgeStore::open(&node_dir).unwrap();
    for n in 3..5 {
        node.write(action(&format!("WO-{n}"))).unwrap();
    }
    // What a hub would hand back: the node's ops 4 and 5, signed by it.
    let batch = node.pending_batch("standard", 100).unwrap().unwrap();
    let lost: Vec<_> = batch.ops[3..]
        .iter()
        .map(|bytes| (cairn_core::op::Op::decode(bytes).unwrap(), bytes.clone()))
        .collect();
    let backup = EdgeStore::open(&backup_dir).unwrap();
    let reappended = backup
        .realign("standard", lost.clone(), vec![batch.checkpoint.clone()])
        .unwrap();
    assert!(reappended.is_empty(), "nothing diverged: {reappended:?}");
    assert!(backup.displaced().unwrap().is_empty());
    assert_eq!(backup.acked_seq("standard").unwrap(), 5);
    let report = backup.verify().unwrap();
    assert!(report.fault.is_none(), "{:?}", report.fault);
    assert_eq!(
        report.streams.iter().map(|stream| stream.ops).sum::<u64>(),
        5
    );
    // Its next write extends the node's history instead of rewriting it.
    let next = backup.write(action("WO-5")).unwrap();
    assert_eq!(next.seq, 6);
    // Taking the same ops back again changes nothing.
    let again = backup
        .realign("standard", lost, vec![batch.checkpoint])
        .unwrap();
    assert!(again.is_empty());
    assert!(backup.verify().unwrap().fault.is_none());
}

/// The edge under a clock the test moves (issue 10, item 4): a write's time
/// comes from the store's clock, and the oldest-pending alert follows it.
#[test]
fn issue_10_4_the_oldest_pending_alert_follows_the_store_s_clock() {
    let dir = tempfile::tempdir().unwrap();
    cairn_edge::EdgeStore::init(
        dir.path(),
        &cairn_edge::InitOptions {
            node: "n".into(),
            packs: vec!["mro".into()],
            default_scope: [("site".to_string(), "x".to_string())].into(),
            quota_bytes: 0,
            custom_packs: Vec::new(),
        },
    )
    .unwrap();
    let clock = std::sync::Arc::new(cairn_core::clock::ManualClock::at(1_764_000_000_000));
    let store = cairn_edge::EdgeStore::open_with_clock(dir.path(), clock.clone()).unwrap();
    store.write(action("WO-1")).unwrap();
    use cairn_core::clock::Clock;
    let status = store.status(clock.now_ms() + 60_000).unwrap();
    assert_eq!(status.oldest_pending_age_ms, Some(60_000));
    assert!(status.alerts.is_empty(), "{:?}", status.alerts);
    let status = store.status(clock.now_ms() + 121_000).unwrap();
    assert!(
        status.alerts[0].contains("oldest pending op is 121 s old"),
        "{:?}",
        status.alerts
    );
}

#[test]
fn a_release_to_service_still_here_after_its_deadline_raises_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let clock = std::sync::Arc::new(cairn_core::clock::ManualClock::at(1_764_000_000_000));
    let store = cairn_edge::EdgeStore::open_with_clock(dir.path(), clock.clone()).unwrap();
    let mut release = action("WO-9");
    release.data["action"] = json!("return_to_service");
    let written = store.write(release).unwrap();
    // An inspection is not under the 30-day rule (EASA: releases to service).
    store.write(action("WO-10")).unwrap();
    use cairn_core::clock::Clock;
    let day = 86_400_000;
    let deadline = |status: &cairn_edge::Status| -> Vec<String> {
        status
            .alerts
            .iter()
            .filter(|alert| alert.starts_with("deadline:"))
            .cloned()
            .collect()
    };
    let status = store.status(clock.now_ms() + 29 * day).unwrap();
    assert!(deadline(&status).is_empty(), "{:?}", status.alerts);
    let status = store.status(clock.now_ms() + 31 * day).unwrap();
    let late = deadline(&status);
    assert_eq!(late.len(), 1, "{:?}", status.alerts);
    assert!(
        late[0].contains("1 record(s) of maintenance_actions")
            && late[0].contains("within 30 days")
            && late[0].contains(&written.id),
        "{late:?}"
    );
}

#[test]
fn a_duplicate_the_node_holds_is_refused_and_a_rolled_back_batch_frees_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = init(dir.path());
    store.write(action("WO-1")).unwrap();
    match store.write(action("WO-1")) {
        Err(WriteError::Invalid { violations, .. }) => {
            assert_eq!(violations[0].rule, "idempotency", "{violations:?}");
            assert!(
                violations[0].message.contains("hangar-7:standard:1"),
                "{violations:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A batch whose last record fails in the writer (it repeats the first)
    // rolls back whole: the key its first record took is free again.
    assert!(matches!(
        store.write_batch(vec![action("WO-2"), action("WO-2")]),
        Err(WriteError::Invalid { index: 1, .. })
    ));
    store.write(action("WO-2")).unwrap();
    // Reopened, the node still sees what it wrote within the window.
    drop(store);
    let store = EdgeStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.write(action("WO-2")),
        Err(WriteError::Invalid { .. })
    ));
}
