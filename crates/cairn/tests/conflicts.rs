//! Merge conflicts in the review queue (issue 11, item 3): two offline
//! tills give the same stock different descriptions; the hub's judge raises
//! a conflict item with both values side by side; an operator picks the
//! value that stands (or a technician resolves it from a till) and every
//! replica converges on it at its next sync.

mod common;

use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "00093-7180-01";

fn sync(dir: &Path, hub: &Edge) -> Value {
    ok(&cairn(dir, &["--json", "sync", "--hub", &hub.url]))
}

fn put(dir: &Path, data: Value) {
    ok(&cairn(
        dir,
        &[
            "--json",
            "record",
            "add",
            "inventory",
            &data.to_string(),
            "--key",
            KEY,
        ],
    ));
}

fn stock(dir: &Path) -> Value {
    ok(&cairn(dir, &["--json", "record", "get", "inventory", KEY]))
}

/// A hub and two tills that both hold the stock, then edit its description
/// offline and sync: both replicas hold the conflict.
fn two_tills_in_conflict(work: &Path) -> (std::path::PathBuf, Edge, [std::path::PathBuf; 2]) {
    let hub_dir = work.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let a = enrolled_node(work, &hub_dir, "till-a", "pharmacy=main-st");
    let b = enrolled_node(work, &hub_dir, "till-b", "pharmacy=main-st");
    let hub = Edge::start_hub(&hub_dir);
    put(
        &a,
        json!({"ndc": KEY, "quantity": 100, "description": "insulin pens"}),
    );
    sync(&a, &hub);
    sync(&b, &hub);
    put(&a, json!({"description": "insulin pens, box of 5"}));
    put(&b, json!({"description": "insulin pen 3ml"}));
    sync(&a, &hub);
    sync(&b, &hub);
    sync(&a, &hub);
    for till in [&a, &b] {
        let held = stock(till);
        assert_eq!(
            held["conflicts"]["description"].as_array().map(Vec::len),
            Some(2),
            "{held}"
        );
    }
    (hub_dir, hub, [a, b])
}

fn staff_token(hub_dir: &Path, who: &str, role: &str) -> String {
    json_out(&cairn(
        hub_dir,
        &["--json", "hub", "token", "--subject", who, "--role", role],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits (at most 20 s) for the hub's open conflict items.
fn open_conflicts(hub_dir: &Path) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let listed = ok(&cairn(
            hub_dir,
            &["--json", "review", "list", "--open", "--kind", "conflict"],
        ));
        let items = listed["reviews"].as_array().unwrap().clone();
        if !items.is_empty() {
            return items;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no conflict item"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_picks_the_value_and_every_replica_converges_on_it() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hub, [a, b]) = tokio::task::block_in_place(|| two_tills_in_conflict(work.path()));
    let items = tokio::task::block_in_place(|| open_conflicts(&hub_dir));
    assert_eq!(items.len(), 1, "{items:?}");
    let item = &items[0];
    assert_eq!(item["rule"], "description");
    let message = item["message"].as_str().unwrap();
    assert!(
        message.contains("\"insulin pens, box of 5\" by till-a:standard:2")
            && message.contains("\"insulin pen 3ml\" by till-b:standard:1"),
        "both values side by side: {message}"
    );
    let id = item["id"].as_u64().unwrap();
    let client = cairn_http::tls::builder().build().unwrap();
    let operator = staff_token(&hub_dir, "olivia", "operator");
    let resolve = |body: Value| {
        client
            .post(format!("{}/v1/reviews/{id}/resolve", hub.url))
            .bearer_auth(&operator)
            .json(&body)
            .send()
    };
    // The value must pass the field's rules.
    let too_long = resolve(json!({"value": "x".repeat(300), "note": "typo"}))
        .await
        .unwrap();
    assert_eq!(too_long.status().as_u16(), 422);
    // A decision alone does not resolve a conflict: the value must be named.
    let no_value = resolve(json!({"decision": "accepted", "note": "fine"}))
        .await
        .unwrap();
    assert_eq!(no_value.status().as_u16(), 422);
    let chosen = "insulin pen 3ml, box of 5";
    let done =
        resolve(json!({"value": chosen, "note": "both were right: 3 ml pens come in boxes of 5"}))
            .await
            .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    // Every replica converges on the chosen value at its next sync.
    tokio::task::block_in_place(|| {
        for till in [&a, &b] {
            sync(till, &hub);
        }
        for till in [&a, &b] {
            let held = stock(till);
            assert_eq!(held["fields"]["description"], chosen, "{held}");
            assert_eq!(held["conflicts"], json!({}), "{held}");
            assert_eq!(held["fields"]["quantity"], 100, "{held}");
        }
        let audit = ok(&cairn(
            &hub_dir,
            &["--json", "hub", "audit", "--action", "review"],
        ));
        let act = &audit["ops"][0]["record"];
        assert_eq!(
            (
                act["kind"].as_str(),
                act["after"].as_str(),
                act["by"].as_str()
            ),
            (Some("conflict"), Some(chosen), Some("olivia")),
            "{audit}"
        );
        ok(&cairn(&hub_dir, &["--json", "hub", "verify"]));
    });
}

#[test]
fn a_technician_resolves_from_a_till_and_the_hub_closes_the_item() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hub, [a, b]) = two_tills_in_conflict(work.path());
    let items = open_conflicts(&hub_dir);
    // No conflict on another field: refused, naming the field and the rule.
    let refused = cairn(
        &a,
        &[
            "--json",
            "record",
            "resolve",
            "inventory",
            KEY,
            "--field",
            "quantity",
            "--value",
            "3",
        ],
    );
    assert_eq!(refused.status.code(), Some(3));
    assert_eq!(
        json_out(&refused)["error"]["violations"][0]["rule"],
        "conflict"
    );
    ok(&cairn(
        &a,
        &[
            "--json",
            "record",
            "resolve",
            "inventory",
            KEY,
            "--field",
            "description",
            "--value",
            "\"insulin pen 3ml\"",
        ],
    ));
    sync(&a, &hub);
    sync(&b, &hub);
    for till in [&a, &b] {
        let held = stock(till);
        assert_eq!(held["fields"]["description"], "insulin pen 3ml", "{held}");
        assert_eq!(held["conflicts"], json!({}), "{held}");
    }
    // The hub's judge saw the write that settled it and closed the item.
    let id = items[0]["id"].as_u64().unwrap().to_string();
    let started = Instant::now();
    loop {
        let shown = ok(&cairn(&hub_dir, &["--json", "review", "show", &id]));
        if shown["state"] == "closed" {
            assert_eq!(shown["closure"]["by"], "till-a", "{shown}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
