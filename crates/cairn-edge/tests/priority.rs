//! Sync priority and expiry (seed 002, issue 12): collections of priority
//! `config` or `tracks` write to streams of their own in their lane, pushed
//! after the lane's evidence; an entity not updated within its
//! collection's `expire_after_hours` is listed as expired and kept; on a
//! constrained link a stream whose next op is such a stale update is
//! pushed after every other.

use cairn_core::clock::{Clock, ManualClock};
use cairn_core::op::Action;
use cairn_edge::{EdgeStore, InitOptions, ListQuery, Record, WriteRequest};
use serde_json::{Value, json};
use std::sync::Arc;

/// A pack whose beacons sit in lane `alpha`, which sorts before `standard`.
const BEACONS: &str = r#"
name = "beacons"
version = "1.0.0"
title = "Beacons"

[collections.beacons]
kind = "entity"
stream = "alpha"
scope = ["building"]

[collections.beacons.sync]
priority = "tracks"
expire_after_hours = 1

[collections.beacons.fields]
signal = { type = "number", required = true }
"#;

const T0: u64 = 1_764_000_000_000;
const HOUR: u64 = 3_600_000;

fn open(dir: &std::path::Path) -> (EdgeStore, Arc<ManualClock>) {
    EdgeStore::init(
        dir,
        &InitOptions {
            node: "site-1".into(),
            packs: vec!["mro".into(), "field_service".into()],
            default_scope: [
                ("site".to_string(), "hangar-7".to_string()),
                ("building".to_string(), "B1".to_string()),
            ]
            .into(),
            quota_bytes: 0,
            custom_packs: vec![BEACONS.into()],
        },
    )
    .unwrap();
    let clock = Arc::new(ManualClock::at(T0));
    (
        EdgeStore::open_with_clock(dir, clock.clone()).unwrap(),
        clock,
    )
}

fn put(collection: &str, key: &str, data: Value) -> WriteRequest {
    WriteRequest {
        collection: collection.into(),
        action: Action::Put,
        key: Some(key.into()),
        scope: Default::default(),
        data,
        corrects: None,
        reason: None,
        move_scope: false,
    }
}

fn action(work_order: &str) -> WriteRequest {
    WriteRequest {
        collection: "maintenance_actions".into(),
        action: Action::Append,
        key: None,
        scope: Default::default(),
        data: json!({
            "work_order": work_order, "aircraft_registration": "N123AB", "part_serial": "SN-1",
            "technician": "TECH-IA-4412", "performed_on": "2026-11-20",
            "certificate_expiry": "2027-11-20", "action": "inspection",
        }),
        corrects: None,
        reason: None,
        move_scope: false,
    }
}

fn entity(store: &EdgeStore, collection: &str, key: &str) -> cairn_edge::EntityRecord {
    match store.get(collection, key).unwrap() {
        Some(Record::Entity(record)) => record,
        other => panic!("{other:?}"),
    }
}

#[test]
fn tracks_travel_after_evidence_in_a_stream_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    // The track is written first, the evidence after it.
    store
        .write(put(
            "tracks",
            "truck-9",
            json!({"position_x": 1.0, "position_y": 2.0}),
        ))
        .unwrap();
    store.write(action("WO-1")).unwrap();
    let track = entity(&store, "tracks", "truck-9");
    assert_eq!(
        track.version.keys().collect::<Vec<_>>(),
        ["site-1:standard.tracks"]
    );
    assert_eq!(store.streams().unwrap(), ["standard", "standard.tracks"]);
    assert_eq!(
        store.streams_to_push(T0, false).unwrap(),
        ["standard", "standard.tracks"]
    );
}

#[test]
fn a_stale_track_is_listed_expired_kept_and_sent_last_on_a_constrained_link() {
    let dir = tempfile::tempdir().unwrap();
    let (store, clock) = open(dir.path());
    store
        .write(put("beacons", "b-1", json!({"signal": -70})))
        .unwrap();
    store
        .write(put(
            "tracks",
            "truck-9",
            json!({"position_x": 1.0, "position_y": 2.0}),
        ))
        .unwrap();
    clock.advance(2 * HOUR);
    store.write(action("WO-1")).unwrap();
    let beacon = entity(&store, "beacons", "b-1");
    assert_eq!((beacon.updated_ms, beacon.expired), (Some(T0), Some(true)));
    let track = entity(&store, "tracks", "truck-9");
    assert_eq!(track.expired, Some(false), "tracks expire after 24 hours");
    let listed = store
        .list(&ListQuery {
            collection: "beacons".into(),
            scope: Default::default(),
            after: None,
            limit: 10,
            include_deleted: false,
        })
        .unwrap();
    assert_eq!(listed.len(), 1, "an expired record is kept");
    let maintenance = store
        .get("maintenance_actions", "site-1:standard:1")
        .unwrap();
    let text = serde_json::to_string(&maintenance).unwrap();
    assert!(
        !text.contains("expired"),
        "ledger records do not expire: {text}"
    );
    let now = clock.now_ms();
    assert_eq!(
        store.streams_to_push(now, false).unwrap(),
        ["alpha.tracks", "standard", "standard.tracks"],
        "lanes by name"
    );
    assert_eq!(
        store.streams_to_push(now, true).unwrap(),
        ["standard", "standard.tracks", "alpha.tracks"],
        "a constrained link sends the stale beacon last"
    );
    // An update makes it fresh again.
    store
        .write(put("beacons", "b-1", json!({"signal": -60})))
        .unwrap();
    assert_eq!(entity(&store, "beacons", "b-1").expired, Some(false));
}
