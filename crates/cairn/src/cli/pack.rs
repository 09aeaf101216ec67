//! `cairn pack ...`: the rule packs a node judges writes by, and what each
//! collection and field accepts, for people (tables) and scripts (`--json`);
//! reading pack files for `cairn edge init --pack-file/--pack-dir`.

use super::*;
use cairn_core::pack::RulePack;
use std::path::Path;

/// Largest pack file read, bytes (the core refuses larger packs anyway).
const PACK_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// `cairn pack list|show`.
pub(super) fn pack(cli: &Cli, command: &PackCommand) -> Result<(), Failure> {
    match command {
        PackCommand::List => list(cli),
        PackCommand::DryRun { .. } | PackCommand::Activate { .. } => {
            crate::cli::comply::pack_at_hub(cli, command)
        }
        PackCommand::Show {
            name: Some(name), ..
        } => {
            let store = open(cli)?;
            let catalog = store.catalog();
            let pack = catalog
                .packs
                .iter()
                .find(|pack| &pack.name == name)
                .ok_or_else(|| {
                    let active: Vec<&str> = catalog
                        .packs
                        .iter()
                        .map(|pack| pack.name.as_str())
                        .collect();
                    Failure::invalid(
                        None,
                        &[Violation::new(
                            "name",
                            "active_pack",
                            format!(
                                "{name:?} is not active here (active: {})",
                                active.join(", ")
                            ),
                        )],
                    )
                })?;
            show(cli, pack)
        }
        PackCommand::Show {
            file: Some(file), ..
        } => {
            let pack = RulePack::from_toml(&read_pack_file(file)?)
                .map_err(|error| pack_refused(file, error.to_string()))?;
            show(cli, &pack)
        }
        PackCommand::Show { .. } => Err(Failure::invalid(
            None,
            &[Violation::new(
                "name",
                "required",
                "name a pack or pass --file",
            )],
        )),
    }
}

fn list(cli: &Cli) -> Result<(), Failure> {
    let store = open(cli)?;
    let packs = &store.catalog().packs;
    if cli.json {
        let list: Vec<Value> = packs
            .iter()
            .map(|pack| {
                json!({
                    "name": pack.name,
                    "version": pack.version,
                    "title": pack.title,
                    "source_hash": pack.source_hash.to_hex(),
                    "collections": pack.collections.keys().collect::<Vec<_>>(),
                })
            })
            .collect();
        output::json(&json!({ "packs": list }));
    } else {
        let rows = packs
            .iter()
            .map(|pack| {
                vec![
                    pack.name.clone(),
                    pack.version.clone(),
                    pack.title.clone(),
                    pack.collections
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect();
        println!(
            "{}",
            output::table(&["pack", "version", "title", "collections"], rows)
        );
    }
    Ok(())
}

fn show(cli: &Cli, pack: &RulePack) -> Result<(), Failure> {
    let described = pack.describe();
    if cli.json {
        output::json(&described);
        return Ok(());
    }
    println!("{} {}: {}", pack.name, pack.version, pack.title);
    println!("source sha256 {}", pack.source_hash.to_hex());
    for collection in described["collections"].as_array().into_iter().flatten() {
        println!();
        println!(
            "{} ({}, stream {}, scope {}): {}",
            collection["name"].as_str().unwrap_or(""),
            collection["kind"].as_str().unwrap_or(""),
            collection["stream"].as_str().unwrap_or(""),
            collection["scope"],
            collection["description"].as_str().unwrap_or("")
        );
        let rows = collection["fields"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, rules)| field_row(name, rules))
            .collect();
        println!(
            "{}",
            output::table(
                &["field", "type", "required", "rules", "merge", "sensitive"],
                rows
            )
        );
    }
    Ok(())
}

/// One field as a table row: the rules it has, in a line.
fn field_row(name: &str, rules: &Value) -> Vec<String> {
    let mut said = Vec::new();
    for key in [
        "format",
        "enum",
        "min",
        "max",
        "max_length",
        "normalize",
        "after",
    ] {
        if let Some(value) = rules.get(key) {
            said.push(format!("{key} {value}"));
        }
    }
    let yes = |key: &str| if rules[key] == true { "yes" } else { "" }.to_string();
    vec![
        name.to_string(),
        rules["type"].as_str().unwrap_or("").to_string(),
        yes("required"),
        said.join("; "),
        match &rules["merge"] {
            Value::String(rule) => rule.clone(),
            other => other.to_string(),
        },
        yes("sensitive"),
    ]
}

fn pack_refused(file: &Path, message: String) -> Failure {
    Failure::invalid(
        None,
        &[Violation::new(
            "pack_file",
            "pack",
            format!("{}: {message}", file.display()),
        )],
    )
}

/// A pack file's text, bounded.
fn read_pack_file(file: &Path) -> Result<String, Failure> {
    let size = std::fs::metadata(file)
        .map_err(|error| pack_refused(file, error.to_string()))?
        .len();
    if size > PACK_FILE_BYTES_MAX {
        return Err(pack_refused(
            file,
            format!("{size} bytes, at most {PACK_FILE_BYTES_MAX}"),
        ));
    }
    std::fs::read_to_string(file).map_err(|error| pack_refused(file, error.to_string()))
}

/// The sources of `--pack-file` files and of every `*.toml` in `--pack-dir`
/// (sorted by name), each checked here so a bad one is named by its path.
pub(super) fn read_pack_files(
    files: &[PathBuf],
    dir: Option<&Path>,
) -> Result<Vec<String>, Failure> {
    let mut paths = files.to_vec();
    if let Some(dir) = dir {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|error| pack_refused(dir, error.to_string()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .collect();
        found.sort();
        if found.is_empty() {
            return Err(pack_refused(dir, "holds no *.toml rule pack".into()));
        }
        paths.extend(found);
    }
    paths
        .iter()
        .map(|path| {
            let source = read_pack_file(path)?;
            RulePack::from_toml(&source).map_err(|error| pack_refused(path, error.to_string()))?;
            Ok(source)
        })
        .collect()
}
