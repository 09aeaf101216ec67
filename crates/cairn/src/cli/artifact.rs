//! `cairn artifact ...` on an edge and `cairn hub artifact ...` on a hub:
//! versioned blobs (models, manuals) published by the hub, fetched in
//! verified chunks, activated whole, rolled back on demand.

use super::*;

/// A refusal of the store (`field: rule: why`) as a failure naming them.
fn refused(error: cairn_edge::StoreError) -> Failure {
    match error {
        cairn_edge::StoreError::Config(message) => {
            let mut parts = message.splitn(3, ": ");
            let (field, rule, why) = (parts.next(), parts.next(), parts.next());
            match (field, rule, why) {
                (Some(field), Some(rule), Some(why)) => Failure::invalid(
                    None,
                    &[Violation::new(field.to_string(), rule.to_string(), why)],
                ),
                _ => Failure::invalid(None, &[Violation::new("artifact", "refused", message)]),
            }
        }
        other => Failure::fault(anyhow::anyhow!(other)),
    }
}

pub(super) fn hub_artifact(cli: &Cli, command: &HubArtifactCommand) -> Result<(), Failure> {
    let hub = open_hub(cli)?;
    match command {
        HubArtifactCommand::Publish {
            name,
            file,
            version,
            scope,
            chunk_kib,
        } => {
            let scopes = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            let (manifest, seq) = hub
                .publish_artifact(
                    (name, version),
                    file,
                    &scopes,
                    chunk_kib.saturating_mul(1024),
                )
                .map_err(refused)?;
            if cli.json {
                output::json(&json!({"manifest": manifest.to_json(), "scope": scopes, "seq": seq}));
            } else {
                println!(
                    "{name} {version} published: {} bytes, sha256 {} (artifacts op {seq})",
                    manifest.size,
                    manifest.sha256.to_hex()
                );
            }
        }
        HubArtifactCommand::List => {
            let published = hub
                .hub()
                .published()
                .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
            if cli.json {
                let list: Vec<Value> = published
                    .iter()
                    .map(|item| json!({"manifest": item.manifest.to_json(), "scope": item.scope, "seq": item.seq}))
                    .collect();
                output::json(&json!({"artifacts": list}));
            } else {
                for item in &published {
                    let manifest = &item.manifest;
                    println!(
                        "{} {} {} bytes {}",
                        manifest.name,
                        manifest.version,
                        manifest.size,
                        manifest.sha256.to_hex()
                    );
                }
            }
        }
    }
    Ok(())
}

/// One artifact as the node holds it, as JSON.
fn artifact_json(store: &EdgeStore, name: &str) -> Result<Value, Failure> {
    store
        .artifact_view(name)
        .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?
        .ok_or_else(|| Failure {
            code: exit::NOT_FOUND,
            json: json!({"error": {"code": "not_found", "message": format!("no artifact {name:?}")}}),
            text: format!("error: no artifact {name:?} was published for this node"),
        })
}

pub(super) fn artifact(cli: &Cli, command: &ArtifactCommand) -> Result<(), Failure> {
    if let ArtifactCommand::Fetch(args) = command {
        return fetch(cli, args);
    }
    let store = open(cli)?;
    match command {
        ArtifactCommand::List => {
            let list = store
                .artifact_views()
                .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
            if cli.json {
                output::json(&json!({"artifacts": list}));
            } else {
                for item in &list {
                    println!(
                        "{} active {} newest {}",
                        item["name"].as_str().unwrap_or_default(),
                        item["active"]["version"].as_str().unwrap_or("-"),
                        item["newest"]["version"].as_str().unwrap_or("-")
                    );
                }
            }
        }
        ArtifactCommand::Get { name } => {
            let item = artifact_json(&store, name)?;
            if cli.json {
                output::json(&item);
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&item).unwrap_or_default()
                );
            }
        }
        ArtifactCommand::Path { name } => {
            let item = artifact_json(&store, name)?;
            let Some(path) = item["path"].as_str() else {
                return Err(Failure {
                    code: exit::NOT_FOUND,
                    json: json!({"error": {"code": "not_fetched", "message": format!("{name} has no verified version yet")}}),
                    text: format!(
                        "error: {name} has no verified version yet: run `cairn artifact fetch`"
                    ),
                });
            };
            if cli.json {
                output::json(&json!({"name": name, "path": path}));
            } else {
                println!("{path}");
            }
        }
        ArtifactCommand::Rollback { name } => {
            let entry = store.artifacts().rollback(name).map_err(refused)?;
            if cli.json {
                output::json(&artifact_json(&store, name)?);
            } else {
                println!("{name} is back at {}", entry.active.version);
            }
        }
        ArtifactCommand::Fetch(_) => unreachable!("handled above"),
    }
    Ok(())
}

/// `cairn artifact fetch`: pulls the newest manifests, then their blobs.
fn fetch(cli: &Cli, args: &SyncArgs) -> Result<(), Failure> {
    let _not_serving = serve_lock(&cli.data)?;
    let store = open(cli)?;
    let (client, hub_url, hub_key) = connect(&store, args)?;
    let link = hub_link(&client, &hub_url, &hub_key);
    let runtime = one_shot_runtime()?;
    let fetched = runtime
        .block_on(async {
            cairn_sync::pull_all(&store, &link).await?;
            cairn_sync::artifacts::fetch_artifacts(&store, &link, None).await
        })
        .map_err(|error| Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "fetch_incomplete", "message": format!("{error:#}")}}),
            text: format!(
                "error: fetch incomplete, verified chunks are kept for the next attempt: {error:#}"
            ),
        })?;
    if cli.json {
        output::json(&json!({"fetched": fetched, "peak_rss_bytes": peak_rss_bytes()}));
    } else {
        for item in &fetched {
            println!(
                "{} {}: {} of {} bytes received (resumed at {}), {} chunks refused, {}",
                item.name,
                item.version,
                item.bytes_received,
                item.size,
                item.resumed_from,
                item.chunks_refused,
                if item.activated {
                    "active"
                } else {
                    "not yet whole"
                }
            );
        }
    }
    Ok(())
}

/// This process's peak resident memory (Linux `VmHWM`), if known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
