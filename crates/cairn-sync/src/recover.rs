//! Recovery after a restore from an old backup: the node takes its own
//! streams back from the hub, each op checked against its own key.

use crate::hub::*;
use anyhow::Context;
use cairn_edge::EdgeStore;

/// What `cairn edge recover` did to one stream.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Recovered {
    /// The stream.
    pub stream: String,
    /// The hub's head of it.
    pub hub_head: u64,
    /// This node's own ops taken back from the hub (checked against its key).
    pub taken_back: u64,
    /// Diverged ops set aside and appended again after the hub's head, as
    /// new ops: their new record ids.
    pub reappended: Vec<String>,
}

/// Takes this node's streams back from the hub after it was restored from
/// an old backup (`EdgeStore::realign_async`). Every op the hub hands back
/// must chain to a checkpoint this node signed with its own key.
pub async fn recover(store: &EdgeStore, hub: &HubLink<'_>) -> anyhow::Result<Vec<Recovered>> {
    let (client, hub_url) = (hub.client, hub.url);
    let audience = hub_audience(client, hub_url, hub.key).await?;
    let own_key = store.settings().public_key;
    let mut report = Vec::new();
    for stream in store.streams()? {
        let mut from = store.acked_seq(&stream)? + 1;
        let (mut ops, mut checkpoints, mut hub_head) = (Vec::new(), Vec::new(), 0);
        // Bounded: each page advances `from` or ends the loop.
        for _ in 0..1_000_000 {
            let token = hub.token(store, &audience).await;
            let response = client
                // Stream names are [a-z0-9._-]: nothing to escape.
                .get(format!("{hub_url}/v1/own?stream={stream}&from={from}"))
                .bearer_auth(token)
                .send()
                .await
                .context("the hub is unreachable")?;
            let page: cairn_proto::OwnOps =
                cairn_proto::from_value(hub_answer(&hub.clock, response, "recovery").await?)?;
            hub_head = page.head;
            anyhow::ensure!(
                !page.held,
                "the hub holds {stream} after an equivocation: an operator must resolve it first (cairn hub resolve)"
            );
            let mut pulled = Vec::new();
            for bytes in cairn_proto::decode_base64("ops", &page.ops)? {
                let op = cairn_core::op::Op::decode(&bytes)
                    .map_err(|fault| anyhow::anyhow!("an op the hub holds is damaged: {fault}"))?;
                pulled.push((op, bytes));
            }
            let proofs = cairn_proto::chain_proofs(&page.chains)?;
            let refs: Vec<&cairn_core::op::Op> = pulled.iter().map(|(op, _)| op).collect();
            let node = &store.settings().node;
            cairn_core::trust::verify_own(&refs, &proofs, node, &stream, from, &own_key)?;
            let Some(last) = pulled.last().map(|(op, _)| op.seq) else {
                break;
            };
            checkpoints.extend(proofs.into_iter().map(|proof| proof.checkpoint));
            ops.extend(pulled);
            from = last + 1;
            if last >= hub_head {
                break;
            }
        }
        let taken_back = ops.len() as u64;
        let receipts = store.realign_async(&stream, ops, checkpoints).await?;
        report.push(Recovered {
            stream,
            hub_head,
            taken_back,
            reappended: receipts.into_iter().map(|receipt| receipt.id).collect(),
        });
    }
    Ok(report)
}
