//! What compliance costs a push (issue 11): the same one-node backlog,
//! binary+zstd, pushed to a hub that does not judge and to one whose judge
//! runs behind the pushes, in the same run; then how long the judge takes
//! to have judged everything pushed, so the figure with the judge counts
//! the judging, not only the pushing.

use super::Figure;
use super::link::start_bench_hub;
use super::push::{PushBenchArgs, SimNode, backlog, push_backlog, push_once, seal_backlog};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Longest wait for the judge to catch up after the pushes.
const CATCH_UP_MAX: Duration = Duration::from_secs(300);

/// The figures with and without the judge, and the details.
pub(super) fn measure_compliance(args: &PushBenchArgs) -> anyhow::Result<(Vec<Figure>, Value)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut figures = Vec::new();
    let mut details = json!({});
    for judge in [false, true] {
        let label = if judge { "judged" } else { "unjudged" };
        eprintln!(
            "bench: one node pushing {} ops in batches of {}, binary+zstd, to a hub {}",
            args.ops,
            args.batch,
            if judge {
                "whose judge runs"
            } else {
                "without its judge"
            }
        );
        let hub_dir = args.dir.join(format!("hub-{label}"));
        cairn_hub_sqlite::HubStore::init(&hub_dir, "bench.hub")?;
        let mut sim = SimNode::new("compliance", 7);
        let (mut child, url) = start_bench_hub(&hub_dir, std::slice::from_ref(&sim), judge)?;
        let sealed = seal_backlog(&mut sim, args.ops, args.batch);
        let bodies = backlog(sim, sealed, true);
        let bound = Duration::from_secs(args.seconds);
        let run = runtime.block_on(async {
            let client = cairn_http::tls::builder().build()?;
            let push_url = format!("{url}/v1/push");
            push_backlog(bodies, bound, |body, token| {
                let pushed = push_once(client.clone(), push_url.clone(), body, token, true);
                async move {
                    let answer = pushed.await?;
                    anyhow::Ok((answer.accepted, answer.latency_us))
                }
            })
            .await
        });
        let caught_up = match (&run, judge) {
            (Ok(_), true) => Some(wait_for_judge(&hub_dir)),
            _ => None,
        };
        let _ = child.kill();
        let _ = child.wait();
        let run = run?;
        figures.push(Figure::new(
            format!(
                "push, one node, binary+zstd, batches of {}, {}",
                args.batch,
                if judge { "judge running" } else { "no judge" }
            ),
            run.pushed,
            run.elapsed,
            run.latencies.clone(),
        ));
        if let Some(caught_up) = caught_up {
            let (waited, counts) = caught_up?;
            figures.push(Figure::new(
                "push, one node, binary+zstd, until every op is judged",
                run.pushed,
                run.elapsed + waited,
                Vec::new(),
            ));
            details["compliance_states_after"] = json!(counts);
            details["judge_caught_up_after_last_push_ms"] = json!(waited.as_millis() as u64);
        }
    }
    let rate = |index: usize| {
        figures
            .get(index)
            .map_or(0.0, |figure: &Figure| figure.ops_per_sec)
    };
    let (without, with, judged) = (rate(0), rate(1), rate(2));
    details["push_with_judge_over_without"] =
        json!((with / without.max(1e-9) * 1000.0).round() / 1000.0);
    details["judged_push_over_without"] =
        json!((judged / without.max(1e-9) * 1000.0).round() / 1000.0);
    Ok((figures, details))
}

/// Waits until the hub in `hub_dir` has judged every logged op: how long
/// it took and the states then.
fn wait_for_judge(
    hub_dir: &std::path::Path,
) -> anyhow::Result<(Duration, std::collections::BTreeMap<String, u64>)> {
    let store = cairn_hub_sqlite::HubStore::open(hub_dir)?;
    let started = Instant::now();
    loop {
        let counts = store.hub().state_counts()?;
        if !counts.contains_key("validated") {
            return Ok((started.elapsed(), counts));
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP_MAX,
            "the judge had not caught up after {} s: {counts:?}",
            CATCH_UP_MAX.as_secs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
