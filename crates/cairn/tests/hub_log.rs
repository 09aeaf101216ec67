//! A node holds the hub to its log (issue 9, item 5): a hub restored from
//! a backup, whose log went back, is named in the sync's error and the
//! node's alerts; once a person accepts it, the node pushes again what the
//! hub lost, and nothing acknowledged is lost.

mod common;

use common::{Edge, action, cairn, enrolled_node, json_out, ok};
use std::path::Path;

fn add(dir: &Path, from: usize, count: usize) {
    for n in from..from + count {
        ok(&cairn(
            dir,
            &[
                "--json",
                "record",
                "add",
                "maintenance_actions",
                &action(&format!("WO-{n}")).to_string(),
            ],
        ));
    }
}

fn copy_hub(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn issue_9_5_a_rolled_back_hub_is_named_and_loses_nothing_once_accepted() {
    if common::sqlite_file_only("the hub is restored from a copy of its directory") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let node = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    let sync = |hub: &Edge, extra: &[&str]| {
        let mut args = vec!["--json", "sync", "--hub", &hub.url];
        args.extend_from_slice(extra);
        cairn(&node, &args)
    };
    add(&node, 0, 3);
    let hub = Edge::start_hub(&hub_dir);
    assert_eq!(sync(&hub, &[]).status.code(), Some(0));
    hub.kill();
    // The hub's data is backed up here, then the node pushes two more.
    let backup = work.path().join("hub-backup");
    copy_hub(&hub_dir, &backup);
    add(&node, 3, 2);
    let hub = Edge::start_hub(&hub_dir);
    assert_eq!(sync(&hub, &[]).status.code(), Some(0));
    hub.kill();

    // The hub is restored from the backup: its log went back.
    std::fs::remove_dir_all(&hub_dir).unwrap();
    copy_hub(&backup, &hub_dir);
    let hub = Edge::start_hub(&hub_dir);
    add(&node, 5, 1);
    let refused = sync(&hub, &[]);
    assert_eq!(refused.status.code(), Some(7));
    let message = json_out(&refused)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("rollback"), "{message}");
    let status = ok(&cairn(&node, &["--json", "status"]));
    assert!(
        status["alerts"].to_string().contains("rollback"),
        "{status}"
    );
    let hub_status = ok(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(hub_status["streams"]["hangar-7:standard"][0], 3);

    // A person accepts it: the node pushes what the hub lost, and more.
    let accepted = sync(&hub, &["--accept-log-rollback"]);
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stdout)
    );
    assert_eq!(json_out(&accepted)["accepted"], 3);
    let hub_status = ok(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(hub_status["streams"]["hangar-7:standard"][0], 6);
    let status = ok(&cairn(&node, &["--json", "status"]));
    assert!(
        !status["alerts"].to_string().contains("rollback"),
        "{status}"
    );
    assert_eq!(status["pending_total"], 0);
    assert_eq!(cairn(&hub_dir, &["hub", "verify"]).status.code(), Some(0));
    // And the next sync is a plain one.
    assert_eq!(sync(&hub, &[]).status.code(), Some(0));
}

#[test]
fn issue_9_5_a_forked_hub_log_is_named() {
    if common::sqlite_file_only("a twin hub is made from a copy of its directory") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let node = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    let other = enrolled_node(work.path(), &hub_dir, "pharmacy-1", "site=main-st");
    // A second hub with the same key and origin, and the same history so far.
    let twin_dir = work.path().join("twin");
    copy_hub(&hub_dir, &twin_dir);
    add(&node, 0, 2);
    let hub = Edge::start_hub(&hub_dir);
    assert_eq!(
        cairn(&node, &["sync", "--hub", &hub.url]).status.code(),
        Some(0)
    );
    // The twin logs other ops, more of them: same origin, another history.
    add(&other, 0, 5);
    let twin = Edge::start_hub(&twin_dir);
    assert_eq!(
        cairn(&other, &["sync", "--hub", &twin.url]).status.code(),
        Some(0)
    );
    let forked = cairn(&node, &["--json", "sync", "--hub", &twin.url]);
    assert_eq!(forked.status.code(), Some(7));
    let message = json_out(&forked)["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("fork"), "{message}");
    let status = ok(&cairn(&node, &["--json", "status"]));
    assert!(status["alerts"].to_string().contains("fork"), "{status}");
    // The genuine hub still syncs.
    assert_eq!(
        cairn(&node, &["sync", "--hub", &hub.url]).status.code(),
        Some(0)
    );
}

#[test]
fn issue_9_9_a_newly_granted_scope_brings_its_history_whole() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    let hub_key = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let tech = enrolled_node(work.path(), &hub_dir, "tech", "building=B12");
    let office = enrolled_node(work.path(), &hub_dir, "office", "site=x");
    let office_key = ok(&cairn(&office, &["--json", "status"]))["node"].clone();
    assert_eq!(office_key, "office");
    let hub = Edge::start_hub(&hub_dir);
    let sync = |dir: &Path| {
        let output = cairn(
            dir,
            &[
                "--json",
                "sync",
                "--hub",
                &hub.url,
                "--hub-key",
                &hub_key,
                "--hub-origin",
                "test.hub",
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
        json_out(&output)
    };
    for n in 0..3 {
        ok(&cairn(
            &tech,
            &[
                "--json",
                "record",
                "add",
                "equipment",
                &serde_json::json!({"building_id": "B12", "name": format!("AHU {n}")}).to_string(),
                "--key",
                &format!("ahu-{n}"),
                "--scope",
                "building=B12",
            ],
        ));
    }
    sync(&tech);
    sync(&office);
    let listed = |dir: &Path| {
        ok(&cairn(dir, &["--json", "record", "list", "equipment"]))["records"]
            .as_array()
            .unwrap()
            .clone()
    };
    assert!(listed(&office).is_empty());
    // The office is granted the building: its history comes with it.
    let key = ok(&cairn(&office, &["--json", "edge", "key"]))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let grant = || {
        ok(&cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "enroll",
                "office",
                "--public-key",
                &key,
                "--scope",
                "site=x",
                "--scope",
                "building=B12",
            ],
        ))
    };
    grant();
    let report = sync(&office);
    assert_eq!(
        report["pulled"]["granted_labels"][0], "building=B12",
        "{report}"
    );
    let records = listed(&office);
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(record["fields"]["building_id"], "B12", "{record}");
        assert!(record["fields"]["name"].is_string(), "{record}");
    }
    // Revoked, then granted again: whole again, not half-filled.
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "revoke",
            "office",
            "--scope",
            "building=B12",
        ],
    ));
    sync(&office);
    assert!(listed(&office).is_empty());
    ok(&cairn(
        &tech,
        &[
            "--json",
            "record",
            "add",
            "equipment",
            r#"{"status": "degraded"}"#,
            "--key",
            "ahu-0",
        ],
    ));
    sync(&tech);
    grant();
    sync(&office);
    let records = listed(&office);
    assert_eq!(records.len(), 3, "{records:?}");
    let ahu = records
        .iter()
        .find(|record| record["key"] == "ahu-0")
        .unwrap();
    assert_eq!(ahu["fields"]["name"], "AHU 0", "{ahu}");
    assert_eq!(ahu["fields"]["status"], "degraded", "{ahu}");
}
