//! Artifact blobs for edges: `GET /v1/artifacts/{sha256}/chunks` (the
//! chunks' SHA-256s, 32 bytes each) and `GET
//! /v1/artifacts/{sha256}/chunks/{index}` (one chunk's bytes, read from
//! disk: a blob is never whole in memory). A node gets a blob only when
//! its grants cover a manifest naming it; the manifest itself reaches the
//! node as an op of the hub's `artifacts` stream, which is what it checks
//! the chunks against.

use super::{HubState, authenticate, blocking};
use crate::error::AppError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_core::artifact::Manifest;
use cairn_core::hash::Hash;
use cairn_core::pack::Violation;
use std::io::{Read, Seek, SeekFrom};

/// The manifest of blob `sha256` the caller may see, or a 4xx.
fn visible(state: &HubState, headers: &HeaderMap, sha256: &str) -> Result<Manifest, AppError> {
    let hash = Hash::from_hex(sha256).ok_or_else(|| {
        AppError::client(
            StatusCode::BAD_REQUEST,
            "invalid",
            Violation::new("sha256", "format", "must be 64 hex digits"),
        )
    })?;
    let node = authenticate(&state.hub, &state.tokens, headers)?;
    state
        .hub
        .hub()
        .artifact_for(&node, &hash)
        .map_err(|error| AppError::Server(error.to_string()))?
        .ok_or_else(|| {
            AppError::client(
                StatusCode::NOT_FOUND,
                "not_found",
                Violation::new(
                    "sha256",
                    "unknown",
                    "no artifact this node may see has this blob",
                ),
            )
        })
}

fn octets(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// `GET /v1/artifacts/{sha256}/chunks`.
#[utoipa::path(get, path = "/v1/artifacts/{sha256}/chunks", tag = "hub", params(("sha256" = String, Path, description = "The blob")), responses((status = 200, description = "The chunks' SHA-256s, 32 bytes each", body = Vec<u8>, content_type = "application/octet-stream"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn chunk_list(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> Result<Response, AppError> {
    let list = blocking(move || {
        let manifest = visible(&state, &headers, &sha256)?;
        state
            .hub
            .chunk_list(&manifest.sha256)
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?;
    Ok(octets(list))
}

/// `GET /v1/artifacts/{sha256}/chunks/{index}`.
#[utoipa::path(get, path = "/v1/artifacts/{sha256}/chunks/{index}", tag = "hub", params(("sha256" = String, Path, description = "The blob"), ("index" = String, Path, description = "Chunk index")), responses((status = 200, description = "One chunk's bytes", body = Vec<u8>, content_type = "application/octet-stream"), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn chunk(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path((sha256, index)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let bytes = blocking(move || {
        let manifest = visible(&state, &headers, &sha256)?;
        let index = index
            .parse::<u64>()
            .ok()
            .filter(|index| *index < manifest.chunk_count())
            .ok_or_else(|| {
                AppError::client(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    Violation::new(
                        "index",
                        "range",
                        format!("must be a chunk index below {}", manifest.chunk_count()),
                    ),
                )
            })?;
        let path = state.hub.blob_path(&manifest.sha256);
        let fault =
            |error: std::io::Error| AppError::Server(format!("{}: {error}", path.display()));
        let mut file = std::fs::File::open(&path).map_err(fault)?;
        file.seek(SeekFrom::Start(index * manifest.chunk_bytes))
            .map_err(fault)?;
        let mut bytes = vec![0u8; manifest.chunk_len(index) as usize];
        file.read_exact(&mut bytes).map_err(fault)?;
        Ok(bytes)
    })
    .await?;
    Ok(octets(bytes))
}
