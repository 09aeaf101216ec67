//! `cairn bench edge`: durable write throughput and latency of the edge,
//! through the library and through the HTTP API, printed beside the ceilings
//! measured in the same run on the same disk (fsync rate, raw SQLite inserts).
//!
//! `cairn bench push`: push throughput to a real hub process, many nodes
//! reconnecting at once, and the drain of a long outage's backlog.
//!
//! Every loop is bounded by a count and a time; nothing here asserts speed.
//!
//! Over 800 lines: on the list of files to cut along their seams
//! (`LONG_TODAY` in `crates/cairn/tests/tidy.rs`, issue 10).

use crate::output;
use anyhow::Context;
use cairn_core::op::Action;
use cairn_edge::{EdgeStore, InitOptions, WriteRequest};
use clap::Args;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `cairn bench edge` options.
#[derive(Args, Debug)]
pub struct EdgeBenchArgs {
    /// Scratch directory on the disk to measure (created fresh, removed after).
    #[arg(long, default_value = "./cairn-bench")]
    pub dir: PathBuf,
    /// Most ops per measurement.
    #[arg(long, default_value_t = 20_000)]
    pub ops: usize,
    /// Most seconds per measurement.
    #[arg(long, default_value_t = 4)]
    pub seconds: u64,
}

/// Concurrency levels measured.
const WRITERS: [usize; 4] = [1, 8, 64, 256];
/// Records per batch write.
const BATCH_RECORDS: usize = 1_000;
/// Rows per transaction of the raw SQLite ceiling.
const RAW_BATCH_ROWS: usize = 1_000;
/// Target payload size, bytes (SPEC section 9 uses records of about 500 bytes).
const RECORD_BYTES: usize = 500;

