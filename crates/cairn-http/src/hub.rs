//! The hub's HTTP API: push (JSON or postcard+zstd bodies, decoded by
//! `cairn_hub::ingest`, queued for `cairn_hub::group`), pull pages,
//! snapshots, a node's own ops, enrollment, resolution, the signed log
//! checkpoint and consistency proofs, health and status.
//!
//! A push's answer (`cairn_proto::PushResponse`) lists a verdict per op
//! and, for the accepted ops, one range receipt against the signed log
//! checkpoint it returns.

use crate::body::{Bodies, body_json, content_coding, media_type};
use crate::error::{AppError, method_not_allowed, not_found};
use crate::server::ServeLimits;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use cairn_core::pack::Violation;
use cairn_edge::input::BODY_BYTES_MAX;
use cairn_hub_sqlite::{
    HubStore, PULL_OPS_MAX, PUSH_OPS_MAX, PushError, PushRequest, ResolveError,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use cairn_proto::compress;
pub use cairn_proto::{BINARY_PUSH, PushWire, SERVER_TIMING, SERVER_TIMING_HUB};

/// Smallest answer worth compressing: below it, a zstd context on each side
/// costs more than the bytes it saves (a few packets at most).
const ANSWER_ZSTD_MIN_BYTES: usize = 4_096;

/// Answers with JSON, zstd-compressed when the client accepts it and the
/// answer is worth it.
fn json_answer(headers: &HeaderMap, value: &impl serde::Serialize) -> Response {
    let accepts_zstd = headers
        .get(axum::http::header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|coding| coding.trim().split(';').next() == Some("zstd"))
        });
    let body = serde_json::to_vec(value).unwrap_or_default();
    if accepts_zstd
        && body.len() >= ANSWER_ZSTD_MIN_BYTES
        && let Ok(compressed) = compress(&body, 1)
    {
        return (
            [
                (axum::http::header::CONTENT_TYPE, "application/json"),
                (axum::http::header::CONTENT_ENCODING, "zstd"),
            ],
            compressed,
        )
            .into_response();
    }
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Shared state of the hub's handlers.
#[derive(Clone)]
pub struct HubState {
    /// The hub's store.
    pub hub: Arc<HubStore>,
    /// Where pushes wait for the hub's writer thread.
    pub pushes: PushQueue,
    /// Bearer tokens whose signature already verified.
    pub tokens: Arc<crate::tokens::Verified>,
    /// How request bodies are read.
    pub bodies: Bodies,
    /// The clients that cannot be changed, by their tokens.
    pub legacy: Arc<legacy::LegacyClients>,
    /// Metrics, and what nodes report of themselves.
    pub observed: Arc<observe::Observed>,
}

/// The hub's bounds on its clients: a fleet reconnecting at once fits, a
/// hostile client holds little.
pub const HUB_LIMITS: ServeLimits = ServeLimits {
    connections_max: 4_096,
    read_timeout: std::time::Duration::from_secs(20),
    body_budget_bytes: 256 * 1024 * 1024,
};

/// Largest body of an enrollment or a resolution, bytes: a few fields.
const SMALL_BODY_BYTES_MAX: usize = 16 * 1024;

pub use cairn_hub::group::PushQueue;

/// The HTTP answer to a refused push, pull or snapshot.
fn hub_error(error: PushError) -> AppError {
    match error {
        PushError::UnknownNode(node) => AppError::client(
            StatusCode::FORBIDDEN,
            "forbidden",
            Violation::new(
                "node",
                "enrolled",
                format!("{node:?} is not enrolled at this hub"),
            ),
        ),
        PushError::Invalid(message) => {
            AppError::invalid(None, vec![Violation::new("ops", "limits", message)])
        }
        PushError::Store(error) if error.is_disk_full() => {
            AppError::StorageFull(format!("the hub's {error}; nothing of the push was stored"))
        }
        error @ PushError::Gap { .. } => AppError::client(
            StatusCode::CONFLICT,
            "conflict",
            Violation::new("ops[0]", "contiguous", error.to_string()),
        ),
        other => AppError::Server(other.to_string()),
    }
}

