//! Seed 000's hangar sync worker, its own Python code, against a real hub
//! (issue 12, `POST /api/v1/mro/sync`): queued offline, synced, a record the
//! rules refuse answered 4xx (the worker's compliance triage) yet kept as a
//! review item, a tampered payload refused by its Python-style hash, a lost
//! answer resent (nothing logged twice), and the records on a native edge.

mod common;

use common::{Edge, cairn, enrolled_node, ok};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn worker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/legacy/mro_hangar.py")
}

fn worker(work: &Path, hub: &str, token: &str, args: &[&str]) -> Value {
    let output = std::process::Command::new("python3")
        .arg(worker_script())
        .args([hub, token])
        .arg(work.join("hangar.db"))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn action(work_order: &str, part_serial: &str, technician: &str) -> Value {
    json!({
        "part_serial": part_serial,
        "action_type": "inspection",
        "payload": {
            "work_order": work_order,
            "aircraft_registration": "N123AB",
            "part_serial": part_serial,
            "technician": technician,
            "performed_on": "2026-11-20",
            "certificate_expiry": "2027-11-20",
            "action_type": "inspection",
            "hours": 1.5,
            "description": "Borescope inspection, stage 1 blades: no findings — signed Zoë",
        },
    })
}

fn log_size(hub_dir: &Path) -> u64 {
    ok(&cairn(hub_dir, &["--json", "hub", "status"]))["log_size"]
        .as_u64()
        .unwrap()
}

#[test]
fn the_seeds_hangar_worker_syncs_through_the_hub_unchanged() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let technician = json!({
        "name": "Dana Okafor", "certificate": "IA", "certificate_number": "IA-3309121",
        "certificate_expiry": "2030-01-31", "authorized_actions": ["inspection"],
    });
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "registry",
            "put",
            "authorized_technicians",
            "TECH-IA-4412",
            "--fields",
            &technician.to_string(),
            "--by",
            "qm",
        ],
    ));
    let enrolled = ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "hangar-old",
            "--legacy",
            "mro-sync",
            "--scope",
            "site=hangar-7",
        ],
    ));
    let token = enrolled["token"].as_str().unwrap().to_string();
    let edge = enrolled_node(work.path(), &hub_dir, "hangar-7", "site=hangar-7");
    let hub = Edge::start_hub(&hub_dir);
    let url = hub.url.clone();

    let queued = worker(
        work.path(),
        &hub.url,
        &token,
        &[
            "queue",
            &json!([
                action("WO-1", "SN-100", "TECH-IA-4412"),
                action("WO-2", "SN-200", "TECH-IA-4412"),
                action("WO-3", "SN-300", "TECH-IA-4412"),
            ])
            .to_string(),
        ],
    );
    assert_eq!(queued["queued"], json!([true, true, true]));
    // A record the hub's rules refuse: an aircraft registration the pack's
    // format rejects.
    let mut bad = action("WO-4", "SN-400", "TECH-IA-4412");
    bad["payload"]["aircraft_registration"] = json!("N 1");
    worker(
        work.path(),
        &hub.url,
        &token,
        &["queue", &json!([bad]).to_string()],
    );
    // Tampered after queueing: the payload no longer matches its hash.
    worker(
        work.path(),
        &hub.url,
        &token,
        &[
            "queue",
            &json!([action("WO-5", "SN-500", "TECH-IA-4412")]).to_string(),
        ],
    );
    let conn = rusqlite::Connection::open(work.path().join("hangar.db")).unwrap();
    conn.execute(
        "UPDATE sync_queue SET payload_json = replace(payload_json, 'WO-5', 'WO-6') WHERE part_serial = 'SN-500'",
        [],
    )
    .unwrap();
    let synced = worker(work.path(), &hub.url, &token, &["sync"]);
    assert_eq!(
        synced,
        json!({"success": 3, "failed_network": 0, "failed_compliance": 2}),
        "the refused record and the tampered one go to triage"
    );
    let logged = log_size(&hub_dir);
    // Every answer lost: the worker sends the three again; none is logged twice.
    conn.execute(
        "UPDATE sync_queue SET status = 'PENDING' WHERE status = 'SYNCED'",
        [],
    )
    .unwrap();
    let again = worker(work.path(), &hub.url, &token, &["sync"]);
    assert_eq!(
        again,
        json!({"success": 3, "failed_network": 0, "failed_compliance": 0})
    );
    assert_eq!(log_size(&hub_dir), logged);

    // The hub goes down mid-sync: the worker backs off and retries (its
    // own urllib3 policy) until the hub is back.
    let listen = hub.url.trim_start_matches("http://").to_string();
    hub.kill();
    let one = |n: &str| {
        json!([action(
            &format!("WO-{n}"),
            &format!("SN-{n}"),
            "TECH-IA-4412"
        )])
    };
    worker(work.path(), &url, &token, &["queue", &one("7").to_string()]);
    let (dir, key) = (work.path().to_path_buf(), token.clone());
    let retrying = std::thread::spawn(move || worker(&dir, &url, &key, &["sync"]));
    std::thread::sleep(Duration::from_millis(500));
    let hub = Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen]);
    let up = retrying.join().unwrap();
    assert_eq!(up["success"], 1, "{up}");
    // The hub commits a record and its answer is lost (a proxy resets the
    // connection before the answer): the worker sends it again, and it is
    // answered, not logged twice.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime
        .block_on(cairn_tools::proxy::Proxy::start(listen.parse().unwrap()))
        .unwrap();
    let via = format!("http://{}", proxy.addr);
    proxy.set_fault(cairn_tools::proxy::Fault::ResetResponse(0));
    worker(work.path(), &via, &token, &["queue", &one("8").to_string()]);
    let (dir, key, through) = (work.path().to_path_buf(), token.clone(), via.clone());
    let resending = std::thread::spawn(move || worker(&dir, &through, &key, &["sync"]));
    let started = Instant::now();
    while log_size(&hub_dir) < logged + 2 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never committed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.set_fault(cairn_tools::proxy::Fault::None);
    let resent = resending.join().unwrap();
    assert_eq!(resent["success"], 1, "{resent}");
    assert_eq!(log_size(&hub_dir), logged + 2, "answered, not logged twice");

    // The refused record is a rejection in the hub's queue; the tampered
    // one was never stored.
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
        (Some("hangar-old"), Some("format"))
    );
    // A native edge of the site pulls the worker's four stored records.
    ok(&cairn(&edge, &["--json", "sync", "--hub", &hub.url]));
    let records = ok(&cairn(
        &edge,
        &["--json", "record", "list", "maintenance_actions"],
    ));
    let records = records["records"].as_array().unwrap();
    assert_eq!(records.len(), 6, "{records:?}");
    assert!(
        records
            .iter()
            .all(|record| record["data"]["action"] == "inspection")
    );
}
