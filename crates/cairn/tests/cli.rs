//! The `cairn` command line, run as a real process: every command, and every
//! error path with its message (field and rule) and exit code.

mod common;

use common::{action, cairn, cairn_stdin, init_node, json_out};
use serde_json::json;

const INVALID: i32 = 3;
const NOT_FOUND: i32 = 6;

#[test]
fn add_get_list_correct_status_verify() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "hangar-7");
    let record = action("WO-1").to_string();
    let added = json_out(&cairn(
        dir.path(),
        &["--json", "record", "add", "maintenance_actions", &record],
    ));
    assert_eq!(added["id"], "hangar-7:standard:1");
    let got = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "get",
            "maintenance_actions",
            "hangar-7:standard:1",
        ],
    ));
    assert_eq!(got["data"]["work_order"], "WO-1");
    assert_eq!(got["scope"]["site"], "hangar-7");
    let mut fixed = action("WO-1");
    fixed["part_serial"] = json!("SN-2");
    let corrected = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "correct",
            "maintenance_actions",
            "hangar-7:standard:1",
            &fixed.to_string(),
            "--reason",
            "serial misread",
        ],
    ));
    assert_eq!(corrected["id"], "hangar-7:standard:2");
    let got = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "get",
            "maintenance_actions",
            "hangar-7:standard:1",
        ],
    ));
    assert_eq!(got["data"]["part_serial"], "SN-1");
    assert_eq!(got["corrected_by"], json!(["hangar-7:standard:2"]));
    let listed = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "list",
            "maintenance_actions",
            "--scope",
            "site=hangar-7",
        ],
    ));
    assert_eq!(listed["records"].as_array().unwrap().len(), 2);
    let none = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "list",
            "maintenance_actions",
            "--scope",
            "site=elsewhere",
        ],
    ));
    assert_eq!(none["records"], json!([]));
    // An entity from stdin, then a delete.
    let output = cairn_stdin(
        dir.path(),
        &[
            "--json",
            "record",
            "add",
            "equipment",
            "-",
            "--key",
            "ahu-3",
        ],
        br#"{"building_id": "B12", "name": "Air handler", "status": "operational"}"#,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deleted = cairn(dir.path(), &["record", "delete", "equipment", "ahu-3"]);
    assert!(deleted.status.success());
    let status = json_out(&cairn(dir.path(), &["--json", "status"]));
    assert_eq!(status["pending_total"], 4);
    assert!(status["oldest_pending_age_ms"].is_u64());
    assert!(status["storage_bytes"].as_u64().unwrap() > 0);
    let table = cairn(dir.path(), &["status"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("standard"));
    let verified = cairn(dir.path(), &["--json", "verify"]);
    assert_eq!(verified.status.code(), Some(0));
    assert_eq!(json_out(&verified)["intact"], true);
}

/// Runs a command expected to be refused and returns its first violation.
fn refused(dir: &std::path::Path, args: &[&str]) -> (String, String) {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let output = cairn(dir, &full);
    assert_eq!(
        output.status.code(),
        Some(INVALID),
        "args {args:?}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let body = json_out(&output);
    let first = &body["error"]["violations"][0];
    (
        first["field"].as_str().unwrap().to_string(),
        first["rule"].as_str().unwrap().to_string(),
    )
}

#[test]
fn every_cli_error_path_names_field_and_rule_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "hangar-7");
    let d = dir.path();
    let pair = |field: &str, rule: &str| (field.to_string(), rule.to_string());
    assert_eq!(
        refused(d, &["record", "add", "maintenance_actions", "{not json"]),
        pair("record", "json")
    );
    let mut wrong = action("WO-1");
    wrong["hours"] = json!("many");
    assert_eq!(
        refused(
            d,
            &["record", "add", "maintenance_actions", &wrong.to_string()]
        ),
        pair("hours", "type")
    );
    let mut missing = action("WO-1");
    missing.as_object_mut().unwrap().remove("technician");
    assert_eq!(
        refused(
            d,
            &["record", "add", "maintenance_actions", &missing.to_string()]
        ),
        pair("technician", "required")
    );
    assert_eq!(
        refused(d, &["record", "add", "no_such_thing", "{}"]),
        pair("collection", "unknown")
    );
    let mut oversize = action("WO-1");
    oversize["description"] = json!("x".repeat(70_000));
    let (field, rule) = refused(
        d,
        &[
            "record",
            "add",
            "maintenance_actions",
            &oversize.to_string(),
        ],
    );
    assert!(
        field == "description" && rule == "max_length" || field == "data" && rule == "max_bytes",
        "{field} {rule}"
    );
    // Invalid UTF-8 on stdin and in an argument.
    let output = cairn_stdin(
        d,
        &["--json", "record", "add", "maintenance_actions", "-"],
        b"{\"work_order\": \"\xff\"}",
    );
    assert_eq!(output.status.code(), Some(INVALID));
    assert_eq!(json_out(&output)["error"]["violations"][0]["rule"], "utf8");
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let output = std::process::Command::new(common::bin())
            .arg("--data")
            .arg(d)
            .args(["--json", "record", "add", "maintenance_actions"])
            .arg(std::ffi::OsStr::from_bytes(b"{\"a\":\"\xfe\"}"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(INVALID));
        assert_eq!(json_out(&output)["error"]["violations"][0]["rule"], "utf8");
    }
    assert_eq!(
        refused(d, &["record", "add", "equipment", r#"{"name": "x"}"#]),
        pair("key", "required")
    );
    assert_eq!(
        refused(
            d,
            &[
                "record",
                "add",
                "maintenance_actions",
                &action("WO-1").to_string(),
                "--scope",
                "site"
            ]
        ),
        pair("scope", "format")
    );
    assert_eq!(
        refused(
            d,
            &[
                "record",
                "correct",
                "maintenance_actions",
                "hangar-7:standard:99",
                &action("WO-1").to_string(),
                "--reason",
                "x"
            ]
        ),
        pair("corrects", "exists")
    );
    assert_eq!(
        refused(d, &["record", "delete", "equipment", "nothing"]),
        pair("key", "exists")
    );
    assert_eq!(
        refused(
            d,
            &["record", "list", "maintenance_actions", "--limit", "0"]
        ),
        pair("limit", "range")
    );
    assert_eq!(
        refused(d, &["edge", "init", "--node", "again"]),
        pair("init", "config")
    );
    // Nothing of all that was stored.
    let status = json_out(&cairn(d, &["--json", "status"]));
    assert_eq!(status["pending_total"], 0);
    let missing = cairn(
        d,
        &[
            "--json",
            "record",
            "get",
            "maintenance_actions",
            "hangar-7:standard:1",
        ],
    );
    assert_eq!(missing.status.code(), Some(NOT_FOUND));
    // Human form goes to stderr and names the rule.
    let output = cairn(
        d,
        &["record", "add", "maintenance_actions", &wrong.to_string()],
    );
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("hours: must be a number, got a string (rule: type)")
    );
}

#[test]
fn init_rejects_bad_names_and_unknown_packs() {
    let dir = tempfile::tempdir().unwrap();
    let output = cairn(
        dir.path(),
        &["--json", "edge", "init", "--node", "Bad Name"],
    );
    assert_eq!(output.status.code(), Some(INVALID));
    let output = cairn(
        dir.path(),
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "ok",
            "--pack",
            "astrology",
        ],
    );
    assert_eq!(output.status.code(), Some(INVALID));
    assert!(
        json_out(&output)["error"]["violations"][0]["message"]
            .as_str()
            .unwrap()
            .contains("astrology")
    );
    // No node there: not found, saying to run edge init (issue 9, item 18).
    let output = cairn(&dir.path().join("nothing-here"), &["status"]);
    assert_eq!(output.status.code(), Some(NOT_FOUND));
}

