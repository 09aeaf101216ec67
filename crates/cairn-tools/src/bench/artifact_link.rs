//! `cairn bench link`'s artifact run: a blob published at the hub crosses
//! the shaped link to a real edge's fetcher (verified chunks, eight in
//! flight), once straight through and once cut halfway: how much of the
//! downlink it uses, and how many bytes a cut costs.

use crate::proxy::Proxy;
use cairn_edge::EdgeStore;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Chunk size the bench publishes with.
const CHUNK_KIB: u64 = 64;

/// Publishes a blob of `size` bytes as version `version` of `name`.
fn publish(hub_dir: &Path, name: &str, version: &str, size: usize) -> anyhow::Result<()> {
    let file = hub_dir.join(format!("{name}-{version}.bin"));
    let seed = version.bytes().fold(size as u64, |seed, byte| {
        seed.rotate_left(8) ^ u64::from(byte)
    });
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&file, bytes)?;
    let hub = cairn_hub_sqlite::HubStore::open(hub_dir)?;
    hub.publish_artifact(
        (name, version),
        &file,
        &Default::default(),
        CHUNK_KIB * 1024,
    )?;
    std::fs::remove_file(&file)?;
    Ok(())
}

/// The fetches, through `proxy` (already shaping) to the hub at `hub_dir`.
pub(super) async fn run(
    proxy: &Proxy,
    hub_dir: &Path,
    edge: &EdgeStore,
    hub_key: [u8; 32],
    (size, bytes_per_sec): (usize, u64),
) -> anyhow::Result<Vec<Value>> {
    let url = format!("http://{}", proxy.addr);
    let client = cairn_http::tls::client(&url, None, Some(Duration::from_secs(60)))?;
    let link = cairn_sync::HubLink {
        client: &client,
        url: &url,
        key: Some(("bench.hub", hub_key)),
        clock: Default::default(),
    };
    let mut rows = Vec::new();
    for (version, cut) in [("1", false), ("2", true)] {
        eprintln!(
            "bench: an artifact of {size} bytes over the shaped link{}",
            if cut { ", cut halfway" } else { "" }
        );
        publish(hub_dir, "bench-model", version, size)?;
        cairn_sync::pull_all(edge, &link).await?;
        let down_before = proxy.bytes() - proxy.uplink_bytes();
        let started = Instant::now();
        let mut attempts = 0;
        let received = loop {
            attempts += 1;
            let fetch = cairn_sync::artifacts::fetch_artifacts(edge, &link, None);
            let outcome = if cut && attempts == 1 {
                // Cut the link once half the blob has come down; a fetch
                // that ends first is not waited on.
                let cutter = async {
                    while proxy.bytes() - proxy.uplink_bytes() < down_before + size as u64 / 2 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    proxy.cut();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    proxy.restore();
                    std::future::pending::<()>().await;
                };
                let outcome = tokio::select! {
                    outcome = fetch => outcome,
                    () = cutter => unreachable!("the cutter never ends"),
                };
                // The fetch may fail before the cutter gave the link back.
                proxy.restore();
                outcome
            } else {
                fetch.await
            };
            match outcome {
                Ok(fetched) if fetched.iter().any(|item| item.activated) => {
                    break fetched.iter().map(|item| item.bytes_received).sum::<u64>();
                }
                Ok(fetched) => anyhow::bail!("the artifact was not fetched: {fetched:?}"),
                Err(_) if attempts < 3 => continue,
                Err(error) => return Err(error),
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let down = (proxy.bytes() - proxy.uplink_bytes() - down_before) as f64;
        rows.push(json!({
            "run": if cut { "artifact, cut halfway" } else { "artifact" },
            "bytes": size,
            "seconds": seconds,
            "attempts": attempts,
            "last_attempt_chunk_bytes": received,
            "link_bytes_down": down,
            "bytes_beyond_the_blob": down - size as f64,
            "downlink_utilization": down / (seconds * bytes_per_sec as f64),
            "blob_rate_share": size as f64 / (seconds * bytes_per_sec as f64),
        }));
    }
    Ok(rows)
}