/// Builds the hub router.
pub fn app(state: HubState) -> Router {
    let metrics = state.observed.metrics.clone();
    Router::new()
        .route("/v1/health", get(health))
        .route("/openapi.json", get(crate::openapi::hub_document))
        .route("/healthz", get(crate::metrics::healthz))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .route("/v1/node/status", post(observe::node_status))
        .route("/v1/status", get(status))
        .route("/v1/push", post(push))
        .route("/v1/pull", get(pull))
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/own", get(own))
        .route("/v1/enroll", post(admin::enroll))
        .route("/v1/resolve", post(admin::resolve))
        .route("/v1/states", get(comply::states))
        .route("/v1/reviews", get(comply::reviews))
        .route("/v1/reviews/{id}", get(comply::review))
        .route("/v1/reviews/{id}/resolve", post(comply::resolve))
        .route("/api/v1/transactions/sync", post(legacy::transactions_sync))
        .route("/api/v1/inventory/ping", get(legacy::inventory_ping))
        .route("/api/v1/mro/sync", post(legacy_mro::mro_sync))
        .route("/api/v1/mro/records", post(legacy_records::mro_records))
        .route(
            "/api/v1/mobile/sync/batch",
            post(legacy_mobile::mobile_batch),
        )
        .route(
            "/api/v1/mobile/equipment/building/{id}/updates",
            get(legacy_mobile::mobile_updates),
        )
        .route("/v1/artifacts/{sha256}/chunks", get(artifacts::chunk_list))
        .route(
            "/v1/artifacts/{sha256}/chunks/{index}",
            get(artifacts::chunk),
        )
        .merge(crate::dashboard::routes())
        .route("/v1/log/checkpoint", get(checkpoint))
        .route("/v1/log/consistency", get(consistency))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::map_response(with_hub_time))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Every answer says the hub's time, so that nodes whose clocks are off
/// can sign tokens at the hub's time and report how far off they are.
async fn with_hub_time(mut response: Response) -> Response {
    let now_ms = cairn_edge::clock::now_ms();
    if let Ok(value) = axum::http::HeaderValue::from_str(&now_ms.to_string()) {
        response
            .headers_mut()
            .insert(cairn_proto::HUB_TIME_HEADER, value);
    }
    response
}

/// How a serving hub behaves beyond its bounds.
#[derive(Clone, Copy, Debug)]
pub struct HubOptions {
    /// Run the compliance judge behind the pushes.
    pub judge: bool,
    /// A node whose last status report is older than this is offline, ms.
    pub offline_after_ms: u64,
}

/// Serves the hub on `listener` until `shutdown` completes, over TLS when
/// `tls` is given, within `limits`; with `judge`, the compliance judge runs
/// behind the pushes (without it, ops stay VALIDATED until a hub that
/// judges serves the store: benchmarks compare the two).
pub async fn run(
    listener: tokio::net::TcpListener,
    hub: Arc<HubStore>,
    tls: Option<Arc<rustls::ServerConfig>>,
    (limits, options): (ServeLimits, HubOptions),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let judge = options.judge;
    let pushes = PushQueue::start(hub.clone())?;
    // Stops when the server does (dropped at the end of this function).
    let judging: Arc<dyn cairn_hub::comply::worker::Judging> = hub.clone();
    let _judge = match judge {
        true => Some(cairn_hub::comply::worker::start(
            Arc::downgrade(&judging),
            pushes.activity(),
        )?),
        false => None,
    };
    drop(judging);
    let legacy = legacy::LegacyClients::load(hub.dir()).map_err(std::io::Error::other)?;
    let app = app(HubState {
        observed: Arc::new(observe::Observed::offline_after(options.offline_after_ms)),
        hub,
        pushes,
        tokens: Default::default(),
        bodies: Bodies::new(&limits),
        legacy: Arc::new(legacy),
    });
    crate::server::serve(listener, app, tls, limits, shutdown).await
}

#[utoipa::path(get, path = "/v1/health", tag = "hub", responses((status = 200, description = "Alive, with the log origin", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn health(State(state): State<HubState>) -> axum::Json<Value> {
    axum::Json(json!({
        "status": "ok",
        "origin": state.hub.origin(),
        "public_key": hex::encode(state.hub.public_key()),
        "encodings": ["json", BINARY_PUSH, "zstd"],
    }))
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| AppError::Server(format!("hub task failed: {error}")))?
}

