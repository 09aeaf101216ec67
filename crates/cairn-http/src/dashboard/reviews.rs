//! The review queues: rejections, quarantines (the stored material beside
//! the op the hub logged), conflicts (both values), missing verifications
//! and missed deadlines, with resolve actions for operators and admins
//! (an auditor sees everything and no action; a resolve they post is 403).

use super::{escape, page, staff};
use crate::error::AppError;
use crate::hub::{HubState, blocking};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use cairn_hub::comply::acts::ReviewError;
use cairn_hub::comply::{ReviewFilter, view};
use serde_json::Value;
use std::collections::BTreeMap;

const KINDS: [&str; 5] = [
    "rejection",
    "quarantine",
    "conflict",
    "missing_follow_up",
    "missed_deadline",
];

/// `GET /dashboard/reviews?kind=&open=`.
pub(super) async fn list(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let kind = query
        .get("kind")
        .filter(|kind| KINDS.contains(&kind.as_str()))
        .cloned();
    let open_only = query.get("open").is_some_and(|open| open == "true");
    let filter = ReviewFilter {
        open_only,
        kind: kind.clone(),
        after_id: 0,
        limit: 500,
    };
    let hub = state.hub.clone();
    let items = match blocking(move || {
        hub.hub()
            .reviews(&filter)
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await
    {
        Ok(items) => items,
        Err(error) => return super::fault(error),
    };
    let mut links = String::from(
        "<p>Show: <a href=\"/dashboard/reviews?open=true\">open</a> <a href=\"/dashboard/reviews\">all</a>",
    );
    for kind in KINDS {
        links.push_str(&format!(
            " <a href=\"/dashboard/reviews?open=true&amp;kind={kind}\">{kind}</a>"
        ));
    }
    links.push_str("</p>");
    let mut rows = String::new();
    for item in &items {
        let row = &item.row;
        rows.push_str(&format!(
            "<tr><td><a href=\"/dashboard/reviews/{id}\">{id}</a></td><td>{kind}</td><td>{state}</td><td>{node}</td>\
             <td>{collection}</td><td>{rule}</td><td>{message}</td></tr>\n",
            id = item.id,
            kind = escape(&row.kind),
            state = if item.closure.is_some() { "closed" } else { "open" },
            node = escape(&row.node),
            collection = escape(&row.collection),
            rule = escape(&row.rule),
            message = escape(&row.message),
        ));
    }
    let body = format!(
        "{links}<table id=\"reviews\"><tr><th>Id</th><th>Kind</th><th>State</th><th>Node</th><th>Collection</th>\
         <th>Rule</th><th>What</th></tr>\n{rows}</table>"
    );
    page("Review queue", Some(&who), &body).into_response()
}

fn pretty(value: &Value) -> String {
    escape(&serde_json::to_string_pretty(value).unwrap_or_default())
}

/// `GET /dashboard/reviews/{id}`.
pub(super) async fn detail(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let hub = state.hub.clone();
    let found = blocking(move || {
        let detail = hub
            .hub()
            .review(id)
            .map_err(|error| AppError::Server(error.to_string()))?;
        Ok(detail.map(|detail| view::detail_json(&detail, &hub.hub().packs())))
    })
    .await;
    let item = match found {
        Ok(Some(item)) => item,
        Ok(None) => {
            return (
                StatusCode::NOT_FOUND,
                page(
                    "No such item",
                    Some(&who),
                    "<p>No review item has this id.</p>",
                ),
            )
                .into_response();
        }
        Err(error) => return super::fault(error),
    };
    let mut body = format!(
        "<table><tr><td>Kind</td><td id=\"kind\">{}</td></tr><tr><td>State</td><td id=\"state\">{}</td></tr>\
         <tr><td>Node</td><td>{}</td></tr><tr><td>Collection</td><td>{}</td></tr><tr><td>Rule</td><td>{}</td></tr>\
         <tr><td>What</td><td id=\"message\">{}</td></tr><tr><td>Closed</td><td id=\"closure\">{}</td></tr></table>",
        escape(item["kind"].as_str().unwrap_or_default()),
        escape(item["state"].as_str().unwrap_or_default()),
        escape(item["node"].as_str().unwrap_or_default()),
        escape(item["collection"].as_str().unwrap_or_default()),
        escape(item["rule"].as_str().unwrap_or_default()),
        escape(item["message"].as_str().unwrap_or_default()),
        if item["closure"].is_null() {
            "no".to_string()
        } else {
            pretty(&item["closure"])
        },
    );
    body.push_str(&format!(
        "<div class=\"side\"><div><h2>Logged</h2><pre id=\"logged\">{}</pre></div><div><h2>Quarantined</h2><pre id=\"quarantined\">{}</pre></div></div>",
        pretty(&item["logged"]),
        pretty(&item["quarantined"])
    ));
    if item["state"] == "open" && who.resolves() {
        body.push_str(&resolve_form(id, item["kind"] == "conflict"));
    } else if item["state"] == "open" {
        body.push_str(
            "<p id=\"read-only\">Your role reads the queue; operators and admins resolve it.</p>",
        );
    }
    page(&format!("Review item {id}"), Some(&who), &body).into_response()
}

fn resolve_form(id: u64, conflict: bool) -> String {
    let choice = if conflict {
        "<label>The value that stands (JSON) <input name=\"value\" size=\"40\"></label>".to_string()
    } else {
        let options: String = cairn_hub::comply::acts::DECISIONS
            .iter()
            .map(|decision| format!("<option>{decision}</option>"))
            .collect();
        format!("<label>Decision <select name=\"decision\">{options}</select></label>")
    };
    format!(
        "<h2>Resolve</h2><form method=\"post\" action=\"/dashboard/reviews/{id}/resolve\">{choice} \
         <label>Why <input name=\"note\" size=\"50\"></label> <button id=\"resolve\">Resolve</button></form>"
    )
}

#[derive(serde::Deserialize)]
pub(super) struct Resolution {
    decision: Option<String>,
    value: Option<String>,
    note: String,
}

/// `POST /dashboard/reviews/{id}/resolve`.
pub(super) async fn resolve(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<Resolution>,
) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    if !who.resolves() {
        let body = "<p>Your role may not resolve review items.</p>";
        return (StatusCode::FORBIDDEN, page("Not allowed", Some(&who), body)).into_response();
    }
    let value = match form
        .value
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
    {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(value) => Some(value),
            // Plain text stands for itself.
            Err(_) => Some(Value::String(text.to_string())),
        },
        None => None,
    };
    let (hub, by) = (state.hub.clone(), who.name.clone());
    let decision = form.decision.unwrap_or_default();
    let resolved = blocking(move || {
        let result = match &value {
            Some(value) => hub.hub().resolve_conflict(id, value, &form.note, &by),
            None => hub.hub().resolve_review(id, &decision, &form.note, &by),
        };
        Ok(result)
    })
    .await;
    match resolved {
        Ok(Ok(_)) => {
            state.observed.resolved();
            Redirect::to(&format!("/dashboard/reviews/{id}")).into_response()
        }
        Ok(Err(ReviewError::Store(error))) => super::fault(AppError::Server(error.to_string())),
        Ok(Err(refused)) => {
            let body = format!(
                "<p class=\"offline\">{}</p><p><a href=\"/dashboard/reviews/{id}\">Back</a></p>",
                escape(&refused.to_string())
            );
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                page("Not resolved", Some(&who), &body),
            )
                .into_response()
        }
        Err(error) => super::fault(error),
    }
}