/// One measured figure.
#[derive(Clone, Debug, serde::Serialize)]
struct Figure {
    name: String,
    ops: usize,
    seconds: f64,
    ops_per_sec: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

impl Figure {
    fn new(
        name: impl Into<String>,
        ops: usize,
        elapsed: Duration,
        mut latencies_us: Vec<u64>,
    ) -> Figure {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        latencies_us.sort_unstable();
        let pick = |q: f64| -> Option<f64> {
            (!latencies_us.is_empty()).then(|| {
                latencies_us[((latencies_us.len() as f64 - 1.0) * q).round() as usize] as f64
                    / 1000.0
            })
        };
        Figure {
            name: name.into(),
            ops,
            seconds,
            ops_per_sec: ops as f64 / seconds,
            p50_ms: pick(0.5),
            p99_ms: pick(0.99),
        }
    }
}

/// A maintenance action of about [`RECORD_BYTES`] once encoded.
fn record(n: usize) -> Value {
    let mut data = json!({
        "work_order": format!("WO-BENCH-{n}"),
        "aircraft_registration": "N123AB",
        "part_serial": format!("SN-{n:08}"),
        "technician": "TECH-IA-4412",
        "performed_on": "2026-11-20",
        "certificate_expiry": "2027-11-20",
        "action": "inspection",
        "hours": 1.5,
    });
    let used = serde_json::to_vec(&data).map_or(0, |bytes| bytes.len()) + 20;
    data["description"] = json!("x".repeat(RECORD_BYTES.saturating_sub(used)));
    data
}

fn request(n: usize) -> WriteRequest {
    WriteRequest {
        collection: "maintenance_actions".into(),
        action: Action::Append,
        key: None,
        scope: [("site".to_string(), "bench".to_string())].into(),
        data: record(n),
        corrects: None,
        reason: None,
        move_scope: false,
    }
}

fn fresh_store(dir: &Path, name: &str) -> anyhow::Result<EdgeStore> {
    let path = dir.join(name);
    EdgeStore::init(
        &path,
        &InitOptions {
            node: "bench".into(),
            packs: vec!["mro".into()],
            default_scope: Default::default(),
            quota_bytes: 0,
        },
    )?;
    Ok(EdgeStore::open(&path)?)
}

/// Runs the benchmark and prints its table (or JSON).
pub fn edge(args: &EdgeBenchArgs, json_output: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.dir.exists(),
        "{} exists; remove it or pass --dir",
        args.dir.display()
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let result = measure(args);
    let _ = std::fs::remove_dir_all(&args.dir);
    let (ceilings, figures) = result?;
    report(&ceilings, &figures, json_output);
    Ok(())
}

struct Ceilings {
    fsync: Figure,
    sqlite_row_per_txn: Figure,
    sqlite_batched: Figure,
    /// Raw SQLite inserting rows as large as the library's stored ops: the
    /// most any store can do on this disk while writing those bytes.
    sqlite_batched_op_sized: Figure,
    /// Bytes of one stored op row counted for that ceiling (op and op hash).
    op_row_bytes: usize,
}

fn measure(args: &EdgeBenchArgs) -> anyhow::Result<(Ceilings, Vec<Figure>)> {
    let bound = Duration::from_secs(args.seconds);
    let progress = |line: &str| eprintln!("bench: {line}");
    progress("fsync rate");
    let fsync = fsync_rate(&args.dir, bound.min(Duration::from_secs(2)))?;
    progress("raw SQLite, one row per durable transaction");
    let sqlite_row_per_txn = sqlite_raw(
        &args.dir.join("raw-row.db"),
        RECORD_BYTES,
        1,
        args.ops.min(2_000),
        bound.min(Duration::from_secs(2)),
    )?;
    progress("raw SQLite, 1000 rows per durable transaction");
    let sqlite_batched = sqlite_raw(
        &args.dir.join("raw-batch.db"),
        RECORD_BYTES,
        RAW_BATCH_ROWS,
        args.ops.max(RAW_BATCH_ROWS),
        bound,
    )?;
    // The same ceiling with rows as large as the library stores an op,
    // measured now, before the library's own writes load the disk.
    let op_row_bytes = stored_op_row_bytes(&args.dir)?;
    progress(&format!(
        "raw SQLite, {RAW_BATCH_ROWS} rows of {op_row_bytes} bytes (a stored op) per durable transaction"
    ));
    let sqlite_batched_op_sized = sqlite_raw(
        &args.dir.join("raw-batch-op-sized.db"),
        op_row_bytes,
        RAW_BATCH_ROWS,
        args.ops.max(RAW_BATCH_ROWS),
        bound,
    )?;
    let mut figures = Vec::new();
    let store = Arc::new(fresh_store(&args.dir, "library")?);
    for writers in WRITERS {
        progress(&format!("library, {writers} concurrent writers"));
        figures.push(library_writers(&store, writers, args.ops, bound));
    }
    progress("library, batches of 1000");
    figures.push(library_batches(&store, args.ops, bound));
    drop(store);
    let api_store = Arc::new(fresh_store(&args.dir, "api")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    figures.extend(runtime.block_on(api(api_store, args.ops, bound, progress))?);
    Ok((
        Ceilings {
            fsync,
            sqlite_row_per_txn,
            sqlite_batched,
            sqlite_batched_op_sized,
            op_row_bytes,
        },
        figures,
    ))
}

/// Bytes of an op the library stores for a benchmark record, as the raw
/// ceiling counts them: the encoded op and its 32-byte hash (the row's other
/// columns, its index entry and the signed checkpoints are left out, in
/// SQLite's favour). Written once to a store of its own under `dir`.
fn stored_op_row_bytes(dir: &Path) -> anyhow::Result<usize> {
    let store = fresh_store(dir, "op-size")?;
    store.write(request(0))?;
    let batch = store
        .pending_batch("standard", 1)?
        .context("the library wrote no op to measure")?;
    let op = batch.ops.first().context("a pending batch holds an op")?;
    Ok(op.len() + 32)
}

fn fsync_rate(dir: &Path, bound: Duration) -> anyhow::Result<Figure> {
    let path = dir.join("fsync.probe");
    let mut file = std::fs::File::create(&path)?;
    let block = vec![7u8; 4096];
    let mut latencies = Vec::new();
    let started = Instant::now();
    while latencies.len() < 5_000 && started.elapsed() < bound {
        let one = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        latencies.push(one.elapsed().as_micros() as u64);
    }
    Ok(Figure::new(
        "fsync (4 KiB write + fdatasync)",
        latencies.len(),
        started.elapsed(),
        latencies,
    ))
}

fn sqlite_raw(
    path: &Path,
    row_bytes: usize,
    rows_per_txn: usize,
    rows_max: usize,
    bound: Duration,
) -> anyhow::Result<Figure> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")?;
    let body = vec![b'x'; row_bytes];
    let started = Instant::now();
    let mut rows = 0;
    let mut latencies = Vec::new();
    while rows < rows_max && started.elapsed() < bound {
        let one = Instant::now();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO t (body) VALUES (?1)")?;
            for _ in 0..rows_per_txn {
                insert.execute([&body])?;
            }
        }
        tx.commit()?;
        rows += rows_per_txn;
        latencies.push(one.elapsed().as_micros() as u64);
    }
    let name = if rows_per_txn == 1 {
        format!("raw SQLite, 1 row of {row_bytes} B per durable txn")
    } else {
        format!("raw SQLite, {rows_per_txn} rows of {row_bytes} B per durable txn")
    };
    Ok(Figure::new(
        name,
        rows,
        started.elapsed(),
        if rows_per_txn == 1 {
            latencies
        } else {
            Vec::new()
        },
    ))
}

/// Requests built before the clock starts, so the figures measure the store
/// and not the load generator.
fn prebuilt(ops: usize) -> Arc<Vec<std::sync::Mutex<Option<WriteRequest>>>> {
    Arc::new(
        (0..ops)
            .map(|n| std::sync::Mutex::new(Some(request(n))))
            .collect(),
    )
}

fn take(requests: &[std::sync::Mutex<Option<WriteRequest>>], n: usize) -> WriteRequest {
    requests[n]
        .lock()
        .ok()
        .and_then(|mut slot| slot.take())
        .unwrap_or_else(|| request(n))
}

fn library_writers(store: &Arc<EdgeStore>, writers: usize, ops: usize, bound: Duration) -> Figure {
    let requests = prebuilt(ops);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let store = store.clone();
            let next = next.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= ops || started.elapsed() >= bound {
                        break;
                    }
                    let request = take(&requests, n);
                    let one = Instant::now();
                    if store.write(request).is_ok() {
                        latencies.push(one.elapsed().as_micros() as u64);
                    }
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<u64> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap_or_default())
        .collect();
    Figure::new(
        format!("library, {writers} writers"),
        latencies.len(),
        started.elapsed(),
        latencies,
    )
}

