//! `cairn record ...`: reading records in, writing them, printing them.

use super::*;

/// Reads a record argument: inline JSON, `-` for stdin or `@PATH`.
pub(super) fn read_record(argument: &OsString) -> Result<Value, Failure> {
    let bytes: Vec<u8> = if argument == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(input::BODY_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        bytes
    } else if let Some(path) = argument.to_str().and_then(|text| text.strip_prefix('@')) {
        let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {path}"))?;
        if metadata.len() > input::BODY_BYTES_MAX as u64 {
            return Err(Failure::invalid(
                None,
                &[Violation::new(
                    "record",
                    "max_bytes",
                    format!(
                        "{path} is {} bytes, at most {}",
                        metadata.len(),
                        input::BODY_BYTES_MAX
                    ),
                )],
            ));
        }
        std::fs::read(path).with_context(|| format!("cannot read {path}"))?
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            argument.as_bytes().to_vec()
        }
        #[cfg(not(unix))]
        argument.to_string_lossy().into_owned().into_bytes()
    };
    input::parse_json(&bytes, "record").map_err(|violation| Failure::invalid(None, &[violation]))
}

pub(super) fn print_receipt(cli: &Cli, receipt: &cairn_edge::WriteReceipt) {
    if cli.json {
        output::json(&json!(receipt));
    } else {
        println!(
            "stored {} in {} ({} #{}, op {})",
            receipt.id,
            receipt.collection,
            receipt.stream,
            receipt.seq,
            &receipt.op_hash[..16]
        );
    }
}

pub(super) fn record(cli: &Cli, command: &RecordCommand) -> Result<(), Failure> {
    match command {
        RecordCommand::Add {
            collection,
            record,
            key,
            scope,
            move_scope,
        } => {
            let data = read_record(record)?;
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            write::write(
                cli,
                json!({"collection": collection, "key": key, "scope": scope, "data": data, "move": move_scope}),
            )
        }
        RecordCommand::Correct {
            collection,
            id,
            record,
            reason,
            scope,
        } => {
            let data = read_record(record)?;
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            write::write(
                cli,
                json!({"collection": collection, "action": "correct", "scope": scope, "data": data, "corrects": id, "reason": reason}),
            )
        }
        RecordCommand::Delete {
            collection,
            key,
            scope,
        } => {
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            write::write(
                cli,
                json!({"collection": collection, "action": "delete", "key": key, "scope": scope}),
            )
        }
        RecordCommand::Resolve {
            collection,
            key,
            field,
            value,
        } => resolve(cli, collection, key, field, value),
        RecordCommand::Get { collection, id } => {
            let store = open(cli)?;
            match store.get(collection, id)? {
                Some(record) => {
                    if cli.json {
                        output::json(&json!(record));
                    } else {
                        print_record(&record);
                    }
                    Ok(())
                }
                None => Err(Failure {
                    code: exit::NOT_FOUND,
                    json: json!({"error": {"code": "not_found", "message": format!("no record {id:?} in {collection}")}}),
                    text: format!("error: no record {id:?} in {collection}"),
                }),
            }
        }
        RecordCommand::List {
            collection,
            scope,
            after,
            limit,
            deleted,
        } => list(cli, collection, scope, after, *limit, *deleted),
    }
}

/// `cairn record list`.
fn list(
    cli: &Cli,
    collection: &str,
    scope: &[String],
    after: &Option<String>,
    limit: Option<usize>,
    deleted: bool,
) -> Result<(), Failure> {
    let scope =
        input::parse_scope_args(scope).map_err(|violation| Failure::invalid(None, &[violation]))?;
    if limit.is_some_and(|limit| limit == 0) {
        return Err(Failure::invalid(
            None,
            &[Violation::new("limit", "range", "must be 1 or more")],
        ));
    }
    let store = open(cli)?;
    let kind = store
        .catalog()
        .collections
        .get(collection)
        .map(|collection| collection.kind);
    if let Some(after) = after {
        input::check_cursor(kind, after)
            .map_err(|violation| Failure::invalid(None, &[violation]))?;
    }
    let (records, next) = list_pages(&store, collection, scope, after, limit, deleted)?;
    if cli.json {
        output::json(&json!({"records": records, "next": next}));
    } else {
        print_list(&records);
        if let Some(next) = next {
            println!("more records follow: --after {next}");
        }
    }
    Ok(())
}

