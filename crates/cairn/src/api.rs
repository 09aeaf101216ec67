//! The edge node's localhost HTTP API, so an app in any language can write
//! and read while the network is down.
//!
//! `app(state)` builds the router (testable in-process); `run(listener,
//! store, shutdown)` serves it. Every error is one JSON shape,
//! `{"error": {"status", "code", "message", "violations": [{"field", "rule",
//! "message", "index"?}]}}`, produced by [`AppError`] alone.

use crate::input::{self, BODY_BYTES_MAX};
use crate::server::{BodyBudget, BoundedBody, ServeLimits, read_body};
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cairn_core::pack::Violation;
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
}

/// The edge's bounds on its clients: local apps, but not trusted to be
/// well behaved.
pub const EDGE_LIMITS: ServeLimits = ServeLimits {
    connections_max: 256,
    read_timeout: std::time::Duration::from_secs(20),
    body_budget_bytes: 64 * 1024 * 1024,
};

/// How a server's handlers read request bodies: within the server's budget
/// and deadline.
#[derive(Clone, Debug)]
pub struct Bodies {
    /// Request-body bytes the server may hold at once.
    pub budget: BodyBudget,
    /// How long a body may stall.
    pub read_timeout: std::time::Duration,
}

impl Bodies {
    /// Bodies read within `limits`.
    pub fn new(limits: &ServeLimits) -> Bodies {
        Bodies {
            budget: BodyBudget::new(limits.body_budget_bytes),
            read_timeout: limits.read_timeout,
        }
    }

    /// Holds `bytes` more of the budget (a body decompressed), or 503.
    pub(crate) async fn reserve(
        &self,
        bytes: usize,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        self.budget.reserve(bytes).await
    }

    /// Reads a body of at most `limit` bytes (see [`read_body`]).
    pub(crate) async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<BoundedBody, AppError> {
        read_body(headers, body, limit, &self.budget, self.read_timeout).await
    }
}

/// Every error the API returns.
#[derive(Debug)]
pub enum AppError {
    /// The client sent something unusable (4xx), with the rules it broke.
    Client {
        /// HTTP status.
        status: StatusCode,
        /// Stable code (`invalid`, `malformed`, `not_found`, ...).
        code: &'static str,
        /// Violations, with the batch index where there is one.
        violations: Vec<(Option<usize>, Violation)>,
    },
    /// The store refused for lack of space.
    StorageFull(String),
    /// The server is at a bound (bodies in memory); the client retries.
    Busy(String),
    /// A fault on our side; logged once, reported generically.
    Server(String),
}

impl AppError {
    pub(crate) fn client(status: StatusCode, code: &'static str, violation: Violation) -> AppError {
        AppError::Client {
            status,
            code,
            violations: vec![(None, violation)],
        }
    }

    /// A 400 for bad query parameters.
    pub(crate) fn bad_query(violations: Vec<Violation>) -> AppError {
        AppError::Client {
            status: StatusCode::BAD_REQUEST,
            code: "invalid",
            violations: violations
                .into_iter()
                .map(|violation| (None, violation))
                .collect(),
        }
    }

    pub(crate) fn invalid(index: Option<usize>, violations: Vec<Violation>) -> AppError {
        AppError::Client {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            violations: violations
                .into_iter()
                .map(|violation| (index, violation))
                .collect(),
        }
    }
}