fn library_batches(store: &Arc<EdgeStore>, ops: usize, bound: Duration) -> Figure {
    let total = ops.max(BATCH_RECORDS);
    let requests = prebuilt(total);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let next = next.clone();
            let requests = requests.clone();
            std::thread::spawn(move || {
                let mut written = 0;
                loop {
                    let first = next.fetch_add(BATCH_RECORDS, Ordering::Relaxed);
                    if first >= total || started.elapsed() >= bound {
                        break;
                    }
                    let batch: Vec<WriteRequest> = (first..(first + BATCH_RECORDS).min(total))
                        .map(|n| take(&requests, n))
                        .collect();
                    let len = batch.len();
                    if store.write_batch(batch).is_ok() {
                        written += len;
                    }
                }
                written
            })
        })
        .collect();
    let written = threads
        .into_iter()
        .map(|thread| thread.join().unwrap_or(0))
        .sum();
    Figure::new(
        format!("library, batches of {BATCH_RECORDS} (4 writers)"),
        written,
        started.elapsed(),
        Vec::new(),
    )
}

async fn api(
    store: Arc<EdgeStore>,
    ops: usize,
    bound: Duration,
    progress: impl Fn(&str),
) -> anyhow::Result<Vec<Figure>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cairn_http::edge::run(
        listener,
        store,
        cairn_http::edge::EDGE_LIMITS,
        async {
            let _ = stopped.await;
        },
    ));
    let client = cairn_http::tls::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    // Bodies are serialized before the clock starts.
    let body = |n: usize| json!({"collection": "maintenance_actions", "scope": {"site": "bench"}, "data": record(n)});
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new((0..ops).map(|n| body(n).to_string().into_bytes()).collect());
    let batch_bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..ops.max(BATCH_RECORDS) / BATCH_RECORDS)
            .map(|batch| {
                let records: Vec<Value> = (batch * BATCH_RECORDS..(batch + 1) * BATCH_RECORDS)
                    .map(body)
                    .collect();
                json!({"records": records}).to_string().into_bytes()
            })
            .collect(),
    );
    let mut figures = Vec::new();
    for writers in WRITERS {
        progress(&format!("HTTP API, {writers} concurrent writers"));
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|_| {
                let client = client.clone();
                let next = next.clone();
                let bodies = bodies.clone();
                let url = format!("{url}/v1/records");
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= ops || started.elapsed() >= bound {
                            break;
                        }
                        let one = Instant::now();
                        let request = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[n].clone());
                        match request.send().await {
                            Ok(response) if response.status() == reqwest::StatusCode::CREATED => {
                                latencies.push(one.elapsed().as_micros() as u64);
                            }
                            _ => {}
                        }
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap_or_default());
        }
        figures.push(Figure::new(
            format!("HTTP API, {writers} writers"),
            latencies.len(),
            started.elapsed(),
            latencies,
        ));
    }
    progress("HTTP API, batches of 1000");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            let batch_bodies = batch_bodies.clone();
            let url = format!("{url}/v1/records/batch");
            tokio::spawn(async move {
                let mut written = 0;
                loop {
                    let batch = next.fetch_add(1, Ordering::Relaxed);
                    if batch >= batch_bodies.len() || started.elapsed() >= bound {
                        break;
                    }
                    let request = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(batch_bodies[batch].clone());
                    if let Ok(response) = request.send().await
                        && response.status() == reqwest::StatusCode::CREATED
                    {
                        written += BATCH_RECORDS;
                    }
                }
                written
            })
        })
        .collect();
    let mut written = 0;
    for task in tasks {
        written += task.await.unwrap_or(0);
    }
    figures.push(Figure::new(
        format!("HTTP API, batches of {BATCH_RECORDS} (4 writers)"),
        written,
        started.elapsed(),
        Vec::new(),
    ));
    let _ = stop.send(());
    let _ = server.await;
    Ok(figures)
}

