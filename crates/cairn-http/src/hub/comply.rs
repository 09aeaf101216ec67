//! The hub's compliance over HTTP: a node learns its ops' states
//! (`GET /v1/states`), staff read the review queue (`GET /v1/reviews`,
//! `GET /v1/reviews/{id}`: operators, auditors and admins) and resolve
//! items (`POST /v1/reviews/{id}/resolve`: operators and admins only).

use super::{HubState, authenticate, authorize, blocking, resolver_body};
use crate::error::AppError;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use cairn_core::pack::Violation;
use cairn_hub::comply::ReviewFilter;
use cairn_hub::comply::acts::{REVIEWS_MAX, ReviewError};
use cairn_hub::comply::view;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `GET /v1/states?stream=S&after=N`: what the rule packs made of the
/// caller's own ops of stream `S` after seq `N`.
#[utoipa::path(get, path = "/v1/states", tag = "hub", params(("stream" = Option<String>, Query, description = "Stream"), ("after" = Option<u64>, Query, description = "After this seq")), responses((status = 200, description = "Verdicts on the node's ops", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn states(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let mut violations = Vec::new();
    let (mut stream, mut after) = (None, 0u64);
    for (name, value) in &params {
        match name.as_str() {
            "stream" => match cairn_core::names::check_name(value) {
                Ok(()) => stream = Some(value.clone()),
                Err(message) => violations.push(Violation::new("stream", "format", message)),
            },
            "after" => match value.parse::<u64>() {
                Ok(parsed) => after = parsed,
                Err(_) => violations.push(Violation::new(
                    "after",
                    "type",
                    "must be a seq (an unsigned integer)",
                )),
            },
            other => violations.push(Violation::new(
                other,
                "unknown_parameter",
                "expected stream or after",
            )),
        }
    }
    if stream.is_none() && violations.is_empty() {
        violations.push(Violation::new("stream", "required", "name the stream"));
    }
    let Some(stream) = stream.filter(|_| violations.is_empty()) else {
        return Err(AppError::bad_query(violations));
    };
    let (hub, tokens) = (state.hub.clone(), state.tokens.clone());
    let page = blocking(move || {
        let node = authenticate(&hub, &tokens, &headers)?;
        let states = hub
            .hub()
            .stream_states(&node, &stream, after)
            .map_err(|error| AppError::Server(error.to_string()))?;
        Ok(view::states_page(&stream, &states))
    })
    .await?;
    Ok(axum::Json(json!(page)))
}

/// `GET /v1/reviews?open=true&kind=K&after=ID&limit=N`: review items by id.
#[utoipa::path(get, path = "/v1/reviews", tag = "hub", params(("open" = Option<bool>, Query, description = "Only open ones"), ("kind" = Option<String>, Query, description = "Only this kind"), ("after" = Option<u64>, Query, description = "After this id"), ("limit" = Option<usize>, Query, description = "Most items")), responses((status = 200, description = "Review items", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn reviews(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let mut violations = Vec::new();
    let mut filter = ReviewFilter {
        limit: 100,
        ..ReviewFilter::default()
    };
    for (name, value) in &params {
        match name.as_str() {
            "open" => match value.as_str() {
                "true" => filter.open_only = true,
                "false" => filter.open_only = false,
                _ => violations.push(Violation::new("open", "type", "must be true or false")),
            },
            "kind" => match value.as_str() {
                "rejection" | "quarantine" | "conflict" | "missing_follow_up"
                | "missed_deadline" => {
                    filter.kind = Some(value.clone());
                }
                _ => violations.push(Violation::new(
                    "kind",
                    "enum",
                    "must be rejection, quarantine, conflict, missing_follow_up or missed_deadline",
                )),
            },
            "after" => match value.parse::<u64>() {
                Ok(id) => filter.after_id = id,
                Err(_) => violations.push(Violation::new(
                    "after",
                    "type",
                    "must be a review id (an unsigned integer)",
                )),
            },
            "limit" => match value.parse::<usize>() {
                Ok(limit) if (1..=REVIEWS_MAX).contains(&limit) => filter.limit = limit,
                _ => violations.push(Violation::new(
                    "limit",
                    "range",
                    format!("must be an integer from 1 to {REVIEWS_MAX}"),
                )),
            },
            other => violations.push(Violation::new(
                other,
                "unknown_parameter",
                "expected open, kind, after or limit",
            )),
        }
    }
    if !violations.is_empty() {
        return Err(AppError::bad_query(violations));
    }
    let (hub, tokens) = (state.hub.clone(), state.tokens.clone());
    let items = blocking(move || {
        authorize(&hub, &tokens, &headers, &cairn_hub_sqlite::STAFF_ROLES)?;
        hub.hub()
            .reviews(&filter)
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?;
    let items: Vec<Value> = items.iter().map(view::review_json).collect();
    Ok(axum::Json(json!({ "reviews": items })))
}

fn review_id(text: &str) -> Result<u64, AppError> {
    text.parse().map_err(|_| {
        AppError::bad_query(vec![Violation::new(
            "id",
            "type",
            "must be a review id (an unsigned integer)",
        )])
    })
}

fn unknown(id: u64) -> AppError {
    AppError::client(
        StatusCode::NOT_FOUND,
        "not_found",
        Violation::new("id", "exists", format!("no review item {id}")),
    )
}

/// `GET /v1/reviews/{id}`: one item, with the logged op and the
/// quarantined material side by side, sensitive fields redacted.
#[utoipa::path(get, path = "/v1/reviews/{id}", tag = "hub", params(("id" = u64, Path, description = "Review item")), responses((status = 200, description = "One review item with what it is about", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn review(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, AppError> {
    let id = review_id(&id)?;
    let (hub, tokens) = (state.hub.clone(), state.tokens.clone());
    let detail = blocking(move || {
        authorize(&hub, &tokens, &headers, &cairn_hub_sqlite::STAFF_ROLES)?;
        let detail = hub
            .hub()
            .review(id)
            .map_err(|error| AppError::Server(error.to_string()))?
            .ok_or_else(|| unknown(id))?;
        Ok(view::detail_json(&detail, &hub.hub().packs()))
    })
    .await?;
    Ok(axum::Json(detail))
}

