//! Benchmarks that print figures, each beside its ceiling or peer measured
//! in the same run: `edge` (durable writes through the library and the
//! HTTP API, beside fsync and raw SQLite), `push` (a real hub process: one
//! node, a thousand reconnecting, a long drain, PouchDB, and what the
//! compliance judge costs it), `judge` (the judge and a pack's dry run over
//! a long history), `link` (an emulated satellite link). Every loop is bounded by a count and a time;
//! nothing here asserts speed.

mod artifact_link;
mod backends;
mod comply;
mod edge;
mod judge;
mod link;
mod push;

pub use edge::{EdgeBenchArgs, edge};
pub use judge::{JudgeBenchArgs, judge};
pub use link::{LinkBenchArgs, link};
pub use push::{PushBenchArgs, push};

use cairn_core::op::Action;
use cairn_edge::{EdgeStore, InitOptions, WriteRequest};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// Concurrency levels measured.
pub(crate) const WRITERS: [usize; 4] = [1, 8, 64, 256];
/// Records per batch write.
pub(crate) const BATCH_RECORDS: usize = 1_000;
/// Rows per transaction of the raw SQLite ceiling.
pub(crate) const RAW_BATCH_ROWS: usize = 1_000;
/// Target payload size, bytes (SPEC section 9 uses records of about 500 bytes).
pub(crate) const RECORD_BYTES: usize = 500;

/// The peak resident set of process `pid` (`VmHWM`), bytes.
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One measured figure.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) ops: usize,
    pub(crate) seconds: f64,
    pub(crate) ops_per_sec: f64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
}

impl Figure {
    pub(crate) fn new(
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
/// The technician every bench record names (in the bench hub's registry).
pub(crate) const BENCH_TECHNICIAN: &str = "TECH-IA-4412";

/// Records made so far in this process: every record gets a work order of
/// its own, as the mro pack's idempotency key (work order, part serial,
/// technician) refuses the same one twice within a day.
static RECORDS_MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub(crate) fn record(n: usize) -> Value {
    let serial = RECORDS_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut data = json!({
        "work_order": format!("WO-BENCH-{serial}"),
        "aircraft_registration": "N123AB",
        "part_serial": format!("SN-{n:08}"),
        "technician": BENCH_TECHNICIAN,
        "performed_on": "2026-11-20",
        "certificate_expiry": "2027-11-20",
        "action": "inspection",
        "hours": 1.5,
    });
    let used = serde_json::to_vec(&data).map_or(0, |bytes| bytes.len()) + 20;
    data["description"] = json!("x".repeat(RECORD_BYTES.saturating_sub(used)));
    data
}

pub(crate) fn request(n: usize) -> WriteRequest {
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

pub(crate) fn fresh_store(dir: &Path, name: &str) -> anyhow::Result<EdgeStore> {
    let path = dir.join(name);
    EdgeStore::init(
        &path,
        &InitOptions {
            node: "bench".into(),
            packs: vec!["mro".into()],
            default_scope: Default::default(),
            quota_bytes: 0,
            custom_packs: Vec::new(),
        },
    )?;
    Ok(EdgeStore::open(&path)?)
}

/// Peak resident set size of this process, bytes (Linux).
pub(crate) fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
