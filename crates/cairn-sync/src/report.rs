//! The node's own status, told to the hub with its background rounds (at
//! most once a second)
//! (`POST /v1/node/status`): what the hub's fleet page and metrics show of
//! this node. Best effort: a report that does not arrive is sent again
//! with the next round's.

use crate::HubLink;
use crate::hub::hub_audience;
use anyhow::{Context, bail};
use cairn_edge::EdgeStore;
use cairn_edge::clock::now_ms;

/// Sends this node's status to the hub.
pub async fn report_status(store: &EdgeStore, hub: &HubLink<'_>) -> anyhow::Result<()> {
    let status = store.status(now_ms())?;
    let audience = hub_audience(hub.client, hub.url, hub.key).await?;
    let token = hub.token(store, &audience).await;
    let response = hub
        .client
        .post(format!("{}/v1/node/status", hub.url))
        .bearer_auth(token)
        .json(&status)
        .send()
        .await
        .context("the hub is unreachable")?;
    if !response.status().is_success() {
        bail!("the hub refused the status report ({})", response.status());
    }
    Ok(())
}