/// Peak resident set size of this process, bytes (Linux).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn report(ceilings: &Ceilings, figures: &[Figure], json_output: bool) {
    let raw = ceilings.sqlite_batched.ops_per_sec;
    let op_sized = ceilings.sqlite_batched_op_sized.ops_per_sec;
    let fsync_p50 = ceilings.fsync.p50_ms.unwrap_or(0.0);
    let best_library = figures
        .iter()
        .filter(|figure| figure.name.starts_with("library"))
        .map(|figure| figure.ops_per_sec)
        .fold(0.0, f64::max);
    let single = figures
        .iter()
        .find(|figure| figure.name == "library, 1 writers");
    let single_api = figures
        .iter()
        .find(|figure| figure.name == "HTTP API, 1 writers");
    if json_output {
        output::json(&json!({
            "ceilings": {
                "fsync": ceilings.fsync,
                "sqlite_row_per_txn": ceilings.sqlite_row_per_txn,
                "sqlite_batched": ceilings.sqlite_batched,
                "sqlite_batched_op_sized": ceilings.sqlite_batched_op_sized,
                "op_row_bytes": ceilings.op_row_bytes,
            },
            "figures": figures,
            "targets": {
                "best_library_over_raw_batched": best_library / raw,
                "target_over_raw_batched": 0.8,
                "best_library_over_op_sized_raw": best_library / op_sized,
                "single_write_p50_ms": single.and_then(|figure| figure.p50_ms),
                "single_write_api_p50_ms": single_api.and_then(|figure| figure.p50_ms),
                "target_single_write_p50_ms": fsync_p50 + 1.0,
            },
            "record_bytes": RECORD_BYTES,
            "peak_rss_bytes": peak_rss_bytes(),
        }));
        return;
    }
    let fmt_ms = |value: Option<f64>| value.map_or("-".to_string(), |ms| format!("{ms:.2}"));
    let mut rows = Vec::new();
    for figure in [
        &ceilings.fsync,
        &ceilings.sqlite_row_per_txn,
        &ceilings.sqlite_batched,
        &ceilings.sqlite_batched_op_sized,
    ]
    .into_iter()
    .chain(figures)
    {
        rows.push(vec![
            figure.name.clone(),
            figure.ops.to_string(),
            format!("{:.0}", figure.ops_per_sec),
            fmt_ms(figure.p50_ms),
            fmt_ms(figure.p99_ms),
            format!("{:.2}", figure.ops_per_sec / raw),
        ]);
    }
    println!(
        "{}",
        output::table(
            &[
                "measurement",
                "ops",
                "ops/s",
                "p50 ms",
                "p99 ms",
                "x raw batched"
            ],
            rows
        )
    );
    println!(
        "target: durable writes >= 0.8 x raw SQLite batched: best library figure is {:.2} x ({:.0} vs {:.0} ops/s)",
        best_library / raw,
        best_library,
        raw
    );
    println!(
        "ceiling: raw SQLite writing rows as large as a stored op ({} B) does {:.0} ops/s = {:.2} x raw batched; the best library figure is {:.2} x that",
        ceilings.op_row_bytes,
        op_sized,
        op_sized / raw,
        best_library / op_sized
    );
    if let Some(single) = single {
        println!(
            "target: single write p50 <= one fsync + 1 ms = {:.2} ms: library {} ms, HTTP API {} ms",
            fsync_p50 + 1.0,
            fmt_ms(single.p50_ms),
            fmt_ms(single_api.and_then(|figure| figure.p50_ms))
        );
    }
    if let Some(rss) = peak_rss_bytes() {
        println!("peak RSS of the benchmark process: {}", output::bytes(rss));
    }
}

/// `cairn bench push` options.
#[derive(Args, Debug)]
pub struct PushBenchArgs {
    /// Scratch directory for the hub (created fresh, removed after).
    #[arg(long, default_value = "./cairn-bench-push")]
    pub dir: PathBuf,
    /// Ops pushed by one node for the throughput figure.
    #[arg(long, default_value_t = 100_000)]
    pub ops: usize,
    /// Ops per push.
    #[arg(long, default_value_t = 1_000)]
    pub batch: usize,
    /// Simulated nodes reconnecting at once.
    #[arg(long, default_value_t = 1_000)]
    pub nodes: usize,
    /// Queued ops per reconnecting node.
    #[arg(long, default_value_t = 100)]
    pub per_node: usize,
    /// Ops of the drain-after-outage figure (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub drain_ops: usize,
    /// Most seconds per measurement.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// Records PouchDB replicates into pouchdb-server for the peer figure
    /// (0 skips the peer; it needs Node.js and npm).
    #[arg(long, default_value_t = 10_000)]
    pub peer_docs: usize,
}

/// PouchDB batch sizes tried for the peer figure (100 is PouchDB's default).
const PEER_BATCH_SIZES: [usize; 3] = [100, 1_000, 5_000];

/// A simulated node: its key and its stream, producing signed batches.
struct SimNode {
    identity: cairn_core::identity::NodeIdentity,
    head: cairn_core::chain::StreamHead,
    clock: u64,
}

impl SimNode {
    fn new(name: &str, seed: u64) -> SimNode {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_be_bytes());
        key[8] = 0xCA;
        SimNode {
            identity: cairn_core::identity::NodeIdentity::from_seed(name, key),
            head: cairn_core::chain::StreamHead::EMPTY,
            clock: 1_700_000_000_000,
        }
    }

    /// The next `count` ops, encoded, and the checkpoint of the last.
    fn ops(&mut self, count: usize) -> (Vec<Vec<u8>>, cairn_core::identity::Checkpoint) {
        let ops = self.chain(count).into_iter().map(|(op, _)| op).collect();
        (
            ops,
            self.identity
                .sign_checkpoint("standard", self.head.seq, self.head.hash),
        )
    }

    /// The next `count` ops, encoded, each with the stream head it makes.
    fn chain(&mut self, count: usize) -> Vec<(Vec<u8>, cairn_core::chain::StreamHead)> {
        let mut ops = Vec::with_capacity(count);
        for _ in 0..count {
            self.clock += 1;
            let n = self.head.seq as usize + 1;
            let payload = cairn_core::canonical::encode_unchecked(&record(n));
            let draft = cairn_core::op::OpDraft {
                node: self.identity.node.clone(),
                stream: "standard".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: self.clock,
                    counter: 0,
                },
                collection: "maintenance_actions".into(),
                action: Action::Append,
                key: String::new(),
                scope: [("site".to_string(), "bench".to_string())].into(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload,
            };
            let op = self.head.append(draft).1;
            ops.push((op, self.head));
        }
        ops
    }

    /// The next `count` ops as a JSON push body.
    fn batch(&mut self, count: usize) -> Vec<u8> {
        let (ops, checkpoint) = self.ops(count);
        self.json_body(&ops, &checkpoint)
    }

    /// A JSON push body of sealed ops.
    fn json_body(&self, ops: &[Vec<u8>], checkpoint: &cairn_core::identity::Checkpoint) -> Vec<u8> {
        use base64::Engine;
        json!({
            "node": self.identity.node,
            "stream": "standard",
            "ops": ops.iter().map(|op| base64::engine::general_purpose::STANDARD.encode(op)).collect::<Vec<_>>(),
            "checkpoint": {"seq": checkpoint.seq, "head": checkpoint.head.to_hex(), "signature": hex::encode(checkpoint.signature)},
        })
        .to_string()
        .into_bytes()
    }

    /// The next `count` ops as a binary (postcard + zstd) push body.
    fn batch_binary(&mut self, count: usize) -> Vec<u8> {
        let (ops, checkpoint) = self.ops(count);
        self.binary_body(ops, &checkpoint)
    }

    /// A binary (postcard + zstd) push body of sealed ops.
    fn binary_body(
        &self,
        ops: Vec<Vec<u8>>,
        checkpoint: &cairn_core::identity::Checkpoint,
    ) -> Vec<u8> {
        cairn_proto::PushWire {
            node: self.identity.node.clone(),
            stream: "standard".into(),
            ops,
            checkpoint_seq: checkpoint.seq,
            checkpoint_head: checkpoint.head.0,
            checkpoint_signature: checkpoint.signature.to_vec(),
        }
        .encode()
    }

    fn token(&self, origin: &str) -> String {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = cairn_core::token::Claims {
            sub: self.identity.node.clone(),
            aud: origin.into(),
            role: "node".into(),
            iat: now_s,
            exp: now_s + 300,
        };
        cairn_core::token::sign(&claims, &self.identity)
    }
}

