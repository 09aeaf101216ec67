//! Parsing a pack's TOML into checked, typed rules: every name, field,
//! route, rule and sync setting is checked here, once, so validation
//! never meets a malformed rule.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPack {
    name: String,
    version: String,
    title: String,
    drift_tolerance: Option<f64>,
    collections: BTreeMap<String, RawCollection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollection {
    kind: CollectionKind,
    stream: String,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    description: String,
    fields: BTreeMap<String, RawField>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    rules: Rules,
    #[serde(default)]
    sync: SyncRules,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    ty: FieldType,
    #[serde(default)]
    required: bool,
    format: Option<String>,
    #[serde(rename = "enum")]
    allowed: Option<Vec<String>>,
    min: Option<f64>,
    max: Option<f64>,
    max_length: Option<usize>,
    merge: Option<String>,
    group: Option<String>,
    by: Option<String>,
    #[serde(default)]
    sensitive: bool,
    normalize: Option<Normalizer>,
    after: Option<String>,
}

/// Checks one collection of pack `pack` and builds it: (path, message) on
/// the first fault.
fn build_collection(
    name: String,
    raw_collection: RawCollection,
    pack: &str,
) -> Result<Collection, (String, String)> {
    let path = format!("collections.{name}");
    let at = |place: String| move |message: String| (place, message);
    check_name(&name).map_err(at(path.clone()))?;
    check_name(&raw_collection.stream).map_err(at(format!("{path}.stream")))?;
    for label in &raw_collection.scope {
        check_name(label).map_err(at(format!("{path}.scope")))?;
    }
    if raw_collection.fields.len() > COLLECTION_FIELDS_MAX {
        return Err((
            format!("{path}.fields"),
            format!("at most {COLLECTION_FIELDS_MAX} fields"),
        ));
    }
    let mut fields = BTreeMap::new();
    for (field_name, raw_field) in raw_collection.fields {
        let field = build_field(&field_name, raw_field, raw_collection.kind)
            .map_err(at(format!("{path}.fields.{field_name}")))?;
        fields.insert(field_name, field);
    }
    check_field_links(&fields)
        .map_err(|(field, message)| (format!("{path}.fields.{field}"), message))?;
    for (index, route) in raw_collection.routes.iter().enumerate() {
        let route_path = format!("{path}.routes[{index}]");
        if !fields.contains_key(&route.field) {
            return Err((
                route_path,
                format!("routes on undeclared field {:?}", route.field),
            ));
        }
        check_name(&route.stream).map_err(at(route_path))?;
    }
    rules::check(&raw_collection.rules, raw_collection.kind, &fields)
        .map_err(|(place, message)| (format!("{path}.rules.{place}"), message))?;
    sync::check(&raw_collection.sync, raw_collection.kind)
        .map_err(|(place, message)| (format!("{path}.sync.{place}"), message))?;
    // A priority below evidence is a stream of its own in the lane.
    let priority = raw_collection.sync.priority;
    let mut routes = raw_collection.routes;
    for route in &mut routes {
        route.stream = priority.stream_in(&route.stream);
    }
    Ok(Collection {
        name,
        pack: pack.to_string(),
        kind: raw_collection.kind,
        stream: priority.stream_in(&raw_collection.stream),
        description: raw_collection.description,
        scope: raw_collection.scope,
        fields,
        routes,
        rules: raw_collection.rules,
        sync: raw_collection.sync,
    })
}

impl RulePack {
    /// Parses and checks a pack from TOML.
    pub fn from_toml(source: &str) -> Result<RulePack, PackError> {
        let fail = |path: &str, message: String| PackError {
            pack: "(unnamed)".into(),
            path: path.into(),
            message,
        };
        if source.len() > PACK_BYTES_MAX {
            return Err(fail(
                "",
                format!("pack is {} bytes, at most {PACK_BYTES_MAX}", source.len()),
            ));
        }
        let raw: RawPack =
            toml::from_str(source).map_err(|error| fail("", error.message().to_string()))?;
        let fail = |path: String, message: String| PackError {
            pack: raw.name.clone(),
            path,
            message,
        };
        check_name(&raw.name).map_err(|message| fail("name".into(), message))?;
        if raw.collections.is_empty() || raw.collections.len() > PACK_COLLECTIONS_MAX {
            return Err(fail(
                "collections".into(),
                format!("1 to {PACK_COLLECTIONS_MAX} collections"),
            ));
        }
        let mut collections = BTreeMap::new();
        for (name, raw_collection) in raw.collections {
            let collection = build_collection(name.clone(), raw_collection, &raw.name)
                .map_err(|(path, message)| fail(path, message))?;
            collections.insert(name, collection);
        }
        rules::check_links(&collections).map_err(|(path, message)| fail(path, message))?;
        let drift_tolerance = raw.drift_tolerance.unwrap_or(DRIFT_TOLERANCE_DEFAULT);
        if !(0.0..=1.0).contains(&drift_tolerance) {
            return Err(fail(
                "drift_tolerance".into(),
                format!("{drift_tolerance} is not a share between 0 and 1"),
            ));
        }
        Ok(RulePack {
            name: raw.name,
            version: raw.version,
            title: raw.title,
            collections,
            source_hash: Hash::of(source.as_bytes()),
            drift_tolerance,
        })
    }