/// `GET /v1/status`: nodes, streams, quarantine and alerts, for operators,
/// auditors and admins (it names every node).
#[utoipa::path(get, path = "/v1/status", tag = "hub", responses((status = 200, description = "Nodes, streams, quarantine, alerts, states", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
async fn status(
    State(state): State<HubState>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, AppError> {
    let (hub, tokens) = (state.hub.clone(), state.tokens.clone());
    let status = blocking(move || {
        authorize(&hub, &tokens, &headers, &cairn_hub_sqlite::STAFF_ROLES)?;
        hub.status()
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?;
    Ok(axum::Json(json!(status)))
}

#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "hub", responses((status = 200, description = "The signed log checkpoint (C2SP note)", body = String, content_type = "text/plain"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn checkpoint(State(state): State<HubState>) -> Result<Response, AppError> {
    let hub = state.hub.clone();
    let note = blocking(move || {
        hub.checkpoint()
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        note,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/log/consistency", tag = "hub", params(("from" = u64, Query, description = "Older log size"), ("to" = u64, Query, description = "Newer log size")), responses((status = 200, description = "An RFC 6962 consistency proof", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
async fn consistency(
    State(state): State<HubState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let size = |name: &'static str| -> Result<u64, AppError> {
        params
            .get(name)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| {
                AppError::client(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    Violation::new(name, "type", "must be a log size (an unsigned integer)"),
                )
            })
    };
    let (from, to) = (size("from")?, size("to")?);
    let hub = state.hub.clone();
    match blocking(move || {
        hub.consistency_proof(from, to)
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?
    {
        Some(proof) => Ok(axum::Json(json!(cairn_proto::ConsistencyAnswer {
            from,
            to,
            proof
        }))),
        None => Err(AppError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            Violation::new("to", "range", "sizes out of order or beyond the log"),
        )),
    }
}

/// Checks the bearer token: signed by an enrolled node's key, for this hub,
/// not expired, with the `node` role. Returns the node it speaks for.
/// Refusals are logged (an expired or forged token may be an attack).
fn authenticate(
    hub: &HubStore,
    tokens: &crate::tokens::Verified,
    headers: &HeaderMap,
) -> Result<String, AppError> {
    authorize(hub, tokens, headers, &["node"])
}

/// Checks the bearer token and that its role is one of `roles`; returns
/// its subject. A node's token is signed with the node's enrolled key; an
/// operator's, auditor's or admin's with the hub's own (`cairn hub token`).
fn authorize(
    hub: &HubStore,
    tokens: &crate::tokens::Verified,
    headers: &HeaderMap,
    roles: &[&str],
) -> Result<String, AppError> {
    authorize_keyed(hub, tokens, headers, roles).map(|(subject, _)| subject)
}

/// The staff member (operator, auditor, admin) `headers`' bearer token
/// speaks for (the dashboard's sessions).
pub(crate) fn staff_of(
    state: &HubState,
    headers: &HeaderMap,
) -> Result<crate::dashboard::Staff, AppError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    let role = cairn_core::token::peek(token)
        .map(|claims| claims.role)
        .unwrap_or_default();
    let name = authorize(
        &state.hub,
        &state.tokens,
        headers,
        &cairn_hub_sqlite::STAFF_ROLES,
    )?;
    Ok(crate::dashboard::Staff { name, role })
}

/// [`authorize`], with the key the token verified under.
fn authorize_keyed(
    hub: &HubStore,
    tokens: &crate::tokens::Verified,
    headers: &HeaderMap,
    roles: &[&str],
) -> Result<(String, [u8; 32]), AppError> {
    let unauthorized = |rule: &'static str, message: String| {
        tracing::warn!(rule, detail = %message, "refused a request");
        AppError::client(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            Violation::new("authorization", rule, message),
        )
    };
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                "required",
                "a bearer token (an EdDSA JWT) is required".into(),
            )
        })?;
    let claims =
        cairn_core::token::peek(token).map_err(|error| unauthorized("token", error.to_string()))?;
    let key = if claims.role == "node" {
        hub.node_key(&claims.sub)
            .map_err(|error| AppError::Server(error.to_string()))?
            .ok_or_else(|| {
                unauthorized(
                    "token",
                    format!("{:?} is not enrolled at this hub", claims.sub),
                )
            })?
    } else {
        hub.public_key()
    };
    let claims = tokens
        .verify(token, &key, hub.origin(), hub.clock().now_s())
        .map_err(|error| unauthorized("token", error.to_string()))?;
    if !roles.contains(&claims.role.as_str()) {
        tracing::warn!(sub = %claims.sub, role = %claims.role, "refused a role");
        return Err(AppError::client(
            StatusCode::FORBIDDEN,
            "forbidden",
            Violation::new(
                "authorization",
                "role",
                format!(
                    "role {:?} may not do this; it takes {}",
                    claims.role,
                    roles.join(" or ")
                ),
            ),
        ));
    }
    Ok((claims.sub, key))
}

