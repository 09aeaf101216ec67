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
    assert_eq!(list(&till_a), list(&till_z));
    assert_eq!(ok(&cairn(&till_z, &["--json", "verify"]))["intact"], true);

    // The endpoint's bad input: no token, an unknown parameter.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (anonymous, unknown) = runtime.block_on(async {
        let client = cairn::tls::builder().build().unwrap();
        let get = |query: &str| client.get(format!("{}/v1/snapshot{query}", hub.url)).send();
        let anonymous = get("").await.unwrap().status();
        let unknown = get("?from=3").await.unwrap();
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
