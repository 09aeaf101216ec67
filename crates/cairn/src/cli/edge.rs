//! `cairn edge ...`: a node's own commands (init, config, enroll, key, export, import-acks, serve).

use super::*;

/// `cairn edge ...`: the node's own commands.
pub(super) fn edge(cli: &Cli, command: &EdgeCommand) -> Result<(), Failure> {
    match command {
        EdgeCommand::Init { .. } => edge_init(cli, command),
        EdgeCommand::Config { quota_bytes } => {
            let _not_serving = serve_lock(&cli.data)?;
            let store = open(cli)?;
            if let Some(quota_bytes) = quota_bytes {
                store.set_quota_bytes(*quota_bytes)?;
            }
            let quota = quota_bytes.unwrap_or(store.settings().quota_bytes);
            if cli.json {
                output::json(&json!({"node": store.settings().node, "quota_bytes": quota}));
            } else {
                println!(
                    "quota {}",
                    if quota == 0 {
                        "none".to_string()
                    } else {
                        format!("{quota} bytes ({})", output::bytes(quota))
                    }
                );
            }
            Ok(())
        }
        EdgeCommand::Enroll {
            hub,
            token,
            hub_cert_sha256,
        } => {
            let pin = parse_pin(hub_cert_sha256)?;
            let store = open(cli)?;
            let settings = store.settings();
            let hub_info = enroll_at_hub(hub, &settings.node, &settings.public_key, token, pin)?;
            store.set_hub(&hub_info)?;
            if cli.json {
                output::json(&json!({"node": settings.node, "hub": hub_info}));
            } else {
                println!(
                    "enrolled {} at hub {} ({hub}); a running `cairn edge serve` syncs with it once restarted",
                    settings.node, hub_info["origin"]
                );
            }
            Ok(())
        }
        EdgeCommand::Recover(args) => recover(cli, args),
        EdgeCommand::Key => {
            let store = open(cli)?;
            let settings = store.settings();
            let key = hex::encode(settings.public_key);
            if cli.json {
                output::json(&json!({"node": settings.node, "public_key": key}));
            } else {
                println!("node {}", settings.node);
                println!("public key {key}");
                println!(
                    "on the hub: cairn hub enroll {} --public-key {key} --scope NAME=VALUE",
                    settings.node
                );
            }
            Ok(())
        }
        EdgeCommand::Export { out } => {
            let store = open(cli)?;
            let count = cairn_sync::bundle::export(&store, out)?;
            if cli.json {
                output::json(&json!({"ops": count, "bundle": out}));
            } else {
                println!("exported {count} unacknowledged ops to {}", out.display());
            }
            Ok(())
        }
        EdgeCommand::ImportAcks { .. } => edge_import_acks(cli, command),
        EdgeCommand::Serve { .. } => edge_serve(cli, command),
    }
}

/// `cairn edge init`.
fn edge_init(cli: &Cli, command: &EdgeCommand) -> Result<(), Failure> {
    let EdgeCommand::Init {
        node,
        packs,
        pack_files,
        pack_dir,
        scope,
        quota_bytes,
        hub,
        token,
        hub_cert_sha256,
    } = command
    else {
        unreachable!("dispatched on EdgeCommand::Init")
    };
    let pin = parse_pin(hub_cert_sha256)?;
    let default_scope =
        input::parse_scope_args(scope).map_err(|violation| Failure::invalid(None, &[violation]))?;
    let packs = if packs.is_empty() {
        cairn_core::pack::BUILTIN_PACKS
            .iter()
            .map(|(name, _)| name.to_string())
            .collect()
    } else {
        packs.clone()
    };
    let node = match node {
        Some(node) => node.clone(),
        None => host_node_name()?,
    };
    if let Some(hub) = hub {
        // A hub that cannot be trusted is refused before anything
        // is created.
        cairn_http::tls::client(hub, pin, None).map_err(pin_failure)?;
    }
    let options = InitOptions {
        node,
        packs: packs.clone(),
        default_scope,
        quota_bytes: *quota_bytes,
        custom_packs: crate::cli::pack::read_pack_files(pack_files, pack_dir.as_deref())?,
    };
    let existed = cli.data.exists();
    EdgeStore::init(&cli.data, &options).map_err(|error| match error {
        cairn_edge::StoreError::Config(message) => {
            Failure::invalid(None, &[Violation::new("init", "config", message)])
        }
        other => Failure::fault(anyhow::anyhow!(other)),
    })?;
    let store = open(cli)?;
    if let (Some(hub), Some(token)) = (hub, token) {
        let settings = store.settings();
        match enroll_at_hub(hub, &settings.node, &settings.public_key, token, pin) {
            Ok(hub_info) => store.set_hub(&hub_info)?,
            Err(mut failure) => {
                // Nothing is left behind: the retry starts afresh.
                drop(store);
                remove_node(&cli.data, existed);
                failure
                    .text
                    .push_str("\nnothing was kept: run `cairn edge init` again");
                return Err(failure);
            }
        }
        if !cli.json {
            println!(
                "enrolled at hub {}",
                store
                    .hub()?
                    .map_or(String::new(), |hub| hub["origin"].to_string())
            );
        }
    }
    let settings = store.settings();
    if cli.json {
        output::json(
            &json!({"node": settings.node, "public_key": hex::encode(settings.public_key), "packs": packs, "data": cli.data, "hub": store.hub()?}),
        );
    } else {
        println!(
            "initialized node {} in {}",
            settings.node,
            cli.data.display()
        );
        println!("public key {}", hex::encode(settings.public_key));
        println!("rule packs: {}", packs.join(", "));
    }
    Ok(())
}

