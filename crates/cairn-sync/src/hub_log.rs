//! Holding the hub to its own log (SPEC §6): the node keeps the newest log
//! checkpoint it verified and, on every sync, checks that the hub's current
//! one extends it (a consistency proof). A hub whose log went back (restored
//! from a backup) or forked (rewrote history) is named in an alert and the
//! sync stops, rather than carrying on against a history that changed.

use crate::hub::{HubLink, hub_answer, read_checkpoint};
use anyhow::{Context, bail};
use cairn_core::hash::Hash;
use cairn_core::merkle;
use cairn_core::note::LogCheckpoint;
use cairn_edge::EdgeStore;
use cairn_edge::clock::now_ms;

/// Kind of the alert raised for a log that went back or forked.
pub const ALERT_KIND: &str = "hub_log";

/// The hub's current log checkpoint (signature checked when its key is
/// known), and its note.
pub async fn current(hub: &HubLink<'_>) -> anyhow::Result<(LogCheckpoint, String)> {
    let response = hub
        .client
        .get(format!("{}/v1/log/checkpoint", hub.url))
        .send()
        .await
        .context("the hub is unreachable")?;
    anyhow::ensure!(
        response.status().is_success(),
        "the hub refused its log checkpoint ({})",
        response.status()
    );
    hub.clock.observe(response.headers(), now_ms());
    let note = response
        .text()
        .await
        .context("the hub's log checkpoint is not text")?;
    Ok((read_checkpoint(&note, hub.key)?, note))
}

/// Checks that `checkpoint` (its `note`) extends the newest one this node
/// holds, and holds it instead when it does. A log that went back or
/// forked raises an alert and fails the sync.
pub async fn hold(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    checkpoint: &LogCheckpoint,
    note: &str,
) -> anyhow::Result<()> {
    let Some(held_note) = store.log_checkpoint()? else {
        store.set_log_checkpoint(note)?;
        return Ok(());
    };
    let held = parse(&held_note)?;
    if held.origin != checkpoint.origin {
        bail!(
            "the hub's log is {:?}, this node holds a checkpoint of {:?}",
            checkpoint.origin,
            held.origin
        );
    }
    if checkpoint.size < held.size {
        let message = format!(
            "rollback: the hub's log has {} leaves, this node saw it at {} (the hub was restored from a backup, or is not the same log); `cairn sync --accept-log-rollback` accepts it and pushes again what the hub lost",
            checkpoint.size, held.size
        );
        store.raise_alert(ALERT_KIND, &message, now_ms())?;
        bail!("{message}");
    }
    if checkpoint.size == held.size && checkpoint.root == held.root {
        return Ok(());
    }
    let proof = consistency(hub, held.size, checkpoint.size).await?;
    if merkle::verify_consistency(
        held.size,
        checkpoint.size,
        &held.root,
        &checkpoint.root,
        &proof,
    )
    .is_err()
    {
        let message = format!(
            "fork: the hub's log of {} leaves (root {}) does not extend the log of {} leaves (root {}) this node saw: the hub rewrote its history",
            checkpoint.size, checkpoint.root, held.size, held.root
        );
        store.raise_alert(ALERT_KIND, &message, now_ms())?;
        bail!("{message}");
    }
    store.set_log_checkpoint(note)?;
    Ok(())
}

/// Accepts the hub's log as it is now after a person decided to (a hub
/// restored from a backup): holds its checkpoint, and lowers each stream's
/// acknowledged seq to the hub's head, so the ops the hub lost are pushed
/// again. Returns the streams lowered, with the hub's head.
pub async fn accept_rollback(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    audience: &str,
) -> anyhow::Result<Vec<(String, u64)>> {
    let (_, note) = current(hub).await?;
    let mut lowered = Vec::new();
    for stream in store.streams()? {
        let token = hub.token(store, audience).await;
        let response = hub
            .client
            // Stream names are [a-z0-9._-]: nothing to escape.
            .get(format!("{}/v1/own?stream={stream}&limit=1", hub.url))
            .bearer_auth(token)
            .send()
            .await
            .context("the hub is unreachable")?;
        let answer: cairn_proto::OwnOps =
            cairn_proto::from_value(hub_answer(&hub.clock, response, "head query").await?)?;
        let head = answer.head;
        if store.acked_seq(&stream)? > head {
            store.unacknowledge(&stream, head)?;
            lowered.push((stream, head));
        }
    }
    store.set_log_checkpoint(&note)?;
    store.clear_alerts(ALERT_KIND)?;
    Ok(lowered)
}

fn parse(note: &str) -> anyhow::Result<LogCheckpoint> {
    let body = note.split("\n\n").next().unwrap_or("");
    LogCheckpoint::parse_body(&format!("{body}\n")).context("the held log checkpoint is malformed")
}

async fn consistency(hub: &HubLink<'_>, from: u64, to: u64) -> anyhow::Result<Vec<Hash>> {
    let response = hub
        .client
        .get(format!(
            "{}/v1/log/consistency?from={from}&to={to}",
            hub.url
        ))
        .send()
        .await
        .context("the hub is unreachable")?;
    let answer: cairn_proto::ConsistencyAnswer =
        cairn_proto::from_value(hub_answer(&hub.clock, response, "consistency proof").await?)?;
    let proof = cairn_proto::hashes("the consistency proof", &answer.proof)?;
    Ok(proof)
}
