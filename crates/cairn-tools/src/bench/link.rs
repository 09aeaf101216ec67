//! `cairn bench link`: pushes over an emulated satellite link (1 Mbit/s,
//! 600 ms round trip): how much of the uplink each encoding uses and how
//! many bytes an op costs.

use super::push::{SimNode, push_once};
use super::*;
use crate::output;
use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `cairn bench link` options.
#[derive(Args, Debug)]
pub struct LinkBenchArgs {
    /// Scratch directory for the hub (created fresh, removed after).
    #[arg(long, default_value = "./cairn-bench-link")]
    pub dir: PathBuf,
    /// Link capacity in each direction, bits per second.
    #[arg(long, default_value_t = 1_000_000)]
    pub bits_per_sec: u64,
    /// Round-trip time of the link, ms.
    #[arg(long, default_value_t = 600)]
    pub rtt_ms: u64,
    /// Ops pushed in the binary encoding.
    #[arg(long, default_value_t = 40_000)]
    pub binary_ops: usize,
    /// Ops pushed as JSON.
    #[arg(long, default_value_t = 2_000)]
    pub json_ops: usize,
    /// Ops per push (at most the hub's limit).
    #[arg(long, default_value_t = cairn_hub_sqlite::PUSH_OPS_MAX)]
    pub batch: usize,
    /// Ops the edge's own sync client pushes (0 skips that run).
    #[arg(long, default_value_t = 40_000)]
    pub client_ops: usize,
    /// Most seconds the sync client may take.
    #[arg(long, default_value_t = 300)]
    pub client_seconds: u64,
    /// Bytes of the artifact fetched over the link (0 skips that run).
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub artifact_bytes: usize,
}

/// Runs `cairn bench link`: pushes through an emulated satellite link.
pub fn link(args: &LinkBenchArgs, json_output: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.dir.exists(),
        "{} exists; remove it or pass --dir",
        args.dir.display()
    );
    let result = measure_link(args);
    let _ = std::fs::remove_dir_all(&args.dir);
    let rows = result?;
    if json_output {
        output::json(
            &json!({"link": {"bits_per_sec": args.bits_per_sec, "rtt_ms": args.rtt_ms}, "runs": rows}),
        );
        return Ok(());
    }
    let (pushes, artifacts): (Vec<&Value>, Vec<&Value>) =
        rows.iter().partition(|row| row.get("encoding").is_some());
    let table = pushes
        .iter()
        .map(|row| {
            vec![
                output::cell(&row["encoding"]),
                row["ops"].to_string(),
                format!("{:.1}", row["seconds"].as_f64().unwrap_or(0.0)),
                format!("{:.0}", row["bytes_per_op"].as_f64().unwrap_or(0.0)),
                format!(
                    "{:.0} %",
                    100.0 * row["uplink_utilization"].as_f64().unwrap_or(0.0)
                ),
            ]
        })
        .collect();
    println!(
        "link: {} bit/s each way, {} ms round trip (a shaping TCP proxy on loopback)",
        args.bits_per_sec, args.rtt_ms
    );
    println!(
        "{}",
        output::table(
            &["encoding", "ops", "seconds", "bytes/op", "uplink used"],
            table
        )
    );
    for row in &artifacts {
        println!(
            "{}: {} bytes in {:.1} s over {} attempt(s); downlink used {:.0} %, the blob's own rate {:.0} % of the link; {:.0} bytes on the link beyond the blob",
            output::cell(&row["run"]),
            row["bytes"],
            row["seconds"].as_f64().unwrap_or(0.0),
            row["attempts"],
            100.0 * row["downlink_utilization"].as_f64().unwrap_or(0.0),
            100.0 * row["blob_rate_share"].as_f64().unwrap_or(0.0),
            row["bytes_beyond_the_blob"].as_f64().unwrap_or(0.0),
        );
    }
    if let (Some(json_bytes), Some(binary_bytes)) = (
        rows[1]["bytes_per_op"].as_f64(),
        rows[0]["bytes_per_op"].as_f64(),
    ) {
        println!(
            "binary+zstd uses {:.1}x fewer bytes per op than JSON (target >= 3x); uplink use target >= 80 %",
            json_bytes / binary_bytes.max(1.0)
        );
    }
    Ok(())
}

/// Enrolls the simulated nodes at the hub in `hub_dir`, then starts
/// `cairn hub serve` there as its own process; returns it and its URL.
pub(super) fn start_bench_hub(
    hub_dir: &Path,
    sims: &[SimNode],
    judge: bool,
) -> anyhow::Result<(std::process::Child, String)> {
    enroll_bench_nodes(hub_dir, sims)?;
    spawn_bench_hub(hub_dir, judge)
}

/// Enrolls the simulated nodes at the hub in `hub_dir` and registers the
/// technician their records name.
pub(super) fn enroll_bench_nodes<'a>(
    hub_dir: &Path,
    sims: impl IntoIterator<Item = &'a SimNode>,
) -> anyhow::Result<()> {
    {
        let hub = cairn_hub_sqlite::HubStore::open(hub_dir)?;
        for sim in sims {
            hub.enroll(
                &sim.identity.node,
                sim.identity.public_key(),
                &[("site".to_string(), "bench".to_string())].into(),
            )?;
        }
        // The technician the bench's records name is in the registry, so
        // the judge checks every rule and persists them (as in a hangar).
        hub.hub()
            .put_registry(
                "authorized_technicians",
                super::BENCH_TECHNICIAN,
                Some(&json!({
                    "name": "Bench Technician",
                    "certificate": "IA",
                    "certificate_number": "IA-0000001",
                    "certificate_expiry": "2099-12-31",
                    "authorized_actions": ["inspection"],
                })),
                "bench",
            )
            .map_err(|error| anyhow::anyhow!("{error}"))?;
    }
    Ok(())
}

