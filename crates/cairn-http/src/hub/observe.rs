//! What the hub shows of itself and its fleet: `GET /metrics` (OpenMetrics),
//! `/healthz`, `/readyz`, and `POST /v1/node/status`, where each edge
//! reports its own status (queue per stream, oldest pending op, breaker,
//! online, alerts) with its sync rounds (at most once a second). The reports live in memory
//! (`Fleet`): they are what nodes said last, not records, and a restarted
//! hub learns them again at the next round of each node. When several hub
//! processes share the store (PostgreSQL), each also keeps them there, at
//! most every [`SHARED_EVERY_MS`] per node, and takes up the others' before
//! it shows the fleet, so every process shows every node.

use super::{HubState, authenticate, blocking};
use crate::body::body_json;
use crate::error::AppError;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use cairn_core::pack::Violation;
use cairn_hub::backend::FleetReport;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Largest status report a node may send.
const REPORT_BYTES_MAX: usize = 64 * 1024;

/// What a node said of itself last.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeReport {
    /// When the hub received it, ms.
    pub received_ms: u64,
    /// The node's status (`cairn status --json`).
    pub status: Value,
}

/// A node silent this long is offline unless the hub is told otherwise, ms.
pub const OFFLINE_AFTER_MS: u64 = 60_000;

/// How often a process keeps a node's or legacy client's report in a store
/// other processes share, at most, ms: their fleet views are this fresh.
pub const SHARED_EVERY_MS: u64 = 5_000;

/// The fleet as its nodes and legacy clients last showed themselves.
pub struct Fleet {
    reports: Mutex<BTreeMap<String, NodeReport>>,
    legacy: Mutex<BTreeMap<String, u64>>,
    /// When each (name, kind) was last kept in the shared store, ms.
    shared: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// A node whose last report is older than this is offline, ms.
    pub offline_after_ms: u64,
}

impl Default for Fleet {
    fn default() -> Fleet {
        Fleet {
            reports: Mutex::default(),
            legacy: Mutex::default(),
            shared: Mutex::default(),
            offline_after_ms: OFFLINE_AFTER_MS,
        }
    }
}

impl Fleet {
    /// Keeps `node`'s report.
    pub fn report(&self, node: &str, status: Value, now_ms: u64) {
        let report = NodeReport {
            received_ms: now_ms,
            status,
        };
        lock(&self.reports).insert(node.to_string(), report);
    }

    /// Notes a legacy client's request.
    pub fn legacy_request(&self, client: &str, now_ms: u64) {
        lock(&self.legacy).insert(client.to_string(), now_ms);
    }

    /// Every node's last report, by node.
    pub fn reports(&self) -> BTreeMap<String, NodeReport> {
        lock(&self.reports).clone()
    }

    /// Each legacy client's last request, ms.
    pub fn legacy_requests(&self) -> BTreeMap<String, u64> {
        lock(&self.legacy).clone()
    }

    /// True when `name`'s report of `kind` is due to be kept in the shared
    /// store at `now_ms` (noted as kept).
    fn share_due(&self, name: &str, kind: &'static str, now_ms: u64) -> bool {
        let mut shared = lock(&self.shared);
        let last = shared.entry((name.to_string(), kind)).or_insert(0);
        let due = now_ms.saturating_sub(*last) >= SHARED_EVERY_MS;
        if due {
            *last = now_ms;
        }
        due
    }

    /// Takes up the reports other processes kept in the shared store: a
    /// newer one replaces what this process heard itself.
    pub fn take_up(&self, stored: Vec<FleetReport>) {
        for report in stored {
            match report.kind.as_str() {
                "node" => {
                    let Ok(status) = serde_json::from_str::<Value>(&report.status) else {
                        continue;
                    };
                    let mut reports = lock(&self.reports);
                    let newer = reports
                        .get(&report.name)
                        .is_none_or(|kept| kept.received_ms < report.received_ms);
                    if newer {
                        reports.insert(
                            report.name,
                            NodeReport {
                                received_ms: report.received_ms,
                                status,
                            },
                        );
                    }
                }
                "legacy" => {
                    let mut legacy = lock(&self.legacy);
                    let last = legacy.entry(report.name).or_insert(0);
                    *last = (*last).max(report.received_ms);
                }
                _ => {}
            }
        }
    }
}

/// Notes a node's status report, and keeps it for the other processes when
/// the store is shared and it is due.
fn node_reported(state: &HubState, node: &str, status: Value) {
    let now = state.hub.clock().now_ms();
    let text = status.to_string();
    state.observed.fleet.report(node, status, now);
    share(state, (node, "node"), text, now);
}

