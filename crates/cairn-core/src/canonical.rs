//! Canonical payload encoding (RFC 8785, JSON Canonicalization Scheme).
//!
//! Payload hashes are taken over these bytes so that a client in any language
//! can recompute them: keys sorted by UTF-16 code units, no insignificant
//! whitespace, numbers in their shortest ECMAScript form, strings in UTF-8
//! with the minimal escapes. The encoding itself comes from
//! `serde_json_canonicalizer`; this module adds Cairn's restrictions, which
//! keep hashes stable across languages: integers must be exactly representable
//! as IEEE doubles (|n| <= 2^53), floats must be finite, nesting is bounded.

use crate::hash::Hash;
use crate::limits::JSON_DEPTH_MAX;
use serde_json::Value;

/// Largest integer magnitude that survives a round trip through an IEEE double.
pub const SAFE_INTEGER_MAX: u64 = (1 << 53) - 1;

/// Why a JSON value cannot be canonicalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CanonicalError {
    /// An integer outside +/-(2^53 - 1), which other languages would round.
    #[error("{path}: integer {value} is outside +/-(2^53-1) (rule: safe_integer)")]
    UnsafeInteger {
        /// JSON path of the value.
        path: String,
        /// The value as written.
        value: String,
    },
    /// Nesting deeper than [`JSON_DEPTH_MAX`].
    #[error("{path}: nesting deeper than {JSON_DEPTH_MAX} levels (rule: max_depth)")]
    TooDeep {
        /// JSON path where the limit was crossed.
        path: String,
    },
}

/// Checks Cairn's restrictions on a JSON value without encoding it.
pub fn check(value: &Value) -> Result<(), CanonicalError> {
    check_at(value, "$", 0)
}

fn check_at(value: &Value, path: &str, depth: usize) -> Result<(), CanonicalError> {
    if depth > JSON_DEPTH_MAX {
        return Err(CanonicalError::TooDeep {
            path: path.to_string(),
        });
    }
    match value {
        Value::Number(number) => {
            let safe = if let Some(int) = number.as_i64() {
                int.unsigned_abs() <= SAFE_INTEGER_MAX
            } else if let Some(uint) = number.as_u64() {
                uint <= SAFE_INTEGER_MAX
            } else {
                // serde_json never builds a non-finite float.
                true
            };
            if !safe {
                return Err(CanonicalError::UnsafeInteger {
                    path: path.to_string(),
                    value: number.to_string(),
                });
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(index, item)| check_at(item, &format!("{path}[{index}]"), depth + 1)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(key, item)| check_at(item, &format!("{path}.{key}"), depth + 1)),
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
    }
}

/// Encodes `value` canonically after checking Cairn's restrictions.
pub fn to_canonical_bytes(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    check(value)?;
    Ok(encode_unchecked(value))
}

/// Encodes a value already known to pass [`check`].
pub fn encode_unchecked(value: &Value) -> Vec<u8> {
    // The canonicalizer fails only on values JSON cannot hold (non-string map
    // keys, non-finite floats), which a `serde_json::Value` never contains.
    serde_json_canonicalizer::to_vec(value).expect("a serde_json::Value always canonicalizes")
}

/// SHA-256 of the canonical encoding: the `payload_hash` of an op.
pub fn payload_hash(canonical_bytes: &[u8]) -> Hash {
    Hash::of(canonical_bytes)
}

/// True when `bytes` are exactly the canonical encoding of the JSON they hold.
pub fn is_canonical(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => check(&value).is_ok() && encode_unchecked(&value) == bytes,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc8785_examples() {
        // Key order by UTF-16 code units, number forms, minimal escapes.
        let value: Value = serde_json::from_str(
            r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],
                "string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
                "literals":[null,true,false]}"#,
        )
        .unwrap();
        let bytes = to_canonical_bytes(&value).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    #[test]
    fn unsafe_integers_and_deep_nesting_are_refused() {
        let err = to_canonical_bytes(&json!({"a": 9_007_199_254_740_993u64})).unwrap_err();
        assert_eq!(
            err,
            CanonicalError::UnsafeInteger {
                path: "$.a".into(),
                value: "9007199254740993".into()
            }
        );
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!([deep]);
        }
        assert!(matches!(check(&deep), Err(CanonicalError::TooDeep { .. })));
    }

    #[test]
    fn canonical_detection() {
        assert!(is_canonical(br#"{"a":1,"b":[true]}"#));
        assert!(!is_canonical(br#"{"b":1,"a":2}"#));
        assert!(!is_canonical(br#"{"a": 1}"#));
        assert!(!is_canonical(b"not json"));
    }
}
