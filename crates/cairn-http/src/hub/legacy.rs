//! The endpoints the seeds' unchangeable clients call, mapped onto rule-pack
//! collections: each record becomes an op of the client's own stream, signed
//! by the hub with the key it holds for the client, and goes through the
//! push queue like any push (verified, logged, receipted, then judged).
//!
//! Seed 003's pharmacy till: `POST /api/v1/transactions/sync` (one
//! dispensing per request, `X-Idempotency-Key`) and `GET
//! /api/v1/inventory/ping`. The till resends any record not answered 2xx
//! forever, so a record that breaks a compliance rule is still logged (the
//! hub's judge rejects it: a review item) and answered 2xx with `"status":
//! "rejected"` and the reasons; a malformed body is a 4xx naming the field
//! and rule; a repeat of a stored record is answered as before, and never
//! logged twice.

use super::{HubState, SMALL_BODY_BYTES_MAX, blocking};
use crate::body::body_json;
use crate::error::AppError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::op::{Action, Op, OpDraft};
use cairn_core::pack::Violation;
use cairn_hub_sqlite::legacy::{LegacyClient, LegacyKind};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// What a client's requests need between them: its record of idempotency
/// keys (caught up with its streams at each request), behind a lock that
/// also keeps its appends in order.
pub struct Slot {
    pub(super) client: LegacyClient,
    pub(super) keys: tokio::sync::Mutex<Option<Keys>>,
}

impl Slot {
    /// The client's record of keys, locked (its requests go one at a
    /// time here) and caught up with its streams: what another hub process
    /// sharing the database logged for the client since is known too.
    pub(super) async fn loaded_keys(
        &self,
        state: &HubState,
        key_of: fn(&Op) -> Option<String>,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Keys>>, AppError> {
        let mut keys = self.keys.lock().await;
        // Taken out while it is read: a read that fails leaves none, and
        // the next request reads the client's streams from the start.
        let mut known = keys.take().unwrap_or_default();
        let (hub, name) = (state.hub.clone(), self.client.name.clone());
        *keys = Some(
            blocking(move || {
                catch_up(&hub, &name, key_of, &mut known)?;
                Ok(known)
            })
            .await?,
        );
        Ok(keys)
    }
}

/// The hub's legacy clients, by the hash of their bearer token.
#[derive(Default)]
pub struct LegacyClients {
    by_token: HashMap<Hash, Arc<Slot>>,
}

impl LegacyClients {
    /// The clients registered in the hub at `dir`.
    pub fn load(dir: &std::path::Path) -> Result<LegacyClients, cairn_edge::StoreError> {
        let by_token = cairn_hub_sqlite::legacy::load(dir)?
            .into_iter()
            .map(|client| {
                (
                    client.token_hash,
                    Arc::new(Slot {
                        client,
                        keys: Default::default(),
                    }),
                )
            })
            .collect();
        Ok(LegacyClients { by_token })
    }

    /// The client of `kind` whose bearer token `headers` carry.
    pub(super) fn authenticate(
        &self,
        headers: &HeaderMap,
        kind: LegacyKind,
    ) -> Result<Arc<Slot>, AppError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let refused = |rule: &'static str, message: &str| {
            AppError::client(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                Violation::new("authorization", rule, message),
            )
        };
        let token = token.ok_or_else(|| refused("required", "a bearer token is required"))?;
        self.by_token
            .get(&Hash::of(token.as_bytes()))
            .filter(|slot| slot.client.kind == kind)
            .cloned()
            .ok_or_else(|| refused("token", "not the token of a client of this endpoint"))
    }
}

impl LegacyClients {
    /// Every client's name and kind, by name.
    pub fn clients(&self) -> Vec<(String, LegacyKind)> {
        let mut clients: Vec<(String, LegacyKind)> = self
            .by_token
            .values()
            .map(|slot| (slot.client.name.clone(), slot.client.kind))
            .collect();
        clients.sort_by(|one, other| one.0.cmp(&other.0));
        clients
    }

    /// The client of `kind` allowed to call from `ip` without credentials.
    pub(super) fn by_address(&self, ip: std::net::IpAddr, kind: LegacyKind) -> Option<Arc<Slot>> {
        self.by_token
            .values()
            .find(|slot| {
                slot.client.kind == kind
                    && slot
                        .client
                        .allow_from
                        .iter()
                        .any(|cidr| cidr_contains(cidr, ip))
            })
            .cloned()
    }
}

