//! Rule packs as files (issue 11, item 4, first part): a site's own pack
//! is checked and activated at `edge init`, judged like the built-in ones,
//! and `cairn pack list|show` (and `GET /v1/collections`) say what every
//! field accepts, so a person can discover what to send.

mod common;

use common::{cairn, json_out};

const INVALID: i32 = 3;

/// A small pack of a site's own: calibration records of test equipment.
const CALIBRATION: &str = r#"
name = "calibration"
version = "0.3.0"
title = "Calibration of test equipment"

[collections.calibrations]
kind = "ledger"
stream = "standard"
scope = ["site"]
description = "One record per calibration of a tool."

[collections.calibrations.fields]
tool = { type = "string", required = true, normalize = "upper", format = "^TOOL-[0-9]{3}$" }
calibrated_on = { type = "date", required = true }
result = { type = "string", required = true, enum = ["pass", "fail"] }
drift_ppm = { type = "number", min = 0, max = 500 }
"#;

#[test]
fn a_site_s_own_pack_is_activated_shown_and_enforced() {
    let work = tempfile::tempdir().unwrap();
    let packs = work.path().join("packs");
    std::fs::create_dir(&packs).unwrap();
    std::fs::write(packs.join("calibration.toml"), CALIBRATION).unwrap();
    let node = work.path().join("node");
    let init = cairn(
        &node,
        &[
            "edge",
            "init",
            "--node",
            "lab-1",
            "--scope",
            "site=lab-1",
            "--pack",
            "mro",
            "--pack-dir",
            packs.to_str().unwrap(),
        ],
    );
    assert!(init.status.success(), "{init:?}");

    let listed = json_out(&cairn(&node, &["--json", "pack", "list"]));
    let packs = listed["packs"].as_array().unwrap();
    let mut names: Vec<&str> = packs
        .iter()
        .map(|pack| pack["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["calibration", "mro"]);
    let calibration = packs.iter().find(|pack| pack["name"] == "calibration");
    assert_eq!(calibration.unwrap()["version"], "0.3.0");

    let shown = json_out(&cairn(&node, &["--json", "pack", "show", "calibration"]));
    let fields = &shown["collections"][0]["fields"];
    assert_eq!(fields["tool"]["format"], "^TOOL-[0-9]{3}$");
    assert_eq!(fields["tool"]["normalize"], "upper");
    assert_eq!(
        fields["result"]["enum"],
        serde_json::json!(["pass", "fail"])
    );
    assert_eq!(fields["drift_ppm"]["max"], 500.0);
    let table = cairn(&node, &["pack", "show", "calibration"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("calibrations (ledger") && text.contains("TOOL-"),
        "{text}"
    );

    // Judged like a built-in pack: a good record goes in, a bad one is
    // refused naming the field and the rule.
    let good = r#"{"tool": "tool-007", "calibrated_on": "2026-11-20", "result": "pass"}"#;
    let added = json_out(&cairn(
        &node,
        &["--json", "record", "add", "calibrations", good],
    ));
    assert_eq!(added["id"], "lab-1:standard:1");
    let bad = r#"{"tool": "wrench", "calibrated_on": "2026-11-20", "result": "maybe"}"#;
    let refused = cairn(&node, &["--json", "record", "add", "calibrations", bad]);
    assert_eq!(refused.status.code(), Some(INVALID));
    let said = json_out(&refused).to_string();
    assert!(
        said.contains("\"tool\"") && said.contains("format"),
        "{said}"
    );
    assert!(
        said.contains("\"result\"") && said.contains("enum"),
        "{said}"
    );
}

#[test]
fn a_bad_pack_file_is_named_and_nothing_is_created() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("broken.toml");
    std::fs::write(
        &file,
        CALIBRATION.replace("type = \"date\"", "type = \"calendar\""),
    )
    .unwrap();
    let node = work.path().join("node");
    let init = cairn(
        &node,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "lab-1",
            "--pack-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(init.status.code(), Some(INVALID));
    let said = json_out(&init).to_string();
    assert!(
        said.contains("broken.toml") && said.contains("pack_file"),
        "{said}"
    );
    assert!(!node.join("node.key").exists());

    // The same pack twice is refused too.
    let twice = work.path().join("twice.toml");
    std::fs::write(&twice, CALIBRATION).unwrap();
    let init = cairn(
        &node,
        &[
            "edge",
            "init",
            "--node",
            "lab-1",
            "--pack-file",
            twice.to_str().unwrap(),
            "--pack-file",
            twice.to_str().unwrap(),
        ],
    );
    assert_eq!(init.status.code(), Some(INVALID));
    assert!(String::from_utf8_lossy(&init.stderr).contains("given twice"));
}

#[test]
fn a_pack_file_can_be_read_before_any_node_exists() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("calibration.toml");
    std::fs::write(&file, CALIBRATION).unwrap();
    let nowhere = work.path().join("no-node");
    let shown = json_out(&cairn(
        &nowhere,
        &["--json", "pack", "show", "--file", file.to_str().unwrap()],
    ));
    assert_eq!(shown["name"], "calibration");
    assert_eq!(
        shown["collections"][0]["fields"]["calibrated_on"]["type"],
        "date"
    );
    // An active pack by name needs a node; a pack the node lacks is named.
    common::init_node(&work.path().join("node"), "lab-2");
    let missing = cairn(&work.path().join("node"), &["pack", "show", "calibration"]);
    assert_eq!(missing.status.code(), Some(INVALID));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not active here"));
}
