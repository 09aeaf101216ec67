//! `cairn bench judge`: the compliance judge over a hub's history at full
//! speed, and the drift gate's dry run of a stricter pack version over the
//! same history (issue 11: seconds for a million ops). The history is
//! pushed in process (the push path is `bench push`'s business), judged,
//! then replayed under the new version; nothing here asserts speed.

use super::push::SimNode;
use super::{BENCH_TECHNICIAN, Figure};
use crate::output;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// `cairn bench judge` options.
#[derive(Args, Debug)]
pub struct JudgeBenchArgs {
    /// Scratch directory for the hub (created fresh, removed after).
    #[arg(long, default_value = "./cairn-bench-judge")]
    pub dir: PathBuf,
    /// Historical ops.
    #[arg(long, default_value_t = 1_000_000)]
    pub ops: usize,
}

/// Ops per push building the history.
const BATCH: usize = 1_000;

/// Runs `cairn bench judge`.
pub fn judge(args: &JudgeBenchArgs, json_output: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.dir.exists(),
        "{} exists; remove it or pass --dir",
        args.dir.display()
    );
    let result = measure(args);
    let _ = std::fs::remove_dir_all(&args.dir);
    let (figures, details) = result?;
    if json_output {
        output::json(&json!({"figures": figures, "details": details}));
        return Ok(());
    }
    let rows = figures
        .iter()
        .map(|figure| {
            vec![
                figure.name.clone(),
                figure.ops.to_string(),
                format!("{:.1}", figure.seconds),
                format!("{:.0}", figure.ops_per_sec),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["measurement", "ops", "seconds", "ops/s"], rows)
    );
    for (key, value) in details.as_object().into_iter().flatten() {
        println!("{key}: {value}");
    }
    Ok(())
}

fn measure(args: &JudgeBenchArgs) -> anyhow::Result<(Vec<Figure>, serde_json::Value)> {
    let hub_dir = args.dir.join("hub");
    cairn_hub_sqlite::HubStore::init(&hub_dir, "bench.hub")?;
    let store = cairn_hub_sqlite::HubStore::open(&hub_dir)?;
    let mut sim = SimNode::new("history", 3);
    store.enroll(
        &sim.identity.node,
        sim.identity.public_key(),
        &[("site".to_string(), "bench".to_string())].into(),
    )?;
    store
        .hub()
        .put_registry(
            "authorized_technicians",
            BENCH_TECHNICIAN,
            Some(&json!({
                "name": "Bench Technician", "certificate": "IA", "certificate_number": "IA-0000001",
                "certificate_expiry": "2099-12-31", "authorized_actions": ["inspection"],
            })),
            "bench",
        )
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    eprintln!("bench: building a history of {} ops", args.ops);
    let started = Instant::now();
    let mut pushed = 0;
    while pushed < args.ops {
        let count = BATCH.min(args.ops - pushed);
        let (ops, checkpoint) = sim.ops(count);
        store.push(cairn_hub_sqlite::PushRequest {
            decoded: None,
            checkpoint_key: None,
            node_time_ms: None,
            built_on: None,
            node: sim.identity.node.clone(),
            stream: "standard".into(),
            ops,
            checkpoint,
        })?;
        pushed += count;
    }
    let built = started.elapsed();
    eprintln!("bench: judging the history");
    let started = Instant::now();
    let pass = store.hub().judge_all()?;
    let judged = started.elapsed();
    // Stricter: a serial must end in 0-4, which half the history breaks.
    let builtin = cairn_core::pack::BUILTIN_PACKS
        .iter()
        .find(|(name, _)| *name == "mro")
        .map(|(_, source)| *source)
        .expect("the mro pack is built in");
    let stricter = builtin
        .replace("version = \"1.1.0\"", "version = \"1.2.0-bench\"")
        .replace(
            "format = \"^SN-[A-Z0-9-]{1,40}$\" }\ntechnician",
            "format = \"^SN-[A-Z0-9-]{0,39}[0-4]$\" }\ntechnician",
        );
    anyhow::ensure!(
        stricter.contains("[0-4]$"),
        "the stricter pack did not change"
    );
    let pack = cairn_core::pack::RulePack::from_toml(&stricter)?;
    eprintln!(
        "bench: dry run of {} {} over the history",
        pack.name, pack.version
    );
    let started = Instant::now();
    let report = store
        .hub()
        .dry_run(&pack, |_| {})
        .map_err(|error| anyhow::anyhow!(error))?;
    let dry = started.elapsed();
    // The compliance report over the whole history, as PDF, sealed; its
    // own peak memory (the process's peak is reset first).
    eprintln!("bench: a report over the history");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let started = Instant::now();
    let made = store.report(&cairn_hub::report::ReportQuery::default())?;
    let (pdf, _) = store.sealed_report(&made, cairn_hub_sqlite::reports::ReportFormat::Pdf)?;
    let reported = started.elapsed();
    let report_rss = super::peak_rss_bytes();
    let ops = pass.judged as usize;
    let figures = vec![
        Figure::new("history pushed in process", pushed, built, Vec::new()),
        Figure::new(
            "judge, full speed, the whole history",
            ops,
            judged,
            Vec::new(),
        ),
        Figure::new(
            format!("dry run of {} {} over the history", pack.name, pack.version),
            report.replayed as usize,
            dry,
            Vec::new(),
        ),
        Figure::new(
            "compliance report (PDF, sealed) over the history",
            made.records as usize,
            reported,
            Vec::new(),
        ),
    ];
    let details = json!({
        "rejected_by_the_active_packs": pass.rejected,
        "dry_run_newly_rejected": report.newly_rejected,
        "dry_run_share": report.share,
        "dry_run_would_be_refused": report.exceeds_tolerance(),
        "report_seconds": reported.as_secs_f64(),
        "report_peak_rss_bytes": report_rss,
        "report_pdf_bytes": pdf.len(),
    });
    Ok((figures, details))
}
