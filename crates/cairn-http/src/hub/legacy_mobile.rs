//! Seed 004's mobile app: `POST /api/v1/mobile/sync/batch` and `GET
//! /api/v1/mobile/equipment/building/{id}/updates?since=`, on the
//! field-service pack's `equipment`, `spatial_anchors` and `buildings`.
//!
//! Each operation becomes an entity op of the client's own stream, stamped
//! with the app's `local_time` (its last-writer-wins clock) and based on
//! the entity as the hub merged it, so the hub's judge and every edge merge
//! it like any edit. An operation is a conflict (answered with the
//! server's version, nothing written) when someone else changed the entity
//! since the version the app based its edit on (`payload.version`, as this
//! endpoint serves it) or, without one, when the hub holds a later edit by
//! someone else. `force: true`, which the app sends when its edit is the
//! newer, makes the edit win and is recorded as an act of the hub's audit
//! stream. A re-sent operation (same entity, action, fields and
//! `local_time`) is acknowledged without a second apply. An operation
//! naming a building outside the client's grants makes the whole request
//! 403, nothing written.

use super::legacy::{Keys, Slot, Write, append_writes, catch_up};
use super::{HubState, blocking};
use crate::body::body_json;
use crate::error::AppError;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use cairn_core::hash::Hash;
use cairn_core::op::{Action, Op};
use cairn_core::pack::Violation;
use cairn_hub::comply::entities::EntityView;
use cairn_hub_sqlite::legacy::{LegacyClient, LegacyKind};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Most operations one batch carries.
pub const MOBILE_OPS_MAX: usize = 500;
/// Largest batch body.
const BATCH_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// How far ahead of the hub an app's `local_time` may be: further would
/// let one device win every later edit.
const FUTURE_SLACK_MS: u64 = 5 * 60_000;
/// Most equipment one updates answer carries.
const UPDATES_MAX: usize = 10_000;
/// The stream mobile edits go to.
const MOBILE_STREAM: &str = "standard";
/// The scope label buildings grant.
const BUILDING: &str = "building";
/// What the app keeps in a payload for its own bookkeeping, not fields of
/// the record.
const BOOKKEEPING: [&str; 8] = [
    "id",
    "created_at",
    "updated_at",
    "synced_at",
    "sync_status",
    "version",
    "force",
    "full_sync_at",
];

/// One operation of a batch, checked.
struct Operation {
    entity_type: String,
    entity_id: String,
    operation: String,
    collection: &'static str,
    action: Action,
    /// The record's fields as the pack names them.
    fields: Map<String, Value>,
    /// The server version the edit was based on, if the app said.
    based_on: Option<u64>,
    force: bool,
    local_ms: u64,
}

/// The pack collection an `entity_type` names.
fn collection_of(entity_type: &str) -> Option<&'static str> {
    match entity_type {
        "equipment" => Some("equipment"),
        "anchor" | "spatial_anchor" => Some("spatial_anchors"),
        "building" => Some("buildings"),
        _ => None,
    }
}

/// A Go `time.Time` (RFC 3339) or Unix milliseconds, as ms.
fn local_time(value: Option<&Value>) -> Result<u64, Violation> {
    let refused = || {
        Violation::new(
            "local_time",
            "type",
            "must be RFC 3339 or Unix milliseconds",
        )
    };
    match value {
        Some(Value::String(text)) => cairn_core::dates::parse_datetime_ms(text)
            .and_then(|ms| u64::try_from(ms).ok())
            .ok_or_else(refused),
        Some(Value::Number(number)) => number.as_u64().ok_or_else(refused),
        _ => Err(Violation::new("local_time", "required", "is required")),
    }
}

