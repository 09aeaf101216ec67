//! The edge node's localhost HTTP API, so an app in any language can write
//! and read while the network is down.
//!
//! `app(state)` builds the router (testable in-process); `run(listener,
//! store, shutdown)` serves it. Every error is one JSON shape, produced by
//! [`AppError`] alone (`crate::error`).

use crate::body::{Bodies, body_json};
use crate::error::{AppError, method_not_allowed, not_found};
use crate::server::ServeLimits;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_core::pack::Violation;
use cairn_edge::input::{self, BODY_BYTES_MAX};
use cairn_edge::{EdgeStore, ListQuery, StoreError, WriteError};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The node's store.
    pub store: Arc<EdgeStore>,
    /// How request bodies are read.
    pub bodies: Bodies,
    /// Metrics.
    pub observed: Arc<crate::edge_observe::EdgeObserved>,
}

/// The edge's bounds on its clients: local apps, but not trusted to be
/// well behaved.
pub const EDGE_LIMITS: ServeLimits = ServeLimits {
    connections_max: 256,
    read_timeout: std::time::Duration::from_secs(20),
    body_budget_bytes: 64 * 1024 * 1024,
};

/// Builds the router.
pub fn app(state: AppState) -> Router {
    let metrics = state.observed.metrics.clone();
    Router::new()
        .route("/v1/health", get(health))
        .route("/", get(crate::edge_observe::status_page))
        .route("/openapi.json", get(crate::openapi::edge_document))
        .route("/healthz", get(crate::metrics::healthz))
        .route("/readyz", get(crate::edge_observe::readyz))
        .route("/metrics", get(crate::edge_observe::metrics))
        .route("/v1/status", get(status))
        .route("/v1/collections", get(collections))
        .route("/v1/artifacts", get(artifacts))
        .route("/v1/artifacts/{name}", get(artifact))
        .route("/v1/records", post(write_one))
        .route("/v1/records/batch", post(write_batch))
        .route("/v1/records/{collection}", get(list))
        .route("/v1/records/{collection}/{id}", get(get_one))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by `Bodies::read`, which enforces the limits with our own errors.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    store: Arc<EdgeStore>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = AppState {
        store,
        bodies: Bodies::new(&limits),
        observed: Default::default(),
    };
    crate::server::serve(listener, app(state), None, limits, shutdown).await
}

#[utoipa::path(get, path = "/v1/health", tag = "edge", responses((status = 200, description = "Alive", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn health(State(state): State<AppState>) -> axum::Json<Value> {
    axum::Json(json!({"status": "ok", "node": state.store.settings().node}))
}

use cairn_edge::clock::now_ms;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| AppError::Server(format!("read task failed: {error}")))?
        .map_err(AppError::from)
}

#[utoipa::path(get, path = "/v1/status", tag = "edge", responses((status = 200, description = "Queue, storage, link, alerts", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn status(State(state): State<AppState>) -> Result<axum::Json<Value>, AppError> {
    let store = state.store.clone();
    let status = blocking(move || store.status(now_ms())).await?;
    Ok(axum::Json(json!(status)))
}

/// `GET /v1/artifacts`: every artifact the node holds or was offered.
#[utoipa::path(get, path = "/v1/artifacts", tag = "edge", responses((status = 200, description = "Artifacts held or offered", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn artifacts(State(state): State<AppState>) -> Result<axum::Json<Value>, AppError> {
    let store = state.store.clone();
    let views = blocking(move || store.artifact_views()).await?;
    Ok(axum::Json(json!({"artifacts": views})))
}

/// `GET /v1/artifacts/{name}`: one artifact, with the active file's path.
#[utoipa::path(get, path = "/v1/artifacts/{name}", tag = "edge", params(("name" = String, Path, description = "Artifact")), responses((status = 200, description = "One artifact and the active file's path", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn artifact(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<axum::Json<Value>, AppError> {
    let store = state.store.clone();
    let lookup = name.clone();
    blocking(move || store.artifact_view(&lookup))
        .await?
        .map(axum::Json)
        .ok_or_else(|| {
            AppError::client(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                cairn_core::pack::Violation::new(
                    "name",
                    "unknown",
                    format!("no artifact {name:?}"),
                ),
            )
        })
}

