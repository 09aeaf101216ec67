//! Crash test: a real edge process takes writes from several concurrent HTTP
//! clients and is SIGKILLed at random moments, again and again. After every
//! kill, every acknowledged write is present exactly once, no write is
//! present twice, and `cairn verify` passes.
//!
//! `CAIRN_CRASH_KILLS` sets the number of kills (default 50);
//! `CAIRN_CRASH_SEED` replays a run.

mod common;

use cairn_edge::{EdgeStore, ListQuery, Record};
use common::{Edge, action, cairn, init_node};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Concurrent HTTP clients per round.
const CLIENTS: usize = 4;
/// Records per batch write (client 0 writes batches).
const BATCH: usize = 5;

/// Every token stored, with how many times it appears.
fn stored_tokens(dir: &std::path::Path) -> BTreeMap<String, usize> {
    let store = EdgeStore::open(dir).expect("the node reopens after a kill");
    let mut counts = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                collection: "maintenance_actions".into(),
                after: after.clone(),
                limit: 1_000,
                ..ListQuery::default()
            })
            .unwrap();
        for record in &page {
            let Record::Ledger(record) = record else {
                unreachable!("a ledger")
            };
            let token = record.data["description"].as_str().unwrap().to_string();
            *counts.entry(token).or_insert(0) += 1;
            after = Some(record.id.clone());
        }
        if page.len() < 1_000 {
            break;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let kills: usize = common::env_or("CAIRN_CRASH_KILLS", 50);
    let seed = common::seed_from("CAIRN_CRASH_SEED");
    println!("crash seed {seed} (replay with CAIRN_CRASH_SEED={seed}), {kills} kills");
    let mut next_random = common::seeded(seed);
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "hangar-7");
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let client = cairn_http::tls::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut total_acked_before = 0;
    for round in 0..kills {
        let edge = tokio::task::block_in_place(|| Edge::start(dir.path()));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..CLIENTS)
            .map(|writer| {
                let (client, url, stop, acked) = (
                    client.clone(),
                    edge.url.clone(),
                    stop.clone(),
                    acked.clone(),
                );
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let tokens: Vec<String> = (0..if writer == 0 { BATCH } else { 1 })
                            .map(|i| format!("round-{round}-writer-{writer}-n-{n}-{i}"))
                            .collect();
                        n += 1;
                        let records: Vec<_> = tokens
                            .iter()
                            .map(|token| {
                                // One work order per record: the same one
                                // twice is refused as a duplicate.
                                let mut data = action(&format!("WO-{token}"));
                                data["description"] = json!(token);
                                json!({"collection": "maintenance_actions", "data": data})
                            })
                            .collect();
                        let response = if writer == 0 {
                            client
                                .post(format!("{url}/v1/records/batch"))
                                .json(&json!({"records": records}))
                                .send()
                                .await
                        } else {
                            client
                                .post(format!("{url}/v1/records"))
                                .json(&records[0])
                                .send()
                                .await
                        };
                        match response {
                            Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                                acked.lock().unwrap().extend(tokens);
                            }
                            Ok(response) => panic!("unexpected status {}", response.status()),
                            // The edge is gone: this write was never acknowledged.
                            Err(_) => break,
                        }
                        // A little think time keeps the store small enough to
                        // re-verify after every one of the many kills.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(next_random(300))).await;
        tokio::task::block_in_place(|| edge.kill());
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        let verify = tokio::task::block_in_place(|| cairn(dir.path(), &["verify"]));
        assert!(
            verify.status.success(),
            "round {round}: verify failed after a kill (seed {seed}): {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let counts = tokio::task::block_in_place(|| stored_tokens(dir.path()));
        let acked = acked.lock().unwrap();
        for token in acked.iter() {
            assert_eq!(
                counts.get(token),
                Some(&1),
                "round {round}: acknowledged {token} must be stored exactly once (seed {seed})"
            );
        }
        if let Some((token, count)) = counts.iter().find(|(_, count)| **count > 1) {
            panic!("round {round}: {token} stored {count} times (seed {seed})");
        }
        total_acked_before = acked.len();
    }
    println!("{kills} kills, {total_acked_before} acknowledged writes, all present exactly once");
    assert!(
        total_acked_before > 0,
        "the clients managed to write between kills"
    );
}
