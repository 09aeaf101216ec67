//! Seed 000's hangar sync worker: `POST /api/v1/mro/sync` with
//! `{payload, hash, local_seq}`, one maintenance action per request.
//!
//! The worker hashes the payload with Python's `json.dumps(payload,
//! sort_keys=True, separators=(",", ":"))` (ASCII escapes, Python's float
//! forms), not RFC 8785, so the hash is checked that way. It treats every
//! 4xx as a permanent compliance rejection and every 5xx as a network
//! fault to retry: a stored record is 2xx (and so is its exact repeat); a
//! hash that does not match, or a record the rule packs refuse, is a 4xx
//! naming the field and rule. A refused record is still logged (the judge
//! rejects it: a review item at the hub), so the hangar's triage and the
//! hub's queue see the same record.

use super::legacy::{append_keyed, repeat_answer, stored_answer, violations_json};
use super::{HubState, SMALL_BODY_BYTES_MAX};
use crate::body::body_json;
use crate::error::AppError;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use cairn_core::hash::Hash;
use cairn_core::op::Action;
use cairn_core::pack::Violation;
use cairn_hub_sqlite::legacy::LegacyKind;
use serde_json::{Map, Value, json};

/// The text Python's `json.dumps(value, sort_keys=True,
/// separators=(",", ":"))` gives: keys sorted, no spaces, non-ASCII as
/// `\uXXXX` (surrogate pairs above the BMP), floats as Python's `repr`.
/// Written here because no JSON crate reproduces Python's output.
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_python(value, &mut out);
    out
}

fn write_python(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(int), _, _) => out.push_str(&int.to_string()),
            (_, Some(int), _) => out.push_str(&int.to_string()),
            (_, _, Some(float)) => out.push_str(&python_float(float)),
            _ => out.push_str(&number.to_string()),
        },
        Value::String(text) => write_python_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_python(item, out);
            }
            out.push(']');
        }
        Value::Object(object) => {
            // serde_json's map is ordered by key: Python's sort_keys order
            // for the ASCII keys records have.
            out.push('{');
            for (index, (key, item)) in object.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_python_string(key, out);
                out.push(':');
                write_python(item, out);
            }
            out.push('}');
        }
    }
}

fn write_python_string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr` of a float: the shortest round-trip digits, in
/// scientific form with a signed two-digit exponent when the exponent is
/// below -4 or at least 16, with `.0` on integral values otherwise.
fn python_float(float: f64) -> String {
    if !float.is_finite() {
        return if float.is_nan() {
            "NaN".into()
        } else if float > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits as d.ddde±x.
    let scientific = format!("{float:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    if !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let plain = format!("{float}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

/// The seed's payload as a `maintenance_actions` record (`action_type` is
/// the seed's name for `action`).
fn maintenance_action(payload: &Map<String, Value>) -> Map<String, Value> {
    payload
        .iter()
        .map(|(name, value)| {
            let name = if name == "action_type" {
                "action"
            } else {
                name.as_str()
            };
            (name.to_string(), value.clone())
        })
        .collect()
}

/// The key of a stored maintenance action: its payload's hash.
fn action_key(op: &cairn_core::op::Op) -> Option<String> {
    Some(Hash::of(&op.draft.payload).to_hex())
}

/// `POST /api/v1/mro/sync`.
#[utoipa::path(post, path = "/api/v1/mro/sync", tag = "legacy", request_body(content = serde_json::Value, content_type = "application/json", description = "A JSON object"), responses((status = 200, description = "Stored", body = serde_json::Value), (status = "4XX", description = "Refused: every field and rule broken", body = crate::openapi::ErrorBody), (status = "5XX", description = "A fault or a bound on the server side: retry", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub(super) async fn mro_sync(
    State(state): State<HubState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, axum::Json<Value>), AppError> {
    let slot = state.legacy.authenticate(&headers, LegacyKind::MroSync)?;
    super::observe::legacy_request(&state, &slot.client.name);
    let body = body_json(&state.bodies, &headers, body, SMALL_BODY_BYTES_MAX).await?;
    let (Some(payload), Some(hash)) = (
        body.value["payload"].as_object(),
        body.value["hash"].as_str(),
    ) else {
        let field = if body.value["payload"].is_object() {
            "hash"
        } else {
            "payload"
        };
        return Err(AppError::invalid(
            None,
            vec![Violation::new(
                field,
                "required",
                "{payload, hash, local_seq} is the body",
            )],
        ));
    };
    let computed = Hash::of(python_json(&Value::Object(payload.clone())).as_bytes()).to_hex();
    if computed != hash.to_ascii_lowercase() {
        tracing::warn!(client = %slot.client.name, compliance_boundary = "integrity", "a legacy payload does not match its hash");
        return Err(AppError::invalid(
            None,
            vec![Violation::new(
                "hash",
                "integrity",
                format!("the payload hashes to {computed}"),
            )],
        ));
    }
    let packs = state.hub.hub().packs();
    let collection = packs
        .pack_of("maintenance_actions")
        .map(|pack| pack.collections["maintenance_actions"].clone())
        .ok_or_else(|| AppError::Server("no active pack defines maintenance_actions".into()))?;
    let data = maintenance_action(payload);
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
                vec![Violation::new("payload", "canonical", error.to_string())],
            )
        },
    )?;
    let key = Hash::of(&bytes).to_hex();
    let mut keys = slot.loaded_keys(&state, action_key).await?;
    if let Some((_, answer)) = keys.as_ref().and_then(|known| known.get(&key)) {
        return stored_answer(repeat_answer(answer, &checked.violations), StatusCode::OK);
    }
    let stream = collection.route(&record).to_string();
    let target = ("maintenance_actions", stream.as_str());
    let (seq, leaf) = append_keyed(&state, &slot.client, target, bytes, &mut keys).await?;
    let answer = json!({
        "status": if checked.violations.is_empty() { "accepted" } else { "rejected" },
        "record": format!("{}:{stream}:{seq}", slot.client.name),
        "leaf": leaf,
        "local_seq": body.value["local_seq"],
        "violations": violations_json(&checked.violations),
    });
    let known = keys.as_mut().expect("loaded above");
    known.insert(key, (Hash::ZERO, answer.clone()));
    stored_answer(answer, StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::python_json;
    use serde_json::json;

    #[test]
    fn payloads_hash_as_python_dumps_them() {
        // Each expected text is what CPython 3 prints for
        // json.dumps(value, sort_keys=True, separators=(",", ":")).
        let cases = [
            (
                json!({"b": 1, "a": [true, null, "x"]}),
                r#"{"a":[true,null,"x"],"b":1}"#,
            ),
            (
                json!({"hours": 1.5, "n": 2.0, "tiny": 0.00001, "big": 1e16, "mid": 123456.0}),
                r#"{"big":1e+16,"hours":1.5,"mid":123456.0,"n":2.0,"tiny":1e-05}"#,
            ),
            (
                json!({"tech": "Zoë ✈ 𝄞", "q": "a\"b\\c\n"}),
                r#"{"q":"a\"b\\c\n","tech":"Zo\u00eb \u2708 \ud834\udd1e"}"#,
            ),
            (
                json!({"neg": -3, "small": 0.0001}),
                r#"{"neg":-3,"small":0.0001}"#,
            ),
        ];
        for (value, python) in cases {
            assert_eq!(python_json(&value), python, "{value}");
        }
    }
}
