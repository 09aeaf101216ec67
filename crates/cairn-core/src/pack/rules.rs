//! The rules of a collection that only the hub can judge, because they need
//! data one record does not carry: other records (uniqueness, idempotency
//! windows, follow-ups), the registries of config collections (reference
//! checks), when the record was written and when it arrived (date rules,
//! deadlines), and how long it must be kept (retention).
//!
//! They live under `[collections.NAME.rules]` in a pack:
//!
//! ```toml
//! [collections.maintenance_actions.rules]
//! retention_years = 2
//! valid_at_write = ["certificate_expiry"]
//! unique = [{ name = "same_record", fields = ["part_serial", "action"], payload = true }]
//! idempotency = { fields = ["work_order", "part_serial", "technician"], window_hours = 24 }
//! references = [{ field = "technician", registry = "authorized_technicians",
//!                 expiry = "certificate_expiry", allows = "authorized_actions", action = "action" }]
//! deadline = { days = 30, when = { field = "action", equals = ["return_to_service"] } }
//! ```
//!
//! Parsing checks every name they use against the collection's fields (and
//! the registry's); judging them is `cairn_hub::comply`'s work.

use super::{Collection, CollectionKind, Field, FieldType};
use crate::hash::Hash;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most rules of one kind on a collection.
const RULES_MAX: usize = 16;

/// A condition on one field of the record: its value is one of `equals`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The field looked at.
    pub field: String,
    /// The values that make the rule apply.
    pub equals: Vec<String>,
}

/// No two records of the collection share these fields' values (and, with
/// `payload`, the same payload: the same record written twice).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unique {
    /// The constraint's name, as verdicts cite it.
    pub name: String,
    /// The fields whose values together must be unique.
    pub fields: Vec<String>,
    /// Whether the payload's hash is part of the key.
    #[serde(default)]
    pub payload: bool,
}

/// Records sharing these fields' values within the window are one request
/// sent twice: the later one is refused as a duplicate.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Idempotency {
    /// The fields the key is derived from.
    pub fields: Vec<String>,
    /// How long after the first write a second counts as a duplicate.
    pub window_hours: u64,
}

/// `field` names an entry of the config collection `registry` that exists,
/// is not revoked (deleted), whose `expiry` date is not before the day the
/// record was written, and whose `allows` set holds the record's `action`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    /// The record's field holding the registry key.
    pub field: String,
    /// The config collection (same pack) holding the registry.
    pub registry: String,
    /// The registry's date field the write must not come after.
    pub expiry: Option<String>,
    /// The registry's set field listing what the entry may do.
    pub allows: Option<String>,
    /// The record's field naming what it does (needs `allows`).
    pub action: Option<String>,
}

/// A record matching `when` needs a record of `collection` whose `matching`
/// field equals its own, written within `within_hours` by a different
/// `different` (a second pharmacist), else it becomes a review item.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// The rule's name, as review items cite it.
    pub name: String,
    /// Which records need the follow-up (all when absent).
    pub when: Option<When>,
    /// The ledger collection (same pack) the follow-up is written to.
    pub collection: String,
    /// The field both records carry that ties them together.
    pub matching: String,
    /// The field both carry that must differ (who did it).
    pub different: String,
    /// How long after the record the follow-up may come.
    pub within_hours: u64,
}

/// A record matching `when` must reach the hub within `days` of being
/// written, else it becomes a review item (it is never rejected for it).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    /// Days from the write to the hub's log.
    pub days: u64,
    /// Which records it applies to (all when absent).
    pub when: Option<When>,
}

/// A collection's hub rules, as written in the pack.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Years the hub keeps each record (nothing is deleted before).
    pub retention_years: Option<u32>,
    /// Date fields that must not be before the day the record was written.
    #[serde(default)]
    pub valid_at_write: Vec<String>,
    /// Uniqueness constraints.
    #[serde(default)]
    pub unique: Vec<Unique>,
    /// The idempotency key and its window.
    pub idempotency: Option<Idempotency>,
    /// Reference checks against registries.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Follow-up records some records need.
    #[serde(default)]
    pub follow_ups: Vec<FollowUp>,
    /// When records must reach the hub.
    pub deadline: Option<Deadline>,
    /// Who may write the collection: `hub` for registries only the hub (or
    /// an admin through it) writes; anyone when absent.
    pub written_by: Option<String>,
}

impl Rules {
    /// Whether any rule needs the hub's judgement beyond the record itself.
    pub fn is_empty(&self) -> bool {
        *self == Rules::default()
    }
}

/// A key over text parts: SHA-256 of each part prefixed by its `u64`
/// length, so no two different part lists hash the same bytes.
pub fn key_hash<S: AsRef<str>>(parts: &[S]) -> Hash {
    let mut bytes = Vec::with_capacity(128);
    for part in parts {
        let part = part.as_ref();
        bytes.extend_from_slice(&(part.len() as u64).to_be_bytes());
        bytes.extend_from_slice(part.as_bytes());
    }
    Hash::of(&bytes)
}

