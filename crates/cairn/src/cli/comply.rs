//! Compliance at the hub from its own machine (`--data` is the hub's
//! directory): `cairn review list|show|resolve`, `cairn hub registry
//! put|revoke`, `cairn hub judge`, `cairn pack dry-run|activate`. The same
//! review queue is served over HTTP (`/v1/reviews`) with role checks.

use super::*;
use crate::cli::hub::open_hub;
use cairn_core::pack::RulePack;
use cairn_hub::comply::ReviewFilter;
use cairn_hub::comply::acts::{PackActError, ReviewError};
use cairn_hub::comply::view;

fn review_failure(error: ReviewError) -> Failure {
    match error {
        ReviewError::Unknown(id) => Failure {
            code: exit::NOT_FOUND,
            json: json!({"error": {"code": "not_found", "message": format!("no review item {id}")}}),
            text: format!("error: no review item {id}"),
        },
        ReviewError::Closed(id) => Failure::invalid(
            None,
            &[Violation::new(
                "id",
                "open",
                format!("review item {id} is closed already"),
            )],
        ),
        ReviewError::Invalid(field, message) => {
            Failure::invalid(None, &[Violation::new(field, "value", message)])
        }
        ReviewError::Store(error) => Failure::fault(anyhow::anyhow!(error)),
    }
}

/// `cairn review ...`.
pub(super) fn review(cli: &Cli, command: &ReviewCommand) -> Result<(), Failure> {
    let store = open_hub(cli)?;
    let hub = store.hub();
    match command {
        ReviewCommand::List {
            open,
            kind,
            after,
            limit,
        } => list(
            cli,
            hub,
            &ReviewFilter {
                open_only: *open,
                kind: kind.clone(),
                after_id: *after,
                limit: *limit,
            },
        ),
        ReviewCommand::Show { id } => show(cli, hub, *id),
        ReviewCommand::Resolve {
            id,
            decision,
            value,
            note,
            by,
        } => resolve(
            cli,
            hub,
            *id,
            (decision.as_deref(), value.as_deref()),
            (note, by),
        ),
    }
}

type HubOnSqlite = cairn_hub::Hub<cairn_hub_sqlite::StoreBackend>;

