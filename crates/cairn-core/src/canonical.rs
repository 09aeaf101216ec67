//! Canonical payload encoding (RFC 8785, JSON Canonicalization Scheme).
//!
//! Payload hashes are taken over these bytes so that a client in any language
//! can recompute them: keys sorted by UTF-16 code units, no insignificant
//! whitespace, numbers in their shortest ECMAScript form, strings in UTF-8
//! with the minimal escapes. Cairn adds restrictions that keep hashes stable
//! across languages: integers must be exactly representable as IEEE doubles
//! (|n| <= 2^53), floats must be finite, nesting is bounded.
//!
//! The encoder is written by hand, in one pass that also checks those
//! restrictions. `serde_json_canonicalizer` does the same job, but it
//! re-serializes every property into its own buffers and re-parses each key
//! to sort it; it was over half of the CPU a write spends before the writer
//! thread. It stays as the oracle of a differential property test. Numbers
//! are formatted by `ryu-js`, which implements ECMAScript's `Number::toString`.

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
            if !integer_is_safe(number) {
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
    let mut out = Vec::with_capacity(512);
    if write_value(value, 0, true, &mut out) {
        return Ok(out);
    }
    // The fast pass only knows that something failed; the checker, which
    // applies the same predicates, names where.
    check(value)?;
    unreachable!("the checker and the encoder apply the same rules")
}

/// Encodes a value already known to pass [`check`].
pub fn encode_unchecked(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_value(value, 0, false, &mut out);
    out
}

fn integer_is_safe(number: &serde_json::Number) -> bool {
    if let Some(int) = number.as_i64() {
        int.unsigned_abs() <= SAFE_INTEGER_MAX
    } else if let Some(uint) = number.as_u64() {
        uint <= SAFE_INTEGER_MAX
    } else {
        // A float; serde_json never builds a non-finite one.
        true
    }
}

/// Appends the canonical form of `value`; false when `checked` and a
/// restriction fails (the output is then garbage).
fn write_value(value: &Value, depth: usize, checked: bool, out: &mut Vec<u8>) -> bool {
    if checked && depth > JSON_DEPTH_MAX {
        return false;
    }
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            if checked && !integer_is_safe(number) {
                return false;
            }
            // JSON numbers are IEEE doubles in RFC 8785, integers included.
            let double = number.as_f64().unwrap_or(0.0);
            let mut buffer = ryu_js::Buffer::new();
            out.extend_from_slice(buffer.format_finite(double).as_bytes());
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                if !write_value(item, depth + 1, checked, out) {
                    return false;
                }
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            // serde_json's map iterates in byte order, which equals RFC 8785's
            // UTF-16 order unless keys hold characters above U+FFFF; a map in
            // insertion order (serde_json's `preserve_order`) is sorted too.
            let sorted = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| utf16_cmp(a, b).is_lt());
            let mut write_entry = |index: usize, key: &str, item: &Value| {
                if index > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, depth + 1, checked, out)
            };
            if sorted {
                for (index, (key, item)) in map.iter().enumerate() {
                    if !write_entry(index, key, item) {
                        return false;
                    }
                }
            } else {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| utf16_cmp(a.0, b.0));
                for (index, (key, item)) in entries.into_iter().enumerate() {
                    if !write_entry(index, key, item) {
                        return false;
                    }
                }
            }
            out.push(b'}');
        }
    }
    true
}

fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A string with RFC 8785's escapes: `"` and `\`, the short forms of
/// backspace, tab, newline, form feed and carriage return, `\u00xx` for the
/// other control characters, everything else as UTF-8.
fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(byte >> 4) as usize],
                HEX[(byte & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..index]);
        out.extend_from_slice(escape);
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// SHA-256 of the canonical encoding: the `payload_hash` of an op.
pub fn payload_hash(canonical_bytes: &[u8]) -> Hash {
    Hash::of(canonical_bytes)
}

/// True when `bytes` are exactly the canonical encoding of the JSON they hold
/// and pass Cairn's restrictions.
///
/// One pass over the bytes, without building the value: every op decoded
/// anywhere (a push at the hub, a pull, `cairn verify`) checks its payload
/// here. Parsing into a `Value`, re-encoding and comparing was most of the
/// hub's decode time. The property tests hold it to that definition.
pub fn is_canonical(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let mut validator = Validator { text, bytes, at: 0 };
    validator.value(0) && validator.at == bytes.len()
}

