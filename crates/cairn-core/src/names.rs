//! Rules for the names that appear in op headers and URLs.
//!
//! Node, stream and collection names are short ASCII identifiers so they can
//! be printed, logged and put in a path without escaping. Keys and scope
//! values are freer (any printable text without control characters).

use crate::limits::{KEY_BYTES_MAX, NAME_BYTES_MAX, SCOPE_VALUE_BYTES_MAX};

/// The hub's own node name: its administrative acts are ops of this node.
pub const HUB_NODE: &str = "hub";
/// The hub's stream of administrative acts.
pub const AUDIT_STREAM: &str = "audit";
/// The collection of those acts.
pub const AUDIT_COLLECTION: &str = "hub_audit";
/// The hub's stream that distributes the active rule pack versions.
pub const PACKS_STREAM: &str = "packs";
/// The collection of its ops: key the pack's name, payload
/// `{"name", "version", "source"}` (the pack's TOML).
pub const PACKS_COLLECTION: &str = "hub_packs";

/// Checks an identifier: 1..=64 bytes of `[a-z0-9._-]`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_BYTES_MAX {
        return Err(format!("must be 1 to {NAME_BYTES_MAX} characters"));
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return Err("must start with a lowercase letter or a digit".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "character {bad:?} is not allowed (use a-z, 0-9, '.', '_', '-')"
        ));
    }
    Ok(())
}

/// Checks an entity or config key: 1..=256 bytes, no control characters, no '/'.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(format!("must be 1 to {KEY_BYTES_MAX} bytes"));
    }
    if key.chars().any(|c| c.is_control() || c == '/') {
        return Err("must not contain control characters or '/'".into());
    }
    Ok(())
}

/// Checks a scope label value: 1..=128 bytes, no control characters, no ',' or '='.
pub fn check_scope_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > SCOPE_VALUE_BYTES_MAX {
        return Err(format!("must be 1 to {SCOPE_VALUE_BYTES_MAX} bytes"));
    }
    if value
        .chars()
        .any(|c| c.is_control() || c == ',' || c == '=')
    {
        return Err("must not contain control characters, ',' or '='".into());
    }
    Ok(())
}

/// Scope labels as stored beside an op: `,name=value,` per label, so that
/// a label filter is a substring test and a node's visibility a walk.
pub fn scope_text(scope: &std::collections::BTreeMap<String, String>) -> String {
    let mut text = String::from(",");
    for (name, value) in scope {
        text.push_str(name);
        text.push('=');
        text.push_str(value);
        text.push(',');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("hangar-7").is_ok());
        assert!(check_name("critical").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("Hangar").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn keys_and_scope_values() {
        assert!(check_key("EQ-12 north pump").is_ok());
        assert!(check_key("a/b").is_err());
        assert!(check_key("a\nb").is_err());
        assert!(check_scope_value("B12").is_ok());
        assert!(check_scope_value("a=b").is_err());
    }
}
