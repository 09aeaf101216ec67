//! Offline bundles with real processes: the edge exports what the hub has not
//! acknowledged, the hub imports it with the verification of a push, and the
//! hub's signed acknowledgements come back the same way.

mod common;

use cairn_edge::EdgeStore;
use cairn_hub_sqlite::HubStore;
use common::{action, cairn, json_out, ok};
use proptest::prelude::*;
use serde_json::json;
use std::path::Path;

#[test]
fn a_bundle_and_its_acknowledgements_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let (hub, edge) = (work.path().join("hub"), work.path().join("edge"));
    let hub_key = ok(&cairn(
        &hub,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let edge_key = ok(&cairn(
        &edge,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "site-9",
            "--scope",
            "site=site-9",
        ],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&cairn(
        &hub,
        &[
            "--json",
            "hub",
            "enroll",
            "site-9",
            "--public-key",
            &edge_key,
        ],
    ));
    for n in 0..12 {
        ok(&cairn(
            &edge,
            &[
                "--json",
                "record",
                "add",
                "maintenance_actions",
                &action(&format!("WO-{n}")).to_string(),
            ],
        ));
    }
    let bundle = work.path().join("bundle.jsonl");
    let bundle_text = bundle.to_str().unwrap();
    assert_eq!(
        ok(&cairn(
            &edge,
            &["--json", "edge", "export", "--out", bundle_text]
        ))["ops"],
        12
    );
    let report = ok(&cairn(&hub, &["--json", "hub", "import", bundle_text]));
    assert_eq!(
        (report["accepted"].clone(), report["duplicate"].clone()),
        (serde_json::json!(12), serde_json::json!(0))
    );
    // Importing the same stick twice is harmless.
    let report = ok(&cairn(&hub, &["--json", "hub", "import", bundle_text]));
    assert_eq!(
        (report["accepted"].clone(), report["duplicate"].clone()),
        (serde_json::json!(0), serde_json::json!(12))
    );

    let acks = work.path().join("acks.json");
    let acks_text = acks.to_str().unwrap();
    ok(&cairn(
        &hub,
        &[
            "--json",
            "hub",
            "export-acks",
            "--node",
            "site-9",
            "--out",
            acks_text,
        ],
    ));
    // A tampered acknowledgement file is refused and changes nothing.
    let forged = work.path().join("forged.json");
    std::fs::write(
        &forged,
        std::fs::read_to_string(&acks)
            .unwrap()
            .replace("\"seq\":12", "\"seq\":11"),
    )
    .unwrap();
    let output = cairn(
        &edge,
        &[
            "edge",
            "import-acks",
            forged.to_str().unwrap(),
            "--hub-key",
            &hub_key,
            "--hub-origin",
            "test.hub",
        ],
    );
    assert_eq!(output.status.code(), Some(7));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not signed by the hub"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        json_out(&cairn(&edge, &["--json", "status"]))["pending_total"],
        12
    );
    let applied = ok(&cairn(
        &edge,
        &[
            "--json",
            "edge",
            "import-acks",
            acks_text,
            "--hub-key",
            &hub_key,
            "--hub-origin",
            "test.hub",
        ],
    ));
    assert_eq!(applied["acknowledged"][0]["seq"], 12);
    assert_eq!(
        json_out(&cairn(&edge, &["--json", "status"]))["pending_total"],
        0
    );
    let again = work.path().join("again.jsonl");
    assert_eq!(
        ok(&cairn(
            &edge,
            &["--json", "edge", "export", "--out", again.to_str().unwrap()]
        ))["ops"],
        0
    );

    // A hub that lacks the ops before a bundle refuses it whole, naming the
    // seq to send from, and stores nothing (a gap is not damage).
    let other_hub = work.path().join("other-hub");
    ok(&cairn(
        &other_hub,
        &["--json", "hub", "init", "--origin", "other.hub"],
    ));
    ok(&cairn(
        &other_hub,
        &[
            "--json",
            "hub",
            "enroll",
            "site-9",
            "--public-key",
            &edge_key,
        ],
    ));
    ok(&cairn(
        &edge,
        &[
            "--json",
            "record",
            "add",
            "maintenance_actions",
            &action("WO-12").to_string(),
        ],
    ));
    let later = work.path().join("later.jsonl");
    ok(&cairn(
        &edge,
        &["--json", "edge", "export", "--out", later.to_str().unwrap()],
    ));
    let output = cairn(&other_hub, &["hub", "import", later.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("push from seq 1"), "{said}");
    let status = ok(&cairn(&other_hub, &["--json", "hub", "status"]));
    assert_eq!(status["quarantined"], 0, "{status}");
    assert!(
        status["streams"].get("site-9:standard").is_none(),
        "{status}"
    );
}

fn refused_import(hub: &Path, text: &str, work: &Path, name: &str) -> String {
    let path = work.join(name);
    std::fs::write(&path, text).unwrap();
    let output = cairn(hub, &["hub", "import", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{name}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn bad_bundles_are_refused_with_the_line_and_field() {
    let work = tempfile::tempdir().unwrap();
    let hub = work.path().join("hub");
    ok(&cairn(
        &hub,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    assert!(refused_import(&hub, "", work.path(), "empty").contains("line 1"));
    assert!(
        refused_import(&hub, "{\"format\":\"other\"}\n", work.path(), "format").contains("format")
    );
    let header = "{\"format\":\"cairn-bundle/1\",\"node\":\"a\",\"created_ms\":0}\n";
    assert!(
        refused_import(&hub, &format!("{header}not json\n"), work.path(), "garbage")
            .contains("line 2: not JSON")
    );
    let message = refused_import(
        &hub,
        &format!("{header}{{\"node\":\"a\",\"stream\":\"s\",\"ops\":[1]}}\n"),
        work.path(),
        "fields",
    );
    assert!(
        message.contains("ops[0]") && message.contains("checkpoint.seq"),
        "{message}"
    );
    let other = format!(
        "{header}{{\"node\":\"b\",\"stream\":\"s\",\"ops\":[\"AA==\"],\"checkpoint\":{{\"seq\":1,\"head\":\"{}\",\"signature\":\"{}\"}}}}\n",
        "0".repeat(64),
        "0".repeat(128)
    );
    assert!(refused_import(&hub, &other, work.path(), "foreign").contains("ops of \"b\""));
    let status = json_out(&cairn(&hub, &["--json", "hub", "status"]));
    assert_eq!(
        (status["log_size"].clone(), status["quarantined"].clone()),
        (serde_json::json!(0), serde_json::json!(0))
    );
}

/// A hub, an enrolled edge with three records, its bundle and the hub's
/// acknowledgements of it, as files.
struct Setup {
    _dir: tempfile::TempDir,
    hub: HubStore,
    edge: EdgeStore,
    bundle: Vec<u8>,
    acks: Vec<u8>,
    scratch: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(&dir.path().join("hub"), "test.hub").unwrap();
    let hub = HubStore::open(&dir.path().join("hub")).unwrap();
    let options = cairn_edge::InitOptions {
        node: "site-9".into(),
        packs: vec!["mro".into()],
        default_scope: [("site".to_string(), "site-9".to_string())].into(),
        quota_bytes: 0,
        custom_packs: Vec::new(),
    };
    EdgeStore::init(&dir.path().join("edge"), &options).unwrap();
    let edge = EdgeStore::open(&dir.path().join("edge")).unwrap();
    hub.enroll("site-9", edge.settings().public_key, &Default::default())
        .unwrap();
    for n in 0..3 {
        let record = json!({"collection": "maintenance_actions", "data": {
            "work_order": format!("WO-{n}"), "aircraft_registration": "N123AB",
            "part_serial": "SN-1", "technician": "TECH-IA-4412",
            "performed_on": "2026-11-20", "certificate_expiry": "2027-11-20",
            "action": "inspection"}});
        edge.write(cairn_edge::input::write_request(&edge.catalog(), &record, 0).unwrap())
            .unwrap();
    }
    let bundle_path = dir.path().join("bundle.jsonl");
    cairn_sync::bundle::export(&edge, &bundle_path).unwrap();
    cairn_hub_sqlite::bundle::import(&hub, &bundle_path).unwrap();
    let acks_path = dir.path().join("acks.json");
    cairn_hub_sqlite::bundle::export_acks(&hub, "site-9", &acks_path).unwrap();
    Setup {
        bundle: std::fs::read(&bundle_path).unwrap(),
        acks: std::fs::read(&acks_path).unwrap(),
        scratch: dir.path().join("scratch"),
        _dir: dir,
        hub,
        edge,
    }
}

thread_local! {
    static SETUP: Setup = setup();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bundles and acknowledgement files off a USB stick, mutated:
    /// refused cleanly or taken with the verification of a push, never
    /// a panic.
    #[test]
    fn bundles_and_acks_import_or_refuse(
        at in any::<usize>(),
        kind in any::<u8>(),
        extra in prop::collection::vec(any::<u8>(), 1..12),
    ) {
        SETUP.with(|setup| {
            let mutated = cairn_core::mutation::mutated(&setup.bundle, at, kind, &extra);
            std::fs::write(&setup.scratch, &mutated).unwrap();
            let _ = cairn_hub_sqlite::bundle::import(&setup.hub, &setup.scratch);
            let mutated = cairn_core::mutation::mutated(&setup.acks, at, kind, &extra);
            std::fs::write(&setup.scratch, &mutated).unwrap();
            let key = setup.hub.public_key();
            let _ = cairn_sync::bundle::import_acks(&setup.edge, &setup.scratch, "test.hub", &key);
        });
    }
}