/// `cairn record resolve`: a put of the value that stands, refused when the
/// entity has no open conflict on the field.
fn resolve(
    cli: &Cli,
    collection: &str,
    key: &str,
    field: &str,
    value: &str,
) -> Result<(), Failure> {
    let value: Value = serde_json::from_str(value).map_err(|error| {
        Failure::invalid(None, &[Violation::new("value", "json", error.to_string())])
    })?;
    let conflicted = {
        let store = open(cli)?;
        match store.get(collection, key)? {
            Some(Record::Entity(record)) => record.conflicts.get(field).is_some(),
            _ => false,
        }
    };
    if !conflicted {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "field",
                "conflict",
                format!("{collection} {key:?} has no open conflict on {field}"),
            )],
        ));
    }
    // A put sees the entity as this node holds it, every side of
    // the conflict included, so its value stands wherever it merges.
    write::write(
        cli,
        json!({"collection": collection, "key": key, "data": {field: value}}),
    )
}

/// Lists up to `limit` records (every one without a limit), page by page,
/// with the cursor of the next when more exist.
pub(super) fn list_pages(
    store: &EdgeStore,
    collection: &str,
    scope: std::collections::BTreeMap<String, String>,
    after: &Option<String>,
    limit: Option<usize>,
    deleted: bool,
) -> Result<(Vec<Record>, Option<String>), Failure> {
    let wanted = limit.unwrap_or(usize::MAX);
    let mut records = Vec::new();
    let mut cursor = after.clone();
    loop {
        // One more than asked for, to know whether more exist.
        let page_limit = (wanted - records.len())
            .saturating_add(1)
            .min(cairn_edge::limits::LIST_LIMIT_MAX);
        let page = store.list(&ListQuery {
            collection: collection.to_string(),
            scope: scope.clone(),
            after: cursor.clone(),
            limit: page_limit,
            include_deleted: deleted,
        })?;
        let full = page.len() == page_limit;
        records.extend(page);
        if records.len() > wanted {
            records.truncate(wanted);
            return Ok((records.clone(), records.last().map(record_cursor)));
        }
        if !full {
            return Ok((records, None));
        }
        cursor = records.last().map(record_cursor);
    }
}

/// The cursor that resumes a list after `record`.
pub(super) fn record_cursor(record: &Record) -> String {
    match record {
        Record::Ledger(record) => record.id.clone(),
        Record::Entity(record) => record.key.clone(),
    }
}

pub(super) fn print_record(record: &Record) {
    match record {
        Record::Ledger(record) => {
            println!(
                "{} ({} {}, op {})",
                record.id,
                record.collection,
                record.action,
                &record.op_hash[..16]
            );
            if let Some(corrects) = &record.corrects {
                println!(
                    "corrects {corrects}: {}",
                    record.reason.as_deref().unwrap_or("")
                );
            }
            if let Some(hub) = &record.hub {
                match (&hub.pack, &hub.reason) {
                    (Some(pack), Some(reason)) => println!(
                        "at the hub: {} by rule pack {pack}: {reason}",
                        hub.state.to_uppercase()
                    ),
                    _ => println!("at the hub: {}", hub.state),
                }
            }
            let rows = record
                .data
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| vec![k.clone(), output::cell(v)])
                .collect();
            println!("{}", output::table(&["field", "value"], rows));
            for id in &record.corrected_by {
                println!("corrected by {id}");
            }
            for moved in &record.moved {
                println!(
                    "the record this node wrote as {} (op {}) before taking its stream back from the hub is now {}",
                    moved.was,
                    &moved.op_hash[..16],
                    moved.now
                );
            }
        }
        Record::Entity(record) => {
            let state = if record.deleted { " (deleted)" } else { "" };
            println!("{} {}{state}", record.collection, record.key);
            let rows = record
                .fields
                .iter()
                .map(|(k, v)| vec![k.clone(), output::cell(v)])
                .collect();
            println!("{}", output::table(&["field", "value"], rows));
            if let Some(conflicts) = record.conflicts.as_object().filter(|c| !c.is_empty()) {
                for (field, candidates) in conflicts {
                    println!("conflict on {field}: {candidates}");
                }
            }
        }
    }
}

pub(super) fn print_list(records: &[Record]) {
    // Every field, whole, as `name: value` lines in the cell: a table
    // wraps them at the terminal's width instead of cutting a value.
    fn fields<'a>(data: impl IntoIterator<Item = (&'a String, &'a Value)>) -> String {
        data.into_iter()
            .map(|(name, value)| format!("{name}: {}", output::cell(value)))
            .collect::<Vec<_>>()
            .join("\n")
    }
    let rows = records
        .iter()
        .map(|record| match record {
            Record::Ledger(record) => {
                let data = record.data.as_object().map(fields).unwrap_or_default();
                vec![record.id.clone(), record.action.to_string(), data]
            }
            Record::Entity(record) => {
                let action = if record.deleted { "deleted" } else { "live" };
                vec![
                    record.key.clone(),
                    action.to_string(),
                    fields(&record.fields),
                ]
            }
        })
        .collect();
    println!("{}", output::table(&["id", "state", "data"], rows));
}
