//! The edge's sync client: pushes unacknowledged ops to the hub, stream by
//! stream (critical first), in batches that end at a signed checkpoint, and
//! records the hub's watermark. Receipts are checked: a push's accepted ops
//! must lead, through one range proof, to the root of the log checkpoint the
//! hub returned (and that checkpoint's signature, when the hub's key is
//! known).
//!
//! Pulls are checked twice before anything is merged: each op's inclusion
//! proof against the page's log checkpoint (the hub logged it), and its
//! chain up to a checkpoint its origin node signed (the origin wrote it,
//! `cairn_core::provenance`). [`run`] is the background loop with the
//! health probe, backoff, circuit breaker and adaptive batches.
//!
//! Over 800 lines: on the list of files to cut along their seams
//! (`LONG_TODAY` in `crates/cairn/tests/tidy.rs`, issue 10).

pub mod clock;
pub mod hub_log;
mod snapshot;

use anyhow::{Context, bail};
use cairn_core::merkle;
use cairn_core::note::{self, LogCheckpoint};
use cairn_edge::EdgeStore;
use serde_json::Value;

/// Outcome of one sync round.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncReport {
    /// Ops the hub accepted.
    pub accepted: u64,
    /// Ops the hub already had.
    pub duplicate: u64,
    /// Ops the hub quarantined, with reasons.
    pub quarantined: Vec<String>,
    /// Receipts whose inclusion proof verified.
    pub receipts_verified: u64,
    /// The hub's newest log checkpoint (signed note).
    pub checkpoint: Option<String>,
    /// Streams that stopped on a quarantined op (resending cannot help).
    pub stuck: Vec<String>,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// The hub's clock minus this node's, ms, as its answers said.
    pub clock_offset_ms: Option<i64>,
}

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
async fn hub_answer(
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
fn read_checkpoint(
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

/// Checks a push answer's receipt (`cairn_core::receipt::verify`): the ops
/// it calls accepted, in order, are the leaves `[begin, end)` of the
/// checkpoint's tree (one range proof for the whole push).
fn verify_receipt(
    answer: &cairn_proto::PushResponse,
    ops: &[Option<&cairn_core::op::Op>],
    checkpoint: &LogCheckpoint,
) -> anyhow::Result<()> {
    let receipt = answer
        .receipt
        .as_ref()
        .map(cairn_proto::RangeReceipt::to_receipt)
        .transpose()?;
    cairn_core::receipt::verify(&answer.answered(), ops, receipt.as_ref(), checkpoint)?;
    Ok(())
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// Binary (postcard + zstd) when the hub offers it, else JSON.
    #[default]
    Auto,
    /// JSON with base64 ops, for interoperability.
    Json,
    /// The compact binary body, zstd-compressed.
    Binary,
}

/// True when the hub's health answer offers the binary push body.
async fn hub_speaks_binary(client: &reqwest::Client, hub_url: &str) -> bool {
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

/// Pushes everything pending, batch by batch: `batch_ops` ops each, or,
/// given `sizer`, as many as it says, telling it how long each push took so
/// the size follows the link within a round.
pub async fn push_all(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    batch_ops: usize,
    mut sizer: Option<&mut cairn_core::link::Link>,
    skip: &std::collections::BTreeSet<String>,
    encoding: Encoding,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<SyncReport> {
    let (client, hub_url, hub_key) = (hub.client, hub.url, hub.key);
    let mut report = SyncReport::default();
    // Tokens are for this hub: its origin, from the known key or its health answer.
    let audience = hub_audience(client, hub_url, hub_key).await?;
    // Before anything is pushed: the hub's log still extends what this
    // node saw of it (a hub restored from a backup is named, not fed).
    let (checkpoint, note) = hub_log::current(hub).await?;
    report_clock(store, &hub.clock)?;
    report.clock_offset_ms = hub.clock.offset_ms();
    hub_log::hold(store, hub, &checkpoint, &note).await?;
    // Asked of the hub only once there is something to push: an idle round
    // costs no round trip for it (a satellite link's 600 ms).
    let mut negotiated = match encoding {
        Encoding::Json => Some(false),
        Encoding::Binary => Some(true),
        Encoding::Auto => None,
    };
    let mut tokens = Tokens::default();
    let mut jitter = Jitter::new();
    for stream in store.streams()? {
        if skip.contains(&stream) {
            continue;
        }
        // Up to PUSHES_IN_FLIGHT pushes of the stream travel at once (fewer
        // when the link says the hub is congested), so the link and the hub
        // are busy while an answer is on its way; the hub applies them in
        // seq order. Answers are handled in order.
        let mut in_flight: std::collections::VecDeque<InFlight> = Default::default();
        let mut sent_to: Option<u64> = None;
        // Set by a congested hub's answer: wait before the next push.
        let mut pause_ms = 0;
        // How long the last answered push took.
        let mut last_elapsed_ms = 0;
        loop {
            if pause_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                pause_ms = 0;
            }
            let in_flight_max = sizer
                .as_ref()
                .map_or(PUSHES_IN_FLIGHT, |link| link.pushes_in_flight());
            while in_flight.len() < in_flight_max {
                let batch_ops = sizer.as_ref().map_or(batch_ops, |link| link.batch_ops());
                let Some(batch) = store.pending_batch_after(&stream, sent_to, batch_ops)? else {
                    break;
                };
                // Stagger the pushes in flight by half a push's time: sent
                // together, they would share the link, finish together and
                // leave it idle while both answers travel back.
                if let Some(last) = in_flight.back() {
                    let stagger = std::time::Duration::from_millis(last_elapsed_ms / 2);
                    if let Some(wait) = stagger.checked_sub(last.sent.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let binary = match negotiated {
                    Some(binary) => binary,
                    None => *negotiated.insert(hub_speaks_binary(client, hub_url).await),
                };
                let token = tokens.get(store, hub, &audience).await;
                let body = push_body(&store.settings().node, &batch, binary)?;
                report.bytes_sent += body.len() as u64;
                sent_to = Some(batch.checkpoint.seq);
                let request = client
                    .post(format!("{hub_url}/v1/push"))
                    .bearer_auth(token)
                    .header(clock::NODE_TIME_HEADER, now_ms().to_string())
                    .body(body);
                let request = if binary {
                    request
                        .header(reqwest::header::CONTENT_TYPE, cairn_proto::BINARY_PUSH)
                        .header(reqwest::header::CONTENT_ENCODING, "zstd")
                } else {
                    request.header(reqwest::header::CONTENT_TYPE, "application/json")
                };
                let hub_clock = hub.clock.clone();
                let answer = tokio::spawn(async move {
                    let response = request.send().await.context("the hub is unreachable")?;
                    let hub_ms = response
                        .headers()
                        .get(cairn_proto::SERVER_TIMING)
                        .and_then(|value| value.to_str().ok())
                        .and_then(cairn_proto::hub_time_ms);
                    Ok((hub_answer(&hub_clock, response, "push").await?, hub_ms))
                });
                in_flight.push_back(InFlight {
                    batch,
                    answer,
                    sent: std::time::Instant::now(),
                    window: sizer.as_ref().map_or(0, |link| link.window()),
                });
            }
            let Some(InFlight {
                batch,
                answer,
                sent,
                window,
            }) = in_flight.pop_front()
            else {
                break;
            };
            let (answer, hub_ms) = match answer.await {
                Ok(Ok(answered)) => answered,
                Ok(Err(error)) => {
                    abort_all(&mut in_flight);
                    return Err(error);
                }
                Err(error) => {
                    abort_all(&mut in_flight);
                    return Err(anyhow::anyhow!("the push task failed: {error}"));
                }
            };
            // The push's whole time, as its request timeout counts it: on a
            // slow link the pushes in flight share it, and each takes longer.
            let elapsed_ms = sent.elapsed().as_millis() as u64;
            last_elapsed_ms = elapsed_ms;
            let answer: cairn_proto::PushResponse =
                cairn_proto::from_value(answer).context("the hub's push answer is malformed")?;
            let note_text = answer.checkpoint.as_str();
            let checkpoint = read_checkpoint(note_text, hub_key)?;
            let own: Vec<Option<cairn_core::op::Op>> = batch
                .ops
                .iter()
                .map(|op| cairn_core::op::Op::decode(op).ok())
                .collect();
            let own: Vec<Option<&cairn_core::op::Op>> = own.iter().map(Option::as_ref).collect();
            verify_receipt(&answer, &own, &checkpoint)?;
            if let Some(link) = sizer.as_deref_mut() {
                link.pushed(window, elapsed_ms, hub_ms);
                pause_ms = link.pause_ms(hub_ms, jitter.next());
                tracing::debug!(
                    ops = batch.ops.len(),
                    elapsed_ms,
                    hub_ms,
                    batch_ops = link.batch_ops(),
                    pushes_in_flight = link.pushes_in_flight(),
                    "push answered"
                );
            }
            let ack = cairn_core::receipt::acknowledge(&answer.answered(), &own);
            report.accepted += ack.accepted;
            report.receipts_verified += ack.accepted;
            report.duplicate += ack.duplicate;
            for (seq, reason) in &ack.quarantined {
                let seq = seq.map_or_else(|| "?".to_string(), |seq| seq.to_string());
                report
                    .quarantined
                    .push(format!("{stream} seq {seq}: {reason}"));
            }
            let (confirmed, unbroken) = (ack.confirmed, ack.unbroken);
            if let Some(seq) = confirmed {
                store.acknowledge(&stream, seq)?;
            }
            if let Some(progress) = progress {
                progress.set_position(report.accepted + report.duplicate);
            }
            report.checkpoint = Some(note_text.to_string());
            if !unbroken {
                report.stuck.push(stream.clone());
            }
            if !unbroken || confirmed != Some(batch.checkpoint.seq) {
                // The hub holds the stream or quarantined part of the batch:
                // resending the same ops cannot help. Stop and report; a
                // push already behind this one is answered as it may be.
                abort_all(&mut in_flight);
                break;
            }
        }
    }
    Ok(report)
}

/// Logs when the node goes online or offline and when its breaker changes
/// state: what an operator looks for in the node's log after an outage.
fn log_transitions(
    last: &mut (bool, &'static str),
    online: bool,
    breaker: &'static str,
    error: Option<&str>,
) {
    if online != last.0 {
        if online {
            tracing::info!("the hub is reachable: online");
        } else {
            tracing::warn!(
                error = error.unwrap_or(""),
                "the hub is unreachable: offline, writes queue here"
            );
        }
    }
    if breaker != last.1 {
        tracing::warn!(from = last.1, to = breaker, "circuit breaker changed state");
    }
    *last = (online, breaker);
}

/// Raises the node's clock alert while its clock is far off the hub's,
/// and clears it once it is not.
fn report_clock(store: &EdgeStore, hub_clock: &clock::HubClock) -> anyhow::Result<()> {
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

/// Draws for backoff and pause jitter (xorshift64). Jitter only needs to
/// differ between nodes, not to be unpredictable.
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from the time and the process id.
    pub(crate) fn new() -> Jitter {
        Jitter::seeded(now_ms() ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// Seeded with `seed` (simulated nodes).
    pub(crate) fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// The next draw.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How long a push round uses one token, seconds: well inside its five
/// minutes, and the hub verifies a token it has seen for the cost of a hash.
const TOKEN_REUSE_S: u64 = 60;

/// The node's bearer token for a round of pushes, signed again once it is
/// [`TOKEN_REUSE_S`] old.
#[derive(Default)]
struct Tokens(Option<(u64, String)>);

impl Tokens {
    async fn get(&mut self, store: &EdgeStore, hub: &HubLink<'_>, audience: &str) -> String {
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

/// Pushes of one stream that may be on their way at once without a link
/// to say otherwise.
pub use cairn_core::link::PUSHES_IN_FLIGHT;

/// A push sent and not yet answered.
struct InFlight {
    batch: cairn_edge::PendingBatch,
    /// The hub's answer, and its own time with the push when it said.
    answer: tokio::task::JoinHandle<anyhow::Result<(Value, Option<u64>)>>,
    sent: std::time::Instant,
    /// The link's window when it was sent (`Link::window`).
    window: u64,
}

/// Stops waiting for the pushes still in flight. The hub may apply them
/// all the same; the next round finds their ops duplicates and
/// acknowledges them then.
fn abort_all(in_flight: &mut std::collections::VecDeque<InFlight>) {
    for push in in_flight.drain(..) {
        push.answer.abort();
    }
}

/// The body of a push, JSON or binary (postcard + zstd).
fn push_body(
    node: &str,
    batch: &cairn_edge::PendingBatch,
    binary: bool,
) -> anyhow::Result<Vec<u8>> {
    let checkpoint = &batch.checkpoint;
    Ok(if binary {
        cairn_proto::PushWire {
            node: node.to_string(),
            stream: batch.stream.clone(),
            ops: batch.ops.clone(),
            checkpoint_seq: checkpoint.seq,
            checkpoint_head: checkpoint.head.0,
            checkpoint_signature: checkpoint.signature.to_vec(),
        }
        .encode()
    } else {
        serde_json::to_vec(&cairn_proto::push_json(
            node,
            &batch.stream,
            &batch.ops,
            checkpoint,
        ))?
    })
}

/// What a pull round brought.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PullReport {
    /// Ops of other nodes stored and merged.
    pub applied: u64,
    /// Ops received in the hub's snapshot (a node's first pull).
    pub snapshot_ops: u64,
    /// Ops received that this node already held.
    pub held: u64,
    /// Receipts whose inclusion proof verified.
    pub receipts_verified: u64,
    /// Ops whose chain led to a checkpoint their origin signed.
    pub origins_verified: u64,
    /// Origin checkpoint signatures verified.
    pub origin_checkpoints: u64,
    /// Scope labels the hub revoked since the last pull.
    pub purged_labels: Vec<String>,
    /// Scope labels the hub granted since the last pull (their history was
    /// taken from snapshot pages).
    pub granted_labels: Vec<String>,
    /// Records recomputed or removed by that purge.
    pub purged_records: u64,
}

/// Checks that `ops`, received from the hub, are what their origin nodes
/// wrote, and, with the hub's key known, that it enrolled every key that
/// signed them (`cairn_core::trust::verify_origins`).
fn check_origins(
    ops: &[(cairn_core::op::Op, Vec<u8>)],
    chains: &[cairn_proto::ChainSegment],
    enrollments: &[String],
    hub_key: Option<[u8; 32]>,
    report: &mut PullReport,
) -> anyhow::Result<()> {
    let enrollments = cairn_proto::decode_base64("enrollments", enrollments)?
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            cairn_core::op::Op::decode(bytes)
                .map_err(|fault| anyhow::anyhow!("enrollments[{index}]: {fault}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let proofs = cairn_proto::chain_proofs(chains)?;
    let refs: Vec<&cairn_core::op::Op> = ops.iter().map(|(op, _)| op).collect();
    let proven = cairn_core::trust::verify_origins(&refs, &enrollments, &proofs, hub_key)?;
    report.origins_verified += ops.len() as u64;
    report.origin_checkpoints += proven.checkpoints as u64;
    Ok(())
}

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

/// Compares the hub's grants with the last ones seen: labels no longer
/// granted make the node purge the records it pulled under them (never its
/// own), and say so in its log.
async fn apply_grants(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    audience: &str,
    grants: &std::collections::BTreeMap<String, String>,
    report: &mut PullReport,
) -> anyhow::Result<()> {
    if let Some(previous) = store.grants()? {
        // A label granted since the last pull brings its history: the
        // ops below the cursor that carry it (SPEC §5), before the grants
        // are saved, so an interrupted backfill is done again.
        let added: Vec<String> = grants
            .iter()
            .filter(|(name, value)| previous.get(*name) != Some(*value))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !added.is_empty() {
            let cursor = store.pull_cursor()?;
            if hub.key.is_some() {
                let pages = snapshot::Pages {
                    from: 0,
                    to: Some(cursor),
                    labels: &added,
                    advance_cursor: false,
                };
                let taken = snapshot::take(store, hub, audience, &pages, report).await?;
                tracing::info!(?added, ops = taken, "new scope granted: took its history");
            } else {
                // Without the hub's key no manifest can be checked: pull
                // the log again from the start, page by page, with proofs.
                store.set_pull_cursor(0)?;
            }
            report.granted_labels.extend(added);
        }
        let revoked: Vec<String> = previous
            .iter()
            .filter(|(name, value)| grants.get(*name) != Some(*value))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !revoked.is_empty() {
            let purged = store.purge_revoked_async(revoked.clone()).await?;
            tracing::warn!(
                ?revoked,
                records = purged.len(),
                "scope revoked by the hub: purged the records pulled under it"
            );
            report.purged_labels.extend(revoked);
            report.purged_records += purged.len() as u64;
        }
    }
    if store.grants()?.as_ref() != Some(grants) {
        store.set_grants(grants)?;
    }
    Ok(())
}

/// Pulls every op in this node's scopes it does not hold yet, page by page.
/// Each op is decoded (so its hashes are checked) and its receipt verified
/// against the page's log checkpoint (and that checkpoint's signature, when
/// the hub's key is known) before anything is stored.
pub async fn pull_all(store: &EdgeStore, hub: &HubLink<'_>) -> anyhow::Result<PullReport> {
    let (client, hub_url, hub_key) = (hub.client, hub.url, hub.key);
    let mut report = PullReport::default();
    let audience = hub_audience(client, hub_url, hub_key).await?;
    bootstrap(store, hub, &audience, &mut report).await?;
    let mut newest: Option<(LogCheckpoint, String)> = None;
    // Bounded: a page either advances the cursor or ends the round.
    for _ in 0..100_000 {
        let from = store.pull_cursor()?;
        let token = hub.token(store, &audience).await;
        let response = client
            .get(format!("{hub_url}/v1/pull?from={from}"))
            .bearer_auth(token)
            .send()
            .await
            .context("the hub is unreachable")?;
        let page: cairn_proto::PullPage =
            cairn_proto::from_value(hub_answer(&hub.clock, response, "pull").await?)?;
        apply_grants(store, hub, &audience, &page.grants, &mut report).await?;
        let checkpoint = read_checkpoint(&page.checkpoint, hub_key)?;
        let mut verified = Vec::new();
        for (index, item) in page.ops.iter().enumerate() {
            let bytes = cairn_proto::decode_base64(
                &format!("ops[{index}].op"),
                std::slice::from_ref(&item.op),
            )?
            .remove(0);
            let op = cairn_core::op::Op::decode(&bytes)
                .map_err(|fault| anyhow::anyhow!("a pulled op is damaged: {fault}"))?;
            let proof = cairn_proto::hashes(&format!("ops[{index}].proof"), &item.proof)?;
            merkle::verify_inclusion(
                item.leaf,
                checkpoint.size,
                &merkle::leaf_hash(&op.op_hash.0),
                &proof,
                &checkpoint.root,
            )
            .with_context(|| {
                format!(
                    "the receipt of pulled op {} does not verify",
                    op.record_id()
                )
            })?;
            report.receipts_verified += 1;
            verified.push((op, bytes));
        }
        check_origins(
            &verified,
            &page.chains,
            &page.enrollments,
            hub_key.map(|(_, key)| key),
            &mut report,
        )?;
        let received = verified.len() as u64;
        let applied = store.apply_pulled_async(verified).await?;
        report.applied += applied.len() as u64;
        report.held += received - applied.len() as u64;
        let next = page.next;
        newest = Some((checkpoint, page.checkpoint.clone()));
        if next <= from && received == 0 {
            break;
        }
        store.set_pull_cursor(next)?;
        if !page.more {
            break;
        }
    }
    if let Some((checkpoint, note)) = newest {
        hub_log::hold(store, hub, &checkpoint, &note).await?;
    }
    Ok(report)
}

/// A node that has pulled nothing yet starts from the hub's snapshot
/// (`cairn_core::snapshot`): every op it may see, under one signed manifest
/// instead of an inclusion proof each. It needs the hub's pinned key; without
/// one, or from a hub that serves no snapshots, the node pulls page by page.
async fn bootstrap(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    audience: &str,
    report: &mut PullReport,
) -> anyhow::Result<()> {
    if hub.key.is_none() || store.pull_cursor()? != 0 {
        return Ok(());
    }
    let pages = snapshot::Pages {
        from: 0,
        to: None,
        labels: &[],
        advance_cursor: true,
    };
    snapshot::take(store, hub, audience, &pages, report).await?;
    Ok(())
}

/// Where the background sync keeps its settings.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// The hub's base URL.
    pub hub_url: String,
    /// The hub's origin and key, to check its checkpoints.
    pub hub_key: Option<(String, [u8; 32])>,
    /// SHA-256 of an https:// hub's certificate, the only one trusted.
    pub hub_pin: Option<[u8; 32]>,
    /// How often to look for new ops when idle, ms.
    pub interval_ms: u64,
    /// How long one request to the hub may take, ms.
    pub timeout_ms: u64,
    /// How push bodies travel.
    pub encoding: Encoding,
    /// Breaker, backoff and batch thresholds.
    pub link: cairn_core::link::LinkConfig,
}

use cairn_edge::clock::now_ms;

/// Runs the sync client until `shutdown` resolves: probes, pushes, backs off.
pub async fn run(
    store: std::sync::Arc<EdgeStore>,
    settings: SyncSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use cairn_core::link::{Link, Step};
    let client = match cairn_http::tls::client(
        &settings.hub_url,
        settings.hub_pin,
        Some(std::time::Duration::from_millis(settings.timeout_ms)),
    ) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "sync client cannot start");
            return;
        }
    };
    let mut link = Link::new(settings.link);
    let hub_clock = std::sync::Arc::new(clock::HubClock::default());
    let mut jitter = Jitter::new();
    let mut stuck = std::collections::BTreeSet::new();
    let (mut last_sync_ms, mut last_error): (Option<u64>, Option<String>) = (None, None);
    let mut online = false;
    let mut last_seen = (false, "closed");
    loop {
        let now = now_ms();
        let step = link.step(now);
        let wait_ms = match step {
            Step::Wait { until_ms } => until_ms.saturating_sub(now).min(settings.interval_ms),
            Step::Probe => {
                let healthy = matches!(client.get(format!("{}/v1/health", settings.hub_url)).send().await, Ok(response) if response.status().is_success());
                if healthy {
                    link.probe_succeeded();
                } else {
                    link.failed(now_ms(), jitter.next());
                    last_error = Some("health probe failed".into());
                }
                online = healthy;
                0
            }
            Step::Push { batch_ops } => {
                let key = settings
                    .hub_key
                    .as_ref()
                    .map(|(origin, key)| (origin.as_str(), *key));
                let hub = HubLink {
                    client: &client,
                    url: &settings.hub_url,
                    key,
                    clock: hub_clock.clone(),
                };
                let round = async {
                    let report = push_all(
                        &store,
                        &hub,
                        batch_ops,
                        Some(&mut link),
                        &stuck,
                        settings.encoding,
                        None,
                    )
                    .await?;
                    let pulled = pull_all(&store, &hub).await?;
                    if pulled.applied > 0 {
                        tracing::info!(applied = pulled.applied, "pulled from the hub");
                    }
                    anyhow::Ok(report)
                };
                match round.await {
                    Ok(report) => {
                        link.round_succeeded();
                        online = true;
                        last_sync_ms = Some(now_ms());
                        if !report.quarantined.is_empty() {
                            tracing::error!(quarantined = ?report.quarantined, "the hub quarantined ops");
                            last_error =
                                Some(format!("quarantined: {}", report.quarantined.join("; ")));
                        } else {
                            last_error = None;
                        }
                        stuck.extend(report.stuck);
                        if report.accepted > 0 {
                            tracing::info!(accepted = report.accepted, "pushed to the hub");
                        }
                        settings.interval_ms
                    }
                    Err(error) => {
                        tracing::debug!(error = format!("{error:#}"), "sync round failed");
                        link.failed(now_ms(), jitter.next());
                        online = false;
                        last_error = Some(format!("{error:#}"));
                        0
                    }
                }
            }
        };
        log_transitions(
            &mut last_seen,
            online,
            link.breaker().name(),
            last_error.as_deref(),
        );
        let state = serde_json::json!({
            "hub": settings.hub_url,
            "online": online,
            "breaker": link.breaker().name(),
            "failures": link.failures(),
            "batch_ops": link.batch_ops(),
            "last_sync_ms": last_sync_ms,
            "last_error": last_error,
            "clock_offset_ms": hub_clock.offset_ms(),
            "stuck_streams": stuck,
        });
        if let Err(error) = store.set_sync_state(&state) {
            tracing::warn!(%error, "cannot save the sync state");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait_ms.max(10))) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use cairn_core::chain::StreamHead;
    use cairn_core::op::{Action, OpDraft};
    use serde_json::json;

    fn ops(count: u64) -> Vec<Vec<u8>> {
        let mut head = StreamHead::EMPTY;
        (0..count)
            .map(|n| {
                head.append(OpDraft {
                    node: "a".into(),
                    stream: "standard".into(),
                    hlc: cairn_core::hlc::Hlc {
                        wall_ms: 1 + n,
                        counter: 0,
                    },
                    collection: "notes".into(),
                    action: Action::Append,
                    key: String::new(),
                    scope: Default::default(),
                    base: Default::default(),
                    ref_hash: None,
                    reason: String::new(),
                    payload: format!("{{\"n\":{n}}}").into_bytes(),
                })
                .1
            })
            .collect()
    }

    /// The part of a pull or snapshot answer that proves origins.
    #[derive(serde::Deserialize)]
    struct Origins {
        chains: Vec<cairn_proto::ChainSegment>,
        enrollments: Vec<String>,
    }

    /// A segment as the hub sends it.
    fn segment(checkpoint: &cairn_core::identity::Checkpoint, key: [u8; 32]) -> Value {
        json!({
            "node": checkpoint.node,
            "stream": checkpoint.stream,
            "seq": checkpoint.seq,
            "head": checkpoint.head.to_hex(),
            "signature": hex::encode(checkpoint.signature),
            "public_key": hex::encode(key),
            "headers": [],
        })
    }

    #[test]
    fn pulled_ops_need_their_origin_chain_and_a_key_the_hub_enrolled() {
        let author = cairn_core::identity::NodeIdentity::from_seed("a", [1; 32]);
        let hub = cairn_core::identity::NodeIdentity::from_seed("hub", [2; 32]);
        let rogue = cairn_core::identity::NodeIdentity::from_seed("hub", [3; 32]);
        let pulled: Vec<(cairn_core::op::Op, Vec<u8>)> = ops(3)
            .into_iter()
            .map(|bytes| (cairn_core::op::Op::decode(&bytes).unwrap(), bytes))
            .collect();
        let head = pulled[2].0.op_hash;
        let signed = author.sign_checkpoint("standard", 3, head);
        let act = |key: [u8; 32]| {
            let mut head = StreamHead::EMPTY;
            head.append(OpDraft {
                node: "hub".into(),
                stream: "audit".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: 1,
                    counter: 0,
                },
                collection: "hub_audit".into(),
                action: Action::Append,
                key: String::new(),
                scope: [("hub".to_string(), "audit".to_string())].into(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload: cairn_core::canonical::to_canonical_bytes(
                    &json!({"action": "enroll", "node": "a", "public_key": hex::encode(key)}),
                )
                .unwrap(),
            })
        };
        let (enrolled, enrolled_bytes) = act(author.public_key());
        let answer = |act: &(cairn_core::op::Op, Vec<u8>),
                      signer: &cairn_core::identity::NodeIdentity| {
            let by_hub = signer.sign_checkpoint("audit", 1, act.0.op_hash);
            json!({
                "chains": [segment(&signed, author.public_key()), segment(&by_hub, signer.public_key())],
                "enrollments": [base64::engine::general_purpose::STANDARD.encode(&act.1)],
            })
        };
        let check = |answer: &Value, hub_key: Option<[u8; 32]>| {
            let mut report = PullReport::default();
            let origins: Origins = cairn_proto::from_value(answer.clone())?;
            check_origins(
                &pulled,
                &origins.chains,
                &origins.enrollments,
                hub_key,
                &mut report,
            )
            .map(|()| report)
        };
        let good = answer(&(enrolled.clone(), enrolled_bytes.clone()), &hub);
        let report = check(&good, Some(hub.public_key())).unwrap();
        assert_eq!((report.origins_verified, report.origin_checkpoints), (3, 2));

        // The act enrolled another key: the author's key is not vouched for.
        let other = act([9; 32]);
        let error = check(&answer(&other, &hub), Some(hub.public_key())).unwrap_err();
        assert!(
            format!("{error:#}").contains("a:standard seq 3 is not one the hub enrolled"),
            "{error:#}"
        );
        // The act is signed by a key that is not the hub's.
        let error = check(
            &answer(&(enrolled, enrolled_bytes), &rogue),
            Some(hub.public_key()),
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("hub:audit seq 1 is not one the hub enrolled"),
            "{error:#}"
        );
        // Without the hub's key, only the chains can be checked.
        assert!(check(&answer(&other, &hub), None).is_ok());

        // A missing op of the chain, and malformed answers, each named.
        let mut short = good.clone();
        short["chains"][0]["seq"] = json!(2);
        assert!(check(&short, None).is_err());
        for (edit, expected) in [
            (json!({"enrollments": []}), "missing field `chains`"),
            (
                json!({"chains": [{"node": "a"}], "enrollments": []}),
                "chains[0]: missing field `stream`",
            ),
            (
                json!({"chains": [], "enrollments": ["%%"]}),
                "enrollments[0] must be base64",
            ),
            (json!({"chains": []}), "missing field `enrollments`"),
        ] {
            let error = check(&edit, None).unwrap_err();
            assert!(format!("{error:#}").contains(expected), "{error:#}");
        }
        let mut bad_hex = good.clone();
        bad_hex["chains"][0]["signature"] = json!("zz");
        let error = check(&bad_hex, None).unwrap_err();
        assert!(
            format!("{error:#}").contains("chains[0].signature must be 64 bytes of hex"),
            "{error:#}"
        );
    }

    proptest::proptest! {
        /// A pull answer from the network, mutated: its chain proofs and
        /// enrollments are refused cleanly or checked, never a panic.
        #[test]
        fn pull_answers_decode_or_refuse(
            at in proptest::prelude::any::<usize>(),
            kind in proptest::prelude::any::<u8>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..12),
        ) {
            let author = cairn_core::identity::NodeIdentity::from_seed("a", [1; 32]);
            let pulled: Vec<(cairn_core::op::Op, Vec<u8>)> = ops(3)
                .into_iter()
                .map(|bytes| (cairn_core::op::Op::decode(&bytes).unwrap(), bytes))
                .collect();
            let signed = author.sign_checkpoint("standard", 3, pulled[2].0.op_hash);
            let answer = json!({"chains": [segment(&signed, author.public_key())], "enrollments": []});
            let bytes = cairn_core::mutation::mutated(answer.to_string().as_bytes(), at, kind, &extra);
            if let Ok(answer) = serde_json::from_slice::<Value>(&bytes)
                && let Ok(origins) = cairn_proto::from_value::<Origins>(answer)
            {
                let _ = check_origins(
                    &pulled,
                    &origins.chains,
                    &origins.enrollments,
                    None,
                    &mut PullReport::default(),
                );
            }
        }
    }

    #[test]
    fn the_link_never_asks_for_more_than_a_push_may_hold() {
        let config = cairn_core::link::LinkConfig::default();
        assert!(config.batch_ops_max <= cairn_hub_sqlite::PUSH_OPS_MAX);
        assert!(config.batch_ops_min >= 1);
    }
}