    /// The packs shipped inside the binary, by name.
    pub fn builtin(name: &str) -> Option<RulePack> {
        let (_, source) = BUILTIN_PACKS.iter().find(|(pack, _)| *pack == name)?;
        Some(RulePack::from_toml(source).expect("built-in packs are checked by tests"))
    }
}

fn build_field(name: &str, raw: RawField, kind: CollectionKind) -> Result<Field, String> {
    let format = match raw.format {
        Some(pattern) => {
            if pattern.len() > FORMAT_PATTERN_BYTES_MAX {
                return Err(format!(
                    "format is longer than {FORMAT_PATTERN_BYTES_MAX} bytes"
                ));
            }
            Some(
                Regex::new(&pattern)
                    .map_err(|error| format!("format is not a valid pattern: {error}"))?,
            )
        }
        None => None,
    };
    let merge = match (raw.merge.as_deref(), raw.group, raw.by) {
        (None | Some("lww"), None, None) => {
            if raw.ty == FieldType::Set {
                FieldRule::Set
            } else {
                FieldRule::Lww
            }
        }
        (Some("counter"), None, None) if raw.ty == FieldType::Integer => FieldRule::Counter,
        (Some("counter"), _, _) => {
            return Err("merge = \"counter\" needs type = \"integer\"".into());
        }
        (Some("set"), None, None) if raw.ty == FieldType::Set => FieldRule::Set,
        (Some("set"), _, _) => return Err("merge = \"set\" needs type = \"set\"".into()),
        (Some("max"), None, None) => FieldRule::Max,
        (Some("min"), None, None) => FieldRule::Min,
        (Some("prefer"), Some(group), Some(by)) => FieldRule::Prefer { group, by },
        (Some("prefer"), _, _) => return Err("merge = \"prefer\" needs group and by".into()),
        (Some(other), None, None) => {
            return Err(format!(
                "unknown merge rule {other:?} (lww, counter, set, max, min, prefer)"
            ));
        }
        (_, _, _) => return Err("group and by go only with merge = \"prefer\"".into()),
    };
    if kind != CollectionKind::Entity && !matches!(merge, FieldRule::Lww | FieldRule::Set) {
        return Err(format!(
            "merge rules apply to entity collections, not {} ones",
            kind.name()
        ));
    }
    if raw.ty == FieldType::Set && merge != FieldRule::Set {
        return Err("a set field merges as a set".into());
    }
    if (raw.min.is_some() || raw.max.is_some())
        && !matches!(raw.ty, FieldType::Integer | FieldType::Number)
    {
        return Err("min and max apply to integer and number fields".into());
    }
    if raw.allowed.is_some() && !matches!(raw.ty, FieldType::String | FieldType::Set) {
        return Err("enum applies to string and set fields".into());
    }
    if raw.normalize.is_some() && raw.ty != FieldType::String {
        return Err("normalize applies to string fields".into());
    }
    if raw.after.is_some() && !matches!(raw.ty, FieldType::Date | FieldType::Datetime) {
        return Err("after applies to date and datetime fields".into());
    }
    if let (Some(min), Some(max)) = (raw.min, raw.max)
        && min > max
    {
        return Err(format!("min {min} is greater than max {max}"));
    }
    Ok(Field {
        name: name.to_string(),
        ty: raw.ty,
        required: raw.required,
        format,
        allowed: raw.allowed,
        min: raw.min,
        max: raw.max,
        max_length: raw.max_length,
        merge,
        sensitive: raw.sensitive,
        normalize: raw.normalize,
        after: raw.after,
    })
}

/// Checks references between fields: `after` targets, prefer groups.
fn check_field_links(fields: &BTreeMap<String, Field>) -> Result<(), (String, String)> {
    for field in fields.values() {
        if let Some(other) = &field.after {
            match fields.get(other) {
                Some(target) if matches!(target.ty, FieldType::Date | FieldType::Datetime) => {}
                _ => {
                    return Err((
                        field.name.clone(),
                        format!("after names {other:?}, not a date field"),
                    ));
                }
            }
        }
        if let FieldRule::Prefer { group, by } = &field.merge {
            match fields.get(by) {
                Some(target) if matches!(&target.merge, FieldRule::Prefer { group: g, .. } if g == group) =>
                    {}
                _ => {
                    return Err((
                        field.name.clone(),
                        format!("by names {by:?}, not a member of group {group:?}"),
                    ));
                }
            }
            if fields.values().any(|other| matches!(&other.merge, FieldRule::Prefer { group: g, by: b } if g == group && b != by)) {
                return Err((field.name.clone(), format!("members of group {group:?} disagree on `by`")));
            }
        }
    }
    Ok(())
}
