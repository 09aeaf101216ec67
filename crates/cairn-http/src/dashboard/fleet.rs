//! The fleet page: each node's online state, last report and push, lag,
//! queue per stream, breaker, clock offset and alerts, as nodes report them
//! after each sync round; each legacy client's last request.

use super::{Staff, age, escape, staff};
use crate::error::AppError;
use crate::hub::{HubState, blocking};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::BTreeSet;

/// `GET /dashboard`.
pub(super) async fn page(State(state): State<HubState>, headers: HeaderMap) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let reading = state.clone();
    match blocking(move || {
        crate::hub::observe::take_up_shared(&reading)?;
        reading
            .hub
            .status()
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await
    {
        Ok(status) => render(&state, &who, &status).into_response(),
        Err(error) => super::fault(error),
    }
}

/// The page, from the hub's status and the nodes' reports.
pub(crate) fn render(
    state: &HubState,
    who: &Staff,
    status: &cairn_hub::status::HubStatus,
) -> axum::response::Html<String> {
    let now = state.hub.clock().now_ms();
    let fleet = &state.observed.fleet;
    let reports = fleet.reports();
    let nodes: BTreeSet<&String> = status.clocks.keys().chain(reports.keys()).collect();
    let mut rows = String::new();
    for node in nodes {
        let report = reports.get(node);
        let reported = report.map(|report| &report.status);
        let seen = report.map(|report| now.saturating_sub(report.received_ms));
        let online = report.is_some_and(|report| {
            report.status["sync"]["online"].as_bool().unwrap_or(false)
                && now.saturating_sub(report.received_ms) <= fleet.offline_after_ms
        });
        let queue: Vec<String> = reported
            .and_then(|status| status["streams"].as_array())
            .into_iter()
            .flatten()
            .map(|stream| {
                format!(
                    "{} {}",
                    stream["stream"].as_str().unwrap_or("?"),
                    stream["pending"]
                )
            })
            .collect();
        let text = |value: Option<&Value>| {
            value.map_or("-".to_string(), |value| {
                value.to_string().trim_matches('"').to_string()
            })
        };
        let alerts: Vec<String> = reported
            .and_then(|status| status["alerts"].as_array())
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(escape)
            .collect();
        let clock = status.clocks.get(node);
        rows.push_str(&format!(
            "<tr data-node=\"{node}\"><td>{node}</td><td class=\"{state}\">{state}</td><td>{seen}</td><td>{pushed}</td>\
             <td>{lag}</td><td>{queue}</td><td>{breaker}</td><td>{offset}</td><td>{alerts}</td></tr>\n",
            node = escape(node),
            state = if online { "online" } else { "offline" },
            seen = seen.map_or("never".to_string(), |ms| format!("{} ago", age(ms))),
            pushed = clock.map_or("never".to_string(), |clock| format!("{} ago", age(now.saturating_sub(clock.pushed_ms)))),
            lag = reported
                .and_then(|status| status["oldest_pending_age_ms"].as_u64())
                .map_or("none".to_string(), age),
            queue = escape(&queue.join(", ")),
            breaker = escape(&text(reported.map(|status| &status["sync"]["breaker"]))),
            offset = clock.map_or("-".to_string(), |clock| format!("{} ms", clock.clock_offset_ms)),
            alerts = alerts.join("<br>"),
        ));
    }
    let legacy = fleet.legacy_requests();
    let mut clients = String::new();
    for (name, kind) in state.legacy.clients() {
        let last = legacy.get(&name).map_or("never".to_string(), |ms| {
            format!("{} ago", age(now.saturating_sub(*ms)))
        });
        clients.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&name),
            escape(kind.name()),
            last
        ));
    }
    let body = format!(
        "<p>Log size {size}; {nodes} nodes enrolled; a node silent for {offline} s shows offline.</p>\
         <table id=\"fleet\"><tr><th>Node</th><th>State</th><th>Last report</th><th>Last push</th><th>Lag</th>\
         <th>Queue</th><th>Breaker</th><th>Clock offset</th><th>Alerts</th></tr>\n{rows}</table>\
         <h2>Clients that cannot change</h2><table><tr><th>Client</th><th>Kind</th><th>Last request</th></tr>\n{clients}</table>",
        size = status.log_size,
        nodes = status.nodes,
        offline = fleet.offline_after_ms / 1000,
    );
    super::page("Fleet", Some(who), &body)
}