impl From<WriteError> for AppError {
    fn from(error: WriteError) -> AppError {
        match error {
            WriteError::Invalid { index, violations } => AppError::invalid(Some(index), violations),
            WriteError::StorageFull(message) => AppError::StorageFull(message),
            WriteError::Closed => AppError::Server("the store is closed".into()),
            other => AppError::Server(other.to_string()),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> AppError {
        match error {
            error if error.is_disk_full() => AppError::StorageFull(error.to_string()),
            StoreError::UnknownCollection(name) => AppError::client(
                StatusCode::NOT_FOUND,
                "not_found",
                Violation::new(
                    "collection",
                    "unknown",
                    format!("{name:?} is not defined by an active pack"),
                ),
            ),
            other => AppError::Server(other.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, violations) = match self {
            AppError::Client {
                status,
                code,
                violations,
            } => {
                let message = violations
                    .iter()
                    .map(|(_, violation)| violation.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                (status, code, message, violations)
            }
            AppError::StorageFull(message) => (
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                message,
                Vec::new(),
            ),
            AppError::Busy(message) => {
                (StatusCode::SERVICE_UNAVAILABLE, "busy", message, Vec::new())
            }
            AppError::Server(message) => {
                // Logged once here; the client gets no internals.
                tracing::error!(error = %message, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the node's log".to_string(),
                    Vec::new(),
                )
            }
        };
        let violations: Vec<Value> = violations
            .into_iter()
            .map(|(index, violation)| {
                let mut entry = json!({"field": violation.field, "rule": violation.rule, "message": violation.message});
                if let Some(index) = index {
                    entry["index"] = json!(index);
                }
                entry
            })
            .collect();
        let body = json!({"error": {"status": status.as_u16(), "code": code, "message": message, "violations": violations}});
        (status, axum::Json(body)).into_response()
    }
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/status", get(status))
        .route("/v1/collections", get(collections))
        .route("/v1/records", post(write_one))
        .route("/v1/records/batch", post(write_batch))
        .route("/v1/records/{collection}", get(list))
        .route("/v1/records/{collection}/{id}", get(get_one))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by `Bodies::read`, which enforces the limits with our own errors.
        .layer(DefaultBodyLimit::disable())
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
    };
    crate::server::serve(listener, app(state), None, limits, shutdown).await
}

pub(crate) async fn method_not_allowed() -> AppError {
    AppError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        Violation::new("method", "route", "this endpoint does not take that method"),
    )
}

pub(crate) async fn not_found() -> AppError {
    AppError::client(
        StatusCode::NOT_FOUND,
        "not_found",
        Violation::new("path", "route", "no such endpoint (see /v1/...)"),
    )
}

/// The media type of a request, lowercased, without parameters.
pub(crate) fn media_type(headers: &HeaderMap) -> Option<String> {
    headers.get(header::CONTENT_TYPE).map(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

/// The request's content coding, lowercased (`None` for identity). Codings
/// other than `accepted` (and identity) are refused with 415.
pub(crate) fn content_coding(
    headers: &HeaderMap,
    accepted: &[&str],
) -> Result<Option<String>, AppError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(None);
    };
    let coding = value.to_str().unwrap_or("?").trim().to_ascii_lowercase();
    if coding == "identity" {
        return Ok(None);
    }
    if accepted.contains(&coding.as_str()) {
        return Ok(Some(coding));
    }
    Err(AppError::client(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        Violation::new(
            "content-encoding",
            "coding",
            if accepted.is_empty() {
                format!("{coding:?}: this body is taken uncompressed (identity)")
            } else {
                format!("{coding:?} is not {} or identity", accepted.join(", "))
            },
        ),
    ))
}

/// A JSON body, parsed; its bytes count against the server's budget for as
/// long as it is held.
pub(crate) struct JsonBody {
    /// The document.
    pub value: Value,
    _body: BoundedBody,
}

/// Reads a JSON body of at most `limit` bytes: content type, coding, size,
/// UTF-8, syntax and duplicate keys, each with its own error.
pub(crate) async fn body_json(
    bodies: &Bodies,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<JsonBody, AppError> {
    match media_type(headers) {
        Some(media) if media == "application/json" => {}
        other => {
            return Err(AppError::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Violation::new(
                    "content-type",
                    "media_type",
                    match other {
                        Some(media) => format!("{media:?} is not application/json"),
                        None => "required: application/json".to_string(),
                    },
                ),
            ));
        }
    }
    content_coding(headers, &[])?;
    let bytes = bodies.read(headers, body, limit).await?;
    let value = input::parse_json(&bytes, "body").map_err(|violation| {
        let status = if violation.rule == "max_bytes" {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        AppError::client(status, "malformed", violation)
    })?;
    Ok(JsonBody {
        value,
        _body: bytes,
    })
}

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

async fn status(State(state): State<AppState>) -> Result<axum::Json<Value>, AppError> {
    let store = state.store.clone();
    let status = blocking(move || store.status(now_ms())).await?;
    Ok(axum::Json(json!(status)))
}

async fn collections(State(state): State<AppState>) -> axum::Json<Value> {
    let catalog = state.store.catalog();
    let list: Vec<Value> = catalog
        .collections
        .values()
        .map(|collection| {
            let fields: BTreeMap<&String, Value> = collection
                .fields
                .iter()
                .map(|(name, field)| {
                    (
                        name,
                        json!({"required": field.required, "sensitive": field.sensitive}),
                    )
                })
                .collect();
            json!({
                "name": collection.name,
                "pack": collection.pack,
                "kind": collection.kind.name(),
                "stream": collection.stream,
                "scope": collection.scope,
                "description": collection.description,
                "fields": fields,
            })
        })
        .collect();
    let packs: Vec<Value> = catalog
        .packs
        .iter()
        .map(|pack| json!({"name": pack.name, "version": pack.version, "source_hash": pack.source_hash.to_hex()}))
        .collect();
    axum::Json(json!({"packs": packs, "collections": list}))
}

async fn write_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = body_json(&state.bodies, &headers, body, BODY_BYTES_MAX).await?;
    let request = input::write_request(state.store.catalog(), &body.value, 0)
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

async fn write_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = body_json(&state.bodies, &headers, body, BODY_BYTES_MAX).await?;
    let requests = input::batch_request(state.store.catalog(), &body.value)
        .map_err(|(index, violations)| AppError::invalid(Some(index), violations))?;
    let receipts = state.store.write_batch_async(requests).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"receipts": receipts})),
    )
        .into_response())
}

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
