//! Clients of several hub processes on one PostgreSQL database (issue 14):
//! a legacy client's resends and simultaneous requests through different
//! processes, every process's fleet view of nodes and clients that
//! reported to any of them, and a database that cannot be reached, does not
//! exist or holds another hub's log, each named.
//!
//! Needs a PostgreSQL server (`CAIRN_PG_URL`, which `.ci/run` starts).

mod common;

use cairn_core::identity::NodeIdentity;
use common::{HUBS, cairn, now_s, ok, token_at};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A cluster (`common::cluster`) whose hub has seed 003's till `till-9`
/// enrolled before its processes start; returns its bearer token too.
fn cluster_with_till(work: &std::path::Path) -> (std::path::PathBuf, Vec<common::Edge>, String) {
    let mut token = String::new();
    let (hub_dir, hubs) = common::cluster_with(work, |hub_dir| {
        let enrolled = ok(&cairn(
            hub_dir,
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
        token = enrolled["token"].as_str().unwrap().to_string();
    });
    (hub_dir, hubs, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_clients_resend_through_another_hub_is_a_repeat() {
    if common::postgres_server().is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hubs, token) = tokio::task::block_in_place(|| cluster_with_till(work.path()));
    let client = cairn_http::tls::builder().build().unwrap();
    let send = |hub: usize, body: Value| {
        let (client, token) = (client.clone(), token.clone());
        let url = format!("{}/api/v1/transactions/sync", hubs[hub].url);
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let sale = |key: &str, quantity: u64| {
        serde_json::json!({
            "ndc": "0093-7180-01", "quantity": quantity, "schedule": "IV",
            "prescription_id": format!("RX-{key}"), "pharmacist_npi": "1234567890",
            "dispensed_at_utc": "2026-11-20T08:00:00+00:00", "idempotency_key": key,
        })
    };
    // Each sale through one hub, its resend through the others, in turn.
    for (n, key) in ["k-1", "k-2", "k-3"].iter().enumerate() {
        let (status, first) = send(n % HUBS, sale(key, 30)).await;
        assert_eq!(
            (status, first["status"].as_str()),
            (200, Some("accepted")),
            "{first}"
        );
        for other in 1..HUBS {
            let (status, again) = send((n + other) % HUBS, sale(key, 30)).await;
            assert_eq!(status, 200, "a resend is acknowledged: {again}");
            assert_eq!(
                again["record"], first["record"],
                "the same op, not another: {again}"
            );
        }
        // The same key with another record, through yet another hub.
        let (status, conflict) = send((n + 1) % HUBS, sale(key, 31)).await;
        assert_eq!(status, 409, "{conflict}");
    }
    // Two sales of the till at once through two hubs, twenty times: each
    // hub builds the till's next op on the head it read; the one whose
    // push comes second is refused (5xx, the till resends), never logged
    // as an equivocation of the till's.
    const RACES: usize = 20;
    let mut retried = 0;
    for race in 0..RACES {
        let (one, other) = (format!("a-{race}"), format!("b-{race}"));
        let (first, second) = tokio::join!(send(0, sale(&one, 5)), send(1, sale(&other, 5)));
        for ((status, _), key, hub) in [(first, &one, 0), (second, &other, 1)] {
            let mut status = status;
            let mut tries = 0;
            while status != 200 {
                assert!(status >= 500 && tries < 10, "{key}: {status}");
                (status, _) = send(hub, sale(key, 5)).await;
                tries += 1;
                retried += 1;
            }
        }
    }
    println!("{retried} resends after a race");
    tokio::task::block_in_place(|| {
        let status = ok(&cairn(&hub_dir, &["--json", "hub", "status"]));
        let logged: u64 = status["streams"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with("till-9:"))
            .map(|(_, stream)| stream[0].as_u64().unwrap())
            .sum();
        assert_eq!(
            logged,
            3 + 2 * RACES as u64,
            "each sale logged once: {status}"
        );
        assert_eq!(status["quarantined"], 0, "no equivocation: {status}");
        assert_eq!(status["alerts"], serde_json::json!([]), "{status}");
    });
}

#[test]
fn a_database_unreachable_missing_or_another_hubs_is_named() {
    let Some(server) = common::postgres_server() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let said = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    // Nothing listens there: a fault naming the database and why.
    let port = common::free_port();
    let nowhere = format!("postgres://postgres@127.0.0.1:{port}/cairn");
    let refused = cairn(
        &work.path().join("a"),
        &[
            "hub",
            "init",
            "--origin",
            "test.hub",
            "--database",
            &nowhere,
        ],
    );
    assert_eq!(refused.status.code(), Some(3), "{}", said(&refused));
    assert!(said(&refused).contains("refused"), "{}", said(&refused));
    assert!(
        !work.path().join("a").join("hub.key").exists(),
        "nothing left behind"
    );
    // A database that does not exist is named by PostgreSQL's own words.
    let missing = cairn_hub_postgres::url_with_database(&server, "cairn_no_such_database");
    let refused = cairn(
        &work.path().join("b"),
        &[
            "hub",
            "init",
            "--origin",
            "test.hub",
            "--database",
            &missing,
        ],
    );
    assert_eq!(refused.status.code(), Some(3), "{}", said(&refused));
    assert!(
        said(&refused).contains("does not exist"),
        "{}",
        said(&refused)
    );
    // A directory whose key is not the database's hub's.
    let (hub_dir, hubs) = common::cluster(work.path());
    drop(hubs);
    let url = std::fs::read_to_string(hub_dir.join("database")).unwrap();
    let other = work.path().join("other");
    ok(&cairn(
        &other,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let wrong = cairn(
        &other,
        &[
            "hub",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &url,
        ],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", said(&wrong));
    assert!(
        said(&wrong).contains("another hub's log"),
        "{}",
        said(&wrong)
    );
    let unreachable = cairn(
        &hub_dir,
        &[
            "hub",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            &nowhere,
        ],
    );
    assert_eq!(unreachable.status.code(), Some(1), "{}", said(&unreachable));
    assert!(
        said(&unreachable).contains("Connection refused"),
        "{}",
        said(&unreachable)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hub_shows_every_node_and_client_that_reported_to_any() {
    if common::postgres_server().is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hubs, till_token) =
        tokio::task::block_in_place(|| cluster_with_till(work.path()));
    let node = NodeIdentity::from_seed("site-1", [7; 32]);
    let staff = tokio::task::block_in_place(|| {
        let key = hex::encode(node.public_key());
        ok(&cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "enroll",
                "site-1",
                "--public-key",
                &key,
                "--scope",
                "site=hangar-7",
            ],
        ));
        ok(&cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "token",
                "--subject",
                "ops",
                "--role",
                "operator",
            ],
        ))["token"]
            .as_str()
            .unwrap()
            .to_string()
    });
    let client = cairn_http::tls::builder().build().unwrap();
    // The node reports to hub 0 only; the till calls hub 1 only.
    let reported = client
        .post(format!("{}/v1/node/status", hubs[0].url))
        .bearer_auth(token_at("site-1", "node", now_s(), &node))
        .json(&serde_json::json!({"node": "site-1", "streams": [{"stream": "standard", "pending": 42}], "sync": {"online": true, "breaker": "closed"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(reported.status().as_u16(), 204);
    let pinged = client
        .get(format!("{}/api/v1/inventory/ping", hubs[1].url))
        .bearer_auth(&till_token)
        .send()
        .await
        .unwrap();
    assert_eq!(pinged.status().as_u16(), 200);
    // Every hub shows both, once the reports are kept (off the request's
    // path) and taken up (when a page or /metrics is read).
    let deadline = Instant::now() + Duration::from_secs(20);
    for hub in &hubs {
        loop {
            let metrics = client
                .get(format!("{}/metrics", hub.url))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let page = client
                .get(format!("{}/dashboard", hub.url))
                .header("cookie", format!("cairn_session={staff}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let queue = "cairn_node_queue_depth{node=\"site-1\",stream=\"standard\"} 42";
            if metrics.contains(queue) && page.contains("site-1") && page.contains("till-9") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} shows the node and the till: {metrics}\n{page}",
                hub.url
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
