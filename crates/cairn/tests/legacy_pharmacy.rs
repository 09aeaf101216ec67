//! Seed 003's pharmacy till, its own Python code, against a real hub
//! (issue 12, the pharmacy endpoints): offline queueing then sync, a record
//! the rules refuse (answered 2xx "rejected", so the till's queue moves on,
//! and a review item at the hub), a lost answer resent (nothing logged
//! twice), the hub down then up, and the records on a native edge whose
//! scopes grant them.

mod common;

use common::{Edge, cairn, enrolled_node, ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn till_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/pharmacy_till.py")
}

/// Runs the till: `enqueue` with transactions, or `sync`; its JSON answer.
fn till(work: &Path, hub: &str, token: &str, args: &[&str]) -> Value {
    let output = std::process::Command::new("python3")
        .arg(till_script())
        .args([hub, token])
        .arg(work.join("till.db"))
        .arg(work.join("till.log"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the till failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn transaction(n: usize, prescription: &str) -> Value {
    json!({
        "ndc": "0093-7180-01",
        "quantity": 30,
        "schedule": if n == 0 { "II" } else { "IV" },
        "prescription_id": prescription,
        "pharmacist_npi": "1234567890",
        "dispensed_at_utc": "2026-11-20T08:00:00+00:00",
        "idempotency_key": format!("till-9-{n:04}"),
    })
}

fn log_size(hub_dir: &Path) -> u64 {
    ok(&cairn(hub_dir, &["--json", "hub", "status"]))["log_size"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_seeds_pharmacy_till_syncs_through_the_hub_unchanged() {
    if std::process::Command::new("python3")
        .args(["-c", "import requests"])
        .status()
        .map(|status| !status.success())
        .unwrap_or(true)
    {
        panic!("python3 with requests is needed (.ci/run installs it)");
    }
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let enrolled = ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "till-9",
            "--legacy",
            "pharmacy",
            "--scope",
            "pharmacy=main-st",
        ],
    ));
    let token = enrolled["token"].as_str().unwrap().to_string();
    let counter = enrolled_node(work.path(), &hub_dir, "counter", "pharmacy=main-st");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let url = format!("http://{listen}");
    let mut hub = Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen]);

    // Offline, the till queues four dispensings; one names a prescription
    // the pack's format refuses.
    let batch: Vec<Value> = (0..4)
        .map(|n| transaction(n, if n == 3 { "rx 55" } else { "RX-55102" }))
        .collect();
    till(
        work.path(),
        &url,
        &token,
        &["enqueue", &Value::from(batch).to_string()],
    );
    let synced = till(work.path(), &url, &token, &["sync"]);
    assert_eq!(
        synced,
        json!({"synced": 4, "failed": 0}),
        "the refused one too: its queue moves on"
    );
    let logged = log_size(&hub_dir);
    // The answers were lost: the till sends everything again. Nothing is
    // logged twice.
    let conn = rusqlite::Connection::open(work.path().join("till.db")).unwrap();
    conn.execute("UPDATE offline_queue SET sync_status = 'PENDING'", [])
        .unwrap();
    let again = till(work.path(), &url, &token, &["sync"]);
    assert_eq!(again, json!({"synced": 4, "failed": 0}));
    assert_eq!(
        log_size(&hub_dir),
        logged,
        "repeats are answered, not logged"
    );

    // The hub goes down: the till keeps its record and sends it later.
    hub.kill();
    till(
        work.path(),
        &url,
        &token,
        &["enqueue", &json!([transaction(4, "RX-77")]).to_string()],
    );
    assert_eq!(
        till(work.path(), &url, &token, &["sync"]),
        json!({"synced": 0, "failed": 1})
    );
    hub = Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen]);
    assert_eq!(
        till(work.path(), &url, &token, &["sync"]),
        json!({"synced": 1, "failed": 0})
    );
    assert_eq!(log_size(&hub_dir), logged + 1);

    // The hub commits a record but its answer is lost on the way back (a
    // proxy resets the connection before the answer): the till keeps the
    // record pending and sends it again; it is answered, not logged twice.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime
        .block_on(cairn_tools::proxy::Proxy::start(listen.parse().unwrap()))
        .unwrap();
    let via = format!("http://{}", proxy.addr);
    proxy.set_fault(cairn_tools::proxy::Fault::ResetResponse(0));
    till(
        work.path(),
        &via,
        &token,
        &["enqueue", &json!([transaction(5, "RX-78")]).to_string()],
    );
    assert_eq!(
        till(work.path(), &via, &token, &["sync"]),
        json!({"synced": 0, "failed": 1})
    );
    assert_eq!(log_size(&hub_dir), logged + 2, "the hub committed it");
    proxy.set_fault(cairn_tools::proxy::Fault::None);
    assert_eq!(
        till(work.path(), &via, &token, &["sync"]),
        json!({"synced": 1, "failed": 0})
    );
    assert_eq!(
        log_size(&hub_dir),
        logged + 2,
        "the resend is answered, not logged"
    );

    // The refused prescription is a rejection in the review queue.
    let started = Instant::now();
    let items = loop {
        let listed = ok(&cairn(
            &hub_dir,
            &["--json", "review", "list", "--kind", "rejection"],
        ));
        let items = listed["reviews"].as_array().unwrap().clone();
        if !items.is_empty() {
            break items;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no rejection");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0]["node"].as_str(), items[0]["rule"].as_str()),
        (Some("till-9"), Some("format"))
    );

    // A native edge granted the pharmacy pulls the till's records, proven
    // by the key the hub holds for it; the NDC-10 arrives as NDC-11.
    ok(&cairn(&counter, &["--json", "sync", "--hub", &hub.url]));
    let records = ok(&cairn(
        &counter,
        &["--json", "record", "list", "dispensing"],
    ));
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 6, "{records:?}");
    assert_eq!(records[1]["data"]["ndc"], "00093-7180-01");
    assert_eq!(
        records[0]["id"].as_str().unwrap().split(':').nth(1),
        Some("critical"),
        "Schedule II goes critical"
    );
    drop(hub);
}
