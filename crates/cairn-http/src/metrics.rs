//! Metrics of both servers in OpenMetrics text (`GET /metrics`), with
//! `prometheus-client`'s explicit registry (no globals: parallel tests stay
//! apart): request latency as a histogram by route, method and status,
//! plus what each server registers of its own (the hub's log, verdicts,
//! review queues and fleet; the edge's queue). Liveness (`/healthz`) and
//! readiness (`/readyz`) answer beside it.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The media type of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's pattern (`/v1/records/{collection}`), or `unmatched`.
    pub route: String,
    /// The method.
    pub method: String,
    /// The answer's status code.
    pub status: String,
}

/// A server's registry and its request histogram.
pub struct Metrics {
    registry: Registry,
    requests: Family<RouteLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new(|_| {})
    }
}

impl Metrics {
    /// A registry with the request histogram and whatever `register` adds.
    pub fn new(register: impl FnOnce(&mut Registry)) -> Metrics {
        let mut registry = Registry::default();
        // From 0.5 ms to about 16 s.
        let requests = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "cairn_http_request_duration_seconds",
            "Time to answer a request, by route, method and status",
            requests.clone(),
        );
        register(&mut registry);
        Metrics { registry, requests }
    }

    /// Notes one answered request.
    pub fn observe(&self, labels: RouteLabels, seconds: f64) {
        self.requests.get_or_create(&labels).observe(seconds);
    }

    /// The registry as OpenMetrics text.
    pub fn encode(&self) -> Response {
        let mut text = String::new();
        match prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
}

/// Middleware: times every request into `metrics`.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics.observe(
        RouteLabels {
            route,
            method,
            status: response.status().as_u16().to_string(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /healthz`: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "alive"}))
}
