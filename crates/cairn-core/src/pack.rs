//! Rule packs: versioned, declarative TOML files that define a domain's
//! collections, their fields and the rules a write must pass.
//!
//! A pack is parsed once into checked, typed rules ([`RulePack`]); writes are
//! then validated against them with [`Collection::validate`], which returns the
//! normalized payload together with *every* violation (field and rule), never
//! just the first. Validation is a pure function of the pack and the input.
//!
//! Parsing and checking a pack's TOML lives in `parse`; the types, write
//! validation and normalizers here.

pub use crate::dates::{parse_date_days, parse_datetime_ms};
use crate::hash::Hash;
use crate::limits::{
    COLLECTION_FIELDS_MAX, FORMAT_PATTERN_BYTES_MAX, PACK_BYTES_MAX, PACK_COLLECTIONS_MAX,
    SET_ELEMENTS_MAX,
};
use crate::merge::{FieldRule, MergeKind, MergeSchema};
use crate::names::check_name;
use crate::op::Action;
use regex::Regex;
pub use rules::Rules;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
pub use sync::{Priority, SyncRules};

/// The packs that ship inside the binary: (name, TOML source).
pub const BUILTIN_PACKS: [(&str, &str); 3] = [
    ("mro", include_str!("../packs/mro.toml")),
    ("pharmacy", include_str!("../packs/pharmacy.toml")),
    ("field_service", include_str!("../packs/field_service.toml")),
];

/// What a collection holds and how it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CollectionKind {
    /// Append-only evidence, corrected by new records.
    Ledger,
    /// Mutable records merged per field.
    Entity,
    /// Whole-document settings, last writer wins.
    Config,
}

impl CollectionKind {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            CollectionKind::Ledger => "ledger",
            CollectionKind::Entity => "entity",
            CollectionKind::Config => "config",
        }
    }
}

/// The JSON type a field accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer within +/-(2^53-1).
    Integer,
    /// Any finite JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 timestamp with `Z` or an offset.
    Datetime,
    /// An array of distinct strings.
    Set,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date (YYYY-MM-DD)",
            FieldType::Datetime => "datetime (RFC 3339)",
            FieldType::Set => "array of distinct strings",
        }
    }
}

/// A rewrite applied to a string before it is checked and hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalizer {
    /// Upper-case (aircraft registrations, serials).
    Upper,
    /// Lower-case.
    Lower,
    /// Strip surrounding whitespace.
    Trim,
    /// NDC-10 (4-4-2, 5-3-2, 5-4-1) or NDC-11 to the 5-4-2 NDC-11 form.
    Ndc11,
}

/// One declared field and its rules.
#[derive(Clone, Debug)]
pub struct Field {
    /// Field name.
    pub name: String,
    /// Accepted JSON type.
    pub ty: FieldType,
    /// Must be present (ledger records, config documents, new entities).
    pub required: bool,
    /// Pattern a string (or each set element) must match.
    pub format: Option<Regex>,
    /// Allowed string values.
    pub allowed: Option<Vec<String>>,
    /// Least allowed number.
    pub min: Option<f64>,
    /// Greatest allowed number.
    pub max: Option<f64>,
    /// Longest string, or most elements of a set.
    pub max_length: Option<usize>,
    /// How concurrent writes merge (entities).
    pub merge: FieldRule,
    /// Holds personal or health data: never echoed in messages or logs.
    pub sensitive: bool,
    /// Rewrite applied before the checks.
    pub normalize: Option<Normalizer>,
    /// For dates: must be after this other field.
    pub after: Option<String>,
}

/// Sends writes whose `field` has one of `equals` to `stream`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Field to look at.
    pub field: String,
    /// Values that select this route.
    pub equals: Vec<String>,
    /// Stream to use.
    pub stream: String,
}

/// A collection: its kind, fields and routing.
#[derive(Clone, Debug)]
pub struct Collection {
    /// Collection name.
    pub name: String,
    /// Pack it comes from.
    pub pack: String,
    /// Ledger, entity or config.
    pub kind: CollectionKind,
    /// Stream used unless a route says otherwise.
    pub stream: String,
    /// One line on what it holds.
    pub description: String,
    /// Scope labels every write must carry.
    pub scope: Vec<String>,
    /// Declared fields.
    pub fields: BTreeMap<String, Field>,
    /// Stream routing by field value.
    pub routes: Vec<Route>,
    /// What only the hub can judge (uniqueness, references, deadlines...).
    pub rules: Rules,
    /// How its ops travel: priority, expiry.
    pub sync: SyncRules,
}