/// The active packs and every collection with its fields' rules (type,
/// format, allowed values, range, length, normalizer, merge rule,
/// sensitivity), so an app can discover what to send.
#[utoipa::path(get, path = "/v1/collections", tag = "edge", responses((status = 200, description = "Active packs and every collection", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn collections(State(state): State<AppState>) -> axum::Json<Value> {
    let catalog = state.store.catalog();
    let list: Vec<Value> = catalog
        .collections
        .values()
        .map(cairn_core::pack::Collection::describe)
        .collect();
    let packs: Vec<Value> = catalog
        .packs
        .iter()
        .map(|pack| json!({"name": pack.name, "version": pack.version, "source_hash": pack.source_hash.to_hex()}))
        .collect();
    axum::Json(json!({"packs": packs, "collections": list}))
}

#[utoipa::path(post, path = "/v1/records", tag = "edge", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 201, description = "The receipt of the write", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn write_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = body_json(&state.bodies, &headers, body, BODY_BYTES_MAX).await?;
    let request = input::write_request(&state.store.catalog(), &body.value, 0)
        .map_err(|(_, violations)| AppError::invalid(None, violations))?;
    let receipt = state
        .store
        .write_async(request)
        .await
        .map_err(|error| match error {
            WriteError::Invalid { violations, .. } => AppError::invalid(None, violations),
            other => other.into(),
        })?;
    Ok((StatusCode::CREATED, axum::Json(json!(receipt))).into_response())
}

#[utoipa::path(post, path = "/v1/records/batch", tag = "edge", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 201, description = "The receipts, all or nothing", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn write_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = body_json(&state.bodies, &headers, body, BODY_BYTES_MAX).await?;
    let requests = input::batch_request(&state.store.catalog(), &body.value)
        .map_err(|(index, violations)| AppError::invalid(Some(index), violations))?;
    let receipts = state.store.write_batch_async(requests).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"receipts": receipts})),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/records/{collection}/{id}", tag = "edge", params(("collection" = String, Path, description = "Collection"), ("id" = String, Path, description = "Record id or key")), responses((status = 200, description = "One record", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let store = state.store.clone();
    let lookup = id.clone();
    match blocking(move || store.get(&collection, &lookup)).await? {
        Some(record) => Ok(axum::Json(json!(record)).into_response()),
        None => Err(AppError::client(
            StatusCode::NOT_FOUND,
            "not_found",
            Violation::new("id", "exists", format!("no record {id:?}")),
        )),
    }
}

#[utoipa::path(get, path = "/v1/records/{collection}", tag = "edge", params(("collection" = String, Path, description = "Collection"), ("scope" = Option<String>, Query, description = "label=value,..."), ("after" = Option<String>, Query, description = "Cursor"), ("limit" = Option<usize>, Query, description = "Most records"), ("deleted" = Option<bool>, Query, description = "Include deleted")), responses((status = 200, description = "Records and a next cursor", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    Path(collection): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let mut violations = Vec::new();
    let mut query = ListQuery {
        collection,
        limit: 100,
        ..ListQuery::default()
    };
    for (name, value) in &params {
        match name.as_str() {
            "scope" => match input::parse_scope_filter(value) {
                Ok(scope) => query.scope = scope,
                Err(violation) => violations.push(violation),
            },
            "after" => {
                let kind = state
                    .store
                    .catalog()
                    .collections
                    .get(&query.collection)
                    .map(|collection| collection.kind);
                match input::check_cursor(kind, value) {
                    Ok(()) => query.after = Some(value.clone()),
                    Err(violation) => violations.push(violation),
                }
            }
            "limit" => match value.parse::<usize>() {
                Ok(limit) if (1..=cairn_edge::limits::LIST_LIMIT_MAX).contains(&limit) => {
                    query.limit = limit
                }
                _ => violations.push(Violation::new(
                    "limit",
                    "range",
                    format!(
                        "must be an integer from 1 to {}",
                        cairn_edge::limits::LIST_LIMIT_MAX
                    ),
                )),
            },
            "deleted" => match value.as_str() {
                "true" => query.include_deleted = true,
                "false" => query.include_deleted = false,
                _ => violations.push(Violation::new("deleted", "type", "must be true or false")),
            },
            other => violations.push(Violation::new(
                other,
                "unknown_parameter",
                "expected scope, after, limit or deleted",
            )),
        }
    }
    if !violations.is_empty() {
        return Err(AppError::bad_query(violations));
    }
    let store = state.store.clone();
    let limit = query.limit;
    let records = blocking(move || store.list(&query)).await?;
    let next = (records.len() == limit).then(|| match records.last() {
        Some(cairn_edge::Record::Ledger(record)) => record.id.clone(),
        Some(cairn_edge::Record::Entity(record)) => record.key.clone(),
        None => String::new(),
    });
    Ok(axum::Json(json!({"records": records, "next": next})))
}