/// The cursor of [`is_canonical`]: each method consumes one production of
/// the canonical grammar and returns false at the first byte that is not
/// in canonical form.
struct Validator<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Validator<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > JSON_DEPTH_MAX {
            return false;
        }
        match self.peek() {
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'"') => self.string().is_some(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.at += 1;
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return true;
                }
                let mut previous: Option<&'a str> = None;
                loop {
                    let Some(key) = self.string() else {
                        return false;
                    };
                    if previous.is_some_and(|previous| !raw_key_less(previous, key)) {
                        return false;
                    }
                    previous = Some(key);
                    if self.peek() != Some(b':') {
                        return false;
                    }
                    self.at += 1;
                    if !self.value(depth + 1) {
                        return false;
                    }
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return true;
                        }
                        _ => return false,
                    }
                }
            }
            _ => false,
        }
    }

    /// A string in canonical form; returns its raw content (escapes kept).
    fn string(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.at += 1;
        let start = self.at;
        loop {
            let byte = self.peek()?;
            self.at += 1;
            match byte {
                b'"' => return Some(&self.text[start..self.at - 1]),
                0x00..=0x1f => return None,
                b'\\' => {
                    let escape = self.peek()?;
                    self.at += 1;
                    match escape {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => {}
                        b'u' => {
                            // Only control characters without a short form.
                            let hex = self.bytes.get(self.at..self.at + 4)?;
                            let lower = |digit: u8| matches!(digit, b'0'..=b'9' | b'a'..=b'f');
                            if hex[0] != b'0' || hex[1] != b'0' || !lower(hex[2]) || !lower(hex[3])
                            {
                                return None;
                            }
                            let code = u8::from_str_radix(&self.text[self.at + 2..self.at + 4], 16)
                                .ok()?;
                            if code >= 0x20 || matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.at += 4;
                        }
                        _ => return None,
                    }
                }
                _ => {}
            }
        }
    }

    /// A number exactly as ECMAScript prints its double (`ryu-js`). The
    /// safe-integer rule is the writer's (it refuses input it would round);
    /// whatever the encoder can print is canonical here.
    fn number(&mut self) -> bool {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.peek() {
            self.at += 1;
        }
        let token = &self.text[start..self.at];
        // Rust's float syntax is looser than JSON's (`inf`, `.5`, `1.`), but
        // only exact canonical forms survive the comparison below.
        let Ok(double) = token.parse::<f64>() else {
            return false;
        };
        double.is_finite() && ryu_js::Buffer::new().format_finite(double) == token
    }
}

/// Whether raw (still escaped) canonical key `a` sorts strictly before `b`
/// in RFC 8785 order, by UTF-16 code units of the unescaped text.
fn raw_key_less(a: &str, b: &str) -> bool {
    // Without escapes and without characters from U+E000 up, UTF-8 byte
    // order is UTF-16 order: the common case, compared in place.
    let plain = |key: &str| !key.bytes().any(|byte| byte == b'\\' || byte >= 0xEE);
    if plain(a) && plain(b) {
        return a < b;
    }
    utf16_cmp(&unescape(a), &unescape(b)).is_lt()
}