/// A checked, typed rule pack.
#[derive(Clone, Debug)]
pub struct RulePack {
    /// Pack name.
    pub name: String,
    /// Pack version (semantic version text).
    pub version: String,
    /// Human title.
    pub title: String,
    /// Collections by name.
    pub collections: BTreeMap<String, Collection>,
    /// SHA-256 of the TOML source: which rules a verdict was made under.
    pub source_hash: Hash,
    /// The share of historical records a new version may newly reject
    /// before `cairn pack activate` refuses it (0 to 1).
    pub drift_tolerance: f64,
}

/// The drift tolerance of a pack that names none: 1 %.
pub const DRIFT_TOLERANCE_DEFAULT: f64 = 0.01;

/// Why a pack was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule pack {pack}: {path}: {message}")]
pub struct PackError {
    /// Pack name, or the file if unknown.
    pub pack: String,
    /// Where in the pack (e.g. `collections.parts.fields.status`).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// One reason a write was refused: the field and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// The field (or `collection`, `action`, `key`, `scope`, `data`).
    pub field: String,
    /// The rule, a stable identifier such as `required` or `format`.
    pub rule: String,
    /// A sentence for people.
    pub message: String,
}

impl Violation {
    /// A violation of `rule` on `field`.
    pub fn new(
        field: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            field: field.into(),
            rule: rule.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (rule: {})", self.field, self.message, self.rule)
    }
}

/// The result of validating one write.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The payload after normalization (only meaningful without violations).
    pub payload: Map<String, Value>,
    /// Every rule the write broke.
    pub violations: Vec<Violation>,
}

impl Collection {
    /// The merge rules of an entity or config collection.
    pub fn merge_schema(&self) -> Option<MergeSchema> {
        let kind = match self.kind {
            CollectionKind::Ledger => return None,
            CollectionKind::Entity => MergeKind::Entity,
            CollectionKind::Config => MergeKind::Config,
        };
        Some(MergeSchema {
            kind,
            fields: self
                .fields
                .iter()
                .map(|(name, field)| (name.clone(), field.merge.clone()))
                .collect(),
        })
    }

    /// The stream a validated payload goes to.
    pub fn route(&self, payload: &Map<String, Value>) -> &str {
        self.routes
            .iter()
            .find(|route| {
                payload
                    .get(&route.field)
                    .and_then(Value::as_str)
                    .is_some_and(|value| route.equals.iter().any(|wanted| wanted == value))
            })
            .map_or(&self.stream, |route| &route.stream)
    }

    /// Which fields are sensitive (for redacting logs and messages).
    pub fn is_sensitive(&self, field: &str) -> bool {
        self.fields.get(field).is_some_and(|field| field.sensitive)
    }

    /// Validates a write. `creating` says whether an entity put creates the
    /// entity (then its required fields must be present).
    pub fn validate(&self, action: Action, data: &Value, creating: bool) -> Validated {
        let mut violations = Vec::new();
        let allowed: &[Action] = match self.kind {
            CollectionKind::Ledger => &[Action::Append, Action::Correct],
            CollectionKind::Entity | CollectionKind::Config => &[Action::Put, Action::Delete],
        };
        if !allowed.contains(&action) {
            let names: Vec<&str> = allowed.iter().map(|action| action.name()).collect();
            violations.push(Violation::new(
                "action",
                "kind",
                format!(
                    "{} collections take {}, not {}",
                    self.kind.name(),
                    names.join(" or "),
                    action.name()
                ),
            ));
            return Validated {
                payload: Map::new(),
                violations,
            };
        }
        let Some(object) = data.as_object() else {
            violations.push(Violation::new("data", "type", "must be a JSON object"));
            return Validated {
                payload: Map::new(),
                violations,
            };
        };
        if action == Action::Delete {
            if !object.is_empty() {
                violations.push(Violation::new(
                    "data",
                    "delete",
                    "a delete carries no fields",
                ));
            }
            return Validated {
                payload: Map::new(),
                violations,
            };
        }
        let whole = match self.kind {
            CollectionKind::Ledger | CollectionKind::Config => true,
            CollectionKind::Entity => creating,
        };
        // Entries come out of `object` in key order, so collecting them
        // builds the payload map in one pass instead of insert by insert.
        let mut entries = Vec::with_capacity(object.len());
        let mut required_given = 0;
        for (name, value) in object {
            let Some(field) = self.fields.get(name) else {
                violations.push(Violation::new(
                    name.clone(),
                    "unknown_field",
                    format!("is not a field of {} (pack {})", self.name, self.pack),
                ));
                continue;
            };
            if value.is_null()
                && self.kind == CollectionKind::Entity
                && !field.required
                && field.merge == FieldRule::Lww
            {
                // Null clears an optional last-writer-wins field of an entity.
                entries.push((name.clone(), Value::Null));
                continue;
            }
            required_given += usize::from(field.required);
            if let Some(value) = check_value(field, value, &mut violations) {
                entries.push((name.clone(), value));
            }
        }
        let payload: Map<String, Value> = entries.into_iter().collect();
        if whole && required_given < self.required_fields() {
            for field in self.fields.values() {
                if field.required && !object.contains_key(&field.name) {
                    violations.push(Violation::new(
                        field.name.clone(),
                        "required",
                        "is required",
                    ));
                }
            }
        }
        self.check_groups(object, &mut violations);
        self.check_after(&payload, &mut violations);
        violations.sort_by(|a, b| (&a.field, &a.rule).cmp(&(&b.field, &b.rule)));
        Validated {
            payload,
            violations,
        }
    }

