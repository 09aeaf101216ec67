//! Taking ops from the hub's snapshot pages (`GET /v1/snapshot`): a new
//! node's first pull, and the history of a label newly granted to a node
//! that already syncs. One page at a time, each under a manifest the hub
//! signs, each merged before the next is asked for, so the node's memory
//! stays bounded whatever it takes in (SPEC §9).

use crate::hub::{HubLink, hub_answer};
use crate::pull::{PullReport, check_origins};
use anyhow::Context;
use cairn_edge::EdgeStore;

/// Which pages to take.
pub(super) struct Pages<'a> {
    /// The first leaf.
    pub from: u64,
    /// The first leaf not to take (none: the log's end).
    pub to: Option<u64>,
    /// Only ops carrying one of these labels (`name=value`); empty: all.
    pub labels: &'a [String],
    /// Move the pull cursor to each page's end (a first pull) or not (a
    /// backfill below the cursor).
    pub advance_cursor: bool,
}

/// Takes snapshot pages until the hub says there are no more; returns the
/// ops received.
pub(super) async fn take(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    audience: &str,
    pages: &Pages<'_>,
    report: &mut PullReport,
) -> anyhow::Result<u64> {
    let (origin, key) = hub
        .key
        .context("snapshots need the hub's key (enroll, or --hub-key)")?;
    let labels = if pages.labels.is_empty() {
        "*".to_string()
    } else {
        pages.labels.join(",")
    };
    let mut from = pages.from;
    let mut received = 0;
    // Bounded: each page advances `from` or ends the loop.
    for _ in 0..1_000_000 {
        let mut url = format!("{}/v1/snapshot?from={from}", hub.url);
        if let Some(to) = pages.to {
            url.push_str(&format!("&to={to}"));
        }
        if !pages.labels.is_empty() {
            // Labels are [a-z0-9._-] names and values: nothing to escape.
            url.push_str(&format!("&labels={labels}"));
        }
        let token = hub.token(store, audience).await;
        let response = hub
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .context("the hub is unreachable")?;
        let answer: cairn_proto::SnapshotPage =
            cairn_proto::from_value(hub_answer(&hub.clock, response, "snapshot").await?)?;
        let encoded = cairn_proto::decode_base64("ops", &answer.ops)?;
        let (manifest, ops) = cairn_core::snapshot::verify(
            &answer.manifest,
            encoded,
            &store.settings().node,
            origin,
            &key,
        )
        .context("the hub's snapshot does not verify")?;
        anyhow::ensure!(
            manifest.from == from && manifest.labels == labels && manifest.next >= from,
            "the hub's snapshot page is not the one asked for (from {from}, labels {labels})"
        );
        check_origins(&ops, &answer.chains, &answer.enrollments, Some(key), report)?;
        let count = ops.len() as u64;
        let applied = store.apply_pulled_async(ops).await?.len() as u64;
        received += count;
        report.snapshot_ops += count;
        report.applied += applied;
        report.duplicate += count - applied;
        if pages.advance_cursor {
            store.set_pull_cursor(manifest.next)?;
        }
        if !answer.more || manifest.next <= from {
            break;
        }
        from = manifest.next;
    }
    Ok(received)
}
