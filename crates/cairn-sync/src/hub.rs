//! Where and how to reach the hub: its URL, client and pinned key
//! (`HubLink`), its answers and their time, the audience and tokens the
//! node signs for it, and which push encoding it speaks.

use crate::clock;
use anyhow::{Context, bail};
use cairn_core::note::{self, LogCheckpoint};
use cairn_edge::EdgeStore;
use cairn_edge::clock::now_ms;
use serde_json::Value;

/// The audience of our tokens: the hub's origin, known or asked for.
pub async fn hub_audience(
    client: &reqwest::Client,
    hub_url: &str,
    hub_key: Option<(&str, [u8; 32])>,
) -> anyhow::Result<String> {
    if let Some((origin, _)) = hub_key {
        return Ok(origin.to_string());
    }
    let health: Value = client
        .get(format!("{hub_url}/v1/health"))
        .send()
        .await
        .context("the hub is unreachable")?
        .json()
        .await
        .context("the hub's health answer is not JSON")?;
    Ok(health["origin"]
        .as_str()
        .context("the hub did not say its origin")?
        .to_string())
}

/// A hub answer as JSON, or the hub's refusal as an error; the hub's time
/// on it is noted in `clock`.
pub(crate) async fn hub_answer(
    clock: &clock::HubClock,
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<Value> {
    clock.observe(response.headers(), now_ms());
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .context("the hub's answer is not JSON")?;
    if !status.is_success() {
        bail!(
            "the hub refused the {what} ({status}): {}",
            answer["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(answer)
}

/// The log checkpoint of a hub answer: signature checked when the key is
/// known, otherwise only parsed (the receipts still must lead to its root).
pub(crate) fn read_checkpoint(
    note_text: &str,
    hub_key: Option<(&str, [u8; 32])>,
) -> anyhow::Result<LogCheckpoint> {
    match hub_key {
        Some((origin, key)) => note::verify(note_text, origin, &key)
            .context("the hub's log checkpoint does not verify"),
        None => {
            let body = note_text.split("\n\n").next().unwrap_or("");
            LogCheckpoint::parse_body(&format!("{body}\n"))
                .context("the hub's log checkpoint is malformed")
        }
    }
}

/// Where and how to reach the hub.
pub struct HubLink<'a> {
    /// The HTTP client (pooled connections, timeouts).
    pub client: &'a reqwest::Client,
    /// The hub's base URL.
    pub url: &'a str,
    /// The hub's origin and key, when known (its checkpoints are then checked).
    pub key: Option<(&'a str, [u8; 32])>,
    /// The hub's time, as its answers tell it.
    pub clock: std::sync::Arc<clock::HubClock>,
}

impl HubLink<'_> {
    /// A token for the hub `audience`, issued at the hub's time: a node
    /// whose clock is days off still signs tokens the hub accepts. The
    /// hub's time is asked for first when no answer has said it yet.
    pub async fn token(&self, store: &EdgeStore, audience: &str) -> String {
        if self.clock.offset_ms().is_none()
            && let Ok(response) = self
                .client
                .get(format!("{}/v1/health", self.url))
                .send()
                .await
        {
            self.clock.observe(response.headers(), now_ms());
        }
        store.sign_token(audience, self.clock.hub_now_ms(now_ms()) / 1000)
    }
}

/// How push bodies travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// Binary (postcard + zstd) when the hub offers it, else JSON.
    #[default]
    Auto,
    /// JSON with base64 ops, for interoperability.
    Json,
    /// The compact binary body, zstd-compressed.
    Binary,
}

impl std::str::FromStr for Encoding {
    type Err = String;

    fn from_str(text: &str) -> Result<Encoding, String> {
        match text {
            "auto" => Ok(Encoding::Auto),
            "json" => Ok(Encoding::Json),
            "binary" => Ok(Encoding::Binary),
            other => Err(format!("{other:?}: expected auto, json or binary")),
        }
    }
}

/// True when the hub's health answer offers the binary push body.
pub(crate) async fn hub_speaks_binary(client: &reqwest::Client, hub_url: &str) -> bool {
    let Ok(response) = client.get(format!("{hub_url}/v1/health")).send().await else {
        return false;
    };
    let health: Value = response.json().await.unwrap_or_default();
    health["encodings"].as_array().is_some_and(|codings| {
        codings
            .iter()
            .any(|coding| coding == cairn_proto::BINARY_PUSH)
    })
}

/// Raises the node's clock alert while its clock is far off the hub's,
/// and clears it once it is not.
pub(crate) fn report_clock(store: &EdgeStore, hub_clock: &clock::HubClock) -> anyhow::Result<()> {
    let Some(offset) = hub_clock.offset_ms() else {
        return Ok(());
    };
    if offset.unsigned_abs() > clock::CLOCK_OFFSET_ALERT_MS {
        let message = format!(
            "this node's clock is {}: tokens are signed at the hub's time and ops keep this clock; set the clock right",
            clock::describe(offset)
        );
        store.clear_alerts(clock::ALERT_KIND)?;
        store.raise_alert(clock::ALERT_KIND, &message, now_ms())?;
        tracing::warn!(offset_ms = offset, "this node's clock is far off the hub's");
    } else {
        store.clear_alerts(clock::ALERT_KIND)?;
    }
    Ok(())
}

/// How long a push round uses one token, seconds: well inside its five
/// minutes, and the hub verifies a token it has seen for the cost of a hash.
const TOKEN_REUSE_S: u64 = 60;

/// The node's bearer token for a round of pushes, signed again once it is
/// [`TOKEN_REUSE_S`] old.
#[derive(Default)]
pub(crate) struct Tokens(Option<(u64, String)>);

impl Tokens {
    pub(crate) async fn get(
        &mut self,
        store: &EdgeStore,
        hub: &HubLink<'_>,
        audience: &str,
    ) -> String {
        let now_s = now_ms() / 1000;
        match &self.0 {
            Some((signed_s, token)) if now_s < signed_s + TOKEN_REUSE_S => token.clone(),
            _ => {
                let token = hub.token(store, audience).await;
                self.0 = Some((now_s, token.clone()));
                token
            }
        }
    }
}
