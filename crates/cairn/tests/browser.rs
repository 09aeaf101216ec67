//! The dashboard in a real headless Chromium (issue 13): an operator signs
//! in, watches a till go offline and come back, opens the merge conflict it
//! brought back, resolves it, and the till holds the resolution after its
//! next sync; an auditor sees the queue but is offered no action. Every
//! page is screenshotted into `CAIRN_ARTIFACTS` (default: a temporary
//! directory, printed).

mod common;

use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "00093-7180-01";

fn browser(hub: &str, token: &str, shots: &Path, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/dashboard_browser.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args([hub, token])
        .arg(shots)
        .args(args)
        .output()
        .expect("python3 runs (with selenium; .ci/run installs it and Debian's chromium and chromium-driver)");
    assert!(
        output.status.success(),
        "the browser failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn token(hub_dir: &Path, who: &str, role: &str) -> String {
    json_out(&cairn(
        hub_dir,
        &["--json", "hub", "token", "--subject", who, "--role", role],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn put(dir: &Path, data: Value) {
    ok(&cairn(
        dir,
        &[
            "--json",
            "record",
            "add",
            "inventory",
            &data.to_string(),
            "--key",
            KEY,
        ],
    ));
}

fn serve(dir: &Path, hub: &str) -> Edge {
    Edge::start_with(
        dir,
        &[
            "edge",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--hub",
            hub,
            "--sync-interval-ms",
            "200",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_watches_the_fleet_and_resolves_a_conflict_in_a_browser() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let shots = std::env::var("CAIRN_ARTIFACTS")
        .map_or_else(|_| dir.join("screenshots"), std::path::PathBuf::from);
    std::fs::create_dir_all(&shots).unwrap();
    println!("screenshots in {}", shots.display());
    let hub_dir = dir.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let a = enrolled_node(dir, &hub_dir, "till-a", "pharmacy=main-st");
    let b = enrolled_node(dir, &hub_dir, "till-b", "pharmacy=main-st");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let url = format!("http://{listen}");
    let _hub = tokio::task::block_in_place(|| {
        Edge::start_with(
            &hub_dir,
            &[
                "hub",
                "serve",
                "--listen",
                &listen,
                "--offline-after-ms",
                "2000",
            ],
        )
    });
    let (operator, auditor) = (
        token(&hub_dir, "olivia", "operator"),
        token(&hub_dir, "arun", "auditor"),
    );
    let run = |token: &str, args: &[&str]| {
        tokio::task::block_in_place(|| browser(&url, token, &shots, args))
    };

    // Both tills hold the stock; till-a runs, and shows online.
    tokio::task::block_in_place(|| {
        put(
            &b,
            json!({"ndc": KEY, "quantity": 100, "description": "insulin pens"}),
        );
        ok(&cairn(&b, &["--json", "sync", "--hub", &url]));
        ok(&cairn(&a, &["--json", "sync", "--hub", &url]));
    });
    let till = tokio::task::block_in_place(|| serve(&a, &url));
    assert_eq!(
        run(&operator, &["fleet", "till-a", "online"])["state"],
        "online"
    );

    // It goes offline; both tills edit the description meanwhile.
    till.kill();
    assert_eq!(
        run(&operator, &["fleet", "till-a", "offline"])["state"],
        "offline"
    );
    tokio::task::block_in_place(|| {
        put(&a, json!({"description": "insulin pens, box of 5"}));
        put(&b, json!({"description": "insulin pen 3ml"}));
        ok(&cairn(&b, &["--json", "sync", "--hub", &url]));
    });
    // Back online, it brings its edit: a conflict at the hub.
    let till = tokio::task::block_in_place(|| serve(&a, &url));
    assert_eq!(
        run(&operator, &["fleet", "till-a", "online"])["state"],
        "online"
    );

    // An auditor sees the item and no action.
    let started = Instant::now();
    let seen = loop {
        let seen = run(&auditor, &["auditor", "conflict"]);
        if !seen["item"].is_null() || started.elapsed() > Duration::from_secs(30) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        (
            seen["resolve_offered"].as_bool(),
            seen["read_only"].as_bool()
        ),
        (Some(false), Some(true)),
        "{seen}"
    );

    // The operator resolves it; the till holds the value at its next sync.
    let resolved = run(
        &operator,
        &["resolve", "conflict", "\"insulin pens, box of 5 (3 ml)\""],
    );
    assert_eq!(resolved["state"], "closed", "{resolved}");
    let client = cairn_http::tls::client(&till.url, None, None).unwrap();
    let started = Instant::now();
    loop {
        let record: Value = client
            .get(format!("{}/v1/records/inventory/{KEY}", till.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if record["fields"]["description"] == "insulin pens, box of 5 (3 ml)"
            && record["conflicts"] == json!({})
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the till never took the resolution: {record}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pages = run(&operator, &["pages"]);
    assert_eq!(pages["log"], "Log and audit trail", "{pages}");
    for name in [
        "page-fleet",
        "page-reviews",
        "page-log",
        "page-reports",
        "review-resolved",
        "review-as-auditor",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}");
    }
}
