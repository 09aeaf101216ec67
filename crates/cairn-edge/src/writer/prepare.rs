//! Preparing a write on the caller's thread: every check that needs no stored state, the payload encoded and hashed.

use super::*;

pub(super) fn prepare_one(
    catalog: &Catalog,
    settings: &NodeSettings,
    index: usize,
    request: WriteRequest,
) -> Result<Prepared, WriteError> {
    let Some(collection) = catalog.collections.get(&request.collection) else {
        let known: Vec<&str> = catalog.collections.keys().map(String::as_str).collect();
        return Err(WriteError::invalid(
            index,
            Violation::new(
                "collection",
                "unknown",
                format!(
                    "{:?} is not defined by an active pack (known: {})",
                    request.collection,
                    known.join(", ")
                ),
            ),
        ));
    };
    let creating = collection.kind != CollectionKind::Entity;
    let mut validated = collection.validate(request.action, &request.data, creating);
    let mut violations = std::mem::take(&mut validated.violations);
    let keyed = collection.kind != CollectionKind::Ledger;
    let key = match (keyed, request.key) {
        (true, Some(key)) => {
            if let Err(message) = check_key(&key) {
                violations.push(Violation::new("key", "format", message));
            }
            key
        }
        (true, None) => {
            violations.push(Violation::new(
                "key",
                "required",
                format!("{} records are addressed by a key", collection.kind.name()),
            ));
            String::new()
        }
        (false, Some(_)) => {
            violations.push(Violation::new(
                "key",
                "not_allowed",
                "ledger records get their id from their op; they take no key",
            ));
            String::new()
        }
        (false, None) => String::new(),
    };
    let mut scope = request.scope;
    // An entity's labels may come from the record it updates or deletes,
    // which only the writer can read: those are checked there.
    let mut scope_missing = Vec::new();
    for label in &collection.scope {
        if !scope.contains_key(label)
            && let Some(value) = settings.default_scope.get(label)
        {
            scope.insert(label.clone(), value.clone());
        }
        if !scope.contains_key(label) && keyed {
            scope_missing.push(label.clone());
        } else if !scope.contains_key(label) {
            violations.push(Violation::new(
                "scope",
                "required",
                format!(
                    "{} records carry the scope label {label:?}",
                    collection.name
                ),
            ));
        }
    }
    for (name, value) in &scope {
        if let Err(message) = check_name(name).and_then(|()| check_scope_value(value)) {
            violations.push(Violation::new(
                "scope",
                "format",
                format!("label {name:?}: {message}"),
            ));
        }
    }
    if scope.len() > cairn_core::limits::SCOPE_LABELS_MAX {
        violations.push(Violation::new(
            "scope",
            "max_labels",
            format!("at most {} labels", cairn_core::limits::SCOPE_LABELS_MAX),
        ));
    }
    let is_correction = request.action == Action::Correct;
    match (is_correction, &request.corrects) {
        (true, None) => violations.push(Violation::new(
            "corrects",
            "required",
            "a correction names the record it corrects",
        )),
        (false, Some(_)) => violations.push(Violation::new(
            "corrects",
            "not_allowed",
            "only corrections name another record",
        )),
        _ => {}
    }
    let reason = request.reason.unwrap_or_default();
    match (is_correction, reason.trim().is_empty()) {
        (true, true) => violations.push(Violation::new(
            "reason",
            "required",
            "a correction says why it was made",
        )),
        (false, false) => violations.push(Violation::new(
            "reason",
            "not_allowed",
            "only corrections carry a reason",
        )),
        _ => {}
    }
    if reason.len() > cairn_core::limits::REASON_BYTES_MAX {
        violations.push(Violation::new(
            "reason",
            "max_bytes",
            format!("at most {} bytes", cairn_core::limits::REASON_BYTES_MAX),
        ));
    }
    if !violations.is_empty() {
        return Err(WriteError::Invalid { index, violations });
    }
    let payload = std::mem::take(&mut validated.payload);
    let stream = collection.route(&payload).to_string();
    let idempotency = match (&collection.rules.idempotency, request.action) {
        (Some(rule), Action::Append) => rule
            .key_of(&collection.name, &payload)
            .map(|key| (key, rule.window_ms())),
        _ => None,
    };
    let missing = if collection.kind == CollectionKind::Entity && request.action == Action::Put {
        collection.missing_required(&payload)
    } else {
        Vec::new()
    };
    // Entity set fields are rewritten by the writer against the stored state.
    let rewritten = collection.kind == CollectionKind::Entity
        && payload.keys().any(|name| {
            collection
                .fields
                .get(name)
                .is_some_and(|field| field.merge == cairn_core::merge::FieldRule::Set)
        });
    let payload = if rewritten {
        Payload::Rewrite(payload)
    } else {
        let bytes = canonical::to_canonical_bytes(&Value::Object(payload)).map_err(|error| {
            WriteError::invalid(
                index,
                Violation::new("data", "canonical", error.to_string()),
            )
        })?;
        check_payload_size(index, &bytes)?;
        let hash = canonical::payload_hash(&bytes);
        Payload::Encoded(bytes, hash)
    };
    Ok(Prepared {
        index,
        collection: collection.name.clone(),
        action: request.action,
        key,
        stream,
        scope,
        payload,
        missing,
        scope_missing,
        move_scope: request.move_scope,
        corrects: request.corrects,
        reason,
        idempotency,
        validated_under: catalog
            .packs
            .iter()
            .find(|pack| pack.name == collection.pack)
            .map(|pack| format!("{} {}", pack.name, pack.version))
            .unwrap_or_default(),
    })
}

/// Refuses a payload whose encoding is over [`PAYLOAD_BYTES_MAX`].
pub(super) fn check_payload_size(index: usize, bytes: &[u8]) -> Result<(), WriteError> {
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(WriteError::invalid(
            index,
            Violation::new(
                "data",
                "max_bytes",
                format!(
                    "record is {} bytes encoded, at most {PAYLOAD_BYTES_MAX}",
                    bytes.len()
                ),
            ),
        ));
    }
    Ok(())
}
