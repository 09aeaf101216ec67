//! Metrics, health and readiness of hub and edge (issue 13): `/metrics`
//! parses as OpenMetrics with the Prometheus project's own parser, and its
//! counters move as an edge pushes, the hub rejects a record and an
//! operator resolves it; nodes' reports show as per-node gauges;
//! `/healthz` and `/readyz` answer on both.

mod common;

use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Every sample of an OpenMetrics text, as the reference parser reads it.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/openmetrics.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "not OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn scrape(client: &reqwest::Client, url: &str) -> BTreeMap<String, f64> {
    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().await.unwrap();
    tokio::task::block_in_place(|| parse(&text))
}

/// Waits until `check` holds of the hub's metrics.
async fn until(
    client: &reqwest::Client,
    url: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> BTreeMap<String, f64> {
    let started = Instant::now();
    loop {
        let samples = scrape(client, url).await;
        if check(&samples) {
            return samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: {samples:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn action(technician: &str) -> Value {
    json!({"collection": "maintenance_actions", "data": {
        "work_order": "WO-1", "aircraft_registration": "N123AB", "part_serial": "SN-1",
        "technician": technician, "performed_on": "2026-11-20", "certificate_expiry": "2027-11-20",
        "action": "inspection"}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_as_records_are_pushed_rejected_and_resolved() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hub_dir = dir.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    common::register_technician(&hub_dir);
    let site = enrolled_node(dir, &hub_dir, "site-1", "site=hangar-7");
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let edge = tokio::task::block_in_place(|| {
        Edge::start_with(
            &site,
            &[
                "edge",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--hub",
                &hub.url,
                "--sync-interval-ms",
                "50",
            ],
        )
    });
    let client = cairn_http::tls::client(&hub.url, None, None).unwrap();
    for url in [&hub.url, &edge.url] {
        for probe in ["healthz", "readyz"] {
            let response = client.get(format!("{url}/{probe}")).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{url}/{probe}");
        }
    }
    let before = scrape(&client, &hub.url).await;
    let logged = |samples: &BTreeMap<String, f64>| {
        samples
            .get("cairn_ops_logged_total{}")
            .copied()
            .unwrap_or(0.0)
    };
    let state = |samples: &BTreeMap<String, f64>, name: &str| {
        samples
            .get(&format!("cairn_verdicts_total{{state=\"{name}\"}}"))
            .copied()
            .unwrap_or(0.0)
    };

    // A record pushed and persisted; one the hub rejects (an unregistered
    // technician): a review item.
    for body in [action("TECH-IA-4412"), action("TECH-XX-0001")] {
        let answer = client
            .post(format!("{}/v1/records", edge.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
    }
    let moved = until(&client, &hub.url, "pushed and judged", |samples| {
        logged(samples) >= logged(&before) + 2.0
            && state(samples, "persisted") > state(&before, "persisted")
            && state(samples, "rejected") == state(&before, "rejected") + 1.0
            && samples.get("cairn_reviews_open{kind=\"rejection\"}") == Some(&1.0)
    })
    .await;
    // The node's reports: its queue drained, its breaker closed, seen lately.
    let reported = until(&client, &hub.url, "the node reported", |samples| {
        samples.get("cairn_node_queue_depth{node=\"site-1\",stream=\"standard\"}") == Some(&0.0)
            && samples.get("cairn_node_online{node=\"site-1\"}") == Some(&1.0)
    })
    .await;
    assert_eq!(
        reported.get("cairn_node_breaker{node=\"site-1\",state=\"closed\"}"),
        Some(&1.0)
    );
    assert!(reported["cairn_node_last_seen_seconds{node=\"site-1\"}"] < 30.0);
    let pushes = moved
        .iter()
        .filter(|(name, _)| {
            name.starts_with("cairn_http_request_duration_seconds_count{")
                && name.contains("route=\"/v1/push\"")
        })
        .map(|(_, count)| count)
        .sum::<f64>();
    assert!(pushes >= 1.0, "push latency is measured: {moved:#?}");

    // An operator resolves the rejection.
    let id = ok(&cairn(
        &hub_dir,
        &["--json", "review", "list", "--kind", "rejection"],
    ))["reviews"][0]["id"]
        .as_u64()
        .unwrap();
    let operator = json_out(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "token",
            "--subject",
            "ana",
            "--role",
            "operator",
        ],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let resolved = client
        .post(format!("{}/v1/reviews/{id}/resolve", hub.url))
        .bearer_auth(&operator)
        .json(&json!({"decision": "dismissed", "note": "a training record"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resolved.status().as_u16(), 200);
    let after = scrape(&client, &hub.url).await;
    assert_eq!(after.get("cairn_review_resolutions_total{}"), Some(&1.0));
    assert_eq!(
        after.get("cairn_reviews_open{kind=\"rejection\"}"),
        None,
        "{after:#?}"
    );

    // The edge's own metrics.
    let edge_samples = scrape(&client, &edge.url).await;
    assert_eq!(
        edge_samples.get("cairn_edge_queue_depth{stream=\"standard\"}"),
        Some(&0.0),
        "{edge_samples:#?}"
    );
    assert_eq!(
        edge_samples.get("cairn_edge_stream_head{stream=\"standard\"}"),
        Some(&2.0)
    );
    assert_eq!(
        edge_samples.get("cairn_edge_breaker{state=\"closed\"}"),
        Some(&1.0)
    );
}
