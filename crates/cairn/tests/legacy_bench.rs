//! What the seeds' clients reach against a real hub (issue 12's figures),
//! beside a native edge's push in the same run: records per second for
//! each client as written (one request per record, the Python start-up of
//! each sync call included), for the mobile batch endpoint at the app's
//! batch size (50) and the largest (500), and for `cairn sync`.
//!
//! `cargo test --release -p cairn --test legacy_bench -- --ignored --nocapture`

mod common;

use common::{cairn, enrolled_node, ok};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;

const RECORDS: usize = 500;

fn python(script: &str, args: &[&str]) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/legacy")
        .join(script);
    let output = std::process::Command::new("python3")
        .arg(path)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn enroll(hub_dir: &Path, name: &str, kind: &str, extra: &[&str]) -> String {
    let mut args = vec!["--json", "hub", "enroll", name, "--legacy", kind];
    args.extend_from_slice(extra);
    ok(&cairn(hub_dir, &args))["token"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn rate(what: &str, records: usize, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{what:<48} {records:>6} records in {seconds:>6.2} s = {:>8.0} records/s",
        records as f64 / seconds
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run with --ignored --nocapture"]
async fn legacy_clients_against_a_real_hub() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hub_dir = dir.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    common::register_technician(&hub_dir);
    let till = enroll(
        &hub_dir,
        "till-9",
        "pharmacy",
        &["--scope", "pharmacy=main-st"],
    );
    let hangar = enroll(
        &hub_dir,
        "hangar-old",
        "mro-sync",
        &["--scope", "site=hangar-7"],
    );
    enroll(
        &hub_dir,
        "gateway",
        "mro-records",
        &["--scope", "site=hangar-7", "--allow-from", "127.0.0.1/32"],
    );
    let tablet = enroll(&hub_dir, "tablet-1", "mobile", &["--scope", "building=*"]);
    let site = enrolled_node(dir, &hub_dir, "site-1", "site=hangar-7");
    let hub = tokio::task::block_in_place(|| common::Edge::start_hub(&hub_dir));
    let url = hub.url.clone();
    let path = |name: &str| dir.join(name).to_str().unwrap().to_string();

    tokio::task::block_in_place(|| {
        // Seed 003's till: 50 records a sync call, as written.
        let transactions: Vec<Value> = (0..RECORDS)
            .map(|n| json!({"ndc": "0093-7180-01", "quantity": 30, "schedule": "IV",
                "prescription_id": format!("RX-{n}"), "pharmacist_npi": "1234567890",
                "dispensed_at_utc": "2026-11-20T08:00:00+00:00", "idempotency_key": format!("k-{n}")}))
            .collect();
        let (db, log) = (path("till.db"), path("till.log"));
        python(
            "pharmacy_till.py",
            &[
                &url,
                &till,
                &db,
                &log,
                "enqueue",
                &Value::from(transactions).to_string(),
            ],
        );
        let started = Instant::now();
        while python("pharmacy_till.py", &[&url, &till, &db, &log, "sync"])["synced"].as_u64()
            > Some(0)
        {}
        rate(
            "seed 003 till (POST /api/v1/transactions/sync)",
            RECORDS,
            started,
        );

        // Seed 000's hangar worker.
        let actions: Vec<Value> = (0..RECORDS)
            .map(|n| json!({"part_serial": format!("SN-{n}"), "action_type": "inspection", "payload": {
                "work_order": format!("WO-{n}"), "aircraft_registration": "N123AB", "part_serial": format!("SN-{n}"),
                "technician": "TECH-IA-4412", "performed_on": "2026-11-20", "certificate_expiry": "2027-11-20",
                "action_type": "inspection"}}))
            .collect();
        let db = path("hangar.db");
        python(
            "mro_hangar.py",
            &[
                &url,
                &hangar,
                &db,
                "queue",
                &Value::from(actions).to_string(),
            ],
        );
        let started = Instant::now();
        let synced = python("mro_hangar.py", &[&url, &hangar, &db, "sync"]);
        assert_eq!(synced["success"], RECORDS, "{synced}");
        rate(
            "seed 000 hangar worker (POST /api/v1/mro/sync)",
            RECORDS,
            started,
        );

        // Seed 001's pipeline worker.
        let records: Vec<Value> = (0..RECORDS)
            .map(|n| json!({"correlation_id": format!("C-{n}"), "work_order_id": format!("WO-P{n}"),
                "aircraft_registration": "N123AB", "part_serial_number": format!("SN-P{n}"),
                "technician_id": "TECH-IA-4412", "airworthiness_cert_expiry": "2030-06-30T00:00:00+00:00",
                "maintenance_action": "Engine borescope inspection"}))
            .collect();
        let started = Instant::now();
        python(
            "mro_pipeline.py",
            &[&url, &Value::from(records).to_string()],
        );
        rate(
            "seed 001 pipeline worker (POST /api/v1/mro/records)",
            RECORDS,
            started,
        );

        // Seed 004's app: edits queued, then sync calls of 50 until done.
        let edits: Vec<Value> = (0..RECORDS)
            .map(|n| {
                json!({"operation": "create", "entity_id": format!("eq-{n}"), "building_id": "B1",
                "name": format!("AHU-{n}"), "type": "hvac", "status": "operational"})
            })
            .collect();
        let db = path("tablet.db");
        python(
            "mobile_app.py",
            &[&url, &tablet, &db, "edit", &Value::from(edits).to_string()],
        );
        let started = Instant::now();
        while python("mobile_app.py", &[&url, &tablet, &db, "sync"])["queued"].as_u64() > Some(0) {}
        rate(
            "seed 004 app, 50 a sync (mobile/sync/batch)",
            RECORDS,
            started,
        );
    });

    // The batch endpoint itself, without the app's process and SQLite.
    let client = cairn_http::tls::client(&url, None, None).unwrap();
    for (batch, batches) in [(50usize, 40usize), (500, 20)] {
        let started = Instant::now();
        for round in 0..batches {
            let operations: Vec<Value> = (0..batch)
                .map(|n| {
                    json!({"entity_type": "equipment", "entity_id": format!("b{batch}-{round}-{n}"),
                    "operation": "create", "local_time": cairn_edge::clock::now_ms(),
                    "payload": {"building_id": "B2", "name": "AHU", "type": "hvac"}})
                })
                .collect();
            let answer: Value = client
                .post(format!("{url}/api/v1/mobile/sync/batch"))
                .bearer_auth(&tablet)
                .json(&json!({"operations": operations}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                answer["success"].as_array().map(Vec::len),
                Some(batch),
                "{answer}"
            );
        }
        rate(
            &format!("mobile/sync/batch, {batch} operations a request"),
            batch * batches,
            started,
        );
    }

    // A native edge in the same run: written locally, then one `cairn sync`.
    let natives = 10_000;
    tokio::task::block_in_place(|| {
        let store = cairn_edge::EdgeStore::open(&site).unwrap();
        let requests: Vec<cairn_edge::WriteRequest> = (0..natives)
            .map(|n| cairn_edge::WriteRequest {
                collection: "maintenance_actions".into(),
                action: cairn_core::op::Action::Append,
                key: None,
                scope: Default::default(),
                data: json!({"work_order": format!("WO-N{n}"), "aircraft_registration": "N123AB",
                    "part_serial": format!("SN-N{n}"), "technician": "TECH-IA-4412", "performed_on": "2026-11-20",
                    "certificate_expiry": "2027-11-20", "action": "inspection"}),
                corrects: None,
                reason: None,
                move_scope: false,
            })
            .collect();
        for chunk in requests.chunks(1_000) {
            store.write_batch(chunk.to_vec()).unwrap();
        }
        drop(store);
        let started = Instant::now();
        ok(&cairn(&site, &["--json", "sync", "--hub", &url]));
        rate("native edge, cairn sync (binary pushes)", natives, started);
    });
}
