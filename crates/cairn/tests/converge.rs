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
    sync(&till_a, &hub);
    let pulled = sync(&till_b, &hub);
    assert_eq!(pulled["pulled"]["applied"], 1, "{pulled}");

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