#[test]
fn the_demo_runs_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(common::bin())
        .args(["demo", "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("demo OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_9_10_cli_writes_beside_a_running_server_go_through_it() {
    let dir = tempfile::tempdir().unwrap();
    common::init_node(dir.path(), "hangar-7");
    let edge = tokio::task::block_in_place(|| common::Edge::start(dir.path()));
    let add = |work_order: &str| {
        tokio::task::block_in_place(|| {
            cairn(
                dir.path(),
                &[
                    "--json",
                    "record",
                    "add",
                    "maintenance_actions",
                    &action(work_order).to_string(),
                ],
            )
        })
    };
    assert_eq!(json_out(&add("WO-1"))["id"], "hangar-7:standard:1");
    // The server's own next write still works: the ids went on in order.
    let client = cairn_http::tls::builder().build().unwrap();
    let response = client
        .post(format!("{}/v1/records", edge.url))
        .json(&json!({"collection": "maintenance_actions", "data": action("WO-2")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(json_out(&add("WO-3"))["id"], "hangar-7:standard:3");
    // A refusal comes back from the server as the command line's own.
    let refused = tokio::task::block_in_place(|| {
        cairn(
            dir.path(),
            &["--json", "record", "add", "maintenance_actions", "{}"],
        )
    });
    assert_eq!(refused.status.code(), Some(INVALID));
    assert!(
        json_out(&refused)["error"]["violations"]
            .to_string()
            .contains("required")
    );
    // Syncing by hand beside it is refused, naming it.
    let sync =
        tokio::task::block_in_place(|| cairn(dir.path(), &["sync", "--hub", "http://127.0.0.1:9"]));
    assert_eq!(sync.status.code(), Some(INVALID));
    assert!(String::from_utf8_lossy(&sync.stderr).contains("edge serve"));
    edge.kill();
    assert_eq!(
        json_out(&cairn(dir.path(), &["--json", "verify"]))["intact"],
        true
    );
}

#[test]
fn issue_9_12_a_scoped_entity_moves_only_when_told_and_deletes_without_its_scope() {
    let dir = tempfile::tempdir().unwrap();
    let output = cairn(
        dir.path(),
        &[
            "--json", "edge", "init", "--node", "tech-1", "--scope", "site=x",
        ],
    );
    assert!(output.status.success());
    let put = |data: serde_json::Value, extra: &[&str]| {
        let text = data.to_string();
        let mut args = vec![
            "--json",
            "record",
            "add",
            "equipment",
            &text,
            "--key",
            "ahu-3",
        ];
        args.extend_from_slice(extra);
        cairn(dir.path(), &args)
    };
    let created = put(
        json!({"building_id": "B12", "name": "AHU 3"}),
        &["--scope", "building=B12"],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    // An update that names no building keeps the record's.
    assert!(put(json!({"status": "degraded"}), &[]).status.success());
    let moved = put(json!({"status": "down"}), &["--scope", "building=B99"]);
    assert_eq!(moved.status.code(), Some(INVALID));
    let body = json_out(&moved);
    assert_eq!(body["error"]["violations"][0]["rule"], "move", "{body}");
    let got = json_out(&cairn(
        dir.path(),
        &["--json", "record", "get", "equipment", "ahu-3"],
    ));
    assert_eq!(got["scope"]["building"], "B12", "{got}");
    assert!(
        put(
            json!({"status": "down"}),
            &["--scope", "building=B99", "--move"]
        )
        .status
        .success()
    );
    let got = json_out(&cairn(
        dir.path(),
        &["--json", "record", "get", "equipment", "ahu-3"],
    ));
    assert_eq!(got["scope"]["building"], "B99", "{got}");
    // Deleted without naming its scope: it is the record's own.
    let deleted = cairn(
        dir.path(),
        &["--json", "record", "delete", "equipment", "ahu-3"],
    );
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stdout)
    );
}

#[test]
fn issue_9_11_record_list_pages_through_everything_or_says_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "hangar-7");
    let records: Vec<serde_json::Value> = (0..1_205)
        .map(|n| json!({"collection": "maintenance_actions", "data": action(&format!("WO-{n}"))}))
        .collect();
    for chunk in records.chunks(1_000) {
        let body = json!({"records": chunk}).to_string();
        let store = cairn_edge::EdgeStore::open(dir.path()).unwrap();
        let requests = cairn_edge::input::batch_request(
            &store.catalog(),
            &serde_json::from_str(&body).unwrap(),
        )
        .unwrap();
        store.write_batch(requests).unwrap();
    }
    let all = json_out(&cairn(
        dir.path(),
        &["--json", "record", "list", "maintenance_actions"],
    ));
    assert_eq!(all["records"].as_array().unwrap().len(), 1_205);
    assert_eq!(all["next"], serde_json::Value::Null);
    let first = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "list",
            "maintenance_actions",
            "--limit",
            "50",
        ],
    ));
    assert_eq!(first["records"].as_array().unwrap().len(), 50);
    let next = first["next"].as_str().unwrap().to_string();
    assert_eq!(next, "hangar-7:standard:50");
    let rest = json_out(&cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "list",
            "maintenance_actions",
            "--after",
            &next,
        ],
    ));
    assert_eq!(rest["records"].as_array().unwrap().len(), 1_155);
    // The table keeps whole values, and says where to resume.
    let table = cairn(
        dir.path(),
        &["record", "list", "maintenance_actions", "--limit", "2"],
    );
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("certificate_expiry: 2027-11-20"), "{text}");
    assert!(
        text.contains("more records follow: --after hangar-7:standard:2"),
        "{text}"
    );
    let refused = cairn(
        dir.path(),
        &[
            "--json",
            "record",
            "list",
            "maintenance_actions",
            "--after",
            "x",
        ],
    );
    assert_eq!(refused.status.code(), Some(INVALID));
}

