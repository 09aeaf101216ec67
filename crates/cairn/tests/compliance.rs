//! The hub judges every op it logs by its own rule packs (issue 11, item 1,
//! first part), with real processes on 127.0.0.1: an op the hub's stricter
//! pack refuses is logged all the same (no chain breaks, the receipt
//! verifies, `hub verify` passes) and stands REJECTED, named by pack
//! version, field and rule, in the node's sync report and the hub's
//! status; an op of a collection the hub has no pack for is REJECTED too.

mod common;

use common::{Edge, cairn, json_out, ok};

/// The site's calibration pack: tools numbered with three or four digits.
const LOOSE: &str = r#"
name = "calibration"
version = "0.3.0"
title = "Calibration of test equipment"

[collections.calibrations]
kind = "ledger"
stream = "standard"
scope = ["site"]
description = "One record per calibration of a tool."

[collections.calibrations.fields]
tool = { type = "string", required = true, normalize = "upper", format = "^TOOL-[0-9]{3,4}$" }
calibrated_on = { type = "date", required = true }
result = { type = "string", required = true, enum = ["pass", "fail"] }
"#;

#[test]
fn the_hub_rejects_by_its_own_pack_and_keeps_every_chain() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, packs) = (work.path().join("hub"), work.path().join("packs"));
    std::fs::create_dir(&packs).unwrap();
    // The hub's version of the pack is stricter: four digits only.
    let strict = LOOSE
        .replace("0.3.0", "1.0.0")
        .replace("[0-9]{3,4}", "[0-9]{4}");
    std::fs::write(packs.join("calibration.toml"), &strict).unwrap();
    std::fs::write(work.path().join("loose.toml"), LOOSE).unwrap();
    let hub_key = ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "init",
            "--origin",
            "test.hub",
            "--pack-dir",
            packs.to_str().unwrap(),
        ],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let node = work.path().join("lab-1");
    let key = ok(&cairn(
        &node,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "lab-1",
            "--scope",
            "site=lab-1",
            "--pack",
            "mro",
            "--pack-file",
            work.path().join("loose.toml").to_str().unwrap(),
        ],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "enroll", "lab-1", "--public-key", &key],
    ));
    for tool in ["TOOL-1234", "TOOL-007", "TOOL-5678"] {
        let record =
            format!(r#"{{"tool": "{tool}", "calibrated_on": "2026-11-20", "result": "pass"}}"#);
        ok(&cairn(
            &node,
            &["--json", "record", "add", "calibrations", &record],
        ));
    }
    let hub = Edge::start_hub(&hub_dir);
    let synced = cairn(
        &node,
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
    let report = json_out(&synced);
    assert!(synced.status.success(), "{report}");
    // All three are logged and acknowledged: the integrity log is whole.
    assert_eq!(report["accepted"], 3, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{report}");
    let said = rejected[0].as_str().unwrap();
    assert!(
        said.contains("seq 2")
            && said.contains("calibration 1.0.0")
            && said.contains("tool")
            && said.contains("format"),
        "{said}"
    );
    hub.kill();
    let status = ok(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(status["states"]["persisted"], 2, "{status}");
    assert_eq!(status["states"]["rejected"], 1, "{status}");
    assert_eq!(status["packs"]["calibration"], "1.0.0");
    let verified = cairn(&hub_dir, &["--json", "hub", "verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let verified = cairn(&node, &["--json", "verify"]);
    assert!(verified.status.success());
}

#[test]
fn an_op_of_a_collection_the_hub_has_no_pack_for_is_rejected_not_lost() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    std::fs::write(work.path().join("loose.toml"), LOOSE).unwrap();
    let hub_key = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let node = work.path().join("lab-2");
    let key = ok(&cairn(
        &node,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "lab-2",
            "--scope",
            "site=lab-2",
            "--pack-file",
            work.path().join("loose.toml").to_str().unwrap(),
        ],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "enroll", "lab-2", "--public-key", &key],
    ));
    let record = r#"{"tool": "TOOL-1234", "calibrated_on": "2026-11-20", "result": "pass"}"#;
    ok(&cairn(
        &node,
        &["--json", "record", "add", "calibrations", record],
    ));
    let hub = Edge::start_hub(&hub_dir);
    let report = json_out(&cairn(
        &node,
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
    ));
    hub.kill();
    assert_eq!(report["accepted"], 1, "{report}");
    let said = report["rejected"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        said.contains("active_pack") && said.contains("calibrations"),
        "{report}"
    );
    let status = ok(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(status["states"]["rejected"], 1, "{status}");
}