/// Checks one operation of the request's `operations` (nothing about the
/// entity's current state yet).
fn operation(value: &Value, now_ms: u64) -> Result<Operation, Vec<Violation>> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let (entity_type, entity_id, verb) =
        (text("entity_type"), text("entity_id"), text("operation"));
    let mut violations = Vec::new();
    let collection = collection_of(entity_type);
    if collection.is_none() {
        violations.push(Violation::new(
            "entity_type",
            "enum",
            "must be equipment, anchor or building",
        ));
    }
    if let Err(message) = cairn_core::names::check_key(entity_id) {
        violations.push(Violation::new("entity_id", "key", message));
    }
    let action = match verb {
        "create" | "update" => Action::Put,
        "delete" => Action::Delete,
        _ => {
            violations.push(Violation::new(
                "operation",
                "enum",
                "must be create, update or delete",
            ));
            Action::Put
        }
    };
    let payload = match value.get("payload") {
        Some(Value::Object(payload)) => payload.clone(),
        None | Some(Value::Null) if action == Action::Delete => Map::new(),
        _ => {
            violations.push(Violation::new("payload", "type", "must be a JSON object"));
            Map::new()
        }
    };
    let local_ms = match local_time(value.get("local_time")) {
        Ok(ms) if ms > now_ms + FUTURE_SLACK_MS => {
            violations.push(Violation::new(
                "local_time",
                "clock",
                "is more than 5 minutes ahead of the hub",
            ));
            ms
        }
        Ok(ms) => ms,
        Err(violation) => {
            violations.push(violation);
            0
        }
    };
    let based_on = match payload.get("version") {
        None | Some(Value::Null) => None,
        Some(version) => match version.as_u64() {
            Some(version) => Some(version),
            None => {
                violations.push(Violation::new(
                    "payload.version",
                    "type",
                    "must be a whole number",
                ));
                None
            }
        },
    };
    let force = payload.get("force") == Some(&Value::Bool(true))
        || value.get("force") == Some(&Value::Bool(true));
    let mut fields: Map<String, Value> = payload
        .into_iter()
        .filter(|(name, value)| !BOOKKEEPING.contains(&name.as_str()) && !value.is_null())
        .collect();
    if let Some(metadata) = fields.get_mut("metadata")
        && !metadata.is_string()
    {
        // The pack keeps the app's metadata object as JSON text.
        *metadata = Value::String(metadata.to_string());
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Operation {
        entity_type: entity_type.into(),
        entity_id: entity_id.into(),
        operation: verb.into(),
        collection: collection.expect("checked above"),
        action,
        fields,
        based_on,
        force,
        local_ms,
    })
}

/// The building an operation is about (a building is its own), given the
/// entity as the hub holds it.
fn buildings_of(operation: &Operation, held: Option<&EntityView>) -> Vec<String> {
    if operation.collection == "buildings" {
        return vec![operation.entity_id.clone()];
    }
    let mut buildings: Vec<String> = operation
        .fields
        .get("building_id")
        .and_then(Value::as_str)
        .map(String::from)
        .into_iter()
        .collect();
    if let Some(held) = held {
        let before = held
            .state
            .fields
            .get("building_id")
            .and_then(Value::as_str)
            .or_else(|| held.scope.get(BUILDING).map(String::as_str));
        buildings.extend(before.map(String::from));
    }
    buildings.dedup();
    buildings
}

/// Whether `client` is granted `building` (a grant of `*` holds them all).
fn granted(client: &LegacyClient, building: &str) -> bool {
    client
        .scopes
        .get(BUILDING)
        .is_some_and(|grant| grant == building || grant == cairn_hub::pull::ANY_VALUE)
}

/// An entity as the app keeps it: its fields, id, version and the time of
/// its last edit (ms, the app's `updated_at`).
fn app_record(view: &EntityView) -> Value {
    let mut record: Map<String, Value> = view.state.fields.clone().into_iter().collect();
    if let Some(Value::String(text)) = record.get("metadata")
        && let Ok(parsed) = serde_json::from_str::<Value>(text)
    {
        record.insert("metadata".into(), parsed);
    }
    record.insert("id".into(), json!(view.key));
    record.insert("version".into(), json!(view.version));
    record.insert("updated_at".into(), json!(view.written_ms));
    if view.state.deleted {
        record.insert("deleted".into(), json!(true));
    }
    Value::Object(record)
}