#[test]
fn issue_9_18_19_plain_errors_status_and_a_quota_that_can_change() {
    let work = tempfile::tempdir().unwrap();
    // A directory without a node says what to run, once.
    let empty = work.path().join("empty");
    let output = cairn(&empty, &["status"]);
    assert_eq!(output.status.code(), Some(NOT_FOUND));
    let said = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        said.contains("edge init") && said.matches("holds no").count() == 1,
        "{said}"
    );
    // A refusal that stores nothing does not say it stored nothing.
    let node = work.path().join("node");
    let made = cairn(
        &node,
        &[
            "edge",
            "init",
            "--node",
            "n",
            "--scope",
            "site=x",
            "--quota-bytes",
            "1",
        ],
    );
    assert!(made.status.success());
    let output = cairn(&node, &["sync"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("nothing was stored"));
    // A full quota says how to raise it; raised, the write goes in.
    let full = cairn(
        &node,
        &[
            "record",
            "add",
            "maintenance_actions",
            &action("WO-1").to_string(),
        ],
    );
    assert_eq!(full.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&full.stderr).contains("cairn edge config --quota-bytes"));
    let config = json_out(&cairn(
        &node,
        &["--json", "edge", "config", "--quota-bytes", "0"],
    ));
    assert_eq!(config["quota_bytes"], 0);
    let added = cairn(
        &node,
        &[
            "record",
            "add",
            "maintenance_actions",
            &action("WO-1").to_string(),
        ],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // Human status says how sync goes.
    let status = String::from_utf8_lossy(&cairn(&node, &["status"]).stdout).to_string();
    assert!(status.contains("sync: never ran here"), "{status}");
    // A staff token's lifetime is told in the unit it was asked in.
    let hub = work.path().join("hub");
    assert!(
        cairn(&hub, &["hub", "init", "--origin", "t.hub"])
            .status
            .success()
    );
    let output = cairn(
        &hub,
        &[
            "hub",
            "token",
            "--subject",
            "alice",
            "--role",
            "auditor",
            "--minutes",
            "30",
        ],
    );
    assert_eq!(output.status.code(), Some(INVALID));
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 to 15 minutes"));
}