/// Push bodies the builder thread may have ready ahead of the pushes.
const BODIES_AHEAD: usize = 4;

/// Takes simulated node `index` out of `sims` (for a builder thread).
fn spend(sims: &mut [SimNode], index: usize) -> SimNode {
    std::mem::replace(&mut sims[index], SimNode::new("spent", u64::MAX))
}

/// Sealed ops waiting to be pushed: batches with the checkpoint of each.
type Sealed = Vec<(Vec<Vec<u8>>, cairn_core::identity::Checkpoint)>;

/// The next `total` ops of `sim` in batches of `batch`, sealed (encoded,
/// hashed, chained and signed) before the clock starts: a real edge does
/// that when the ops are written (`bench edge` measures it), not when it
/// pushes them.
fn seal_backlog(sim: &mut SimNode, total: usize, batch: usize) -> Sealed {
    let mut sealed = Vec::with_capacity(total.div_ceil(batch.max(1)));
    let mut built = 0;
    while built < total {
        let count = batch.min(total - built);
        sealed.push(sim.ops(count));
        built += count;
    }
    sealed
}

/// The push bodies (with tokens) of `sealed`, encoded on a thread of their
/// own at most [`BODIES_AHEAD`] pushes ahead, as an edge's sync client
/// encodes what it sends. The thread shares the machine with the hub.
fn backlog(
    sim: SimNode,
    sealed: Sealed,
    binary: bool,
) -> tokio::sync::mpsc::Receiver<(Vec<u8>, String)> {
    let (sender, receiver) = tokio::sync::mpsc::channel(BODIES_AHEAD);
    std::thread::spawn(move || {
        for (ops, checkpoint) in sealed {
            let body = if binary {
                sim.binary_body(ops, &checkpoint)
            } else {
                sim.json_body(&ops, &checkpoint)
            };
            if sender
                .blocking_send((body, sim.token("bench.hub")))
                .is_err()
            {
                return;
            }
        }
    });
    receiver
}

/// A push's answer as the benchmark reads it.
struct PushAnswer {
    /// Ops the hub accepted.
    accepted: usize,
    /// From sending the request to reading the whole answer, µs.
    latency_us: u64,
    /// The hub's own time with the push (its `Server-Timing`), ms.
    hub_ms: Option<u64>,
}

/// Sends one push body and reads the answer.
async fn push_once(
    client: reqwest::Client,
    url: String,
    body: Vec<u8>,
    token: String,
    binary: bool,
) -> anyhow::Result<PushAnswer> {
    let started = Instant::now();
    let request = client.post(url).bearer_auth(token);
    let request = if binary {
        request
            .header("content-type", cairn_http::hub::BINARY_PUSH)
            .header("content-encoding", "zstd")
    } else {
        request.header("content-type", "application/json")
    };
    let response = request.body(body).send().await?;
    anyhow::ensure!(
        response.status().is_success(),
        "push refused: {}",
        response.status()
    );
    let hub_ms = cairn_http::hub::hub_time_ms(response.headers());
    let answer: Value = response.json().await?;
    let accepted = answer["results"].as_array().map_or(0, |results| {
        results
            .iter()
            .filter(|result| result["status"] == "accepted")
            .count()
    });
    Ok(PushAnswer {
        accepted,
        latency_us: started.elapsed().as_micros() as u64,
        hub_ms,
    })
}

/// How long the simulated nodes were cut off before they reconnect, ms.
const OUTAGE_MS: u64 = 60_000;

/// The link of an edge that was `outage_ms` without its hub and has just
/// seen a health probe succeed: the sync client's own state machine, with
/// its default thresholds, driven through the outage's failed pushes and
/// probes (`seed` draws the jitter).
fn link_after_outage(outage_ms: u64, seed: u64) -> cairn_core::link::Link {
    use cairn_core::link::{Link, LinkConfig, Step};
    let mut link = Link::new(LinkConfig::default());
    let (mut now, mut jitter) = (0, cairn_sync::Jitter::seeded(seed));
    while now < outage_ms {
        match link.step(now) {
            Step::Wait { until_ms } => now = until_ms,
            Step::Probe | Step::Push { .. } => link.failed(now, jitter.draw()),
        }
    }
    link.probe_succeeded();
    link
}

