//! `cairn bench edge`: durable write throughput and latency of the edge,
//! through the library and through the HTTP API, printed beside the ceilings
//! measured in the same run on the same disk (fsync rate, raw SQLite inserts).

use super::*;
use crate::output;
use anyhow::Context;
use cairn_edge::{EdgeStore, WriteRequest};
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
    // Bodies are serialized before the clock starts, new ones for each
    // figure: a record sent again would be refused as a duplicate.
    let body = |n: usize| json!({"collection": "maintenance_actions", "scope": {"site": "bench"}, "data": record(n)});
    let bodies_for = |ops: usize| -> Arc<Vec<Vec<u8>>> {
        Arc::new((0..ops).map(|n| body(n).to_string().into_bytes()).collect())
    };
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
        let bodies = bodies_for(ops);
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
