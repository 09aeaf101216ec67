//! Seed 001's MRO pipeline worker, its own Python code, against a real hub
//! (issue 12, `POST /api/v1/mro/records`): no credentials, allowed by its
//! source address only; records stored and judged; a repeat acknowledged
//! and never logged twice; the same key with another record refused 409
//! naming both hashes; an address not listed refused 403.

mod common;

use common::{Edge, cairn, ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn worker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/mro_pipeline.py")
}

fn worker(gateway: &str, records: &Value) -> Value {
    let output = std::process::Command::new("python3")
        .arg(worker_script())
        .arg(gateway)
        .arg(records.to_string())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn raw(work_order: &str, action: &str) -> Value {
    json!({
        "correlation_id": format!("CORR-{work_order}"),
        "work_order_id": work_order,
        "aircraft_registration": "N123AB",
        "part_serial_number": "SN-99887766",
        "technician_id": "TECH-IA-4412",
        "airworthiness_cert_expiry": "2030-06-30T00:00:00+00:00",
        "maintenance_action": action,
    })
}

fn log_size(hub_dir: &Path) -> u64 {
    ok(&cairn(hub_dir, &["--json", "hub", "status"]))["log_size"]
        .as_u64()
        .unwrap()
}

fn python_ready() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import requests, pydantic, tenacity"])
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seeds_pipeline_worker_is_served_by_its_address() {
    assert!(
        python_ready(),
        "python3 with requests, pydantic and tenacity is needed (.ci/run installs them)"
    );
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    ok(&cairn(
        &hub_dir,
        &[
            "--json", "hub", "registry", "put", "authorized_technicians", "TECH-IA-4412",
            "--fields",
            &json!({"name": "Dana Okafor", "certificate": "IA", "certificate_number": "IA-1",
                    "certificate_expiry": "2030-06-30", "authorized_actions": ["inspection", "repair"]})
            .to_string(),
            "--by", "qm",
        ],
    ));
    // Without an address to allow it from, such a client cannot be made.
    let refused = cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "gateway",
            "--legacy",
            "mro-records",
            "--scope",
            "site=hangar-7",
        ],
    );
    assert_eq!(refused.status.code(), Some(3));
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "gateway",
            "--legacy",
            "mro-records",
            "--scope",
            "site=hangar-7",
            "--allow-from",
            "127.0.0.1/32",
        ],
    ));
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let before = log_size(&hub_dir);
    let records = json!([
        raw("WO-2024-091", "Engine borescope inspection"),
        raw("WO-2024-092", "Fuel pump repair")
    ]);
    let states = tokio::task::block_in_place(|| worker(&hub.url, &records));
    assert_eq!(states, json!({"states": ["PERSISTED", "PERSISTED"]}));
    assert_eq!(log_size(&hub_dir), before + 2);
    // Sent again (the worker's retries after a lost answer): acknowledged,
    // never logged twice.
    tokio::task::block_in_place(|| worker(&hub.url, &records));
    assert_eq!(log_size(&hub_dir), before + 2);
    // An answer really lost: a proxy resets the connection after the hub
    // committed; the worker's own retry sends it again and is answered,
    // nothing logged twice.
    let proxy =
        cairn_tools::proxy::Proxy::start(hub.url.trim_start_matches("http://").parse().unwrap())
            .await
            .unwrap();
    proxy.set_fault(cairn_tools::proxy::Fault::ResetResponse(0));
    let via = format!("http://{}", proxy.addr);
    let third = json!([raw("WO-2024-093", "Landing gear inspection")]);
    let resending = std::thread::spawn(move || worker(&via, &third));
    let started = std::time::Instant::now();
    while tokio::task::block_in_place(|| log_size(&hub_dir)) < before + 3 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never committed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    proxy.set_fault(cairn_tools::proxy::Fault::None);
    let states = tokio::task::block_in_place(|| resending.join().unwrap());
    assert_eq!(states, json!({"states": ["PERSISTED"]}));
    assert_eq!(log_size(&hub_dir), before + 3);

    // The same key with another record inside the window: 409, both hashes.
    let key = cairn_core::hash::Hash::of(b"WO-2024-091:SN-99887766:TECH-IA-4412").to_hex();
    let client = cairn_http::tls::builder().build().unwrap();
    let mut other = raw("WO-2024-091", "Engine borescope inspection, second look");
    other.as_object_mut().unwrap().remove("correlation_id");
    let answer = client
        .post(format!("{}/api/v1/mro/records", hub.url))
        .header("X-Idempotency-Key", &key)
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 409);
    let body: Value = answer.json().await.unwrap();
    let message = body["error"]["violations"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("hashing to") && message.contains("hashes to"),
        "{message}"
    );
    // Without the header: refused naming it.
    let answer = client
        .post(format!("{}/api/v1/mro/records", hub.url))
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 422);
    let judged = tokio::task::block_in_place(|| {
        ok(&cairn(&hub_dir, &["--json", "hub", "judge"]));
        ok(&cairn(&hub_dir, &["--json", "hub", "status"]))
    });
    assert_eq!(judged["states"].get("rejected"), None, "{judged}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_not_listed_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "gateway",
            "--legacy",
            "mro-records",
            "--scope",
            "site=hangar-7",
            "--allow-from",
            "10.20.0.0/16",
        ],
    ));
    let bad = cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "gateway-2",
            "--legacy",
            "mro-records",
            "--scope",
            "site=x",
            "--allow-from",
            "10.20.0.0/99",
        ],
    );
    assert_eq!(bad.status.code(), Some(3));
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let answer = cairn_http::tls::builder()
        .build()
        .unwrap()
        .post(format!("{}/api/v1/mro/records", hub.url))
        .header("X-Idempotency-Key", "k")
        .json(&raw("WO-1", "inspection"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 403);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        body["error"]["violations"][0]["rule"], "allow_from",
        "{body}"
    );
}
