//! Clock skew of days (issue 9, item 6): nodes whose clocks are two days
//! ahead and two days behind the hub's, run as real processes under
//! libfaketime, sync, converge, and both sides report the offset.

mod common;

use common::{Edge, bin, enrolled_node, json_out, ok};
use serde_json::json;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `cairn --data DIR args...` with its clock moved by `offset`
/// (`+2d`, `-2d`): only the wall clock, so timers still run.
fn cairn_at(offset: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new("faketime")
        .arg("-f")
        .arg(offset)
        .arg(bin())
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .output()
        .expect("faketime runs (the faketime package; .ci/run installs it)")
}

#[test]
fn issue_9_6_nodes_two_days_ahead_and_behind_sync_converge_and_report_it() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&common::cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let ahead = enrolled_node(work.path(), &hub_dir, "ahead", "building=B12");
    let behind = enrolled_node(work.path(), &hub_dir, "behind", "building=B12");
    let hub = Edge::start_hub(&hub_dir);
    let nodes = [("+2d", &ahead), ("-2d", &behind)];
    // Each creates its own equipment record, then both edit one of them.
    for (offset, dir) in nodes {
        let key = format!("ahu-{}", dir.file_name().unwrap().to_string_lossy());
        ok(&cairn_at(
            offset,
            dir,
            &[
                "--json",
                "record",
                "add",
                "equipment",
                &json!({"building_id": "B12", "name": key}).to_string(),
                "--key",
                &key,
                "--scope",
                "building=B12",
            ],
        ));
        let synced = cairn_at(offset, dir, &["--json", "sync", "--hub", &hub.url]);
        assert_eq!(
            synced.status.code(),
            Some(0),
            "{offset}: {}{}",
            String::from_utf8_lossy(&synced.stdout),
            String::from_utf8_lossy(&synced.stderr)
        );
        let report = json_out(&synced);
        let offset_ms = report["clock_offset_ms"].as_i64().unwrap();
        // The hub's clock minus the node's: about -2 days for the node ahead.
        let expected = if offset.starts_with('+') { -1 } else { 1 } * 172_800_000i64;
        assert!(
            (offset_ms - expected).abs() < 60_000,
            "{offset}: offset {offset_ms}"
        );
        let status = ok(&cairn_at(offset, dir, &["--json", "status"]));
        let word = if offset.starts_with('+') {
            "ahead of"
        } else {
            "behind"
        };
        assert!(
            status["alerts"].to_string().contains(word),
            "{offset}: {status}"
        );
    }
    for (offset, dir) in nodes {
        ok(&cairn_at(
            offset,
            dir,
            &[
                "--json",
                "record",
                "add",
                "equipment",
                &json!({"status": if offset.starts_with('+') { "degraded" } else { "down" }})
                    .to_string(),
                "--key",
                "ahu-ahead",
                "--scope",
                "building=B12",
            ],
        ));
    }
    for _ in 0..2 {
        for (offset, dir) in nodes {
            let synced = cairn_at(offset, dir, &["--json", "sync", "--hub", &hub.url]);
            assert_eq!(synced.status.code(), Some(0), "{offset}");
        }
    }
    let records: Vec<_> = nodes
        .iter()
        .map(|(offset, dir)| {
            let list = ok(&cairn_at(
                offset,
                dir,
                &["--json", "record", "list", "equipment"],
            ));
            list["records"].clone()
        })
        .collect();
    assert_eq!(records[0], records[1], "the replicas converge");
    assert_eq!(records[0].as_array().unwrap().len(), 2, "{}", records[0]);

    // The hub reports both offsets, and the skew as alerts.
    let status = ok(&common::cairn(&hub_dir, &["--json", "hub", "status"]));
    let clock = |node: &str| status["clocks"][node]["clock_offset_ms"].as_i64().unwrap();
    assert!((clock("ahead") - 172_800_000).abs() < 60_000, "{status}");
    assert!((clock("behind") + 172_800_000).abs() < 60_000, "{status}");
    let alerts = status["alerts"].to_string();
    assert!(alerts.contains("ahead of the hub"), "{alerts}");
    assert!(alerts.contains("behind the hub"), "{alerts}");
}