/// What one reconnecting node saw.
struct Reconnected {
    accepted: usize,
    /// Each push's latency, µs.
    latencies: Vec<u64>,
}

/// One node pushing `ops` after an outage the way `sync::push_all` does:
/// batch sizes and pushes in flight from its link, each answer (the link's
/// time and the hub's `Server-Timing`) fed back into it.
async fn reconnect(
    client: reqwest::Client,
    url: String,
    sim: SimNode,
    ops: Vec<(Vec<u8>, cairn_core::identity::Checkpoint)>,
    token: String,
    seed: u64,
) -> anyhow::Result<Reconnected> {
    let mut link = link_after_outage(OUTAGE_MS, seed);
    let mut jitter = cairn_sync::Jitter::seeded(seed);
    let mut in_flight = std::collections::VecDeque::new();
    let (mut next, mut last_elapsed_ms) = (0, 0);
    let mut node = Reconnected {
        accepted: 0,
        latencies: Vec::new(),
    };
    loop {
        while in_flight.len() < link.pushes_in_flight() && next < ops.len() {
            // Staggered by half a push's time, as `sync::push_all` does.
            if let Some((_, _, sent)) = in_flight.back() {
                let stagger = Duration::from_millis(last_elapsed_ms / 2);
                if let Some(wait) = stagger.checked_sub(Instant::elapsed(sent)) {
                    tokio::time::sleep(wait).await;
                }
            }
            let batch = &ops[next..(next + link.batch_ops()).min(ops.len())];
            let checkpoint = &batch.last().expect("a batch holds an op").1;
            let body =
                sim.binary_body(batch.iter().map(|(op, _)| op.clone()).collect(), checkpoint);
            next += batch.len();
            let push = tokio::spawn(push_once(
                client.clone(),
                url.clone(),
                body,
                token.clone(),
                true,
            ));
            in_flight.push_back((push, link.window(), Instant::now()));
        }
        let Some((push, window, _)) = in_flight.pop_front() else {
            break;
        };
        let answer = push.await??;
        node.accepted += answer.accepted;
        node.latencies.push(answer.latency_us);
        last_elapsed_ms = answer.latency_us / 1_000;
        link.pushed(window, answer.latency_us / 1_000, answer.hub_ms);
        let pause = link.pause_ms(answer.hub_ms, jitter.draw());
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
    Ok(node)
}

/// What pushing one backlog took.
struct BacklogRun {
    /// Ops the hub accepted.
    pushed: usize,
    /// Each push's latency, µs.
    latencies: Vec<u64>,
    /// Body bytes sent.
    wire_bytes: usize,
    /// Time from the first push to the last answer.
    elapsed: Duration,
}

/// Pushes the bodies of `bodies` one after another, as one node does, until
/// they run out or `bound` passes.
async fn push_backlog<F, Fut>(
    mut bodies: tokio::sync::mpsc::Receiver<(Vec<u8>, String)>,
    bound: Duration,
    push: F,
) -> anyhow::Result<BacklogRun>
where
    F: Fn(Vec<u8>, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(usize, u64)>> + Send + 'static,
{
    let mut run = BacklogRun {
        pushed: 0,
        latencies: Vec::new(),
        wire_bytes: 0,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    // As the edge's sync client does: a few pushes in flight, answers
    // taken in order (the hub applies them in seq order).
    let mut in_flight = std::collections::VecDeque::new();
    loop {
        while in_flight.len() < cairn_sync::PUSHES_IN_FLIGHT && started.elapsed() < bound {
            let Some((body, token)) = bodies.recv().await else {
                break;
            };
            run.wire_bytes += body.len();
            in_flight.push_back(tokio::spawn(push(body, token)));
        }
        let Some(answer) = in_flight.pop_front() else {
            break;
        };
        let (accepted, latency) = answer.await??;
        run.pushed += accepted;
        run.latencies.push(latency);
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// Runs `cairn bench push`.
pub fn push(args: &PushBenchArgs, json_output: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.dir.exists(),
        "{} exists; remove it or pass --dir",
        args.dir.display()
    );
    let result = measure_push(args).and_then(|(mut figures, mut extra)| {
        let peer = measure_peer(args, &figures, &mut extra)?;
        figures.extend(peer);
        Ok((figures, extra))
    });
    let _ = std::fs::remove_dir_all(&args.dir);
    let (figures, extra) = result?;
    if json_output {
        output::json(&json!({"figures": figures, "details": extra}));
        return Ok(());
    }
    let fmt_ms = |value: Option<f64>| value.map_or("-".to_string(), |ms| format!("{ms:.1}"));
    let rows = figures
        .iter()
        .map(|figure| {
            vec![
                figure.name.clone(),
                figure.ops.to_string(),
                format!("{:.0}", figure.ops_per_sec),
                fmt_ms(figure.p50_ms),
                fmt_ms(figure.p99_ms),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(
            &[
                "measurement",
                "ops",
                "ops/s",
                "batch p50 ms",
                "batch p99 ms"
            ],
            rows
        )
    );
    for (key, value) in extra.as_object().into_iter().flatten() {
        println!("{key}: {value}");
    }
    println!(
        "targets (SPEC 9): push >= 100,000 ops/s; 1,000 nodes x 100 ops drained with batch p99 <= 500 ms; 1,000,000 ops drained in <= 20 s"
    );
    println!("target (SPEC 9): push >= 25 x PouchDB at its best batch size, same run");
    let find = |prefix: &str, part: &str| {
        figures
            .iter()
            .find(|figure| figure.name.starts_with(prefix) && figure.name.contains(part))
    };
    if let Some(herd) = find(&format!("{} nodes", args.nodes), "as edges reconnect") {
        println!(
            "herd as edges push it: all {} ops drained in {:.2} s, batch p99 {} ms",
            herd.ops,
            herd.seconds,
            fmt_ms(herd.p99_ms)
        );
    }
    if let Some(drain) = find("drain after an outage", "") {
        println!("drain: {} ops in {:.1} s", drain.ops, drain.seconds);
    }
    Ok(())
}

/// Runs the PouchDB peer with the same records and adds its figures and the
/// ratio to the JSON push figure. A peer that cannot run (no Node.js, no
/// registry) is reported as such; it does not fail the benchmark.
fn measure_peer(
    args: &PushBenchArgs,
    figures: &[Figure],
    extra: &mut Value,
) -> anyhow::Result<Vec<Figure>> {
    if args.peer_docs == 0 {
        extra["peer"] = json!("skipped (--peer-docs 0)");
        return Ok(Vec::new());
    }
    let records: Vec<Value> = (1..=args.peer_docs).map(record).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scratch = args.dir.join("peer");
    match runtime.block_on(crate::pouch::measure(&records, &PEER_BATCH_SIZES, &scratch)) {
        Ok(runs) => {
            let best = runs
                .iter()
                .map(|run| run.docs_per_sec)
                .fold(0.0f64, f64::max);
            let ratio = |index: usize| {
                let push = figures.get(index).map_or(0.0, |figure| figure.ops_per_sec);
                json!((push / best.max(1e-9) * 10.0).round() / 10.0)
            };
            extra["peer_pouchdb"] = json!(runs);
            extra["peer_pouchdb_best_docs_per_sec"] = json!(best.round());
            extra["push_json_over_pouchdb_best"] = ratio(0);
            // Binary+zstd is what an edge's sync client picks from a hub
            // that offers it (`--encoding auto`, the default).
            extra["push_binary_over_pouchdb_best"] = ratio(1);
            Ok(runs
                .iter()
                .map(|run| {
                    Figure::new(
                        format!(
                            "peer: PouchDB -> pouchdb-server, batch_size {}",
                            run.batch_size
                        ),
                        run.docs as usize,
                        Duration::from_secs_f64(run.seconds),
                        Vec::new(),
                    )
                })
                .collect())
        }
        Err(error) => {
            eprintln!("bench: the PouchDB peer could not run: {error:#}");
            extra["peer"] = json!(format!("unavailable: {error:#}"));
            Ok(Vec::new())
        }
    }
}

fn measure_push(args: &PushBenchArgs) -> anyhow::Result<(Vec<Figure>, Value)> {
    let hub_dir = args.dir.join("hub");
    cairn_hub_sqlite::HubStore::init(&hub_dir, "bench.hub")?;
    let names: Vec<String> = std::iter::once("writer".to_string())
        .chain((0..args.nodes).map(|n| format!("node-{n}")))
        .chain(std::iter::once("drain".to_string()))
        .chain(std::iter::once("binary".to_string()))
        .collect();
    let mut sims: Vec<SimNode> = names
        .iter()
        .enumerate()
        .map(|(i, name)| SimNode::new(name, i as u64))
        .collect();
    let (mut child, url) = start_bench_hub(&hub_dir, &sims)?;
    let pid = child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bound = Duration::from_secs(args.seconds);
    let result = runtime.block_on(async {
        let client = cairn_http::tls::builder()
            .pool_max_idle_per_host(1_024)
            .timeout(Duration::from_secs(60))
            .build()?;
        let push_url = format!("{url}/v1/push");
        let push_as = |body: Vec<u8>, token: String, binary: bool| {
            let pushed = push_once(client.clone(), push_url.clone(), body, token, binary);
            async move {
                let answer = pushed.await?;
                anyhow::Ok((answer.accepted, answer.latency_us))
            }
        };
        let push = |body: Vec<u8>, token: String| push_as(body, token, false);
        let mut figures = Vec::new();
        // One node pushing its backlog, batch after batch.
        eprintln!(
            "bench: one node pushing {} ops in batches of {}",
            args.ops, args.batch
        );
        let origin = "bench.hub";
        let mut sim = spend(&mut sims, 0);
        let sealed = seal_backlog(&mut sim, args.ops, args.batch);
        let bodies = backlog(sim, sealed, false);
        let run = push_backlog(bodies, bound, push).await?;
        figures.push(Figure::new(
            format!("push, one node, JSON, batches of {}", args.batch),
            run.pushed,
            run.elapsed,
            run.latencies,
        ));
        let bytes_per_op = run.wire_bytes as f64 / run.pushed.max(1) as f64;
        // The same, with the compact binary body.
        eprintln!(
            "bench: one node pushing {} ops in batches of {}, binary+zstd",
            args.ops, args.batch
        );
        let binary_node = args.nodes + 2;
        let mut sim = spend(&mut sims, binary_node);
        let sealed = seal_backlog(&mut sim, args.ops, args.batch);
        let bodies = backlog(sim, sealed, true);
        let run = push_backlog(bodies, bound, |body, token| push_as(body, token, true)).await?;
        figures.push(Figure::new(
            format!("push, one node, binary+zstd, batches of {}", args.batch),
            run.pushed,
            run.elapsed,
            run.latencies,
        ));
        let binary_bytes_per_op = run.wire_bytes as f64 / run.pushed.max(1) as f64;
        // Many nodes reconnecting at once: with JSON bodies, then again
        // (100 more ops each) with the binary body real edges negotiate.
        for binary in [false, true] {
            let encoding = if binary { "binary+zstd" } else { "JSON" };
            eprintln!(
                "bench: {} nodes reconnecting with {} ops each, {encoding}",
                args.nodes, args.per_node
            );
            let bodies: Vec<(Vec<u8>, String)> = sims[1..=args.nodes]
                .iter_mut()
                .map(|sim| {
                    let body = if binary {
                        sim.batch_binary(args.per_node)
                    } else {
                        sim.batch(args.per_node)
                    };
                    (body, sim.token(origin))
                })
                .collect();
            let started = Instant::now();
            let tasks: Vec<_> = bodies
                .into_iter()
                .map(|(body, token)| tokio::spawn(push_as(body, token, binary)))
                .collect();
            let (mut drained, mut latencies) = (0usize, Vec::new());
            for task in tasks {
                let (accepted, latency) = task.await??;
                drained += accepted;
                latencies.push(latency);
            }
            figures.push(Figure::new(
                format!(
                    "{} nodes x {} ops at once, {encoding}",
                    args.nodes, args.per_node
                ),
                drained,
                started.elapsed(),
                latencies,
            ));
        }
        // The same herd as the edges' sync client sends it: each node's
        // link comes back from an outage with small batches, one push at a
        // time, and grows them while the hub keeps up (`Link::pushed`).
        eprintln!(
            "bench: {} nodes reconnecting with {} ops each, as edges push them",
            args.nodes, args.per_node
        );
        let herd: Vec<_> = (1..=args.nodes)
            .map(|index| {
                let mut sim = spend(&mut sims, index);
                // An edge signs a checkpoint when it writes (one per group
                // commit), so each op here gets its checkpoint before the
                // clock starts and a batch may end at any of them.
                let ops = sim
                    .chain(args.per_node)
                    .into_iter()
                    .map(|(op, head)| {
                        let checkpoint = sim
                            .identity
                            .sign_checkpoint("standard", head.seq, head.hash);
                        (op, checkpoint)
                    })
                    .collect();
                let token = sim.token(origin);
                (sim, ops, token, index as u64)
            })
            .collect();
        let started = Instant::now();
        let tasks: Vec<_> = herd
            .into_iter()
            .map(|(sim, ops, token, seed)| {
                tokio::spawn(reconnect(
                    client.clone(),
                    push_url.clone(),
                    sim,
                    ops,
                    token,
                    seed,
                ))
            })
            .collect();
        let (mut drained, mut latencies, mut pushes) = (0usize, Vec::new(), 0usize);
        for task in tasks {
            let node = task.await??;
            drained += node.accepted;
            pushes += node.latencies.len();
            latencies.extend(node.latencies);
        }
        let elapsed = started.elapsed();
        figures.push(Figure::new(
            format!(
                "{} nodes x {} ops as edges reconnect, binary+zstd ({pushes} pushes)",
                args.nodes, args.per_node
            ),
            drained,
            elapsed,
            latencies,
        ));
        // A long outage's backlog.
        if args.drain_ops > 0 {
            eprintln!("bench: draining {} ops after an outage", args.drain_ops);
            let drain = args.nodes + 1;
            let mut sim = spend(&mut sims, drain);
            let sealed = seal_backlog(&mut sim, args.drain_ops, cairn_hub_sqlite::PUSH_OPS_MAX);
            let bodies = backlog(sim, sealed, false);
            let run = push_backlog(bodies, bound, push).await?;
            figures.push(Figure::new(
                format!(
                    "drain after an outage, batches of {}",
                    cairn_hub_sqlite::PUSH_OPS_MAX
                ),
                run.pushed,
                run.elapsed,
                run.latencies,
            ));
        }
        anyhow::Ok((figures, (bytes_per_op, binary_bytes_per_op)))
    });
    let hub_rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024);
    let _ = child.kill();
    let _ = child.wait();
    let (figures, (bytes_per_op, binary_bytes_per_op)) = result?;
    Ok((
        figures,
        json!({
            "json_bytes_per_op_on_the_wire": bytes_per_op.round(),
            "binary_zstd_bytes_per_op_on_the_wire": binary_bytes_per_op.round(),
            "hub_peak_rss_bytes": hub_rss,
            "record_bytes": RECORD_BYTES,
        }),
    ))
}

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
    let table = rows
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
fn start_bench_hub(
    hub_dir: &Path,
    sims: &[SimNode],
) -> anyhow::Result<(std::process::Child, String)> {
    {
        let hub = cairn_hub_sqlite::HubStore::open(hub_dir)?;
        for sim in sims {
            hub.enroll(
                &sim.identity.node,
                sim.identity.public_key(),
                &[("site".to_string(), "bench".to_string())].into(),
            )?;
        }
    }
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--data")
        .arg(hub_dir)
        .args(["hub", "serve", "--listen", "127.0.0.1:0"])
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
    let (mut child, hub_url) = start_bench_hub(&hub_dir, &sims)?;
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
        anyhow::Ok(rows)
    });
    let _ = child.kill();
    let _ = child.wait();
    result
}
