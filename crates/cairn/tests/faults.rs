//! Randomized faults between two edges and the hub: a fault-injecting TCP
//! proxy drops, delays, blackholes, resets mid-request and mid-response, and
//! duplicates requests, for 200 rounds from a printed seed, while the hub is
//! SIGKILLed and restarted in some rounds. Afterwards every acknowledged
//! write is on the hub exactly once, nothing unacknowledged is lost, nothing
//! is quarantined and both replicas converge.
//!
//! `CAIRN_FAULT_ROUNDS` sets the rounds (default 200); `CAIRN_FAULT_SEED`
//! replays a run.

mod common;

use cairn_tools::proxy::{Fault, Proxy};
use common::{Edge, cairn, enrolled_node, json_out, ok};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_faults_and_hub_kills_lose_nothing_and_converge() {
    let rounds: usize = common::env_or("CAIRN_FAULT_ROUNDS", 200);
    let seed = common::seed_from("CAIRN_FAULT_SEED");
    println!("fault seed {seed} (replay with CAIRN_FAULT_SEED={seed}), {rounds} rounds");
    let mut random = common::seeded(seed);
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let dirs = [
        enrolled_node(work.path(), &hub_dir, "till-a", "pharmacy=main-st"),
        enrolled_node(work.path(), &hub_dir, "till-b", "pharmacy=main-st"),
    ];
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut hub = Some(tokio::task::block_in_place(|| {
        Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
    }));
    let proxy = Proxy::start(listen.parse().unwrap()).await.unwrap();
    let via = format!("http://{}", proxy.addr);
    let edges: Vec<Edge> = dirs
        .iter()
        .map(|dir| {
            tokio::task::block_in_place(|| {
                Edge::start_with(
                    dir,
                    &[
                        "edge",
                        "serve",
                        "--listen",
                        "127.0.0.1:0",
                        "--hub",
                        &via,
                        "--sync-interval-ms",
                        "30",
                        "--sync-timeout-ms",
                        "500",
                        "--breaker-open-ms",
                        "100",
                    ],
                )
            })
        })
        .collect();
    let client = cairn_http::tls::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let write = |edge: usize, data: serde_json::Value| {
        let client = client.clone();
        let url = format!("{}/v1/records", edges[edge].url);
        async move {
            let body = json!({"collection": "inventory", "key": "00002-1433-80", "data": data});
            match client.post(url).json(&body).send().await {
                Ok(response) if response.status().as_u16() == 201 => true,
                Ok(response) => panic!(
                    "a write was refused: {}",
                    response.text().await.unwrap_or_default()
                ),
                Err(_) => false,
            }
        }
    };
    let status = |edge: usize| {
        let client = client.clone();
        let url = format!("{}/v1/status", edges[edge].url);
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let stock = |edge: usize| {
        let client = client.clone();
        let url = format!("{}/v1/records/inventory/00002-1433-80", edges[edge].url);
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    assert!(write(0, json!({"ndc": "00002-1433-80", "quantity": 100_000})).await);
    // Both tills know the item before the faults start (as after a first sync).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stock(1).await["fields"]["quantity"] != 100_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "till-b never received the item"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut acknowledged = 1u64;
    let mut sales = 0i64;
    let mut kills = 0;
    let faults = [
        Fault::None,
        Fault::Drop,
        Fault::Delay(150),
        Fault::Blackhole,
        Fault::ResetRequest(0),
        Fault::ResetResponse(0),
        Fault::Duplicate,
    ];
    for _round in 0..rounds {
        let fault = match faults[random(faults.len() as u64) as usize] {
            Fault::ResetRequest(_) => Fault::ResetRequest(1 + random(3_000) as usize),
            Fault::ResetResponse(_) => Fault::ResetResponse(1 + random(1_500) as usize),
            other => other,
        };
        proxy.set_fault(fault);
        for _ in 0..=random(2) {
            let edge = random(2) as usize;
            if write(edge, json!({"quantity": -1})).await {
                acknowledged += 1;
                sales += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(10 + random(50))).await;
        if random(20) == 0 {
            // The hub dies mid-push and comes back on the same address.
            tokio::task::block_in_place(|| hub.take().unwrap().kill());
            kills += 1;
            tokio::time::sleep(Duration::from_millis(random(100))).await;
            hub = Some(tokio::task::block_in_place(|| {
                Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
            }));
        }
    }
    proxy.set_fault(Fault::None);
    let expected = 100_000 - sales;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (a, b) = (status(0).await, status(1).await);
        let (x, y) = (stock(0).await, stock(1).await);
        if a["pending_total"] == 0
            && b["pending_total"] == 0
            && x["version"] == y["version"]
            && x["fields"]["quantity"] == expected
        {
            assert_eq!(x["fields"], y["fields"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no convergence (seed {seed}): {a} {b} {x} {y}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hub_status = json_out(&tokio::task::block_in_place(|| {
        cairn(&hub_dir, &["--json", "hub", "status"])
    }));
    // The log also holds the hub's own record of the two enrollments.
    let audit = hub_status["streams"]["hub:audit"][0].as_u64().unwrap_or(0);
    assert_eq!(audit, 2, "{hub_status}");
    assert_eq!(
        hub_status["log_size"].as_u64().unwrap() - audit,
        acknowledged,
        "every acknowledged write is on the hub exactly once (seed {seed})"
    );
    assert_eq!(
        hub_status["quarantined"], 0,
        "faults are not tampering (seed {seed}): {hub_status}"
    );
    for dir in &dirs {
        assert!(
            tokio::task::block_in_place(|| cairn(dir, &["verify"]))
                .status
                .success(),
            "verify (seed {seed})"
        );
    }
    println!(
        "{rounds} rounds, {kills} hub kills, {acknowledged} acknowledged writes, converged at quantity {expected}"
    );
    tokio::task::block_in_place(|| {
        for edge in edges {
            edge.kill();
        }
        if let Some(hub) = hub {
            hub.kill();
        }
    });
}
