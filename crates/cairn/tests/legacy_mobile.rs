//! Seed 004's mobile sync manager (written in Python from the seed's
//! description) against a real hub (issue 12, the mobile endpoints):
//! edits queued offline then synced in batches, a lost answer re-sent (a
//! fault proxy drops the answer after the hub committed: nothing applied
//! twice), concurrent edits from two tablets (the newer one forced and
//! recorded as an audit act, the older one taking the server's version and
//! logging the conflict), an invalid record, deletes arriving as
//! incremental updates, the hub down then up, and the records on a native
//! edge whose scopes grant the building.

mod common;

use cairn_tools::proxy::{Fault, Proxy};
use common::{Edge, cairn, enrolled_node, ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn app_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/mobile_app.py")
}

/// Runs tablet `name`'s app: `edit JSON`, `sync` or `show ID`.
fn app(work: &Path, name: &str, hub: &str, token: &str, args: &[&str]) -> Value {
    let output = std::process::Command::new("python3")
        .arg(app_script())
        .args([hub, token])
        .arg(work.join(format!("{name}.db")))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the app failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn log_size(hub_dir: &Path) -> u64 {
    ok(&cairn(hub_dir, &["--json", "hub", "status"]))["log_size"]
        .as_u64()
        .unwrap()
}

fn enroll(hub_dir: &Path, name: &str, scope: &str) -> String {
    let enrolled = ok(&cairn(
        hub_dir,
        &[
            "--json", "hub", "enroll", name, "--legacy", "mobile", "--scope", scope,
        ],
    ));
    enrolled["token"].as_str().unwrap().to_string()
}

fn edit(operation: &str, id: &str, fields: Value) -> Value {
    let mut edit = json!({"operation": operation, "entity_id": id});
    edit.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    edit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_mobile_app_syncs_through_the_hub() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hub_dir = dir.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let one = enroll(&hub_dir, "tablet-1", "building=B1");
    let two = enroll(&hub_dir, "tablet-2", "building=*");
    let site = enrolled_node(dir, &hub_dir, "site-b1", "building=B1");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let direct = format!("http://{listen}");
    let run = |name: &str, token: &str, hub: &str, args: &[&str]| {
        tokio::task::block_in_place(|| app(dir, name, hub, token, args))
    };
    let create = |id: &str, name: &str| {
        edit(
            "create",
            id,
            json!({"building_id": "B1", "name": name, "type": "hvac", "status": "operational"}),
        )
    };

    // Offline: the hub is not up yet; two edits wait in the queue.
    let edits = json!([create("eq-1", "AHU-1"), create("eq-2", "AHU-2")]).to_string();
    run("tablet-1", &one, &direct, &["edit", &edits]);
    let offline = run("tablet-1", &one, &direct, &["sync"]);
    assert_eq!(
        (offline["online"].as_bool(), offline["queued"].as_u64()),
        (Some(false), Some(2))
    );
    let mut hub = tokio::task::block_in_place(|| {
        Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
    });
    let synced = run("tablet-1", &one, &direct, &["sync"]);
    assert_eq!(
        (
            synced["synced"].as_u64(),
            synced["queued"].as_u64(),
            synced["errors"].as_u64()
        ),
        (Some(2), Some(0), Some(0)),
        "{synced}"
    );
    let logged = tokio::task::block_in_place(|| log_size(&hub_dir));

    // The answer is lost after the hub committed: the app sends again,
    // nothing is applied twice.
    let proxy = Proxy::start(listen.parse().unwrap()).await.unwrap();
    let via = format!("http://{}", proxy.addr);
    proxy.set_fault(Fault::ResetResponse(0));
    run(
        "tablet-1",
        &one,
        &via,
        &["edit", &json!([create("eq-3", "Boiler")]).to_string()],
    );
    let lost = run("tablet-1", &one, &via, &["sync"]);
    assert_eq!(
        (lost["online"].as_bool(), lost["queued"].as_u64()),
        (Some(false), Some(1))
    );
    assert_eq!(
        tokio::task::block_in_place(|| log_size(&hub_dir)),
        logged + 1,
        "the hub committed it"
    );
    proxy.set_fault(Fault::None);
    let resent = run("tablet-1", &one, &via, &["sync"]);
    assert_eq!(
        (resent["synced"].as_u64(), resent["queued"].as_u64()),
        (Some(1), Some(0)),
        "{resent}"
    );
    assert_eq!(
        tokio::task::block_in_place(|| log_size(&hub_dir)),
        logged + 1,
        "acknowledged without a second apply"
    );

    // Tablet 1 edits eq-2 offline; tablet 2 (every building) edits it later
    // without having seen it: its newer edit is forced, and recorded.
    let older = json!([edit("update", "eq-2", json!({"status": "degraded"}))]).to_string();
    run("tablet-1", &one, &direct, &["edit", &older]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let newer = edit(
        "update",
        "eq-2",
        json!({"building_id": "B1", "name": "AHU-2", "type": "hvac", "status": "down"}),
    );
    run(
        "tablet-2",
        &two,
        &direct,
        &["edit", &json!([newer]).to_string()],
    );
    let forced = run("tablet-2", &two, &direct, &["sync"]);
    assert_eq!(
        (forced["conflicts"].as_u64(), forced["forced"].as_u64()),
        (Some(1), Some(1)),
        "{forced}"
    );
    let trail = tokio::task::block_in_place(|| {
        ok(&cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "audit",
                "--trail",
                "--action",
                "mobile.force",
            ],
        ))
    });
    let acts = trail["trail"].as_array().unwrap();
    assert_eq!(acts.len(), 1, "{trail}");
    assert_eq!(
        (acts[0]["who"].as_str(), acts[0]["before"]["node"].as_str()),
        (Some("tablet-2"), Some("tablet-1"))
    );
    // Tablet 1's older edit meets the newer one: the server wins, the app
    // takes its version and logs the conflict.
    let lost_race = run("tablet-1", &one, &direct, &["sync"]);
    assert_eq!(
        (
            lost_race["conflicts"].as_u64(),
            lost_race["forced"].as_u64(),
            lost_race["conflicts_logged"].as_u64()
        ),
        (Some(1), Some(0), Some(1)),
        "{lost_race}"
    );
    let shown = run("tablet-1", &one, &direct, &["show", "eq-2"]);
    assert_eq!(shown["status"], "down", "{shown}");

    // A record the pack refuses is an error naming the rule; the queue
    // keeps it, nothing is logged.
    let before = tokio::task::block_in_place(|| log_size(&hub_dir));
    let bad = json!([edit("update", "eq-1", json!({"status": "exploded"}))]).to_string();
    run("tablet-1", &one, &direct, &["edit", &bad]);
    let refused = run("tablet-1", &one, &direct, &["sync"]);
    assert_eq!(refused["errors"].as_u64(), Some(1), "{refused}");
    assert_eq!(tokio::task::block_in_place(|| log_size(&hub_dir)), before);

    // Tablet 2 deletes eq-3; tablet 1 learns it from its incremental updates.
    run(
        "tablet-2",
        &two,
        &direct,
        &[
            "edit",
            &json!([edit("delete", "eq-3", json!({}))]).to_string(),
        ],
    );
    let deleted = run("tablet-2", &two, &direct, &["sync"]);
    assert_eq!(deleted["synced"].as_u64(), Some(1), "{deleted}");
    let learned = run("tablet-1", &one, &direct, &["sync"]);
    assert!(learned["deletes"].as_u64() >= Some(1), "{learned}");
    assert_eq!(
        run("tablet-1", &one, &direct, &["show", "eq-3"]),
        Value::Null
    );

    // The hub goes down: the edit waits, then goes through.
    hub.kill();
    let later = json!([edit("update", "eq-1", json!({"status": "maintenance"}))]).to_string();
    run("tablet-1", &one, &direct, &["edit", &later]);
    let down = run("tablet-1", &one, &direct, &["sync"]);
    assert_eq!(down["online"].as_bool(), Some(false));
    hub = tokio::task::block_in_place(|| {
        Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
    });
    let up = run("tablet-1", &one, &direct, &["sync"]);
    assert_eq!(up["synced"].as_u64(), Some(1), "{up}");

    // A native edge granted B1 holds the same equipment, merged the same way.
    let records = tokio::task::block_in_place(|| {
        ok(&cairn(&site, &["--json", "sync", "--hub", &hub.url]));
        ok(&cairn(&site, &["--json", "record", "list", "equipment"]))
    });
    let by_key: std::collections::BTreeMap<String, Value> = records["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| {
            (
                record["key"].as_str().unwrap_or_default().to_string(),
                record["fields"].clone(),
            )
        })
        .collect();
    assert_eq!(by_key.len(), 2, "eq-3 is deleted: {records}");
    assert_eq!(by_key["eq-1"]["status"], "maintenance", "{records}");
    assert_eq!(by_key["eq-2"]["status"], "down", "{records}");
    drop(hub);
}
