//! The one error of both routers, and its one JSON shape:
//! `{"error": {"status", "code", "message", "violations": [{"field",
//! "rule", "message", "index"?}]}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_core::pack::Violation;
use cairn_edge::{StoreError, WriteError};
use serde_json::{Value, json};

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
                // Fields and rules only: a message may quote a value.
                let broken = violations
                    .iter()
                    .map(|(_, violation)| format!("{}:{}", violation.field, violation.rule))
                    .collect::<Vec<_>>()
                    .join(",");
                tracing::info!(
                    status = status.as_u16(),
                    code,
                    broken = %broken,
                    compliance_boundary = "request",
                    "refused a request"
                );
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

/// The answer to a known path asked with another method.
pub async fn method_not_allowed() -> AppError {
    AppError::client(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        Violation::new("method", "route", "this endpoint does not take that method"),
    )
}

/// The answer to a path no route takes.
pub async fn not_found() -> AppError {
    AppError::client(
        StatusCode::NOT_FOUND,
        "not_found",
        Violation::new("path", "route", "no such endpoint (see /v1/...)"),
    )
}