/// `cairn edge import-acks`.
fn edge_import_acks(cli: &Cli, command: &EdgeCommand) -> Result<(), Failure> {
    let EdgeCommand::ImportAcks {
        file,
        hub_key,
        hub_origin,
    } = command
    else {
        unreachable!("dispatched on EdgeCommand::ImportAcks")
    };
    let _not_serving = serve_lock(&cli.data)?;
    let store = open(cli)?;
    let Some((origin, key)) = parse_hub_key(&Some(hub_key.clone()), &Some(hub_origin.clone()))?
    else {
        unreachable!("both given")
    };
    let applied =
        cairn_sync::bundle::import_acks(&store, file, &origin, &key).map_err(|error| Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "acks_refused", "message": format!("{error:#}")}}),
            text: format!("error: acknowledgements refused: {error:#}"),
        })?;
    if cli.json {
        output::json(
            &json!({"acknowledged": applied.iter().map(|(s, q)| json!({"stream": s, "seq": q})).collect::<Vec<_>>()}),
        );
    } else {
        for (stream, seq) in &applied {
            println!("{stream}: acknowledged up to seq {seq}");
        }
    }
    Ok(())
}

/// `cairn edge serve`.
fn edge_serve(cli: &Cli, command: &EdgeCommand) -> Result<(), Failure> {
    let EdgeCommand::Serve {
        listen,
        hub,
        hub_key,
        hub_origin,
        hub_cert_sha256,
        sync_interval_ms,
        sync_timeout_ms,
        encoding,
        breaker_failures,
        breaker_open_ms,
        hub_busy_ms,
        read_timeout_ms,
        offline,
    } = command
    else {
        unreachable!("dispatched on EdgeCommand::Serve")
    };
    let limits = cairn_http::server::ServeLimits {
        read_timeout: std::time::Duration::from_millis(*read_timeout_ms),
        ..cairn_http::edge::EDGE_LIMITS
    };
    let store = open(cli)?;
    let resolved = if *offline {
        None
    } else {
        resolve_hub(&store, hub, hub_key, hub_origin)?
    };
    let pin = resolve_pin(&store, hub_cert_sha256)?;
    drop(store);
    if let Some((url, _)) = &resolved {
        // Refuse an unpinned https:// hub now, not in the background.
        cairn_http::tls::client(url, pin, None).map_err(pin_failure)?;
    }
    let sync = resolved.map(|(url, key)| cairn_sync::SyncSettings {
        hub_url: url,
        hub_key: key,
        hub_pin: pin,
        encoding: *encoding,
        interval_ms: (*sync_interval_ms).max(10),
        timeout_ms: (*sync_timeout_ms).max(100),
        link: cairn_core::link::LinkConfig {
            failures_to_open: (*breaker_failures).max(1),
            open_ms: *breaker_open_ms,
            // A push taking 3/5 of the request timeout shrinks the batch.
            slow_push_ms: (*sync_timeout_ms).max(100) * 3 / 5,
            hub_busy_ms: *hub_busy_ms,
            ..cairn_core::link::LinkConfig::default()
        },
    });
    serve(cli, listen, limits, sync)
}
