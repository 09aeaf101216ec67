//! Signed compliance reports (issue 13): generated from a seeded history,
//! their figures match counts made independently from the hub's database;
//! `cairn verify report` accepts each form and rejects it after any single
//! byte changes; the PDF reads back through poppler's `pdftotext` with the
//! same figures; the aircraft export lists every record of one registration.

mod common;

use cairn_core::op::Action;
use cairn_edge::WriteRequest;
use common::{Edge, cairn, enrolled_node, ok};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

fn write(dir: &Path, requests: Vec<Value>) {
    let store = cairn_edge::EdgeStore::open(dir).unwrap();
    let requests = requests
        .into_iter()
        .map(|data| WriteRequest {
            collection: data["collection"].as_str().unwrap().into(),
            action: Action::Append,
            key: None,
            scope: Default::default(),
            data: data["data"].clone(),
            corrects: None,
            reason: None,
            move_scope: false,
        })
        .collect();
    store.write_batch(requests).unwrap();
}

fn action(n: usize, registration: &str, technician: &str) -> Value {
    json!({"collection": "maintenance_actions", "data": {
        "work_order": format!("WO-{n}"), "aircraft_registration": registration, "part_serial": format!("SN-{n}"),
        "technician": technician, "performed_on": "2026-11-20", "certificate_expiry": "2027-11-20",
        "action": "inspection"}})
}

fn dispense(n: usize, schedule: &str) -> Value {
    json!({"collection": "dispensing", "data": {
        "ndc": "0093-7180-01", "quantity": 30, "dea_schedule": schedule, "prescription_id": format!("RX-{n}"),
        "pharmacist_npi": "1111111111", "dispensed_at": "2026-11-20T08:00:00Z", "idempotency_key": format!("k-{n}")}})
}

/// Counts made from the database directly: ops in the log, by state (the
/// verdict runs) and by collection (each op decoded), rejections by rule.
type Counts = (
    u64,
    BTreeMap<String, u64>,
    BTreeMap<String, u64>,
    BTreeMap<String, u64>,
);

