//! Parsing untrusted input (HTTP bodies, `--data`, files, stdin) into write
//! requests, with errors that name the field and the rule.
//!
//! The API and the command line share this module so that the same bad
//! input gets the same message wherever it comes from.

use crate::{Catalog, WriteRequest};
use cairn_core::op::Action;
use cairn_core::pack::{CollectionKind, Violation};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub use cairn_proto::json::{BODY_BYTES_MAX, parse_json};

/// Checks a list cursor (`after`): for a ledger, the id of a record
/// (`node:stream:seq`, as a list's `next` gives it); for entities and
/// config, any key.
pub fn check_cursor(kind: Option<CollectionKind>, after: &str) -> Result<(), Violation> {
    let is_record_id = || {
        let mut parts = after.rsplitn(3, ':');
        let seq = parts.next().and_then(|seq| seq.parse::<u64>().ok());
        let stream = parts.next().filter(|part| !part.is_empty());
        let node = parts.next().filter(|part| !part.is_empty());
        seq.is_some_and(|seq| seq >= 1) && stream.is_some() && node.is_some()
    };
    match kind {
        Some(CollectionKind::Ledger) if !is_record_id() => Err(Violation::new(
            "after",
            "format",
            format!("{after:?} is not a record id (node:stream:seq, as a list's next gives it)"),
        )),
        _ if after.is_empty() => Err(Violation::new("after", "format", "is empty")),
        _ => Ok(()),
    }
}

/// Parses `k=v` scope labels (command line form).
pub fn parse_scope_args(labels: &[String]) -> Result<BTreeMap<String, String>, Violation> {
    labels
        .iter()
        .map(|label| {
            label
                .split_once('=')
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .ok_or_else(|| {
                    Violation::new("scope", "format", format!("{label:?} is not NAME=VALUE"))
                })
        })
        .collect()
}

/// Parses a scope filter `k=v,k2=v2` (query string form).
pub fn parse_scope_filter(text: &str) -> Result<BTreeMap<String, String>, Violation> {
    let labels: Vec<String> = text
        .split(',')
        .filter(|label| !label.is_empty())
        .map(str::to_string)
        .collect();
    parse_scope_args(&labels)
}

/// One write in the JSON form of the API:
/// `{"collection", "action"?, "key"?, "scope"?, "data", "corrects"?, "reason"?, "move"?}`.
pub fn write_request(
    catalog: &Catalog,
    value: &Value,
    index: usize,
) -> Result<WriteRequest, (usize, Vec<Violation>)> {
    let mut violations = Vec::new();
    let Some(object) = value.as_object() else {
        return Err((
            index,
            vec![Violation::new("record", "type", "must be a JSON object")],
        ));
    };
    const FIELDS: [&str; 8] = [
        "collection",
        "action",
        "key",
        "scope",
        "data",
        "corrects",
        "reason",
        "move",
    ];
    for name in object.keys() {
        if !FIELDS.contains(&name.as_str()) {
            violations.push(Violation::new(
                name.clone(),
                "unknown_field",
                format!("is not part of a write (expected {})", FIELDS.join(", ")),
            ));
        }
    }
    let text = |name: &str, violations: &mut Vec<Violation>| -> Option<String> {
        match object.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                violations.push(Violation::new(name, "type", "must be a string"));
                None
            }
        }
    };
    let collection = text("collection", &mut violations);
    let action_name = text("action", &mut violations);
    let key = text("key", &mut violations);
    let corrects = text("corrects", &mut violations);
    let reason = text("reason", &mut violations);
    let move_scope = match object.get("move") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(value)) => *value,
        Some(_) => {
            violations.push(Violation::new("move", "type", "must be true or false"));
            false
        }
    };
    let scope = match object.get("scope") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => scope_object(map, &mut violations),
        Some(_) => {
            violations.push(Violation::new(
                "scope",
                "type",
                "must be an object of label names to strings",
            ));
            BTreeMap::new()
        }
    };
    let Some(collection) = collection else {
        if !violations.iter().any(|v| v.field == "collection") {
            violations.push(Violation::new(
                "collection",
                "required",
                "names the collection to write",
            ));
        }
        return Err((index, violations));
    };
    let kind = catalog
        .collections
        .get(&collection)
        .map(|collection| collection.kind);
    let action = match (action_name.as_deref(), kind) {
        (Some(name), _) => match Action::from_name(name) {
            Some(action) => Some(action),
            None => {
                violations.push(Violation::new(
                    "action",
                    "enum",
                    format!("{name:?} is not one of append, correct, put, delete"),
                ));
                None
            }
        },
        (None, Some(CollectionKind::Ledger)) if corrects.is_some() => Some(Action::Correct),
        (None, Some(CollectionKind::Ledger)) => Some(Action::Append),
        (None, Some(CollectionKind::Entity | CollectionKind::Config)) => Some(Action::Put),
        // Unknown collection: the store names it.
        (None, None) => Some(Action::Append),
    };
    let data = match object.get("data") {
        Some(data) => data.clone(),
        None if action == Some(Action::Delete) => Value::Object(Map::new()),
        None => {
            violations.push(Violation::new(
                "data",
                "required",
                "holds the record's fields",
            ));
            Value::Null
        }
    };
    match (action, violations.is_empty()) {
        (Some(action), true) => Ok(WriteRequest {
            collection,
            action,
            key,
            scope,
            data,
            corrects,
            reason,
            move_scope,
        }),
        _ => Err((index, violations)),
    }
}

fn scope_object(
    map: &Map<String, Value>,
    violations: &mut Vec<Violation>,
) -> BTreeMap<String, String> {
    let mut scope = BTreeMap::new();
    for (name, value) in map {
        match value.as_str() {
            Some(text) => {
                scope.insert(name.clone(), text.to_string());
            }
            None => violations.push(Violation::new(
                "scope",
                "type",
                format!("label {name:?} must be a string"),
            )),
        }
    }
    scope
}

/// A batch in the JSON form of the API: `{"records": [write, ...]}`.
pub fn batch_request(
    catalog: &Catalog,
    value: &Value,
) -> Result<Vec<WriteRequest>, (usize, Vec<Violation>)> {
    let Some(object) = value.as_object() else {
        return Err((
            0,
            vec![Violation::new(
                "body",
                "type",
                "must be a JSON object with a records array",
            )],
        ));
    };
    if let Some(name) = object.keys().find(|name| *name != "records") {
        return Err((
            0,
            vec![Violation::new(
                name.clone(),
                "unknown_field",
                "a batch holds only `records`",
            )],
        ));
    }
    let Some(records) = object.get("records").and_then(Value::as_array) else {
        return Err((
            0,
            vec![Violation::new(
                "records",
                "required",
                "must be an array of writes",
            )],
        ));
    };
    if records.len() > crate::limits::BATCH_RECORDS_MAX {
        return Err((
            0,
            vec![Violation::new(
                "records",
                "max_records",
                format!(
                    "a batch holds at most {} records, got {}",
                    crate::limits::BATCH_RECORDS_MAX,
                    records.len()
                ),
            )],
        ));
    }
    records
        .iter()
        .enumerate()
        .map(|(index, record)| write_request(catalog, record, index))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_filters_name_the_rule() {
        assert_eq!(parse_scope_filter("site=a,building=b").unwrap().len(), 2);
        assert_eq!(parse_scope_filter("site").unwrap_err().rule, "format");
    }
}
