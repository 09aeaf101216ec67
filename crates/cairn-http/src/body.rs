//! Request bodies, read within the server's budget and deadline: the media
//! type and content coding checked, JSON parsed strictly
//! (`cairn_proto::json`), each refusal with its own error.

use crate::error::AppError;
use crate::server::{BodyBudget, BoundedBody, ServeLimits, read_body};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use cairn_core::pack::Violation;
use serde_json::Value;

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
    let value = cairn_proto::json::parse_json(&bytes, "body").map_err(|violation| {
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
