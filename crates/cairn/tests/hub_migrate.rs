//! `cairn hub migrate` (issue 14): a SQLite hub with a real history (ops of
//! two nodes, the hub's enrollment acts, rule-pack rejections and their
//! review items) moves to PostgreSQL; the new hub has the same log size and
//! root, verifies, answers status and reviews alike, and its nodes sync on
//! through it: each checks the new hub's log extends the checkpoint the old
//! hub gave it. What is refused is refused with a reason, and the source
//! never changes.
//!
//! Needs a PostgreSQL server (`CAIRN_PG_URL`, which `.ci/run` starts).

mod common;

use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::Value;
use std::path::Path;

/// `cairn hub migrate` of the hub in `from` to `url`, into `into`.
fn migrate(from: &Path, url: &str, into: &Path) -> std::process::Output {
    let into = into.to_str().unwrap();
    cairn(
        from,
        &[
            "--json",
            "hub",
            "migrate",
            "--database",
            url,
            "--into",
            into,
        ],
    )
}

fn status(hub_dir: &Path) -> Value {
    ok(&cairn(hub_dir, &["--json", "hub", "status"]))
}

#[test]
fn a_migrated_hub_has_the_source_root_and_serves_on() {
    if common::postgres_server().is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let old = work.path().join("old");
    // A SQLite hub, whatever CAIRN_TEST_HUB says (not through `cairn()`).
    ok(&std::process::Command::new(common::bin())
        .arg("--data")
        .arg(&old)
        .args(["--json", "hub", "init", "--origin", "test.hub"])
        .output()
        .unwrap());
    assert!(!old.join("database").exists(), "the source is a SQLite hub");
    let a = enrolled_node(work.path(), &old, "hangar-a", "site=hangar-7");
    let b = enrolled_node(work.path(), &old, "hangar-b", "site=hangar-7");
    let hub = Edge::start_hub(&old);
    common::add_actions(&a, "a", 0, 30);
    common::add_actions(&b, "b", 0, 20);
    for node in [&a, &b] {
        ok(&cairn(node, &["--json", "sync", "--hub", &hub.url]));
    }
    hub.kill();
    let before = status(&old);
    assert_eq!(before["log_size"], 52, "{before}");
    let reviews_before = ok(&cairn(&old, &["--json", "review", "list"]));

    // Refused: into a directory that holds something, or a database that
    // holds a hub; nothing is written in either case.
    let url = common::new_database();
    let busy = work.path().join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("note"), "mine").unwrap();
    let refused = migrate(&old, &url, &busy);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );

    let new = work.path().join("new");
    let moved = json_out(&migrate(&old, &url, &new));
    assert_eq!(moved["migrated"], true, "{moved}");
    assert_eq!(moved["migration"]["root"], before["root"], "{moved}");
    assert_eq!(moved["migration"]["log_size"], before["log_size"]);
    let again = migrate(&old, &url, &work.path().join("again"));
    assert_eq!(
        again.status.code(),
        Some(3),
        "a database that holds a hub is refused"
    );
    let twice = migrate(&new, &url, &work.path().join("twice"));
    assert_eq!(
        twice.status.code(),
        Some(3),
        "a hub on PostgreSQL is not migrated again"
    );

    // The same hub, on PostgreSQL.
    let after = status(&new);
    for field in [
        "log_size",
        "root",
        "streams",
        "states",
        "reviews_open",
        "quarantined",
        "nodes",
    ] {
        assert_eq!(after[field], before[field], "{field}: {after} vs {before}");
    }
    assert_eq!(
        ok(&cairn(&new, &["--json", "review", "list"])),
        reviews_before
    );
    assert_eq!(cairn(&new, &["hub", "verify"]).status.code(), Some(0));
    assert_eq!(status(&old), before, "the source is unchanged");

    // The nodes go on through the new hub: it must extend what they hold.
    let hub = Edge::start_hub(&new);
    common::add_actions(&a, "a2", 0, 5);
    ok(&cairn(&a, &["--json", "sync", "--hub", &hub.url]));
    ok(&cairn(&b, &["--json", "sync", "--hub", &hub.url]));
    let listed = json_out(&cairn(
        &b,
        &["--json", "record", "list", "maintenance_actions"],
    ));
    assert_eq!(listed["records"].as_array().unwrap().len(), 55);
    hub.kill();
    assert_eq!(status(&new)["log_size"], 57);
    assert_eq!(cairn(&new, &["hub", "verify"]).status.code(), Some(0));
}
