//! The hub's acts over HTTP that change who may do what: a node enrolls
//! with a one-time token (`POST /v1/enroll`), and an operator or admin
//! releases a stream an equivocation held (`POST /v1/resolve`).

use super::*;

/// `POST /v1/resolve` `{"node", "stream", "reason"}`: an operator or admin
/// releases a stream an equivocation held, keeping the hub's version
/// (`HubStore::resolve`).
#[utoipa::path(post, path = "/v1/resolve", tag = "hub", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 200, description = "The equivocation resolved", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn resolve(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, AppError> {
    let (by, body) = resolver_body(&state, &headers, body).await?;
    let value = &body.value;
    let mut violations = Vec::new();
    let mut text = |name: &'static str| -> String {
        match value.get(name).and_then(Value::as_str) {
            Some(text) => text.to_string(),
            None => {
                violations.push(Violation::new(name, "required", "must be a string"));
                String::new()
            }
        }
    };
    let (node, stream, reason) = (text("node"), text("stream"), text("reason"));
    if let Some(object) = value.as_object() {
        for name in object
            .keys()
            .filter(|name| !["node", "stream", "reason"].contains(&name.as_str()))
        {
            violations.push(Violation::new(
                name.clone(),
                "unknown_field",
                "expected node, stream, reason",
            ));
        }
    }
    if !violations.is_empty() {
        return Err(AppError::invalid(None, violations));
    }
    let hub = state.hub.clone();
    let resolution = blocking(move || {
        hub.resolve(&node, &stream, &reason, &by)
            .map_err(|error| match error {
                ResolveError::UnknownStream(_) => AppError::client(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    Violation::new("stream", "exists", error.to_string()),
                ),
                ResolveError::NotHeld(_) => AppError::client(
                    StatusCode::CONFLICT,
                    "conflict",
                    Violation::new("stream", "held", error.to_string()),
                ),
                ResolveError::Reason(message) => {
                    AppError::invalid(None, vec![Violation::new("reason", "length", message)])
                }
                other => AppError::Server(other.to_string()),
            })
    })
    .await?;
    tracing::warn!(node = %resolution.node, stream = %resolution.stream, by = %resolution.by, "equivocation resolved");
    Ok(axum::Json(json!(resolution)))
}

#[utoipa::path(post, path = "/v1/enroll", tag = "hub", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 201, description = "Enrolled with a one-time token", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(super) async fn enroll(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let body = body_json(&state.bodies, &headers, body, SMALL_BODY_BYTES_MAX).await?;
    let value = &body.value;
    let mut violations = Vec::new();
    let text = |name: &'static str, violations: &mut Vec<Violation>| -> String {
        match value.get(name).and_then(Value::as_str) {
            Some(text) => text.to_string(),
            None => {
                violations.push(Violation::new(name, "required", "must be a string"));
                String::new()
            }
        }
    };
    let (node, token, key) = (
        text("node", &mut violations),
        text("token", &mut violations),
        text("public_key", &mut violations),
    );
    let public_key = hex::decode(&key)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    if public_key.is_none() && !key.is_empty() {
        violations.push(Violation::new(
            "public_key",
            "format",
            "must be 64 hex characters",
        ));
    }
    if let Some(object) = value.as_object() {
        for name in object
            .keys()
            .filter(|name| !["node", "token", "public_key"].contains(&name.as_str()))
        {
            violations.push(Violation::new(
                name.clone(),
                "unknown_field",
                "expected node, token, public_key",
            ));
        }
    }
    let Some(public_key) = public_key.filter(|_| violations.is_empty()) else {
        return Err(AppError::invalid(None, violations));
    };
    let hub = state.hub.clone();
    let origin = hub.origin().to_string();
    let hub_key = hex::encode(hub.public_key());
    blocking(move || {
        hub.redeem_enrollment(&node, public_key, &token)
            .map_err(|error| match error {
                cairn_hub_sqlite::EnrollError::Token(reason) => {
                    tracing::warn!(%node, reason, "refused an enrollment");
                    AppError::client(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        Violation::new("token", "valid", reason),
                    )
                }
                cairn_hub_sqlite::EnrollError::Node(owner) => {
                    tracing::warn!(%node, %owner, "refused an enrollment for another node");
                    AppError::client(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        Violation::new(
                            "node",
                            "identity",
                            format!("the token was issued for {owner:?}"),
                        ),
                    )
                }
                cairn_hub_sqlite::EnrollError::Key => AppError::invalid(
                    None,
                    vec![Violation::new(
                        "public_key",
                        "format",
                        "not a valid Ed25519 key",
                    )],
                ),
                other => AppError::Server(other.to_string()),
            })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"origin": origin, "public_key": hub_key})),
    )
        .into_response())
}