/// Notes a legacy client's request, and keeps it for the other processes
/// when the store is shared and it is due.
pub(crate) fn legacy_request(state: &HubState, client: &str) {
    let now = state.hub.clock().now_ms();
    state.observed.fleet.legacy_request(client, now);
    share(state, (client, "legacy"), "null".into(), now);
}

/// Keeps a report in the shared store, off the request's path (a report
/// that cannot be kept is said in the log; it is not a record).
fn share(state: &HubState, (name, kind): (&str, &'static str), status: String, now_ms: u64) {
    if !state.hub.is_shared() || !state.observed.fleet.share_due(name, kind, now_ms) {
        return;
    }
    let hub = state.hub.clone();
    let report = FleetReport {
        name: name.to_string(),
        kind: kind.to_string(),
        status,
        received_ms: now_ms,
    };
    tokio::task::spawn_blocking(move || {
        if let Err(error) = hub.put_fleet_report(&report) {
            tracing::warn!(name = %report.name, %error, "a fleet report was not kept in the shared store");
        }
    });
}

/// Takes up the reports other processes kept, when the store is shared
/// (a blocking read: call it where the store is read).
pub(crate) fn take_up_shared(state: &HubState) -> Result<(), AppError> {
    if state.hub.is_shared() {
        let stored = state
            .hub
            .fleet_reports()
            .map_err(|error| AppError::Server(error.to_string()))?;
        state.observed.fleet.take_up(stored);
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeStreamLabels {
    node: String,
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeStateLabels {
    node: String,
    state: String,
}

type Seconds = Gauge<f64, AtomicU64>;

/// The hub's own metrics, refreshed from the store at each scrape.
#[derive(Default)]
struct HubGauges {
    ops_logged: Counter,
    log_size: Gauge,
    checkpoint_age: Seconds,
    verdicts: Family<StateLabels, Counter>,
    reviews_open: Family<KindLabels, Gauge>,
    resolutions: Counter,
    node_queue: Family<NodeStreamLabels, Gauge>,
    node_oldest_pending: Family<NodeLabels, Seconds>,
    node_last_seen: Family<NodeLabels, Seconds>,
    node_breaker: Family<NodeStateLabels, Gauge>,
    node_online: Family<NodeLabels, Gauge>,
    node_clock_offset: Family<NodeLabels, Gauge>,
}

/// What the hub observes of itself and its fleet.
pub struct Observed {
    /// Its registry (request latency and the gauges below).
    pub metrics: std::sync::Arc<Metrics>,
    /// What nodes and legacy clients last showed.
    pub fleet: Fleet,
    gauges: HubGauges,
}

impl Default for Observed {
    fn default() -> Observed {
        let gauges = HubGauges::default();
        let metrics = Metrics::new(|registry| {
            let g = &gauges;
            registry.register(
                "cairn_ops_logged",
                "Ops the hub logged (ingest)",
                g.ops_logged.clone(),
            );
            registry.register(
                "cairn_log_size",
                "Leaves in the hub's log",
                g.log_size.clone(),
            );
            registry.register(
                "cairn_log_checkpoint_age_seconds",
                "Age of the newest signed log checkpoint",
                g.checkpoint_age.clone(),
            );
            registry.register(
                "cairn_verdicts",
                "Logged ops judged, by state",
                g.verdicts.clone(),
            );
            registry.register(
                "cairn_reviews_open",
                "Open review items, by kind",
                g.reviews_open.clone(),
            );
            registry.register(
                "cairn_review_resolutions",
                "Review items resolved through the hub's API",
                g.resolutions.clone(),
            );
            registry.register(
                "cairn_node_queue_depth",
                "Ops a node has not pushed yet, by stream, as it reported",
                g.node_queue.clone(),
            );
            registry.register(
                "cairn_node_oldest_pending_seconds",
                "Age of a node's oldest unpushed op, as it reported (its lag)",
                g.node_oldest_pending.clone(),
            );
            registry.register(
                "cairn_node_last_seen_seconds",
                "Seconds since a node last reported",
                g.node_last_seen.clone(),
            );
            registry.register(
                "cairn_node_breaker",
                "A node's breaker state (1 for the state it is in)",
                g.node_breaker.clone(),
            );
            registry.register(
                "cairn_node_online",
                "Whether a node's last report said it was online",
                g.node_online.clone(),
            );
            registry.register(
                "cairn_node_clock_offset_ms",
                "A node's clock offset from the hub's, ms",
                g.node_clock_offset.clone(),
            );
        });
        Observed {
            metrics: std::sync::Arc::new(metrics),
            fleet: Fleet::default(),
            gauges,
        }
    }
}

impl Observed {
    /// With nodes silent for `ms` shown offline.
    pub fn offline_after(ms: u64) -> Observed {
        let mut observed = Observed::default();
        observed.fleet.offline_after_ms = ms;
        observed
    }

    /// Notes a resolution made through the API.
    pub fn resolved(&self) {
        self.gauges.resolutions.inc();
    }

    /// Sets the gauges from the store and the fleet's reports.
    fn refresh(&self, state: &HubState, now_ms: u64) -> Result<(), AppError> {
        let fault = |error: String| AppError::Server(error);
        let status = state
            .hub
            .status()
            .map_err(|error| fault(error.to_string()))?;
        let g = &self.gauges;
        g.ops_logged
            .inc_by(status.log_size.saturating_sub(g.ops_logged.get()));
        g.log_size.set(status.log_size as i64);
        if let Some(newest) = state
            .hub
            .checkpoint_history(1)
            .map_err(|error| fault(error.to_string()))?
            .first()
        {
            g.checkpoint_age
                .set(now_ms.saturating_sub(newest.created_ms) as f64 / 1000.0);
        }
        for (name, count) in &status.states {
            let counter = g.verdicts.get_or_create(&StateLabels {
                state: name.clone(),
            });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
        g.reviews_open.clear();
        for (kind, count) in &status.reviews_open {
            g.reviews_open
                .get_or_create(&KindLabels { kind: kind.clone() })
                .set(*count as i64);
        }
        for (node, clock) in &status.clocks {
            let labels = NodeLabels { node: node.clone() };
            g.node_clock_offset
                .get_or_create(&labels)
                .set(clock.clock_offset_ms);
        }
        take_up_shared(state)?;
        self.refresh_fleet(now_ms);
        Ok(())
    }

    fn refresh_fleet(&self, now_ms: u64) {
        let g = &self.gauges;
        g.node_queue.clear();
        g.node_breaker.clear();
        for (node, report) in self.fleet.reports() {
            let labels = NodeLabels { node: node.clone() };
            let status = &report.status;
            for stream in status["streams"].as_array().into_iter().flatten() {
                let stream_labels = NodeStreamLabels {
                    node: node.clone(),
                    stream: stream["stream"].as_str().unwrap_or_default().to_string(),
                };
                let pending = stream["pending"].as_i64().unwrap_or(0);
                g.node_queue.get_or_create(&stream_labels).set(pending);
            }
            let oldest = status["oldest_pending_age_ms"].as_f64().unwrap_or(0.0) / 1000.0;
            g.node_oldest_pending.get_or_create(&labels).set(oldest);
            let seen = now_ms.saturating_sub(report.received_ms) as f64 / 1000.0;
            g.node_last_seen.get_or_create(&labels).set(seen);
            let breaker = status["sync"]["breaker"]
                .as_str()
                .unwrap_or("unknown")
                .to_string();
            g.node_breaker
                .get_or_create(&NodeStateLabels {
                    node: node.clone(),
                    state: breaker,
                })
                .set(1);
            let online = status["sync"]["online"].as_bool().unwrap_or(false)
                && now_ms.saturating_sub(report.received_ms) <= self.fleet.offline_after_ms;
            g.node_online.get_or_create(&labels).set(i64::from(online));
        }
    }
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(super) async fn metrics(State(state): State<HubState>) -> Result<Response, AppError> {
    let now = state.hub.clock().now_ms();
    let observing = state.clone();
    blocking(move || observing.observed.refresh(&observing, now)).await?;
    Ok(state.observed.metrics.encode())
}

/// `GET /readyz`: the store answers and the signer can sign its log.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready", body = serde_json::Value), (status = 503, description = "Not ready", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(super) async fn readyz(State(state): State<HubState>) -> Response {
    let hub = state.hub.clone();
    match blocking(move || {
        hub.checkpoint()
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await
    {
        Ok(_) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"status": "not ready", "reason": "the store or the signer does not answer"}),
            ),
        )
            .into_response(),
    }
}

/// `POST /v1/node/status`: a node's own status after a sync round.
#[utoipa::path(post, path = "/v1/node/status", tag = "operations", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 204, description = "Noted"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn node_status(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, AppError> {
    let (hub, tokens, auth) = (state.hub.clone(), state.tokens.clone(), headers.clone());
    let node = blocking(move || authenticate(&hub, &tokens, &auth)).await?;
    let body = body_json(&state.bodies, &headers, body, REPORT_BYTES_MAX).await?;
    if !body.value.is_object() || body.value["node"].as_str() != Some(node.as_str()) {
        return Err(AppError::invalid(
            None,
            vec![Violation::new(
                "node",
                "match",
                "a node reports its own status (the token's node)",
            )],
        ));
    }
    node_reported(&state, &node, body.value);
    Ok(StatusCode::NO_CONTENT)
}