/// `cairn review list`.
fn list(cli: &Cli, hub: &HubOnSqlite, filter: &ReviewFilter) -> Result<(), Failure> {
    let items = hub
        .reviews(filter)
        .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
    if cli.json {
        let items: Vec<Value> = items.iter().map(view::review_json).collect();
        output::json(&json!({ "reviews": items }));
        return Ok(());
    }
    let rows = items
        .iter()
        .map(|review| {
            let row = &review.row;
            vec![
                review.id.to_string(),
                row.kind.clone(),
                if review.closure.is_some() {
                    "closed"
                } else {
                    "open"
                }
                .to_string(),
                format!(
                    "{}:{}:{}",
                    row.node,
                    row.stream,
                    row.seq.map_or("?".into(), |seq| seq.to_string())
                ),
                row.rule.clone(),
                row.message.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["id", "kind", "state", "op", "rule", "message"], rows)
    );
    Ok(())
}

/// `cairn review show`.
fn show(cli: &Cli, hub: &HubOnSqlite, id: u64) -> Result<(), Failure> {
    let detail = hub
        .review(id)
        .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?
        .ok_or_else(|| review_failure(ReviewError::Unknown(id)))?;
    let value = view::detail_json(&detail, &hub.packs());
    if cli.json {
        output::json(&value);
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
    Ok(())
}

/// `cairn review resolve`: a decision, or for a conflict the value that stands.
fn resolve(
    cli: &Cli,
    hub: &HubOnSqlite,
    id: u64,
    (decision, value): (Option<&str>, Option<&str>),
    (note, by): (&str, &str),
) -> Result<(), Failure> {
    let closure = match (decision, value) {
        (_, Some(value)) => {
            let value: Value = serde_json::from_str(value).map_err(|error| {
                Failure::invalid(None, &[Violation::new("value", "json", error.to_string())])
            })?;
            hub.resolve_conflict(id, &value, note, by)
        }
        (Some(decision), None) => hub.resolve_review(id, decision, note, by),
        (None, None) => unreachable!("clap requires a decision or a value"),
    }
    .map_err(review_failure)?;
    if cli.json {
        output::json(&json!({"id": id, "closure": closure}));
    } else {
        println!(
            "review item {id} closed: {} by {} (audit act {})",
            closure.decision,
            closure.by,
            closure.audit_seq.unwrap_or_default()
        );
    }
    Ok(())
}

/// `cairn hub registry put|revoke`.
pub(super) fn registry(cli: &Cli, command: &RegistryCommand) -> Result<(), Failure> {
    let store = open_hub(cli)?;
    let (collection, key, data, by) = match command {
        RegistryCommand::Put {
            collection,
            key,
            fields,
            by,
        } => {
            let data: Value = serde_json::from_str(fields).map_err(|error| {
                Failure::invalid(None, &[Violation::new("fields", "json", error.to_string())])
            })?;
            (collection, key, Some(data), by)
        }
        RegistryCommand::Revoke {
            collection,
            key,
            by,
        } => (collection, key, None, by),
    };
    let seq = store
        .hub()
        .put_registry(collection, key, data.as_ref(), by)
        .map_err(review_failure)?;
    if cli.json {
        output::json(&json!({"collection": collection, "key": key, "registry_seq": seq}));
    } else {
        let what = if data.is_some() { "written" } else { "revoked" };
        println!("{collection} {key} {what} (registry op {seq})");
    }
    Ok(())
}

/// `cairn hub judge`.
pub(super) fn judge(cli: &Cli) -> Result<(), Failure> {
    let store = open_hub(cli)?;
    let pass = store
        .hub()
        .judge_all()
        .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
    if cli.json {
        output::json(
            &json!({"judged": pass.judged, "rejected": pass.rejected, "reviews": pass.reviews, "through": pass.through}),
        );
    } else {
        println!(
            "judged {} ops ({} rejected, {} review items raised); the log is judged up to leaf {}",
            pass.judged, pass.rejected, pass.reviews, pass.through
        );
    }
    Ok(())
}

fn read_pack(file: &std::path::Path) -> Result<(RulePack, String), Failure> {
    let source = crate::cli::pack::read_pack_files(&[file.to_path_buf()], None)?
        .pop()
        .expect("one file read");
    let pack = RulePack::from_toml(&source).expect("read_pack_files checked it");
    Ok((pack, source))
}

fn print_dry_run(report: &cairn_hub::comply::run::DryRun) {
    println!(
        "{} {} (active: {}): {} ops replayed, {} records of its collections; {} newly rejected ({:.2} %, tolerance {:.2} %), {} newly accepted",
        report.pack,
        report.version,
        report.active_version.as_deref().unwrap_or("none"),
        report.replayed,
        report.records,
        report.newly_rejected,
        report.share * 100.0,
        report.tolerance * 100.0,
        report.newly_accepted
    );
    let rows = report
        .by_rule
        .iter()
        .flat_map(|(rule, drift)| {
            drift.examples.iter().map(move |example| {
                vec![
                    rule.clone(),
                    drift.count.to_string(),
                    format!("{}:{} (leaf {})", example.node, example.seq, example.leaf),
                    example.message.clone(),
                ]
            })
        })
        .collect::<Vec<_>>();
    if !rows.is_empty() {
        println!(
            "{}",
            output::table(&["rule", "records", "example", "message"], rows)
        );
    }
}

/// `cairn pack dry-run FILE` and `cairn pack activate FILE`.
pub(super) fn pack_at_hub(cli: &Cli, command: &PackCommand) -> Result<(), Failure> {
    let store = open_hub(cli)?;
    let hub = store.hub();
    match command {
        PackCommand::DryRun { file } => {
            let (pack, _) = read_pack(file)?;
            // Everything logged so far is judged first: the dry run
            // compares with the verdicts of the active version.
            hub.judge_all()
                .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
            let report = hub.dry_run(&pack, |_| {}).map_err(|message| {
                Failure::invalid(None, &[Violation::new("pack_file", "pack", message)])
            })?;
            if cli.json {
                let mut value = json!(report);
                value["exceeds_tolerance"] = json!(report.exceeds_tolerance());
                output::json(&value);
            } else {
                print_dry_run(&report);
                if report.exceeds_tolerance() {
                    println!("activation would be refused (beyond the tolerance) unless forced");
                }
            }
            Ok(())
        }
        PackCommand::Activate { file, force, by } => {
            let (pack, source) = read_pack(file)?;
            hub.judge_all()
                .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
            match hub.activate_pack(&pack, &source, *force, by) {
                Ok(report) => {
                    if cli.json {
                        output::json(&json!({"activated": true, "report": report}));
                    } else {
                        print_dry_run(&report);
                        println!("activated {} {}", pack.name, pack.version);
                    }
                    Ok(())
                }
                Err(refused @ PackActError::Refused { .. }) => Err(Failure::invalid(
                    None,
                    &[Violation::new(
                        "pack_file",
                        "drift_tolerance",
                        refused.to_string(),
                    )],
                )),
                Err(PackActError::Invalid(message)) => Err(Failure::invalid(
                    None,
                    &[Violation::new("pack_file", "pack", message)],
                )),
                Err(PackActError::Store(error)) => Err(Failure::fault(anyhow::anyhow!(error))),
            }
        }
        _ => unreachable!("dispatched on dry-run and activate"),
    }
}

/// `cairn hub audit --trail`.
pub(super) fn trail(
    cli: &Cli,
    filter: cairn_hub::comply::trail::TrailFilter,
) -> Result<(), Failure> {
    if let Some(kind) = &filter.kind
        && !["act", "push", "transition"].contains(&kind.as_str())
    {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "kind",
                "enum",
                "must be act, push or transition",
            )],
        ));
    }
    let store = open_hub(cli)?;
    let entries = store
        .hub()
        .audit_trail(&filter)
        .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
    if cli.json {
        output::json(&json!({ "trail": entries }));
        return Ok(());
    }
    let rows = entries
        .iter()
        .map(|entry| {
            vec![
                entry.at_ms.to_string(),
                entry.kind.to_string(),
                entry.who.clone(),
                entry.what.clone(),
                output::cell(&entry.before),
                output::cell(&entry.after),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["at ms", "kind", "who", "what", "before", "after"], rows)
    );
    Ok(())
}