/// The text of a raw canonical string (its escapes already validated).
fn unescape(raw: &str) -> String {
    let mut text = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(char) = chars.next() {
        if char != '\\' {
            text.push(char);
            continue;
        }
        match chars.next() {
            Some('b') => text.push('\u{8}'),
            Some('t') => text.push('\t'),
            Some('n') => text.push('\n'),
            Some('f') => text.push('\u{c}'),
            Some('r') => text.push('\r'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).unwrap_or(0);
                text.push(char::from_u32(code).unwrap_or('\0'));
            }
            Some(other) => text.push(other),
            None => {}
        }
    }
    text
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

    /// The definition `is_canonical` is held to: parse (exactly: the tests
    /// build serde_json with `float_roundtrip`), re-encode, compare, within
    /// the nesting bound.
    fn canonical_by_reencoding(bytes: &[u8]) -> bool {
        fn depth(value: &Value) -> usize {
            match value {
                Value::Array(items) if !items.is_empty() => {
                    1 + items.iter().map(depth).max().unwrap_or(0)
                }
                Value::Object(map) if !map.is_empty() => {
                    1 + map.values().map(depth).max().unwrap_or(0)
                }
                _ => 0,
            }
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => depth(&value) <= JSON_DEPTH_MAX && encode_unchecked(&value) == bytes,
            Err(_) => false,
        }
    }

    #[test]
    fn canonical_detection_of_each_form() {
        for (text, canonical) in [
            (r#"{"a":1,"b":[true,false,null]}"#, true),
            (r#"{"b":1,"a":2}"#, false),
            (r#"{"a":1,"a":2}"#, false),
            (r#"{"a": 1}"#, false),
            (" 1", false),
            ("1 ", false),
            ("", false),
            ("not json", false),
            ("[1,]", false),
            ("{\"a\"}", false),
            ("-0", false),
            ("0", true),
            ("1.0", false),
            ("1.5", true),
            ("1e21", false),
            ("1e+21", true),
            ("0.000001", true),
            ("1e-7", true),
            ("9007199254740991", true),
            // 2^53 is a double the encoder prints; the writer refuses it as
            // an input integer, but its canonical form is this.
            ("9007199254740992", true),
            ("9007199254740993", false),
            ("32839869154780930000", true),
            ("-9007199254740991", true),
            ("01", false),
            (".5", false),
            ("inf", false),
            (r#""\u001f""#, true),
            (r#""\u001F""#, false),
            (r#""\u000a""#, false),
            (r#""\n""#, true),
            (r#""\/""#, false),
            (r#""\u0041""#, false),
            ("\"\u{7f}\"", true),
            ("\"\u{1}\"", false),
            (r#""\ud83d\ude00""#, false),
            ("\"\u{1F600}\"", true),
            ("{\"\u{10000}\":1,\"\u{E000}\":2}", true),
            ("{\"\u{E000}\":1,\"\u{10000}\":2}", false),
            (r#"{"\n":1,"a":2}"#, true),
            (r#"{"a":2,"\n":1}"#, false),
        ] {
            assert_eq!(is_canonical(text.as_bytes()), canonical, "{text:?}");
            assert_eq!(
                canonical_by_reencoding(text.as_bytes()),
                canonical,
                "{text:?}"
            );
        }
        assert!(!is_canonical(b"\"\xff\""));
        let mut deep = json!(1);
        for _ in 0..JSON_DEPTH_MAX {
            deep = json!([deep]);
        }
        assert!(is_canonical(&to_canonical_bytes(&deep).unwrap()));
        let deeper = encode_unchecked(&json!([deep]));
        assert!(!is_canonical(&deeper));
        assert!(!canonical_by_reencoding(&deeper));
        assert!(is_canonical(&encode_unchecked(&json!([[]]))));
    }

    #[test]
    fn canonical_detection() {
        assert!(is_canonical(br#"{"a":1,"b":[true]}"#));
        assert!(!is_canonical(br#"{"b":1,"a":2}"#));
        assert!(!is_canonical(br#"{"a": 1}"#));
        assert!(!is_canonical(b"not json"));
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_bytes() {
        // U+E000 sorts before U+10000 in UTF-8 bytes, after it in UTF-16
        // (whose surrogates start at 0xD800).
        let value = json!({"\u{E000}": 1, "\u{10000}": 2, "a": 3});
        assert_eq!(
            String::from_utf8(to_canonical_bytes(&value).unwrap()).unwrap(),
            "{\"a\":3,\"\u{10000}\":2,\"\u{E000}\":1}"
        );
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let text = prop_oneof![
            any::<String>(),
            "[a-c\\u{0}-\\u{1f}\"\\\\/\\u{7f}\\u{e000}\\u{ffff}\\u{10000}]{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-(SAFE_INTEGER_MAX as i64)..=SAFE_INTEGER_MAX as i64).prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(|x| json!(x)),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// The hand-written encoder matches serde_json_canonicalizer byte for byte.
        #[test]
        fn encoder_matches_the_reference_canonicalizer(value in json_value()) {
            let reference = serde_json_canonicalizer::to_vec(&value).unwrap();
            proptest::prop_assert_eq!(&encode_unchecked(&value), &reference);
            proptest::prop_assert_eq!(to_canonical_bytes(&value).unwrap(), reference);
        }

        /// And on text made of JSON's own characters, mostly malformed.
        #[test]
        fn the_one_pass_check_agrees_on_json_like_text(
            text in "[\\[\\]{}\",:0-9eE.+\\-a-u\\\\ ]{0,24}",
        ) {
            proptest::prop_assert_eq!(
                is_canonical(text.as_bytes()),
                canonical_by_reencoding(text.as_bytes()),
                "{:?}",
                text
            );
        }

        /// The one-pass check agrees with parsing and re-encoding, on
        /// canonical bytes and on every single-byte edit of them.
        #[test]
        fn the_one_pass_check_agrees_with_reencoding(
            value in json_value(),
            at in proptest::prelude::any::<proptest::sample::Index>(),
            byte in proptest::prelude::any::<u8>(),
            edit in 0..4u8,
        ) {
            let canonical = encode_unchecked(&value);
            proptest::prop_assert!(is_canonical(&canonical));
            let mut edited = canonical.clone();
            let index = at.index(edited.len() + 1);
            match edit {
                0 if index < edited.len() => edited[index] = byte,
                1 => edited.insert(index, byte),
                2 if index < edited.len() => { edited.remove(index); }
                _ => edited.insert(index, b' '),
            }
            proptest::prop_assert_eq!(
                is_canonical(&edited),
                canonical_by_reencoding(&edited),
                "{:?}",
                String::from_utf8_lossy(&edited)
            );
        }
    }
}
