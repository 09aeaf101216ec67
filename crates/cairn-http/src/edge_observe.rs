//! What the edge shows of itself: `GET /metrics` (OpenMetrics: request
//! latency, the queue per stream, the oldest unpushed op, storage, the
//! link's state as the sync loop last recorded it), `/healthz`, `/readyz`.

use crate::edge::AppState;
use crate::error::AppError;
use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// The edge's metrics, refreshed from its store at each scrape.
#[derive(Default)]
struct EdgeGauges {
    queue: Family<StreamLabels, Gauge>,
    written: Family<StreamLabels, Gauge>,
    oldest_pending: Gauge<f64, AtomicU64>,
    storage: Gauge,
    conflicts: Gauge,
    online: Gauge,
    breaker: Family<StateLabels, Gauge>,
    alerts: Gauge,
}

/// The edge's registry and gauges.
pub struct EdgeObserved {
    /// Request latency and the gauges.
    pub metrics: Arc<Metrics>,
    gauges: EdgeGauges,
}

impl Default for EdgeObserved {
    fn default() -> EdgeObserved {
        let gauges = EdgeGauges::default();
        let metrics = Metrics::new(|registry| {
            let g = &gauges;
            registry.register(
                "cairn_edge_queue_depth",
                "Ops not yet acknowledged by the hub, by stream",
                g.queue.clone(),
            );
            registry.register(
                "cairn_edge_stream_head",
                "Ops written to each of this node's streams",
                g.written.clone(),
            );
            registry.register(
                "cairn_edge_oldest_pending_seconds",
                "Age of the oldest op the hub has not acknowledged",
                g.oldest_pending.clone(),
            );
            registry.register(
                "cairn_edge_storage_bytes",
                "Bytes the store uses",
                g.storage.clone(),
            );
            registry.register(
                "cairn_edge_conflicts",
                "Records with open merge conflicts",
                g.conflicts.clone(),
            );
            registry.register(
                "cairn_edge_online",
                "Whether the last sync step reached the hub",
                g.online.clone(),
            );
            registry.register(
                "cairn_edge_breaker",
                "The link's breaker state (1 for the state it is in)",
                g.breaker.clone(),
            );
            registry.register(
                "cairn_edge_alerts",
                "Alerts the node raises now",
                g.alerts.clone(),
            );
        });
        EdgeObserved {
            metrics: Arc::new(metrics),
            gauges,
        }
    }
}

impl EdgeObserved {
    fn refresh(&self, status: &cairn_edge::Status) {
        let g = &self.gauges;
        g.queue.clear();
        g.written.clear();
        for stream in &status.streams {
            let labels = StreamLabels {
                stream: stream.stream.clone(),
            };
            g.queue.get_or_create(&labels).set(stream.pending as i64);
            g.written.get_or_create(&labels).set(stream.head_seq as i64);
        }
        g.oldest_pending
            .set(status.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0);
        g.storage.set(status.storage_bytes as i64);
        g.conflicts.set(status.conflicts as i64);
        g.alerts.set(status.alerts.len() as i64);
        let sync = status.sync.clone().unwrap_or_default();
        g.online
            .set(i64::from(sync["online"].as_bool().unwrap_or(false)));
        g.breaker.clear();
        if let Some(breaker) = sync["breaker"].as_str() {
            g.breaker
                .get_or_create(&StateLabels {
                    state: breaker.to_string(),
                })
                .set(1);
        }
    }
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let store = state.store.clone();
    let status = tokio::task::spawn_blocking(move || store.status(cairn_edge::clock::now_ms()))
        .await
        .map_err(|error| AppError::Server(error.to_string()))??;
    state.observed.refresh(&status);
    Ok(state.observed.metrics.encode())
}

/// `GET /readyz`: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "Ready", body = serde_json::Value), (status = 503, description = "Not ready", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let answered =
        tokio::task::spawn_blocking(move || store.status(cairn_edge::clock::now_ms())).await;
    match answered {
        Ok(Ok(_)) => axum::Json(json!({"status": "ready"})).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "reason": "the store does not answer"})),
        )
            .into_response(),
    }
}

/// The badge seed 004's app shows: `conflict` when a record holds an open
/// merge conflict, `offline` when the last sync step did not reach the hub,
/// `syncing` while ops wait, `synced` otherwise.
pub fn badge(status: &cairn_edge::Status) -> &'static str {
    let online = status
        .sync
        .as_ref()
        .is_some_and(|sync| sync["online"].as_bool().unwrap_or(false));
    if status.conflicts > 0 {
        "conflict"
    } else if !online {
        "offline"
    } else if status.pending_total > 0 {
        "syncing"
    } else {
        "synced"
    }
}

/// `GET /`: a small status page for people at the site (no scripts; it
/// reloads itself every 5 seconds).
#[utoipa::path(get, path = "/", tag = "operations", responses((status = 200, description = "A status page for people", body = String, content_type = "text/html"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(crate) async fn status_page(
    State(state): State<AppState>,
) -> Result<axum::response::Html<String>, AppError> {
    use cairn_hub::report::html::escape;
    let store = state.store.clone();
    let status = tokio::task::spawn_blocking(move || store.status(cairn_edge::clock::now_ms()))
        .await
        .map_err(|error| AppError::Server(error.to_string()))??;
    let badge = badge(&status);
    let written: u64 = status.streams.iter().map(|stream| stream.head_seq).sum();
    let pushed: u64 = status.streams.iter().map(|stream| stream.acked_seq).sum();
    let alerts: String = status
        .alerts
        .iter()
        .map(|alert| format!("<li>{}</li>", escape(alert)))
        .collect();
    Ok(axum::response::Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\
         <title>{node}: {badge}</title><style>body{{font-family:sans-serif;margin:1.5rem}}\
         .badge{{display:inline-block;padding:.3rem .8rem;border-radius:1rem;color:#fff;font-weight:bold}}\
         .synced{{background:#1e7d32}}.syncing{{background:#3b6ea5}}.offline{{background:#777}}.conflict{{background:#b03a2e}}</style></head>\
         <body><h1>{node}</h1><p><span id=\"badge\" class=\"badge {badge}\">{badge}</span></p>\
         <p id=\"progress\">{pushed} of {written} ops at the hub; {pending} waiting</p>\
         <p>Conflicts: {conflicts}</p><ul id=\"alerts\">{alerts}</ul></body></html>\n",
        node = escape(&status.node),
        pending = status.pending_total,
        conflicts = status.conflicts,
    )))
}
