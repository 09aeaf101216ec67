//! Seed 001's MRO pipeline worker: `POST /api/v1/mro/records`, one
//! `MRORecord` per request with `X-Idempotency-Key` (its SHA-256 of work
//! order, part serial and technician). It sends no credentials: the hub
//! accepts it only from the source addresses an admin listed for the
//! client (`--allow-from`), and records the address.
//!
//! Its record maps onto `maintenance_actions`: the certificate expiry's
//! date, `performed_on` the day the hub receives it (the worker sends the
//! record as it is made), `maintenance_action`'s text as the description
//! and, when it names one, as the action. A repeated key with the same body
//! is acknowledged as before; with another body inside the pack's
//! idempotency window it is 409 naming both hashes. A record the rules
//! refuse is logged for review and answered 422 naming each rule.

use super::legacy::{append_keyed, repeat_answer, stored_answer, violations_json};
use super::{HubState, SMALL_BODY_BYTES_MAX};
use crate::body::body_json;
use crate::error::AppError;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use cairn_core::hash::Hash;
use cairn_core::op::Action;
use cairn_core::pack::Violation;
use cairn_hub_sqlite::legacy::LegacyKind;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;

/// The worker's record as a `maintenance_actions` record, on `today`.
fn maintenance_action(body: &Value, today: &str) -> Result<Map<String, Value>, Vec<Violation>> {
    let Some(object) = body.as_object() else {
        return Err(vec![Violation::new(
            "body",
            "type",
            "must be a JSON object",
        )]);
    };
    let mut violations = Vec::new();
    let mut text = |field: &'static str| match object.get(field) {
        Some(Value::String(text)) => text.clone(),
        Some(_) => {
            violations.push(Violation::new(field, "type", "must be a string"));
            String::new()
        }
        None => {
            violations.push(Violation::new(field, "required", "is required"));
            String::new()
        }
    };
    let (work_order, registration, serial, technician, expiry, action) = (
        text("work_order_id"),
        text("aircraft_registration"),
        text("part_serial_number"),
        text("technician_id"),
        text("airworthiness_cert_expiry"),
        text("maintenance_action"),
    );
    if !violations.is_empty() {
        return Err(violations);
    }
    let mut record = Map::new();
    record.insert("work_order".into(), json!(work_order));
    record.insert("aircraft_registration".into(), json!(registration));
    record.insert("part_serial".into(), json!(serial));
    record.insert("technician".into(), json!(technician));
    record.insert(
        "certificate_expiry".into(),
        json!(expiry.get(..10).unwrap_or(&expiry)),
    );
    record.insert("performed_on".into(), json!(today));
    let lower = action.to_ascii_lowercase();
    let named = [
        ("return to service", "return_to_service"),
        ("return_to_service", "return_to_service"),
        ("airworthiness directive", "ad_compliance"),
        ("overhaul", "overhaul"),
        ("replace", "replacement"),
        ("repair", "repair"),
        ("inspect", "inspection"),
    ]
    .iter()
    .find(|(words, _)| lower.contains(words))
    .map(|(_, action)| *action);
    if let Some(named) = named {
        record.insert("action".into(), json!(named));
    }
    record.insert("description".into(), json!(action));
    Ok(record)
}

/// The key the worker sends for a stored record: SHA-256 of
/// `work_order:part_serial:technician`.
fn worker_key(op: &cairn_core::op::Op) -> Option<String> {
    let record: Value = serde_json::from_slice(&op.draft.payload).ok()?;
    let part = |name: &str| record[name].as_str().map(String::from);
    let text = format!(
        "{}:{}:{}",
        part("work_order")?,
        part("part_serial")?,
        part("technician")?
    );
    Some(Hash::of(text.as_bytes()).to_hex())
}