/// A re-sent operation's identity: what it writes and when the app wrote it.
fn identity(collection: &str, key: &str, action: Action, wall_ms: u64, payload: &[u8]) -> String {
    format!(
        "{collection}/{key}/{}/{wall_ms}/{}",
        action.name(),
        Hash::of(payload).to_hex()
    )
}

/// [`identity`] of a logged op of the client's.
fn op_identity(op: &Op) -> Option<String> {
    let draft = &op.draft;
    Some(identity(
        &draft.collection,
        &draft.key,
        draft.action,
        draft.hlc.wall_ms,
        &draft.payload,
    ))
}

/// What the hub does with one operation.
enum Decision {
    /// Write it (its identity, and what it overrode if forced).
    Apply(Box<(Write, String, Option<EntityView>)>),
    /// Acknowledge it: written before, or nothing to do.
    Done,
    /// Someone else's edit stands: the server's version.
    Conflict(Value),
    /// It breaks these rules.
    Refused(Vec<Violation>),
}

/// The entities a batch is about, as the hub merged them.
type Held = HashMap<(&'static str, String), EntityView>;

/// Decides each operation in order against `held` (updated as the batch
/// goes, so later operations see earlier ones); `head` is the seq of the
/// client's stream before the batch.
fn decide(
    state: &HubState,
    client: &LegacyClient,
    operations: &[Result<Operation, Vec<Violation>>],
    known: &Keys,
    held: &mut Held,
    head: u64,
) -> Vec<Decision> {
    let packs = state.hub.hub().packs();
    let mut next_seq = head + 1;
    let mut decisions = Vec::with_capacity(operations.len());
    for (index, operation) in operations.iter().enumerate() {
        let Ok(op) = operation else {
            decisions.push(Decision::Refused(
                operation.as_ref().err().cloned().unwrap_or_default(),
            ));
            continue;
        };
        let Some(rules) = packs
            .pack_of(op.collection)
            .map(|pack| &pack.collections[op.collection])
        else {
            decisions.push(Decision::Refused(vec![Violation::new(
                "entity_type",
                "pack",
                "no active pack defines its collection",
            )]));
            continue;
        };
        let entry = (op.collection, op.entity_id.clone());
        let current = held.get(&entry);
        let creating = current.is_none_or(|view| view.state.deleted);
        if op.action == Action::Delete && creating {
            decisions.push(Decision::Done);
            continue;
        }
        let (fields, payload) = match checked_payload(rules, op, creating) {
            Ok(checked) => checked,
            Err(violations) => {
                decisions.push(Decision::Refused(violations));
                continue;
            }
        };
        let identity = identity(
            op.collection,
            &op.entity_id,
            op.action,
            op.local_ms,
            &payload,
        );
        if known.get(&identity).is_some() {
            decisions.push(Decision::Done);
            continue;
        }
        let foreign = current.filter(|view| view.last_node != client.name);
        let behind = foreign.is_some_and(|view| match op.based_on {
            Some(version) => version < view.version,
            None => view.written_ms > op.local_ms,
        });
        if behind && !op.force {
            decisions.push(Decision::Conflict(app_record(current.expect("foreign"))));
            continue;
        }
        let overrode = foreign.filter(|_| behind).cloned();
        let building = buildings_of(op, current)
            .into_iter()
            .next()
            .unwrap_or_default();
        let base = current
            .map(|view| view.state.vv.clone())
            .unwrap_or_default();
        note_applied(held, entry, op, (&client.name, next_seq), fields);
        let write = Write {
            collection: op.collection.into(),
            action: op.action,
            key: op.entity_id.clone(),
            scope: [(BUILDING.to_string(), building)].into(),
            base,
            hlc: cairn_core::hlc::Hlc {
                wall_ms: op.local_ms,
                counter: index as u32,
            },
            payload,
        };
        next_seq += 1;
        decisions.push(Decision::Apply(Box::new((write, identity, overrode))));
    }
    decisions
}

/// A checked record: its fields and canonical payload.
type Checked = (Map<String, Value>, Vec<u8>);

/// The record an operation writes, checked by the pack.
fn checked_payload(
    rules: &cairn_core::pack::Collection,
    op: &Operation,
    creating: bool,
) -> Result<Checked, Vec<Violation>> {
    let checked = rules.validate(op.action, &Value::Object(op.fields.clone()), creating);
    if !checked.violations.is_empty() {
        return Err(checked.violations);
    }
    if op.action == Action::Delete {
        return Ok((Map::new(), b"{}".to_vec()));
    }
    let payload = Value::Object(checked.payload);
    match cairn_core::canonical::to_canonical_bytes(&payload) {
        Ok(bytes) => Ok((payload.as_object().cloned().unwrap_or_default(), bytes)),
        Err(error) => Err(vec![Violation::new(
            "payload",
            "canonical",
            error.to_string(),
        )]),
    }
}

/// Notes in `held` what later operations of the batch see: `op` applied
/// by `client` as the op at `seq` of its stream.
fn note_applied(
    held: &mut Held,
    entry: (&'static str, String),
    op: &Operation,
    (client, seq): (&str, u64),
    fields: Map<String, Value>,
) {
    let view = held.entry(entry).or_insert_with(|| EntityView {
        key: op.entity_id.clone(),
        state: Default::default(),
        version: 0,
        written_ms: 0,
        logged_ms: 0,
        last_node: String::new(),
        scope: BTreeMap::new(),
    });
    view.version += 1;
    view.written_ms = op.local_ms;
    view.last_node = client.to_string();
    let stream_key = cairn_core::op::stream_key(client, MOBILE_STREAM);
    view.state.vv.observe(&stream_key, seq);
    view.state.deleted = op.action == Action::Delete;
    if view.state.deleted {
        view.state.fields.clear();
    } else {
        view.state.fields.extend(fields);
    }
}

/// A 403 naming the operation whose building the client is not granted.
fn check_grants(
    client: &LegacyClient,
    operations: &[Result<Operation, Vec<Violation>>],
    held: &Held,
) -> Result<(), AppError> {
    for (index, operation) in operations.iter().enumerate() {
        let Ok(op) = operation else { continue };
        let current = held.get(&(op.collection, op.entity_id.clone()));
        if let Some(building) = buildings_of(op, current)
            .into_iter()
            .find(|building| !granted(client, building))
        {
            return Err(AppError::Client {
                status: StatusCode::FORBIDDEN,
                code: "forbidden",
                violations: vec![(
                    Some(index),
                    Violation::new(
                        "building_id",
                        "grant",
                        format!("building {building:?} is not granted to this client"),
                    ),
                )],
            });
        }
    }
    Ok(())
}

/// `POST /api/v1/mobile/sync/batch`.
#[utoipa::path(post, path = "/api/v1/mobile/sync/batch", tag = "legacy", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 200, description = "Per operation: success, conflicts, errors", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn mobile_batch(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<Value>, AppError> {
    let slot = state.legacy.authenticate(&headers, LegacyKind::Mobile)?;
    super::observe::legacy_request(&state, &slot.client.name);
    let body = body_json(&state.bodies, &headers, body, BATCH_BODY_BYTES_MAX).await?;
    let list = body
        .value
        .get("operations")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            AppError::invalid(
                None,
                vec![Violation::new("operations", "required", "must be an array")],
            )
        })?;
    if list.len() > MOBILE_OPS_MAX {
        return Err(AppError::invalid(
            None,
            vec![Violation::new(
                "operations",
                "max_items",
                format!("at most {MOBILE_OPS_MAX} operations per batch"),
            )],
        ));
    }
    let now = state.hub.clock().now_ms();
    let operations: Vec<_> = list.iter().map(|value| operation(value, now)).collect();
    // One batch of a client at a time: its stream's head and its record of
    // operations stay its own while this one is decided and written.
    let mut keys = slot.keys.lock().await;
    let (mut held, head, known) = read_held(&state, &slot, &operations, keys.take()).await?;
    if let Err(refused) = check_grants(&slot.client, &operations, &held) {
        *keys = Some(known);
        return Err(refused);
    }
    let decisions = decide(&state, &slot.client, &operations, &known, &mut held, head);
    *keys = Some(known);
    let answer = write_decisions(&state, &slot, &operations, decisions, &mut keys).await?;
    Ok(axum::Json(answer))
}