    fn required_fields(&self) -> usize {
        self.fields.values().filter(|field| field.required).count()
    }

    /// Required fields missing from a payload: checked by the store when an
    /// entity put turns out to create the entity.
    pub fn missing_required(&self, payload: &Map<String, Value>) -> Vec<Violation> {
        self.fields
            .values()
            .filter(|field| field.required && payload.get(&field.name).is_none_or(Value::is_null))
            .map(|field| Violation::new(field.name.clone(), "required", "is required"))
            .collect()
    }

    /// A prefer group is written whole or not at all.
    fn check_groups(&self, object: &Map<String, Value>, violations: &mut Vec<Violation>) {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for field in self.fields.values() {
            if let FieldRule::Prefer { group, .. } = &field.merge {
                groups.entry(group).or_default().push(&field.name);
            }
        }
        for (group, members) in groups {
            let given: BTreeSet<&str> = members
                .iter()
                .copied()
                .filter(|m| object.contains_key(*m))
                .collect();
            if !given.is_empty() && given.len() != members.len() {
                for missing in members.iter().filter(|m| !given.contains(*m)) {
                    violations.push(Violation::new(
                        *missing,
                        "group",
                        format!(
                            "group {group:?} is written together: {}",
                            members.join(", ")
                        ),
                    ));
                }
            }
        }
    }

    fn check_after(&self, payload: &Map<String, Value>, violations: &mut Vec<Violation>) {
        for field in self.fields.values() {
            let Some(other) = &field.after else { continue };
            let (Some(Value::String(this)), Some(Value::String(that))) =
                (payload.get(&field.name), payload.get(other))
            else {
                continue;
            };
            let instant = |text: &str| {
                parse_datetime_ms(text)
                    .or_else(|| parse_date_days(text).map(|days| days * 86_400_000))
            };
            if let (Some(this_ms), Some(that_ms)) = (instant(this), instant(that))
                && this_ms <= that_ms
            {
                violations.push(Violation::new(
                    field.name.clone(),
                    "after",
                    format!("must be after {other} ({this} is not after {that})"),
                ));
            }
        }
    }
}