#[utoipa::path(post, path = "/v1/push", tag = "hub", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 200, description = "Per-op results and a range receipt", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
async fn push(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    // The caller is known from its headers before a byte of its body is
    // read: a stranger's body costs the hub nothing.
    let (hub, tokens, auth_headers) = (state.hub.clone(), state.tokens.clone(), headers.clone());
    let caller = blocking(move || authorize_keyed(&hub, &tokens, &auth_headers, &["node"])).await;
    let (subject, key) = match caller {
        Ok(caller) => caller,
        Err(refusal) => {
            crate::server::drain(body, BODY_BYTES_MAX, crate::server::REFUSED_DRAIN_TIME).await;
            return Err(refusal);
        }
    };
    let (mut request, _held) = read_push(&state.bodies, &headers, body).await?;
    request.node_time_ms = headers
        .get(cairn_proto::NODE_TIME_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    if subject != request.node {
        tracing::warn!(%subject, node = %request.node, "refused a node pushing as another node");
        return Err(AppError::client(
            StatusCode::FORBIDDEN,
            "forbidden",
            Violation::new(
                "node",
                "identity",
                format!(
                    "{subject:?} may push only its own streams, not {:?}'s",
                    request.node
                ),
            ),
        ));
    }
    // The hub's own time with the push, from its whole body on: what a
    // client reads as congestion (the link's time is its own to measure).
    let started = std::time::Instant::now();
    // Decoding and the checkpoint's signature need no stored state: they
    // run here, in parallel, and only the rest waits for the writer.
    let request = blocking(move || {
        let mut request = request;
        request.decoded = Some(cairn_core::push::decode_push(&request.ops));
        // The writer then only compares keys (it still checks the signature
        // when the node's key changed meanwhile, or when this check failed,
        // to name the fault).
        if request.checkpoint.verify(&key).is_ok() {
            request.checkpoint_key = Some(key);
        }
        Ok(request)
    })
    .await?;
    let (node, stream) = (request.node.clone(), request.stream.clone());
    let response = state.pushes.push(request).await.map_err(hub_error)?;
    let count = |status: &str| {
        response
            .results
            .iter()
            .filter(|result| result.status == status)
            .count()
    };
    tracing::info!(
        %node,
        %stream,
        accepted = count("accepted"),
        duplicate = count("duplicate"),
        quarantined = count("quarantined"),
        watermark = response.watermark,
        compliance_boundary = "integrity",
        "push"
    );
    let mut answer = json_answer(&headers, &response);
    let timing = format!("{SERVER_TIMING_HUB};dur={}", started.elapsed().as_millis());
    if let Ok(value) = axum::http::HeaderValue::from_str(&timing) {
        answer.headers_mut().insert(SERVER_TIMING, value);
    }
    Ok(answer)
}

/// Reads a push body, JSON or the compact binary body (zstd or not), and
/// returns it with the budget it holds (its bytes, decompressed).
async fn read_push(
    bodies: &Bodies,
    headers: &HeaderMap,
    body: Body,
) -> Result<(PushRequest, Vec<tokio::sync::OwnedSemaphorePermit>), AppError> {
    if media_type(headers).as_deref() != Some(BINARY_PUSH) {
        let body = body_json(bodies, headers, body, BODY_BYTES_MAX).await?;
        let request = cairn_hub::ingest::push_from_json(&body.value)
            .map_err(|violations| AppError::invalid(None, violations))?;
        return Ok((request, Vec::new()));
    }
    let compressed = content_coding(headers, &["zstd"])?.is_some();
    let bytes = bodies.read(headers, body, BODY_BYTES_MAX).await?;
    let malformed = |violation: Violation| {
        if violation.rule == "max_ops" {
            AppError::invalid(None, vec![violation])
        } else {
            AppError::client(StatusCode::BAD_REQUEST, "malformed", violation)
        }
    };
    let mut held = Vec::new();
    if compressed {
        let size = cairn_hub::ingest::zstd_content_size(&bytes).map_err(malformed)?;
        held.push(bodies.reserve(size).await?);
    }
    let request = cairn_hub::ingest::push_from_binary(&bytes, compressed).map_err(malformed)?;
    Ok((request, held))
}

/// The hub's time with a push, ms, read from a push answer's headers.
pub fn hub_time_ms(headers: &HeaderMap) -> Option<u64> {
    cairn_proto::hub_time_ms(headers.get(SERVER_TIMING)?.to_str().ok()?)
}

/// Roles that may resolve an equivocation or a review item.
const RESOLVER_ROLES: [&str; 2] = ["operator", "admin"];

/// The small JSON body of a resolution, once the caller proved to be an
/// operator or admin (who is returned); a refused caller's body is drained
/// briefly and never parsed.
async fn resolver_body(
    state: &HubState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, crate::body::JsonBody), AppError> {
    let (hub, tokens) = (state.hub.clone(), state.tokens.clone());
    let auth_headers = headers.clone();
    let by = match blocking(move || authorize(&hub, &tokens, &auth_headers, &RESOLVER_ROLES)).await
    {
        Ok(by) => by,
        Err(refusal) => {
            let time = crate::server::REFUSED_DRAIN_TIME;
            crate::server::drain(body, SMALL_BODY_BYTES_MAX, time).await;
            return Err(refusal);
        }
    };
    let body = body_json(&state.bodies, headers, body, SMALL_BODY_BYTES_MAX).await?;
    Ok((by, body))
}

#[utoipa::path(get, path = "/v1/pull", tag = "hub", params(("from" = Option<u64>, Query, description = "First leaf"), ("limit" = Option<usize>, Query, description = "Most ops")), responses((status = 200, description = "A page of ops the node may see, with proofs", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
async fn pull(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let mut violations = Vec::new();
    let mut from = 0u64;
    let mut limit = PULL_OPS_MAX;
    for (name, value) in &params {
        match name.as_str() {
            "from" => match value.parse() {
                Ok(parsed) => from = parsed,
                Err(_) => violations.push(Violation::new(
                    "from",
                    "type",
                    "must be a log leaf index (an unsigned integer)",
                )),
            },
            "limit" => match value.parse::<usize>() {
                Ok(parsed) if (1..=PULL_OPS_MAX).contains(&parsed) => limit = parsed,
                _ => violations.push(Violation::new(
                    "limit",
                    "range",
                    format!("must be an integer from 1 to {PULL_OPS_MAX}"),
                )),
            },
            other => violations.push(Violation::new(
                other,
                "unknown_parameter",
                "expected from or limit",
            )),
        }
    }
    if !violations.is_empty() {
        return Err(AppError::bad_query(violations));
    }
    let (hub, tokens) = (state.hub.clone(), state.tokens.clone());
    let page = blocking(move || {
        let node = authenticate(&hub, &tokens, &headers)?;
        hub.pull(&node, from, limit).map_err(hub_error)
    })
    .await?;
    Ok(axum::Json(json!(page)))
}

/// `GET /v1/own?stream=S&from=N`: the caller's own ops of a stream from seq
/// `N` on, with the checkpoints it signed over them (`HubStore::own_ops`).
#[utoipa::path(get, path = "/v1/own", tag = "hub", params(("stream" = String, Query, description = "Stream"), ("from" = Option<u64>, Query, description = "First seq"), ("limit" = Option<usize>, Query, description = "Most ops")), responses((status = 200, description = "The node's own ops of a stream", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
async fn own(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let mut violations = Vec::new();
    let (mut stream, mut from, mut limit) = (None, 1u64, PUSH_OPS_MAX);
    for (name, value) in &params {
        match name.as_str() {
            "limit" => match value.parse::<usize>() {
                Ok(parsed) if (1..=PUSH_OPS_MAX).contains(&parsed) => limit = parsed,
                _ => violations.push(Violation::new(
                    "limit",
                    "range",
                    format!("must be an integer from 1 to {PUSH_OPS_MAX}"),
                )),
            },
            "stream" => match cairn_core::names::check_name(value) {
                Ok(()) => stream = Some(value.clone()),
                Err(message) => violations.push(Violation::new("stream", "format", message)),
            },
            "from" => match value.parse::<u64>() {
                Ok(parsed) if parsed >= 1 => from = parsed,
                _ => violations.push(Violation::new(
                    "from",
                    "range",
                    "must be a seq (an integer from 1)",
                )),
            },
            other => violations.push(Violation::new(
                other,
                "unknown_parameter",
                "expected stream, from or limit",
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
    let own = blocking(move || {
        let node = authenticate(&hub, &tokens, &headers)?;
        hub.own_ops(&node, &stream, from, limit)
            .map_err(|error| hub_error(error.into()))
    })
    .await?;
    Ok(axum::Json(json!(own)))
}

/// `GET /v1/snapshot?from=&to=&labels=`: one page of the ops the node may
/// see, from a leaf on (and below one, carrying one of some labels), under
/// a signed manifest (FORMAT.md, "Snapshots").
#[utoipa::path(get, path = "/v1/snapshot", tag = "hub", params(("from" = Option<u64>, Query, description = "From leaf"), ("to" = Option<u64>, Query, description = "To leaf"), ("labels" = Option<String>, Query, description = "Scope labels")), responses((status = 200, description = "Materialized state for a first pull", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
async fn snapshot(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, AppError> {
    let mut violations = Vec::new();
    let mut query = cairn_hub_sqlite::SnapshotQuery::default();
    for (name, value) in &params {
        match name.as_str() {
            "from" | "to" => match value.parse::<u64>() {
                Ok(leaf) if name == "from" => query.from = leaf,
                Ok(leaf) => query.to = Some(leaf),
                Err(_) => violations.push(Violation::new(
                    name.as_str(),
                    "type",
                    "must be a log leaf index (an unsigned integer)",
                )),
            },
            "labels" => match cairn_edge::input::parse_scope_filter(value) {
                Ok(labels) if !labels.is_empty() => {
                    query.labels = labels
                        .into_iter()
                        .map(|(name, value)| format!("{name}={value}"))
                        .collect();
                }
                Ok(_) => violations.push(Violation::new("labels", "format", "names no label")),
                Err(violation) => {
                    violations.push(Violation::new("labels", violation.rule, violation.message))
                }
            },
            other => violations.push(Violation::new(
                other,
                "unknown_parameter",
                "expected from, to or labels",
            )),
        }
    }
    if !violations.is_empty() {
        return Err(AppError::bad_query(violations));
    }
    let (hub, tokens, auth_headers) = (state.hub.clone(), state.tokens.clone(), headers.clone());
    let snapshot = blocking(move || {
        let node = authenticate(&hub, &tokens, &auth_headers)?;
        hub.snapshot(&node, &query).map_err(hub_error)
    })
    .await?;
    let base64 = |bytes: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let body = cairn_proto::SnapshotPage {
        manifest: snapshot.manifest,
        ops: snapshot.ops.iter().map(base64).collect(),
        chains: snapshot.chains,
        enrollments: snapshot.enrollments.iter().map(base64).collect(),
        more: snapshot.more,
    };
    Ok(json_answer(&headers, &json!(body)))
}

pub(crate) mod admin;
pub(crate) mod artifacts;
pub(crate) mod comply;
pub mod legacy;
pub mod legacy_mobile;
pub mod legacy_mro;
pub(crate) mod legacy_records;
pub mod observe;
#[cfg(test)]
mod tests;
