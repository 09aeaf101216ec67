//! Pushes: a stream's unacknowledged ops in batches that end at a signed
//! checkpoint, a few in flight at once, each answer's receipt checked
//! (`cairn_core::receipt`) before anything is acknowledged.

use crate::clock;
use crate::hub::*;
use crate::hub_log;
use crate::run::Jitter;
use anyhow::Context;
use cairn_core::note::LogCheckpoint;
use cairn_edge::EdgeStore;
use cairn_edge::clock::now_ms;
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

/// Pushes everything pending, batch by batch: `batch_ops` ops each, or,
/// given `sizer`, as many as it says, telling it how long each push took so
/// the size follows the link within a round.
pub async fn push_all(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    batch_ops: usize,
    sizer: Option<&mut cairn_core::link::Link>,
    skip: &std::collections::BTreeSet<String>,
    encoding: Encoding,
    progress: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<SyncReport> {
    let mut report = SyncReport::default();
    // Tokens are for this hub: its origin, from the known key or its health answer.
    let audience = hub_audience(hub.client, hub.url, hub.key).await?;
    // Before anything is pushed: the hub's log still extends what this
    // node saw of it (a hub restored from a backup is named, not fed).
    let (checkpoint, note) = hub_log::current(hub).await?;
    report_clock(store, &hub.clock)?;
    report.clock_offset_ms = hub.clock.offset_ms();
    hub_log::hold(store, hub, &checkpoint, &note).await?;
    // A constrained link sends stale tracks after everything else.
    let constrained = sizer
        .as_deref()
        .is_some_and(cairn_core::link::Link::constrained);
    let streams = store.streams_to_push(cairn_edge::clock::now_ms(), constrained)?;
    let mut round = Round {
        store,
        hub,
        audience,
        // Asked of the hub only once there is something to push: an idle
        // round costs no round trip for it (a satellite link's 600 ms).
        binary: match encoding {
            Encoding::Json => Some(false),
            Encoding::Binary => Some(true),
            Encoding::Auto => None,
        },
        tokens: Tokens::default(),
        jitter: Jitter::new(),
        sizer,
        batch_ops,
        progress,
        report,
    };
    for stream in streams {
        if !skip.contains(&stream) {
            round.push_stream(&stream).await?;
        }
    }
    Ok(round.report)
}

/// One round of pushes and what it needs from one push to the next.
struct Round<'r, 'h> {
    store: &'r EdgeStore,
    hub: &'r HubLink<'h>,
    audience: String,
    /// Whether push bodies are binary, once known.
    binary: Option<bool>,
    tokens: Tokens,
    jitter: Jitter,
    sizer: Option<&'r mut cairn_core::link::Link>,
    batch_ops: usize,
    progress: Option<&'r indicatif::ProgressBar>,
    report: SyncReport,
}

/// One stream's pushes under way.
#[derive(Default)]
struct StreamPushes {
    /// Sent and not yet answered, oldest first.
    in_flight: std::collections::VecDeque<InFlight>,
    /// The last seq sent.
    sent_to: Option<u64>,
    /// Set by a congested hub's answer: wait before the next push.
    pause_ms: u64,
    /// How long the last answered push took.
    last_elapsed_ms: u64,
}

impl Round<'_, '_> {
    /// Pushes one stream until nothing is pending or the hub stops it. Up
    /// to PUSHES_IN_FLIGHT pushes of the stream travel at once (fewer when
    /// the link says the hub is congested), so the link and the hub are
    /// busy while an answer is on its way; the hub applies them in seq
    /// order. Answers are handled in order.
    async fn push_stream(&mut self, stream: &str) -> anyhow::Result<()> {
        let mut pushes = StreamPushes::default();
        loop {
            if pushes.pause_ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(pushes.pause_ms)).await;
                pushes.pause_ms = 0;
            }
            self.fill(stream, &mut pushes).await?;
            let Some(push) = pushes.in_flight.pop_front() else {
                return Ok(());
            };
            let answered = match push.answer.await {
                Ok(Ok(answered)) => Ok(answered),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(anyhow::anyhow!("the push task failed: {error}")),
            };
            let more = match answered {
                Ok((answer, hub_ms)) => {
                    self.answered(stream, &mut pushes, push.sent, answer, hub_ms)
                }
                Err(error) => Err(error),
            };
            if !matches!(more, Ok(true)) {
                // The hub holds the stream or quarantined part of the
                // batch (resending the same ops cannot help), or the push
                // failed: stop; a push already behind this one is
                // answered as it may be.
                abort_all(&mut pushes.in_flight);
                return more.map(drop);
            }
        }
    }

    /// Sends pending batches of the stream until as many pushes are in
    /// flight as the link allows.
    async fn fill(&mut self, stream: &str, pushes: &mut StreamPushes) -> anyhow::Result<()> {
        let in_flight_max = self
            .sizer
            .as_ref()
            .map_or(PUSHES_IN_FLIGHT, |link| link.pushes_in_flight());
        while pushes.in_flight.len() < in_flight_max {
            let batch_ops = self
                .sizer
                .as_ref()
                .map_or(self.batch_ops, |link| link.batch_ops());
            let Some(batch) = self
                .store
                .pending_batch_after(stream, pushes.sent_to, batch_ops)?
            else {
                break;
            };
            // Stagger the pushes in flight by half a push's time: sent
            // together, they would share the link, finish together and
            // leave it idle while both answers travel back.
            if let Some(last) = pushes.in_flight.back() {
                let stagger = std::time::Duration::from_millis(pushes.last_elapsed_ms / 2);
                if let Some(wait) = stagger.checked_sub(last.sent.at.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            pushes.sent_to = Some(batch.checkpoint.seq);
            let push = self.send(batch).await?;
            pushes.in_flight.push_back(push);
        }
        Ok(())
    }

    /// Sends one batch; its answer is awaited on its own task.
    async fn send(&mut self, batch: cairn_edge::PendingBatch) -> anyhow::Result<InFlight> {
        let (client, hub_url) = (self.hub.client, self.hub.url);
        let binary = match self.binary {
            Some(binary) => binary,
            None => *self.binary.insert(hub_speaks_binary(client, hub_url).await),
        };
        let token = self.tokens.get(self.store, self.hub, &self.audience).await;
        let body = push_body(&self.store.settings().node, &batch, binary)?;
        self.report.bytes_sent += body.len() as u64;
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
        let hub_clock = self.hub.clock.clone();
        let answer = tokio::spawn(async move {
            let response = request.send().await.context("the hub is unreachable")?;
            let hub_ms = response
                .headers()
                .get(cairn_proto::SERVER_TIMING)
                .and_then(|value| value.to_str().ok())
                .and_then(cairn_proto::hub_time_ms);
            Ok((hub_answer(&hub_clock, response, "push").await?, hub_ms))
        });
        Ok(InFlight {
            sent: Sent {
                batch,
                at: std::time::Instant::now(),
                window: self.sizer.as_ref().map_or(0, |link| link.window()),
            },
            answer,
        })
    }

    /// Checks a push's answer, tells the link, acknowledges what the hub
    /// confirmed; `false` when the stream cannot go on this round.
    fn answered(
        &mut self,
        stream: &str,
        pushes: &mut StreamPushes,
        sent: Sent,
        answer: Value,
        hub_ms: Option<u64>,
    ) -> anyhow::Result<bool> {
        let Sent { batch, at, window } = sent;
        // The push's whole time, as its request timeout counts it: on a
        // slow link the pushes in flight share it, and each takes longer.
        let elapsed_ms = at.elapsed().as_millis() as u64;
        pushes.last_elapsed_ms = elapsed_ms;
        let answer: cairn_proto::PushResponse =
            cairn_proto::from_value(answer).context("the hub's push answer is malformed")?;
        let checkpoint = read_checkpoint(&answer.checkpoint, self.hub.key)?;
        let own: Vec<Option<cairn_core::op::Op>> = batch
            .ops
            .iter()
            .map(|op| cairn_core::op::Op::decode(op).ok())
            .collect();
        let own: Vec<Option<&cairn_core::op::Op>> = own.iter().map(Option::as_ref).collect();
        verify_receipt(&answer, &own, &checkpoint)?;
        if let Some(link) = self.sizer.as_deref_mut() {
            link.pushed(window, elapsed_ms, hub_ms);
            pushes.pause_ms = link.pause_ms(hub_ms, self.jitter.draw());
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
        let report = &mut self.report;
        report.accepted += ack.accepted;
        report.receipts_verified += ack.accepted;
        report.duplicate += ack.duplicate;
        for (seq, reason) in &ack.quarantined {
            let seq = seq.map_or_else(|| "?".to_string(), |seq| seq.to_string());
            report
                .quarantined
                .push(format!("{stream} seq {seq}: {reason}"));
        }
        if let Some(seq) = ack.confirmed {
            self.store.acknowledge(stream, seq)?;
        }
        if let Some(progress) = self.progress {
            progress.set_position(report.accepted + report.duplicate);
        }
        report.checkpoint = Some(answer.checkpoint.clone());
        if !ack.unbroken {
            report.stuck.push(stream.to_string());
        }
        Ok(ack.unbroken && ack.confirmed == Some(batch.checkpoint.seq))
    }
}

/// Pushes of one stream that may be on their way at once without a link
/// to say otherwise.
pub use cairn_core::link::PUSHES_IN_FLIGHT;

/// A push sent and not yet answered.
struct InFlight {
    sent: Sent,
    /// The hub's answer, and its own time with the push when it said.
    answer: tokio::task::JoinHandle<anyhow::Result<(Value, Option<u64>)>>,
}

/// What was sent, and when.
struct Sent {
    batch: cairn_edge::PendingBatch,
    at: std::time::Instant,
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