/// Everything a batch is decided against, read after the judge has merged
/// every logged op: the entities it names, the client's stream head and
/// its record of operations (`known`, read from its ops if not yet).
async fn read_held(
    state: &HubState,
    slot: &Arc<Slot>,
    operations: &[Result<Operation, Vec<Violation>>],
    known: Option<Keys>,
) -> Result<(Held, u64, Keys), AppError> {
    let targets: Vec<(&'static str, String)> = operations
        .iter()
        .flatten()
        .map(|op| (op.collection, op.entity_id.clone()))
        .collect();
    let (hub, name) = (state.hub.clone(), slot.client.name.clone());
    blocking(move || {
        let fault = |error: cairn_hub::StorageError| AppError::Server(error.to_string());
        hub.hub().judge_all().map_err(fault)?;
        let mut held = Held::new();
        for (collection, key) in targets {
            if let Some(view) = hub.hub().entity(collection, &key).map_err(fault)? {
                held.insert((collection, key), view);
            }
        }
        let head = hub
            .stream_heads(&name)
            .map_err(|error| AppError::Server(error.to_string()))?
            .get(MOBILE_STREAM)
            .map_or(0, |(seq, _)| *seq);
        let mut known = known.unwrap_or_default();
        catch_up(&hub, &name, op_identity, &mut known)?;
        Ok((held, head, known))
    })
    .await
}

/// Writes the applied operations in one push, records each forced one as
/// an act, and answers per operation.
async fn write_decisions(
    state: &HubState,
    slot: &Slot,
    operations: &[Result<Operation, Vec<Violation>>],
    decisions: Vec<Decision>,
    keys: &mut Option<Keys>,
) -> Result<Value, AppError> {
    let (mut success, mut conflicts, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let (mut writes, mut written) = (Vec::new(), Vec::new());
    for (operation, decision) in operations.iter().zip(decisions) {
        let about = |op: &Operation| json!({"entity_type": op.entity_type, "entity_id": op.entity_id, "operation": op.operation});
        let mut entry = match operation {
            Ok(op) => about(op),
            Err(_) => json!({}),
        };
        match (operation, decision) {
            (Ok(op), Decision::Apply(apply)) => {
                let (write, identity, overrode) = *apply;
                success.push(json!(op.entity_id));
                writes.push(write);
                written.push((op, identity, overrode));
            }
            (Ok(op), Decision::Done) => success.push(json!(op.entity_id)),
            (Ok(op), Decision::Conflict(server)) => {
                entry["server_version"] = server;
                entry["local_version"] = Value::Object(op.fields.clone());
                conflicts.push(entry);
            }
            (_, decision) => {
                let violations = match decision {
                    Decision::Refused(violations) => violations,
                    _ => operation.as_ref().err().cloned().unwrap_or_default(),
                };
                let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
                entry["error"] = json!(messages.join("; "));
                entry["violations"] = json!(super::legacy::violations_json(&violations));
                errors.push(entry);
            }
        }
    }
    if !writes.is_empty() {
        let placed = match append_writes(state, &slot.client, MOBILE_STREAM, writes).await {
            Ok(placed) => placed,
            Err(error) => {
                // It may have committed: read the record again next time.
                *keys = None;
                return Err(error);
            }
        };
        let known = keys.as_mut().expect("kept by the caller");
        for ((op, identity, overrode), (seq, _)) in written.into_iter().zip(placed) {
            let record = format!("{}:{MOBILE_STREAM}:{seq}", slot.client.name);
            known.insert(
                identity,
                (Hash::of(record.as_bytes()), json!({"record": record})),
            );
            if let Some(overrode) = overrode {
                record_force(state, &slot.client, op, &record, &overrode).await?;
            }
        }
    }
    Ok(json!({"success": success, "conflicts": conflicts, "errors": errors}))
}

/// Records a forced edit as an act of the hub's audit stream: who forced
/// which record over which version.
async fn record_force(
    state: &HubState,
    client: &LegacyClient,
    op: &Operation,
    record: &str,
    overrode: &EntityView,
) -> Result<(), AppError> {
    let act = json!({
        "action": "mobile.force",
        "by": client.name,
        "collection": op.collection,
        "key": op.entity_id,
        "local_time_ms": op.local_ms,
        "before": {
            "version": overrode.version,
            "node": overrode.last_node,
            "written_ms": overrode.written_ms,
        },
        "after": {"node": client.name, "record": record},
    });
    let hub = state.hub.clone();
    blocking(move || {
        hub.hub()
            .record_act(&act)
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?;
    tracing::info!(client = %client.name, collection = op.collection, record, compliance_boundary = "legacy", "forced mobile edit recorded");
    Ok(())
}

/// `GET /api/v1/mobile/equipment/building/{id}/updates?since=SECONDS`.
#[utoipa::path(get, path = "/api/v1/mobile/equipment/building/{id}/updates", tag = "legacy", params(("id" = String, Path, description = "Building"), ("since" = Option<u64>, Query, description = "Unix seconds")), responses((status = 200, description = "Equipment changed since, and deletes", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn mobile_updates(
    State(state): State<HubState>,
    headers: HeaderMap,
    Path(building): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<axum::Json<Value>, AppError> {
    let slot = state.legacy.authenticate(&headers, LegacyKind::Mobile)?;
    super::observe::legacy_request(&state, &slot.client.name);
    let now = state.hub.clock().now_ms();
    let since_s = match query.get("since").map(|text| text.parse::<u64>()) {
        None => 0,
        Some(Ok(seconds)) if seconds.saturating_mul(1000) <= now + 86_400_000 => seconds,
        Some(Ok(_)) => {
            return Err(AppError::bad_query(vec![Violation::new(
                "since",
                "unit",
                "is in the future: Unix seconds, not milliseconds",
            )]));
        }
        Some(Err(_)) => {
            return Err(AppError::bad_query(vec![Violation::new(
                "since",
                "type",
                "must be Unix seconds",
            )]));
        }
    };
    if !granted(&slot.client, &building) {
        return Err(AppError::client(
            StatusCode::FORBIDDEN,
            "forbidden",
            Violation::new(
                "building",
                "grant",
                format!("building {building:?} is not granted to this client"),
            ),
        ));
    }
    let hub = state.hub.clone();
    let views = blocking(move || {
        let fault = |error: cairn_hub::StorageError| AppError::Server(error.to_string());
        hub.hub().judge_all().map_err(fault)?;
        hub.hub()
            .entities_changed_since("equipment", since_s * 1000, UPDATES_MAX)
            .map_err(fault)
    })
    .await?;
    let (mut updates, mut deletes) = (Vec::new(), Vec::new());
    for view in views {
        let in_building = view.state.fields.get("building_id").and_then(Value::as_str)
            == Some(building.as_str())
            || (view.state.deleted && view.scope.get(BUILDING) == Some(&building));
        if !in_building {
            continue;
        }
        if view.state.deleted {
            deletes.push(json!(view.key));
        } else {
            updates.push(json!({
                "equipment": app_record(&view),
                "updated_at": cairn_core::dates::format_datetime_ms(view.logged_ms),
            }));
        }
    }
    // Ops logged in the last moments may still be committing: the next
    // call starts two seconds back (a repeat the app applies twice, never a
    // gap).
    let last_sync_s = now.saturating_sub(2_000) / 1000;
    Ok(axum::Json(json!({
        "updates": updates,
        "deletes": deletes,
        "last_sync": cairn_core::dates::format_datetime_ms(last_sync_s * 1000),
        "last_sync_unix": last_sync_s,
    })))
}