/// Whether `ip` is in `cidr` (`10.0.0.0/8`, `::1/128`, or one address).
/// By hand: a prefix comparison over the address's bytes, which no
/// dependency of ours offers.
pub fn cidr_contains(cidr: &str, ip: std::net::IpAddr) -> bool {
    let (network, bits) = match cidr.split_once('/') {
        Some((network, bits)) => (network, bits.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(network) = network.parse::<std::net::IpAddr>() else {
        return false;
    };
    let octets = |ip: std::net::IpAddr| -> Vec<u8> {
        match ip {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or_else(|| v6.octets().to_vec(), |v4| v4.octets().to_vec()),
        }
    };
    let (net, addr) = (octets(network), octets(ip));
    if net.len() != addr.len() {
        return false;
    }
    let bits = bits
        .unwrap_or(net.len() as u32 * 8)
        .min(net.len() as u32 * 8);
    (0..bits).all(|bit| {
        let (byte, shift) = ((bit / 8) as usize, 7 - bit % 8);
        (net[byte] >> shift) & 1 == (addr[byte] >> shift) & 1
    })
}

/// `GET /api/v1/inventory/ping`: the till's heartbeat.
#[utoipa::path(get, path = "/api/v1/inventory/ping", tag = "legacy", responses((status = 200, description = "The till heartbeat", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)))]
pub(super) async fn inventory_ping(State(state): State<HubState>) -> axum::Json<Value> {
    axum::Json(json!({"status": "ok", "server_time_ms": state.hub.clock().now_ms()}))
}

/// The seed's `TransactionPayload` as a `dispensing` record.
fn dispensing(body: &Value) -> Result<Map<String, Value>, Vec<Violation>> {
    let mut violations = Vec::new();
    let Some(object) = body.as_object() else {
        return Err(vec![Violation::new(
            "body",
            "type",
            "must be a JSON object",
        )]);
    };
    let mut record = Map::new();
    let fields = [
        ("ndc", "ndc"),
        ("schedule", "dea_schedule"),
        ("prescription_id", "prescription_id"),
        ("pharmacist_npi", "pharmacist_npi"),
        ("dispensed_at_utc", "dispensed_at"),
        ("idempotency_key", "idempotency_key"),
    ];
    for (theirs, ours) in fields {
        match object.get(theirs) {
            Some(Value::String(text)) => {
                record.insert(ours.into(), json!(text));
            }
            Some(_) => violations.push(Violation::new(theirs, "type", "must be a string")),
            None => violations.push(Violation::new(theirs, "required", "is required")),
        }
    }
    match object.get("quantity") {
        Some(quantity) if quantity.is_i64() => {
            record.insert("quantity".into(), quantity.clone());
        }
        Some(_) => violations.push(Violation::new("quantity", "type", "must be an integer")),
        None => violations.push(Violation::new("quantity", "required", "is required")),
    }
    for name in object.keys() {
        if name != "quantity" && !fields.iter().any(|(theirs, _)| theirs == name) {
            violations.push(Violation::new(
                name.clone(),
                "unknown_field",
                "is not a field of a transaction",
            ));
        }
    }
    if violations.is_empty() {
        Ok(record)
    } else {
        Err(violations)
    }
}

/// `POST /api/v1/transactions/sync`.
#[utoipa::path(post, path = "/api/v1/transactions/sync", tag = "legacy", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 200, description = "Stored, or rejected with the reasons", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn transactions_sync(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let slot = state.legacy.authenticate(&headers, LegacyKind::Pharmacy)?;
    super::observe::legacy_request(&state, &slot.client.name);
    let body = body_json(&state.bodies, &headers, body, SMALL_BODY_BYTES_MAX).await?;
    let data = dispensing(&body.value).map_err(|violations| AppError::invalid(None, violations))?;
    let key = data["idempotency_key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Some(header) = headers
        .get("x-idempotency-key")
        .and_then(|value| value.to_str().ok())
        && header != key
    {
        return Err(AppError::invalid(
            None,
            vec![Violation::new(
                "X-Idempotency-Key",
                "match",
                "differs from the body's idempotency_key",
            )],
        ));
    }
    let packs = state.hub.hub().packs();
    let collection = packs
        .pack_of("dispensing")
        .map(|pack| pack.collections["dispensing"].clone())
        .ok_or_else(|| AppError::Server("no active pack defines dispensing".into()))?;
    let checked = collection.validate(Action::Append, &Value::Object(data.clone()), true);
    let reasons = violations_json(&checked.violations);
    // A record that breaks a rule is logged as sent (the judge rejects it);
    // one that passes is logged normalized (NDC-11, upper case).
    let payload = if checked.violations.is_empty() {
        checked.payload
    } else {
        data
    };
    let bytes = cairn_core::canonical::to_canonical_bytes(&Value::Object(payload.clone()))
        .map_err(|error| {
            AppError::invalid(
                None,
                vec![Violation::new("body", "canonical", error.to_string())],
            )
        })?;
    let payload_hash = Hash::of(&bytes);
    let mut keys = slot.loaded_keys(&state, pharmacy_key).await?;
    if let Some((hash, answer)) = keys.as_ref().and_then(|known| known.get(&key)) {
        if *hash == payload_hash {
            return Ok((StatusCode::OK, axum::Json(answer.clone())));
        }
        return Err(AppError::client(
            StatusCode::CONFLICT,
            "conflict",
            Violation::new(
                "idempotency_key",
                "idempotency",
                format!(
                    "this key was stored with another record (hash {}, this one {})",
                    hash.to_hex(),
                    payload_hash.to_hex()
                ),
            ),
        ));
    }
    let stream = collection.route(&payload).to_string();
    let target = ("dispensing", stream.as_str());
    let (seq, leaf) = append_keyed(&state, &slot.client, target, bytes, &mut keys).await?;
    let client = &slot.client;
    let record = json!({
        "status": if reasons.is_empty() { "accepted" } else { "rejected" },
        "reasons": reasons,
        "record": format!("{}:{stream}:{seq}", client.name),
        "leaf": leaf,
    });
    let known = keys.as_mut().expect("loaded above");
    known.insert(key, (payload_hash, record.clone()));
    tracing::info!(client = %client.name, stream = %stream, seq, compliance_boundary = "legacy", "legacy record stored");
    Ok((StatusCode::OK, axum::Json(record)))
}

/// Appends a record of `collection` (canonical `bytes`) to `client`'s
/// `stream` as the next op after the hub's head of it, checkpointed with the
/// client's key, through the push queue; returns its seq and leaf.
pub(super) async fn append(
    state: &HubState,
    client: &LegacyClient,
    (collection, stream): (&str, &str),
    bytes: Vec<u8>,
) -> Result<(u64, Option<u64>), AppError> {
    let write = Write {
        collection: collection.into(),
        action: Action::Append,
        key: String::new(),
        scope: client.scopes.clone(),
        base: Default::default(),
        hlc: cairn_core::hlc::Hlc {
            wall_ms: state.hub.clock().now_ms(),
            counter: 0,
        },
        payload: bytes,
    };
    let placed = append_writes(state, client, stream, vec![write]).await?;
    placed
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Server("the hub answered no result".into()))
}

/// A client's record of its keys: the answer each was given, and how far
/// each of its streams has been read into it.
#[derive(Default)]
pub(super) struct Keys {
    answers: HashMap<String, (Hash, Value)>,
    read_through: HashMap<String, u64>,
}

impl Keys {
    /// The answer `key` was given, with its record's hash.
    pub(super) fn get(&self, key: &str) -> Option<&(Hash, Value)> {
        self.answers.get(key)
    }

    /// Keeps the answer a request gave for `key` once its op was logged
    /// (reading that op back later keeps this answer).
    pub(super) fn insert(&mut self, key: String, answer: (Hash, Value)) {
        self.answers.insert(key, answer);
    }
}

/// [`append`], dropping the client's record of keys when it fails: the op
/// may have committed before the fault, and the resend must find it (the
/// record is read again from the log).
pub(super) async fn append_keyed(
    state: &HubState,
    client: &LegacyClient,
    target: (&str, &str),
    bytes: Vec<u8>,
    keys: &mut Option<Keys>,
) -> Result<(u64, Option<u64>), AppError> {
    let result = append(state, client, target, bytes).await;
    if result.is_err() {
        *keys = None;
    }
    result
}

/// One op a legacy client's request makes.
pub(super) struct Write {
    pub collection: String,
    pub action: Action,
    pub key: String,
    pub scope: std::collections::BTreeMap<String, String>,
    pub base: cairn_core::op::VersionVector,
    pub hlc: cairn_core::hlc::Hlc,
    pub payload: Vec<u8>,
}

/// Appends `writes` to `client`'s `stream` after the hub's head of it, in
/// one push checkpointed with the client's key; returns each op's seq and
/// leaf. The caller holds the client's slot, so nothing else appends to
/// its streams meanwhile.
pub(super) async fn append_writes(
    state: &HubState,
    client: &LegacyClient,
    stream: &str,
    writes: Vec<Write>,
) -> Result<Vec<(u64, Option<u64>)>, AppError> {
    let (hub, name) = (state.hub.clone(), client.name.clone());
    let heads = blocking(move || {
        hub.stream_heads(&name)
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await?;
    let mut head = heads
        .get(stream)
        .map_or(StreamHead::EMPTY, |(seq, hash)| StreamHead {
            seq: *seq,
            hash: *hash,
        });
    // Another hub process may append to the client's stream before this
    // push's transaction: then it is refused (5xx, the client resends and
    // finds its record or gets it appended on the new head), never taken
    // for an equivocation of the client's.
    let built_on = head;
    let mut seqs = Vec::with_capacity(writes.len());
    let mut ops = Vec::with_capacity(writes.len());
    for write in writes {
        let (op, op_bytes) = head.append(OpDraft {
            node: client.name.clone(),
            stream: stream.to_string(),
            hlc: write.hlc,
            collection: write.collection,
            action: write.action,
            key: write.key,
            scope: write.scope,
            base: write.base,
            ref_hash: None,
            reason: String::new(),
            payload: write.payload,
        });
        seqs.push(op.seq);
        ops.push(op_bytes);
    }
    let checkpoint = client.identity.sign_checkpoint(stream, head.seq, head.hash);
    let answer = state
        .pushes
        .push(cairn_hub_sqlite::PushRequest {
            decoded: None,
            checkpoint_key: None,
            node_time_ms: None,
            built_on: Some(built_on),
            node: client.name.clone(),
            stream: stream.to_string(),
            ops,
            checkpoint,
        })
        .await
        .map_err(|error| AppError::Server(error.to_string()))?;
    if answer.results.len() != seqs.len() {
        return Err(AppError::Server(
            "the hub answered another count of results".into(),
        ));
    }
    seqs.into_iter()
        .zip(answer.results)
        .map(|(seq, result)| {
            if result.status != cairn_hub_sqlite::OpStatus::Accepted {
                return Err(AppError::Server(format!(
                    "the hub's own op was not accepted: {:?}",
                    result.reason
                )));
            }
            Ok((seq, result.leaf))
        })
        .collect()
}

/// A pharmacy record's key: its idempotency key.
fn pharmacy_key(op: &Op) -> Option<String> {
    let payload: Value = serde_json::from_slice(&op.draft.payload).ok()?;
    payload["idempotency_key"].as_str().map(String::from)
}

/// Reads into `keys` the client's ops logged since it last read its
/// streams (`key_of` their payload gives each record's key), with the
/// answer a repeat gets; an answer a request already keeps stays.
pub(super) fn catch_up(
    hub: &cairn_hub_sqlite::HubStore,
    name: &str,
    key_of: fn(&Op) -> Option<String>,
    keys: &mut Keys,
) -> Result<(), AppError> {
    let fault = |error: String| AppError::Server(error);
    let streams = hub
        .stream_heads(name)
        .map_err(|error| fault(error.to_string()))?;
    for (stream, (head, _)) in streams {
        let mut from = keys.read_through.get(&stream).map_or(1, |seq| seq + 1);
        while from <= head {
            let page = hub
                .own_ops(name, &stream, from, cairn_hub_sqlite::PUSH_OPS_MAX)
                .map_err(|error| fault(error.to_string()))?;
            if page.ops.is_empty() {
                break;
            }
            for text in &page.ops {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|error| fault(error.to_string()))?;
                let op = Op::decode(&bytes).map_err(|fault_| fault(fault_.to_string()))?;
                from = op.seq + 1;
                if let Some(key) = key_of(&op) {
                    let answer = json!({
                        "status": "stored",
                        "record": format!("{name}:{stream}:{}", op.seq),
                    });
                    keys.answers
                        .entry(key)
                        .or_insert((Hash::of(&op.draft.payload), answer));
                }
            }
        }
        keys.read_through.insert(stream, from - 1);
    }
    Ok(())
}

/// A repeat's answer: as first given, or, for a record read back from the
/// log after a restart (whose answer names no rules), the rules it breaks
/// now, so a refused record is refused again rather than acknowledged.
pub(super) fn repeat_answer(answer: &Value, violations: &[Violation]) -> Value {
    let mut answer = answer.clone();
    if answer.get("violations").is_none() {
        answer["violations"] = json!(violations_json(violations));
    }
    answer
}

/// Violations as legacy answers carry them.
pub(super) fn violations_json(violations: &[Violation]) -> Vec<Value> {
    violations
        .iter()
        .map(|violation| json!({"field": violation.field, "rule": violation.rule, "message": violation.message}))
        .collect()
}

/// A stored record's answer for the MRO workers, which read any 4xx as a
/// compliance rejection: `ok` for a record stored clean, 422 naming each
/// rule it broke (stored for review all the same).
pub(super) fn stored_answer(
    answer: Value,
    ok: StatusCode,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let broken: Vec<Violation> = answer["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|violation| {
            Violation::new(
                violation["field"].as_str().unwrap_or_default(),
                violation["rule"].as_str().unwrap_or_default(),
                violation["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    if broken.is_empty() {
        Ok((ok, axum::Json(answer)))
    } else {
        Err(AppError::invalid(None, broken))
    }
}