/// `POST /api/v1/mro/records`.
#[utoipa::path(post, path = "/api/v1/mro/records", tag = "legacy", params(("X-Idempotency-Key" = Option<String>, Header, description = "SHA-256 of work order, part serial and technician")), request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 201, description = "Stored", body = serde_json::Value), (status = 200, description = "A repeat, answered as before", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(super) async fn mro_records(
    State(state): State<HubState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let slot = state
        .legacy
        .by_address(peer.ip(), LegacyKind::MroRecords)
        .ok_or_else(|| {
            AppError::client(
                StatusCode::FORBIDDEN,
                "forbidden",
                Violation::new(
                    "source",
                    "allow_from",
                    format!("{} is not an address this endpoint serves", peer.ip()),
                ),
            )
        })?;
    super::observe::legacy_request(&state, &slot.client.name);
    let key = headers
        .get("x-idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_ascii_lowercase)
        .ok_or_else(|| {
            AppError::invalid(
                None,
                vec![Violation::new(
                    "X-Idempotency-Key",
                    "required",
                    "names the record",
                )],
            )
        })?;
    let body = body_json(&state.bodies, &headers, body, SMALL_BODY_BYTES_MAX).await?;
    let now_ms = state.hub.clock().now_ms();
    let today = cairn_core::dates::format_date_days((now_ms / 86_400_000) as i64);
    let data = maintenance_action(&body.value, &today)
        .map_err(|violations| AppError::invalid(None, violations))?;
    let packs = state.hub.hub().packs();
    let collection = packs
        .pack_of("maintenance_actions")
        .map(|pack| pack.collections["maintenance_actions"].clone())
        .ok_or_else(|| AppError::Server("no active pack defines maintenance_actions".into()))?;
    let checked = collection.validate(Action::Append, &Value::Object(data.clone()), true);
    let record = if checked.violations.is_empty() {
        checked.payload
    } else {
        data
    };
    let bytes = cairn_core::canonical::to_canonical_bytes(&Value::Object(record.clone())).map_err(
        |error| {
            AppError::invalid(
                None,
                vec![Violation::new("body", "canonical", error.to_string())],
            )
        },
    )?;
    let hash = Hash::of(&bytes);
    let window_ms = collection
        .rules
        .idempotency
        .as_ref()
        .map_or(0, |rule| rule.window_ms());
    let mut keys = slot.loaded_keys(&state, worker_key).await?;
    if let Some(seen) = seen_before(
        keys.as_ref().and_then(|known| known.get(&key)),
        (hash, &checked.violations),
        now_ms,
        window_ms,
    ) {
        return seen;
    }
    let stream = collection.route(&record).to_string();
    let target = ("maintenance_actions", stream.as_str());
    let (seq, leaf) = append_keyed(&state, &slot.client, target, bytes, &mut keys).await?;
    tracing::info!(client = %slot.client.name, source = %peer.ip(), seq, compliance_boundary = "legacy", "legacy record stored");
    let answer = json!({
        "status": if checked.violations.is_empty() { "accepted" } else { "rejected" },
        "record": format!("{}:{stream}:{seq}", slot.client.name),
        "leaf": leaf,
        "source": peer.ip().to_string(),
        "received_ms": now_ms,
        "violations": violations_json(&checked.violations),
    });
    let known = keys.as_mut().expect("loaded above");
    known.insert(key, (hash, answer.clone()));
    stored_answer(answer, StatusCode::CREATED)
}

/// The answer to a key seen before: the stored answer for the same
/// record, 409 naming both hashes for another one inside the window;
/// `None` when the key is new (or its window passed).
fn seen_before(
    held: Option<&(Hash, Value)>,
    (hash, violations): (Hash, &[Violation]),
    now_ms: u64,
    window_ms: u64,
) -> Option<Result<(StatusCode, axum::Json<Value>), AppError>> {
    let (stored, answer) = held?;
    if *stored == hash {
        let answer = repeat_answer(answer, violations);
        return Some(stored_answer(answer, StatusCode::CREATED));
    }
    let at_ms = answer["received_ms"].as_u64().unwrap_or(now_ms);
    (now_ms.saturating_sub(at_ms) <= window_ms).then(|| {
        Err(AppError::client(
            StatusCode::CONFLICT,
            "conflict",
            Violation::new(
                "X-Idempotency-Key",
                "idempotency",
                format!(
                    "stored with a record hashing to {}; this one hashes to {}",
                    stored.to_hex(),
                    hash.to_hex()
                ),
            ),
        ))
    })
}