/// `POST /v1/reviews/{id}/resolve` with `{"decision": D, "note": N}`, or
/// for a conflict `{"value": V, "note": N}`: an operator or admin closes the
/// item; the act goes to the audit stream (and a conflict's value to every
/// replica, as an op of the hub).
#[utoipa::path(post, path = "/v1/reviews/{id}/resolve", tag = "hub", params(("id" = u64, Path, description = "Review item")), request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 200, description = "Closed, with the act that records it", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn resolve(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<axum::Json<Value>, AppError> {
    let id = review_id(&id)?;
    let (by, body) = resolver_body(&state, &headers, body).await?;
    let mut violations = Vec::new();
    let mut text = |name: &'static str| -> String {
        match body.value.get(name).and_then(Value::as_str) {
            Some(text) => text.to_string(),
            None => {
                violations.push(Violation::new(name, "required", "must be a string"));
                String::new()
            }
        }
    };
    // A conflict is resolved by the value that stands; anything else by a
    // decision.
    let value = body.value.get("value").cloned();
    let decision = match value {
        Some(_) => String::new(),
        None => text("decision"),
    };
    let note = text("note");
    for name in body
        .value
        .as_object()
        .into_iter()
        .flat_map(|object| object.keys())
    {
        if !["decision", "note", "value"].contains(&name.as_str()) {
            violations.push(Violation::new(
                name.clone(),
                "unknown_field",
                "expected decision (or, for a conflict, value) and note",
            ));
        }
    }
    if !violations.is_empty() {
        return Err(AppError::invalid(None, violations));
    }
    let hub = state.hub.clone();
    let closure = blocking(move || {
        let resolved = match &value {
            Some(value) => hub.hub().resolve_conflict(id, value, &note, &by),
            None => hub.hub().resolve_review(id, &decision, &note, &by),
        };
        resolved.map_err(|error| match error {
            ReviewError::Unknown(id) => unknown(id),
            ReviewError::Closed(_) => AppError::client(
                StatusCode::CONFLICT,
                "conflict",
                Violation::new("id", "open", error.to_string()),
            ),
            ReviewError::Invalid(field, message) => {
                AppError::invalid(None, vec![Violation::new(field, "value", message)])
            }
            ReviewError::Store(error) => AppError::Server(error.to_string()),
        })
    })
    .await?;
    state.observed.resolved();
    tracing::info!(review = id, by = %closure.by, decision = %closure.decision, compliance_boundary = "review", "review item resolved");
    Ok(axum::Json(json!({ "id": id, "closure": closure })))
}
