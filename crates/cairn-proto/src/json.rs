//! JSON from untrusted bytes: UTF-8 first (so the error names the byte),
//! then syntax, with objects that never repeat a key; every refusal a
//! `Violation` naming the field and the rule.

use cairn_core::pack::Violation;
use serde_json::{Map, Value};

/// Largest request body or input file accepted, in bytes.
pub const BODY_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Bytes to JSON: UTF-8 first (so the error names the byte), then syntax.
pub fn parse_json(bytes: &[u8], field: &str) -> Result<Value, Violation> {
    if bytes.len() > BODY_BYTES_MAX {
        return Err(Violation::new(
            field,
            "max_bytes",
            format!("is {} bytes, at most {BODY_BYTES_MAX}", bytes.len()),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|error| {
        Violation::new(
            field,
            "utf8",
            format!(
                "is not valid UTF-8 (invalid byte at offset {})",
                error.valid_up_to()
            ),
        )
    })?;
    serde_json::from_str::<Strict>(text)
        .map(|strict| strict.0)
        .map_err(|error| {
            let message = error.to_string();
            if message.starts_with(DUPLICATE_KEY) {
                Violation::new(
                    field,
                    "duplicate_key",
                    format!("is not accepted: {message}"),
                )
            } else {
                Violation::new(field, "json", format!("is not valid JSON: {message}"))
            }
        })
}

/// Start of the error a repeated object key gives.
const DUPLICATE_KEY: &str = "duplicate key";

/// A JSON value whose objects never repeat a key. serde_json keeps the last
/// of two equal keys without a word; a record with `"technician"` twice is
/// ambiguous, so it is refused, naming the key. Written by hand: serde_json
/// has no switch for it.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Strict, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY} {key:?}")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_9_15_duplicate_keys_are_refused_naming_the_key() {
        let refused =
            parse_json(br#"{"data": {"a": 1, "b": [{"c": 1, "c": 2}]}}"#, "body").unwrap_err();
        assert_eq!(refused.rule, "duplicate_key");
        assert!(refused.message.contains("\"c\""), "{refused}");
        let refused = parse_json(br#"{"a": 1, "a": 1}"#, "body").unwrap_err();
        assert!(refused.message.contains("\"a\""), "{refused}");
        // Everything else parses as serde_json parses it.
        let text = br#"{"n": -1, "u": 18446744073709551615, "f": 1.5, "s": "x", "z": null, "l": [true, {}]}"#;
        assert_eq!(
            parse_json(text, "body").unwrap(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
        assert_eq!(parse_json(b"[1,", "body").unwrap_err().rule, "json");
    }

    #[test]
    fn utf8_and_json_errors_name_the_rule() {
        assert_eq!(
            parse_json(b"{\"a\":\xff}", "body").unwrap_err().rule,
            "utf8"
        );
        assert_eq!(parse_json(b"{\"a\":", "body").unwrap_err().rule, "json");
        assert_eq!(
            parse_json(&vec![b' '; BODY_BYTES_MAX + 1], "body")
                .unwrap_err()
                .rule,
            "max_bytes"
        );
    }
}