fn counts(hub_dir: &Path) -> Counts {
    let db = rusqlite::Connection::open(hub_dir.join("hub.db")).unwrap();
    let total: i64 = db
        .query_row("SELECT count(*) FROM log", [], |row| row.get(0))
        .unwrap();
    let mut by_state = BTreeMap::new();
    let mut rules = BTreeMap::new();
    let mut statement = db
        .prepare("SELECT state, end_leaf - begin_leaf, violations FROM verdicts")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (state, count, violations) = row.unwrap();
        *by_state.entry(state.clone()).or_default() += count as u64;
        if state == "rejected" {
            let violations: Value = serde_json::from_str(&violations).unwrap();
            for violation in violations.as_array().unwrap() {
                *rules
                    .entry(violation["rule"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    let mut by_collection = BTreeMap::new();
    let mut statement = db.prepare("SELECT op FROM log").unwrap();
    for bytes in statement
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
    {
        let op = cairn_core::op::Op::decode(&bytes.unwrap()).unwrap();
        *by_collection.entry(op.draft.collection).or_default() += 1;
    }
    (total as u64, by_state, by_collection, rules)
}

fn report(hub_dir: &Path, format: &str, out: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "--json",
        "report",
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ok(&cairn(hub_dir, &args))
}

#[test]
fn a_report_matches_the_database_verifies_and_refuses_any_changed_byte() {
    if common::sqlite_file_only("the figures are counted in hub.db") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hub_dir = dir.join("hub");
    let initialized = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let hub_key = initialized["public_key"].as_str().unwrap().to_string();
    common::register_technician(&hub_dir);
    let hangar = enrolled_node(dir, &hub_dir, "site-1", "site=hangar-7");
    let till = enrolled_node(dir, &hub_dir, "till-1", "pharmacy=main-st");
    let actions = (0..20)
        .map(|n| {
            let registration = if n < 12 { "N123AB" } else { "N456CD" };
            let technician = if n % 7 == 3 {
                "TECH-XX-0001"
            } else {
                "TECH-IA-4412"
            };
            action(n, registration, technician)
        })
        .collect();
    write(&hangar, actions);
    write(
        &till,
        (0..10)
            .map(|n| dispense(n, if n < 4 { "II" } else { "IV" }))
            .collect(),
    );
    let hub = Edge::start_hub(&hub_dir);
    for node in [&hangar, &till] {
        ok(&cairn(node, &["--json", "sync", "--hub", &hub.url]));
    }
    drop(hub);
    ok(&cairn(&hub_dir, &["--json", "hub", "judge"]));
    let (total, by_state, by_collection, rules) = counts(&hub_dir);
    assert_eq!(by_collection["maintenance_actions"], 20);
    assert_eq!(by_state.get("rejected"), Some(&3), "{by_state:?}");

    let json_file = dir.join("report.json");
    report(&hub_dir, "json", &json_file, &["--aircraft", "N123AB"]);
    let made: Value = serde_json::from_slice(&std::fs::read(&json_file).unwrap()).unwrap();
    assert_eq!(made["records"], total);
    assert_eq!(made["by_state"], json!(by_state));
    assert_eq!(made["by_collection"], json!(by_collection));
    assert_eq!(made["rejections_by_rule"], json!(rules));
    assert_eq!(made["schedule_two"]["dispensed"], 4);
    assert_eq!(
        made["ndc_normalized"],
        json!([10, 10]),
        "NDC-10 written, NDC-11 logged"
    );
    assert_eq!(made["latency"]["count"], total);
    let exported = made["aircraft"][1].as_array().unwrap();
    assert_eq!(exported.len(), 12, "every record of N123AB");
    assert!(
        exported
            .iter()
            .all(|record| record["data"]["aircraft_registration"] == "N123AB")
    );

    // Each form verifies, the detached seal matches, and no byte can change.
    let html_file = dir.join("report.html");
    let pdf_file = dir.join("report.pdf");
    report(&hub_dir, "html", &html_file, &[]);
    report(&hub_dir, "pdf", &pdf_file, &[]);
    for file in [&json_file, &html_file, &pdf_file] {
        let path = file.to_str().unwrap();
        let verified = ok(&cairn(
            dir,
            &["--json", "verify", "report", path, "--hub-key", &hub_key],
        ));
        assert_eq!(
            (
                verified["verified"].as_bool(),
                verified["detached"].as_bool()
            ),
            (Some(true), Some(true))
        );
        let bytes = std::fs::read(file).unwrap();
        for at in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[at] ^= 0x20;
            assert!(
                cairn_core::seal::verify_sealed(&changed, None).is_err(),
                "{} byte {at}",
                file.display()
            );
        }
        let mut changed = bytes.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        let tampered = dir.join(format!(
            "tampered.{}",
            file.extension().unwrap().to_str().unwrap()
        ));
        std::fs::write(&tampered, &changed).unwrap();
        let refused = cairn(
            dir,
            &["--json", "verify", "report", tampered.to_str().unwrap()],
        );
        assert_eq!(refused.status.code(), Some(4), "{}", file.display());
    }

    // The PDF, read back by poppler, says the same figures.
    let text = std::process::Command::new("pdftotext")
        .args(["-layout", pdf_file.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext runs (poppler-utils; .ci/run installs it)");
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let value_of = |label: &str| -> Option<String> {
        // A row: the label, then its value (a section's title has none).
        text.lines().find_map(|line| {
            let value = line.trim_start().strip_prefix(label)?.trim();
            (!value.is_empty()).then(|| value.to_string())
        })
    };
    assert_eq!(value_of("Records"), Some(total.to_string()), "{text}");
    assert_eq!(value_of("State rejected"), Some("3".into()), "{text}");
    assert_eq!(
        value_of("Schedule II dispensings"),
        Some("4".into()),
        "{text}"
    );
    assert_eq!(
        value_of("Collection maintenance_actions"),
        Some("20".into()),
        "{text}"
    );
}
