//! Serving HTTP to clients that may be hostile: a bound on connections,
//! a deadline on every header and body, and a budget on the request bytes
//! held in memory at once.
//!
//! axum's own `serve` can set neither a header deadline nor a connection
//! bound, so both servers (edge and hub, plain and TLS) go through
//! [`serve`], a hyper accept loop. Bodies are read by [`read_body`], never
//! by an extractor, so that a handler authenticates a request from its
//! headers before it reads a byte of its body, and so that each body is
//! held to the deadline and the shared [`BodyBudget`].

use crate::error::AppError;
use axum::http::{HeaderMap, StatusCode, header};
use cairn_core::pack::Violation;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How a server bounds its clients.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Most connections open at once; more wait in the kernel's backlog.
    pub connections_max: usize,
    /// How long a client may take to send a request's headers, and how long
    /// an idle keep-alive connection stays open.
    pub read_timeout: Duration,
    /// Most request-body bytes held in memory at once, over all requests.
    pub body_budget_bytes: usize,
}

/// Most bytes hyper buffers for one connection.
const CONNECTION_BUFFER_BYTES: usize = 64 * 1024;
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an in-flight request may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A body must keep arriving at this rate on average (after the read
/// timeout's grace), so a client cannot hold its budget by trickling: 1/16
/// of a 1 Mbit/s satellite link.
const BODY_RATE_MIN_BYTES_PER_S: u64 = 8 * 1024;
/// Most bytes of a refused body read and dropped before answering.
const DRAIN_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long a body refused before it was read (a caller the server does
/// not know) may keep the connection, being drained.
pub const REFUSED_DRAIN_TIME: Duration = Duration::from_secs(2);
/// How long a request waits for room in the body budget before a 503.
const BUDGET_WAIT: Duration = Duration::from_secs(5);
/// Granularity of the budget: a permit is this many bytes.
const BUDGET_UNIT_BYTES: usize = 1024;

/// The request-body bytes a server may hold at once, shared by all its
/// handlers.
#[derive(Clone, Debug)]
pub struct BodyBudget(Arc<tokio::sync::Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget(Arc::new(tokio::sync::Semaphore::new(
            (bytes / BUDGET_UNIT_BYTES).max(1),
        )))
    }

    /// Bytes free now.
    pub fn available_bytes(&self) -> usize {
        self.0.available_permits() * BUDGET_UNIT_BYTES
    }

    /// Holds `bytes` of the budget until the permit is dropped; a 503 when
    /// they do not free up in time.
    pub async fn reserve(
        &self,
        bytes: usize,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        let units = u32::try_from(bytes.div_ceil(BUDGET_UNIT_BYTES)).unwrap_or(u32::MAX);
        match tokio::time::timeout(BUDGET_WAIT, self.0.clone().acquire_many_owned(units)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AppError::Busy(
                "the server holds as many request bodies as it may; retry shortly".into(),
            )),
        }
    }
}

/// A request body read within its bounds. Its bytes count against the
/// budget until it is dropped.
pub struct BoundedBody {
    /// The body.
    pub bytes: Vec<u8>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl std::ops::Deref for BoundedBody {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

fn too_large(limit: usize) -> AppError {
    AppError::client(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        Violation::new(
            "body",
            "max_bytes",
            format!("request body is over {limit} bytes"),
        ),
    )
}

/// Reads a request body of at most `limit` bytes: its declared length is
/// checked before anything is read, its bytes are reserved in `budget` as
/// they arrive, and it must keep coming (a chunk at least every
/// `read_timeout`, and on average [`BODY_RATE_MIN_BYTES_PER_S`] after a
/// grace of `read_timeout`), or the request ends with 408.
pub async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
    budget: &BodyBudget,
    read_timeout: Duration,
) -> Result<BoundedBody, AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limit as u64) {
        // Read and dropped (never held) when it is not absurd, so that the
        // client sees the 413 rather than a reset mid-upload.
        if length <= DRAIN_BYTES_MAX as u64 {
            drain(body, DRAIN_BYTES_MAX, read_timeout).await;
        }
        return Err(too_large(limit));
    }
    // With a declared length, the whole body is reserved at once (and
    // allocated once); without, chunk by chunk.
    let reserved = declared.map_or(0, |length| length as usize);
    let mut permit = budget.reserve(reserved.max(1)).await?;
    let mut bytes = Vec::with_capacity(reserved);
    let mut stream = body.into_data_stream();
    let started = tokio::time::Instant::now();
    loop {
        let allowed =
            read_timeout + Duration::from_secs(bytes.len() as u64 / BODY_RATE_MIN_BYTES_PER_S);
        let deadline = (started + allowed).min(tokio::time::Instant::now() + read_timeout);
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                return Err(AppError::client(
                    StatusCode::BAD_REQUEST,
                    "malformed",
                    Violation::new("body", "read", format!("body could not be read: {error}")),
                ));
            }
            Err(_) => {
                return Err(AppError::client(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    Violation::new(
                        "body",
                        "deadline",
                        format!(
                            "the body stopped arriving ({} bytes in {} ms)",
                            bytes.len(),
                            started.elapsed().as_millis()
                        ),
                    ),
                ));
            }
        };
        if bytes.len() + chunk.len() > limit {
            drop(bytes);
            drain_stream(stream, DRAIN_BYTES_MAX, read_timeout).await;
            return Err(too_large(limit));
        }
        let needed = (bytes.len() + chunk.len()).div_ceil(BUDGET_UNIT_BYTES);
        let held = permit.num_permits();
        if needed > held {
            permit.merge(budget.reserve((needed - held) * BUDGET_UNIT_BYTES).await?);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(BoundedBody {
        bytes,
        _permit: permit,
    })
}

/// Reads and drops up to `bytes_max` bytes of a body the server refuses,
/// for at most `time_max`: a client still sending it then reads the
/// refusal instead of a connection reset. Nothing of it is kept.
pub async fn drain(body: axum::body::Body, bytes_max: usize, time_max: Duration) {
    drain_stream(body.into_data_stream(), bytes_max, time_max).await;
}

async fn drain_stream(
    mut stream: axum::body::BodyDataStream,
    bytes_max: usize,
    time_max: Duration,
) {
    let _ = tokio::time::timeout(time_max, async move {
        let mut total = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            total += chunk.len();
            if total > bytes_max {
                break;
            }
        }
    })
    .await;
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown`
/// completes, then lets requests in flight finish for a few seconds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ServeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections_max.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.read_timeout)
        // hyper's read buffer per connection (400 KB by default): what a
        // connection holds before any handler sees a byte.
        .max_buf_size(CONNECTION_BUFFER_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: the next accept may work.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        // Handlers may ask who is calling (`ConnectInfo`): a client that
        // sends no credentials is allowed by its source address.
        let with_peer = tower::ServiceBuilder::new()
            .map_request(move |mut request: axum::http::Request<_>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            })
            .service(app.clone());
        let service = hyper_util::service::TowerToHyperService::new(with_peer);
        let (http, acceptor, watcher) = (http.clone(), acceptor.clone(), graceful.watcher());
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => {
                    let connection =
                        http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
                    let _ = watcher.watch(connection).await;
                }
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::info!(%error, "TLS handshake refused");
                                return;
                            }
                            Err(_) => return,
                        };
                    let connection =
                        http.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
                    let _ = watcher.watch(connection).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}