/// Checks and normalizes one value; records violations and returns `None` if it fails.
fn check_value(field: &Field, value: &Value, violations: &mut Vec<Violation>) -> Option<Value> {
    let shown = |value: &Value| -> String {
        if field.sensitive {
            "the value".into()
        } else {
            let text = value.to_string();
            if text.len() > 80 {
                format!("{}...", &text[..text.floor_char_boundary(77)])
            } else {
                text
            }
        }
    };
    let before = violations.len();
    let mut fail = |rule: &str, message: String| {
        violations.push(Violation::new(field.name.clone(), rule, message))
    };
    let normalized = match field.ty {
        FieldType::String => match value.as_str() {
            Some(text) => match normalize(field.normalize, text) {
                Some(text) => {
                    check_text(field, &text, &mut fail, &shown);
                    Value::String(text)
                }
                None => {
                    fail(
                        "format",
                        format!(
                            "{} is not a valid {:?} value",
                            shown(value),
                            field.normalize.expect("normalizer")
                        ),
                    );
                    return None;
                }
            },
            None => {
                fail(
                    "type",
                    format!("must be a {}, got {}", field.ty.name(), json_type(value)),
                );
                return None;
            }
        },
        FieldType::Integer => {
            let Some(number) = value.as_i64().filter(|_| value.is_i64() || value.is_u64()) else {
                fail(
                    "type",
                    format!("must be an integer, got {}", json_type(value)),
                );
                return None;
            };
            check_range(field, number as f64, &mut fail, || shown(value));
            value.clone()
        }
        FieldType::Number => {
            let Some(number) = value.as_f64() else {
                fail(
                    "type",
                    format!("must be a number, got {}", json_type(value)),
                );
                return None;
            };
            check_range(field, number, &mut fail, || shown(value));
            value.clone()
        }
        FieldType::Boolean => {
            if !value.is_boolean() {
                fail(
                    "type",
                    format!("must be a boolean, got {}", json_type(value)),
                );
                return None;
            }
            value.clone()
        }
        FieldType::Date | FieldType::Datetime => {
            let Some(text) = value.as_str() else {
                fail(
                    "type",
                    format!("must be a {}, got {}", field.ty.name(), json_type(value)),
                );
                return None;
            };
            let ok = if field.ty == FieldType::Date {
                parse_date_days(text).is_some()
            } else {
                parse_datetime_ms(text).is_some()
            };
            if !ok {
                fail(
                    "format",
                    format!("{} is not a valid {}", shown(value), field.ty.name()),
                );
            }
            value.clone()
        }
        FieldType::Set => {
            let Some(items) = value.as_array() else {
                fail(
                    "type",
                    format!("must be an {}, got {}", field.ty.name(), json_type(value)),
                );
                return None;
            };
            let limit = field
                .max_length
                .unwrap_or(SET_ELEMENTS_MAX)
                .min(SET_ELEMENTS_MAX);
            if items.len() > limit {
                fail(
                    "max_length",
                    format!("has {} elements, at most {limit}", items.len()),
                );
            }
            let mut seen = BTreeSet::new();
            for item in items {
                let Some(text) = item.as_str() else {
                    fail(
                        "type",
                        format!("elements must be strings, got {}", json_type(item)),
                    );
                    continue;
                };
                if !seen.insert(text) {
                    fail("unique", format!("{} appears twice", shown(item)));
                }
                if let Some(pattern) = &field.format
                    && !pattern.is_match(text)
                {
                    fail(
                        "format",
                        format!(
                            "element {} does not match {}",
                            shown(item),
                            pattern.as_str()
                        ),
                    );
                }
                if let Some(allowed) = &field.allowed
                    && !allowed.iter().any(|a| a == text)
                {
                    fail(
                        "enum",
                        format!(
                            "element {} is not one of {}",
                            shown(item),
                            allowed.join(", ")
                        ),
                    );
                }
            }
            value.clone()
        }
    };
    (violations.len() == before).then_some(normalized)
}

fn check_text(
    field: &Field,
    text: &str,
    fail: &mut impl FnMut(&str, String),
    shown: &impl Fn(&Value) -> String,
) {
    // Built only for a message: most texts pass every check.
    let shown = || shown(&Value::String(text.to_string()));
    if let Some(limit) = field.max_length
        && text.chars().count() > limit
    {
        fail(
            "max_length",
            format!("is {} characters, at most {limit}", text.chars().count()),
        );
    }
    if let Some(pattern) = &field.format
        && !pattern.is_match(text)
    {
        fail(
            "format",
            format!("{} does not match {}", shown(), pattern.as_str()),
        );
    }
    if let Some(allowed) = &field.allowed
        && !allowed.iter().any(|a| a == text)
    {
        fail(
            "enum",
            format!("{} is not one of {}", shown(), allowed.join(", ")),
        );
    }
}

fn check_range(
    field: &Field,
    number: f64,
    fail: &mut impl FnMut(&str, String),
    shown: impl Fn() -> String,
) {
    if let Some(min) = field.min
        && number < min
    {
        fail("min", format!("{} is below the minimum {min}", shown()));
    }
    if let Some(max) = field.max
        && number > max
    {
        fail("max", format!("{} is above the maximum {max}", shown()));
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies a normalizer; `None` when the text cannot be normalized.
pub fn normalize(normalizer: Option<Normalizer>, text: &str) -> Option<String> {
    Some(match normalizer {
        None => text.to_string(),
        Some(Normalizer::Upper) => text.trim().to_uppercase(),
        Some(Normalizer::Lower) => text.trim().to_lowercase(),
        Some(Normalizer::Trim) => text.trim().to_string(),
        Some(Normalizer::Ndc11) => ndc11(text.trim())?,
    })
}

/// NDC-10 in any of its three hyphenated layouts, or NDC-11, to `NNNNN-NNNN-NN`.
fn ndc11(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.split('-').collect();
    if !parts
        .iter()
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let lengths: Vec<usize> = parts.iter().map(|part| part.len()).collect();
    let (labeler, product, package) = match lengths.as_slice() {
        [11] => (&text[..5], &text[5..9], &text[9..]),
        [5, 4, 2] => (parts[0], parts[1], parts[2]),
        [4, 4, 2] | [5, 3, 2] | [5, 4, 1] => (parts[0], parts[1], parts[2]),
        _ => return None,
    };
    Some(format!("{labeler:0>5}-{product:0>4}-{package:0>2}"))
}

mod describe;
mod parse;
pub mod rules;
pub mod sync;

#[cfg(test)]
mod tests;