/// A field's value as a key part: a string as it is, other JSON as text;
/// `None` when absent or null.
pub fn key_part(payload: &Map<String, Value>, field: &str) -> Option<String> {
    match payload.get(field)? {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Idempotency {
    /// The idempotency key of a (checked, normalized) record of
    /// `collection`, when it has every field of the key.
    pub fn key_of(&self, collection: &str, payload: &Map<String, Value>) -> Option<Hash> {
        let mut parts = vec![format!("idempotency\0{collection}")];
        for field in &self.fields {
            parts.push(key_part(payload, field)?);
        }
        Some(key_hash(&parts))
    }

    /// The window, ms.
    pub fn window_ms(&self) -> u64 {
        self.window_hours * 3_600_000
    }
}

impl When {
    /// Whether a record with `value` in the field matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        value.is_some_and(|value| self.equals.iter().any(|wanted| wanted == value))
    }
}

/// Checks `rules` of collection `name` against its `fields`; cross-collection
/// names (registries, follow-up collections) are checked by
/// [`check_links`] once the whole pack is parsed. Errors name the path
/// under `rules` and what is wrong.
pub(super) fn check(
    rules: &Rules,
    kind: CollectionKind,
    fields: &BTreeMap<String, Field>,
) -> Result<(), (String, String)> {
    let field = |path: &str, name: &str| -> Result<&Field, (String, String)> {
        fields
            .get(name)
            .ok_or_else(|| (path.to_string(), format!("names {name:?}, not a field")))
    };
    let date = |path: &str, name: &str| -> Result<(), (String, String)> {
        match field(path, name)?.ty {
            FieldType::Date | FieldType::Datetime => Ok(()),
            _ => Err((path.to_string(), format!("{name:?} is not a date field"))),
        }
    };
    for name in &rules.valid_at_write {
        date("valid_at_write", name)?;
    }
    if rules.unique.len() > RULES_MAX
        || rules.references.len() > RULES_MAX
        || rules.follow_ups.len() > RULES_MAX
    {
        return Err(("".into(), format!("at most {RULES_MAX} rules of a kind")));
    }
    for (index, unique) in rules.unique.iter().enumerate() {
        let path = format!("unique[{index}]");
        crate::names::check_name(&unique.name).map_err(|message| (path.clone(), message))?;
        if unique.fields.is_empty() && !unique.payload {
            return Err((path, "needs fields or payload = true".into()));
        }
        for name in &unique.fields {
            field(&path, name)?;
        }
    }
    if let Some(idempotency) = &rules.idempotency {
        if idempotency.fields.is_empty() {
            return Err(("idempotency".into(), "needs at least one field".into()));
        }
        for name in &idempotency.fields {
            field("idempotency", name)?;
        }
    }
    for (index, reference) in rules.references.iter().enumerate() {
        let path = format!("references[{index}]");
        field(&path, &reference.field)?;
        if let Some(action) = &reference.action {
            field(&path, action)?;
        }
        if reference.action.is_some() != reference.allows.is_some() {
            return Err((path, "action and allows go together".into()));
        }
    }
    for (index, follow_up) in rules.follow_ups.iter().enumerate() {
        let path = format!("follow_ups[{index}]");
        crate::names::check_name(&follow_up.name).map_err(|message| (path.clone(), message))?;
        field(&path, &follow_up.matching)?;
        field(&path, &follow_up.different)?;
        if let Some(when) = &follow_up.when {
            field(&path, &when.field)?;
        }
    }
    if let Some(Deadline {
        when: Some(when), ..
    }) = &rules.deadline
    {
        field("deadline", &when.field)?;
    }
    match rules.written_by.as_deref() {
        None => {}
        Some("hub") if kind == CollectionKind::Config => {}
        Some("hub") => {
            return Err((
                "written_by".into(),
                "only config collections are written by the hub".into(),
            ));
        }
        Some(other) => return Err(("written_by".into(), format!("{other:?} is not \"hub\""))),
    }
    if kind != CollectionKind::Ledger
        && (!rules.unique.is_empty() || rules.idempotency.is_some() || !rules.follow_ups.is_empty())
    {
        return Err((
            "".into(),
            "unique, idempotency and follow_ups apply to ledger collections".into(),
        ));
    }
    Ok(())
}

/// Checks the names rules use across collections of one pack: a registry is
/// a config collection with the fields named, a follow-up's collection a
/// ledger with the matching and different fields.
pub(super) fn check_links(
    collections: &BTreeMap<String, Collection>,
) -> Result<(), (String, String)> {
    for collection in collections.values() {
        let base = format!("collections.{}.rules", collection.name);
        for (index, reference) in collection.rules.references.iter().enumerate() {
            let path = format!("{base}.references[{index}]");
            let registry = collections
                .get(&reference.registry)
                .filter(|registry| registry.kind == CollectionKind::Config)
                .ok_or_else(|| {
                    (
                        path.clone(),
                        format!(
                            "registry {:?} is not a config collection of this pack",
                            reference.registry
                        ),
                    )
                })?;
            let typed = |name: &Option<String>, ty: FieldType| match name {
                None => Ok(()),
                Some(name) if registry.fields.get(name).is_some_and(|f| f.ty == ty) => Ok(()),
                Some(name) => Err((
                    path.clone(),
                    format!("registry field {name:?} is not a {} field", ty.keyword()),
                )),
            };
            typed(&reference.expiry, FieldType::Date)?;
            typed(&reference.allows, FieldType::Set)?;
        }
        for (index, follow_up) in collection.rules.follow_ups.iter().enumerate() {
            let path = format!("{base}.follow_ups[{index}]");
            let target = collections
                .get(&follow_up.collection)
                .filter(|target| target.kind == CollectionKind::Ledger)
                .ok_or_else(|| {
                    (
                        path.clone(),
                        format!(
                            "{:?} is not a ledger collection of this pack",
                            follow_up.collection
                        ),
                    )
                })?;
            for name in [&follow_up.matching, &follow_up.different] {
                if !target.fields.contains_key(name) {
                    return Err((
                        path.clone(),
                        format!("{} has no field {name:?}", follow_up.collection),
                    ));
                }
            }
        }
    }
    Ok(())
}
