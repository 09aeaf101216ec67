//! Learning what the hub's rule packs made of this node's own ops: after a
//! push, each stream's states since the last ones learned
//! (`GET /v1/states`), stored for `cairn record get` and `cairn status`.

use crate::hub::*;
use anyhow::Context;
use cairn_edge::EdgeStore;

/// What a round learned.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StatesReport {
    /// Streams asked about.
    pub streams: u64,
    /// Verdicts learned that were new: `stream seq: rules`.
    pub rejected: Vec<String>,
}

/// Most pages asked per stream in one round (each advances or ends it).
const PAGES_MAX: usize = 1_000;

/// Asks the hub for the states of every own stream's ops since the last
/// ones learned, and stores them.
pub async fn learn_states(store: &EdgeStore, hub: &HubLink<'_>) -> anyhow::Result<StatesReport> {
    let (client, hub_url) = (hub.client, hub.url);
    let audience = hub_audience(client, hub_url, hub.key).await?;
    let mut report = StatesReport::default();
    for stream in store.streams()? {
        report.streams += 1;
        let mut after = store.judged_seq(&stream)?;
        for _ in 0..PAGES_MAX {
            let token = hub.token(store, &audience).await;
            let response = client
                // Stream names are [a-z0-9._-]: nothing to escape.
                .get(format!("{hub_url}/v1/states?stream={stream}&after={after}"))
                .bearer_auth(token)
                .send()
                .await
                .context("the hub is unreachable")?;
            let page: cairn_proto::StatesPage =
                cairn_proto::from_value(hub_answer(&hub.clock, response, "states").await?)?;
            let learned: Vec<cairn_edge::Learned> = page
                .verdicts
                .iter()
                .map(|verdict| {
                    let reason = verdict
                        .violations
                        .iter()
                        .map(|broken| {
                            format!(
                                "{}: {} (rule: {})",
                                broken.field, broken.message, broken.rule
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    (
                        verdict.seq,
                        verdict.state.clone(),
                        verdict.pack.clone(),
                        verdict.version.clone(),
                        reason,
                    )
                })
                .collect();
            store.learn_states(&stream, page.judged_seq, &learned)?;
            for (seq, state, _, _, reason) in &learned {
                report
                    .rejected
                    .push(format!("{stream} seq {seq} {state}: {reason}"));
            }
            if page.judged_seq <= after {
                break;
            }
            after = page.judged_seq;
        }
    }
    Ok(report)
}