/// Starts `cairn hub serve` on the hub in `hub_dir` (its database, SQLite
/// or PostgreSQL, as the directory says): the process and its URL.
pub(super) fn spawn_bench_hub(
    hub_dir: &Path,
    judge: bool,
) -> anyhow::Result<(std::process::Child, String)> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .arg("--data")
        .arg(hub_dir)
        .args(["hub", "serve", "--listen", "127.0.0.1:0"]);
    if !judge {
        command.arg("--without-judge");
    }
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().context("no stdout")?),
        &mut line,
    )?;
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .context("the hub printed no URL")?
        .to_string();
    Ok((child, url))
}

fn measure_link(args: &LinkBenchArgs) -> anyhow::Result<Vec<Value>> {
    let hub_dir = args.dir.join("hub");
    cairn_hub_sqlite::HubStore::init(&hub_dir, "bench.hub")?;
    let mut sims = [SimNode::new("sat-binary", 1), SimNode::new("sat-json", 2)];
    // A real edge too, whose own sync client pushes its backlog.
    let edge = Arc::new(fresh_store(&args.dir, "edge")?);
    let hub_key = {
        let hub = cairn_hub_sqlite::HubStore::open(&hub_dir)?;
        hub.enroll(
            &edge.settings().node,
            edge.settings().public_key,
            &[("site".to_string(), "bench".to_string())].into(),
        )?;
        hub.public_key()
    };
    let mut first = 0;
    while first < args.client_ops {
        let last = (first + BATCH_RECORDS).min(args.client_ops);
        edge.write_batch((first..last).map(request).collect())?;
        first = last;
    }
    let (mut child, hub_url) = start_bench_hub(&hub_dir, &sims, true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bytes_per_sec = (args.bits_per_sec / 8).max(1);
    let result = runtime.block_on(async {
        let proxy =
            crate::proxy::Proxy::start(hub_url.trim_start_matches("http://").parse()?).await?;
        proxy.set_fault(crate::proxy::Fault::Shape {
            bytes_per_sec,
            one_way_ms: args.rtt_ms / 2,
        });
        let url = format!("http://{}/v1/push", proxy.addr);
        let client = cairn_http::tls::builder()
            .timeout(Duration::from_secs(600))
            .build()?;
        let mut rows = Vec::new();
        for (index, (binary, ops)) in [(true, args.binary_ops), (false, args.json_ops)]
            .into_iter()
            .enumerate()
        {
            eprintln!(
                "bench: pushing {ops} ops as {} over the shaped link",
                if binary { "binary+zstd" } else { "JSON" }
            );
            let sim = &mut sims[index];
            let (mut pushed, mut bytes) = (0usize, 0usize);
            let started = Instant::now();
            while pushed < ops {
                let count = args.batch.min(ops - pushed);
                let body = if binary {
                    sim.batch_binary(count)
                } else {
                    sim.batch(count)
                };
                bytes += body.len();
                push_once(
                    client.clone(),
                    url.clone(),
                    body,
                    sim.token("bench.hub"),
                    binary,
                )
                .await?;
                pushed += count;
            }
            let seconds = started.elapsed().as_secs_f64();
            rows.push(json!({
                "encoding": if binary { "binary+zstd" } else { "json" },
                "ops": pushed,
                "seconds": seconds,
                "bytes_per_op": bytes as f64 / pushed.max(1) as f64,
                "uplink_utilization": bytes as f64 / (seconds * bytes_per_sec as f64),
            }));
        }
        // The edge's own sync client: health probe, negotiated encoding,
        // batches sized by cairn_core::link, receipts checked, acks stored.
        if args.client_ops > 0 {
            eprintln!(
                "bench: the edge's sync client pushing {} ops over the shaped link",
                args.client_ops
            );
            let settings = cairn_sync::SyncSettings {
                hub_url: format!("http://{}", proxy.addr),
                hub_key: Some(("bench.hub".to_string(), hub_key)),
                hub_pin: None,
                interval_ms: 50,
                // `cairn edge serve`'s defaults.
                timeout_ms: 10_000,
                encoding: cairn_sync::Encoding::Auto,
                link: cairn_core::link::LinkConfig::default(),
            };
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let up_before = proxy.uplink_bytes();
            let started = Instant::now();
            let client = tokio::spawn(cairn_sync::run(edge.clone(), settings, stopped));
            let drained = loop {
                let pending = edge.status(0)?.pending_total;
                if pending == 0 || started.elapsed() > Duration::from_secs(args.client_seconds) {
                    break pending == 0;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            let seconds = started.elapsed().as_secs_f64();
            let _ = stop.send(true);
            let _ = client.await;
            anyhow::ensure!(drained, "the sync client did not drain its backlog in time");
            let up = (proxy.uplink_bytes() - up_before) as f64;
            rows.push(json!({
                "encoding": "sync client (auto, adaptive batches)",
                "ops": args.client_ops,
                "seconds": seconds,
                "bytes_per_op": up / args.client_ops as f64,
                "uplink_utilization": up / (seconds * bytes_per_sec as f64),
            }));
        }
        if args.artifact_bytes > 0 {
            let artifacts = super::artifact_link::run(
                &proxy,
                &hub_dir,
                &edge,
                hub_key,
                (args.artifact_bytes, bytes_per_sec),
            )
            .await?;
            rows.extend(artifacts);
        }
        anyhow::Ok(rows)
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}
