//! `cairn bench push --database URL`: the same push workload on the SQLite
//! hub, on one hub process over PostgreSQL and on three hub processes
//! sharing one PostgreSQL database, in the same run.
//!
//! Two figures per setup: throughput, with [`WRITERS`] nodes pushing their
//! backlogs at once (one node's stream is ordered, so only several nodes
//! can use several hubs), each node through hub `n % hubs`; and the herd,
//! every simulated node reconnecting with its queued ops the way an edge's
//! sync client pushes them, spread over the hubs alike. Each setup gets a
//! fresh hub (a new database on the server `URL` names) with the judge
//! running, as `hub serve` runs it.

use super::Figure;
use super::link::{enroll_bench_nodes, spawn_bench_hub};
use super::push::{
    PushBenchArgs, SimNode, backlog, push_backlog, push_once, reconnect_all, seal_backlog,
};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

/// Nodes pushing at once for the throughput figure.
pub(super) const WRITERS: usize = 12;

/// One hub setup of the comparison.
struct Setup {
    name: &'static str,
    postgres: bool,
    processes: usize,
}

const SETUPS: [Setup; 3] = [
    Setup {
        name: "SQLite, 1 hub process",
        postgres: false,
        processes: 1,
    },
    Setup {
        name: "PostgreSQL, 1 hub process",
        postgres: true,
        processes: 1,
    },
    Setup {
        name: "PostgreSQL, 3 hub processes",
        postgres: true,
        processes: 3,
    },
];

/// Runs every setup; the figures, and per setup the hubs' peak RSS.
pub(super) fn measure_backends(
    args: &PushBenchArgs,
    server: &str,
) -> anyhow::Result<(Vec<Figure>, Value)> {
    let mut figures = Vec::new();
    let mut details = serde_json::Map::new();
    for (index, setup) in SETUPS.iter().enumerate() {
        let hub_dir = args.dir.join(format!("backend-{index}"));
        if setup.postgres {
            let url = cairn_hub_postgres::create_fresh_database(server, "cairn_bench")?;
            cairn_hub_sqlite::HubStore::init_postgres(&hub_dir, "bench.hub", &[], &url)?;
        } else {
            cairn_hub_sqlite::HubStore::init(&hub_dir, "bench.hub")?;
        }
        eprintln!("bench: {}", setup.name);
        let (mut measured, rss) = measure_setup(args, setup, &hub_dir)?;
        figures.append(&mut measured);
        details.insert(setup.name.to_string(), json!({"hub_peak_rss_bytes": rss}));
    }
    Ok((figures, Value::Object(details)))
}

/// The two figures of one setup, and the hub processes' peak RSS.
fn measure_setup(
    args: &PushBenchArgs,
    setup: &Setup,
    hub_dir: &Path,
) -> anyhow::Result<(Vec<Figure>, Vec<Option<u64>>)> {
    let mut writers: Vec<SimNode> = (0..WRITERS)
        .map(|n| SimNode::new(&format!("writer-{n}"), 10_000 + n as u64))
        .collect();
    let herd: Vec<SimNode> = (0..args.nodes)
        .map(|n| SimNode::new(&format!("node-{n}"), 20_000 + n as u64))
        .collect();
    enroll_bench_nodes(hub_dir, writers.iter().chain(&herd))?;
    let mut hubs = Vec::new();
    for _ in 0..setup.processes {
        hubs.push(spawn_bench_hub(hub_dir, true)?);
    }
    let urls: Vec<String> = hubs
        .iter()
        .map(|(_, url)| format!("{url}/v1/push"))
        .collect();
    let per_writer = (args.ops / WRITERS).max(1);
    let sealed: Vec<_> = writers
        .iter_mut()
        .map(|sim| seal_backlog(sim, per_writer, args.batch))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bound = Duration::from_secs(args.seconds);
    let result = runtime.block_on(async {
        let client = cairn_http::tls::builder()
            .pool_max_idle_per_host(1_024)
            .timeout(Duration::from_secs(60))
            .build()?;
        let started = Instant::now();
        let tasks: Vec<_> = writers
            .into_iter()
            .zip(sealed)
            .enumerate()
            .map(|(n, (sim, sealed))| {
                let (client, url) = (client.clone(), urls[n % urls.len()].clone());
                let bodies = backlog(sim, sealed, true);
                tokio::spawn(push_backlog(bodies, bound, move |body, token| {
                    let pushed = push_once(client.clone(), url.clone(), body, token, true);
                    async move {
                        let answer = pushed.await?;
                        anyhow::Ok((answer.accepted, answer.latency_us))
                    }
                }))
            })
            .collect();
        let (mut pushed, mut latencies) = (0, Vec::new());
        for task in tasks {
            let run = task.await??;
            pushed += run.pushed;
            latencies.extend(run.latencies);
        }
        let throughput = Figure::new(
            format!(
                "{}: {WRITERS} nodes pushing at once, batches of {}",
                setup.name, args.batch
            ),
            pushed,
            started.elapsed(),
            latencies,
        );
        let herd = reconnect_all(&client, &urls, herd, args.per_node).await?;
        let herd = Figure {
            name: format!("{}: {}", setup.name, herd.name),
            ..herd
        };
        anyhow::Ok(vec![throughput, herd])
    });
    let rss = hubs
        .iter_mut()
        .map(|(child, _)| {
            let rss = super::peak_rss(child.id());
            let _ = child.kill();
            let _ = child.wait();
            rss
        })
        .collect();
    Ok((result?, rss))
}
