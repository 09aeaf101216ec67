//! `cairn hub ...`: the hub's commands, one function each.

use super::*;

pub(super) fn open_hub(cli: &Cli) -> Result<cairn_hub_sqlite::HubStore, Failure> {
    cairn_hub_sqlite::HubStore::open(&cli.data)
        .with_context(|| format!("cannot open the hub in {}", cli.data.display()))
        .map_err(Failure::from)
}

pub(super) fn hub(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    match command {
        HubCommand::Init { .. } => hub_init(cli, command),
        HubCommand::Enroll {
            node,
            legacy: Some(kind),
            scope,
            allow_from,
            ..
        } => hub_enroll_legacy(cli, node, kind, (scope, allow_from)),
        HubCommand::Enroll {
            public_key: None, ..
        } => hub_enroll_by_token(cli, command),
        HubCommand::Enroll {
            public_key: Some(_),
            ..
        } => hub_enroll_with_key(cli, command),
        HubCommand::RevokeTokens { node } => {
            let hub = open_hub(cli)?;
            let revoked = hub.revoke_tokens(node, "cli")?;
            if cli.json {
                output::json(&json!({"node": node, "tokens_revoked": revoked}));
            } else {
                println!("{revoked} outstanding enrollment tokens of {node} revoked");
            }
            Ok(())
        }
        HubCommand::Serve { .. } => hub_serve(cli, command),
        HubCommand::Revoke { .. } => hub_revoke(cli, command),
        HubCommand::Verify => hub_verify(cli),
        HubCommand::Migrate { database, into } => hub_migrate(cli, database, into),
        HubCommand::Resolve { .. } => hub_resolve(cli, command),
        HubCommand::Import { .. } => hub_import(cli, command),
        HubCommand::ExportAcks { node, out } => {
            let hub = open_hub(cli)?;
            cairn_hub_sqlite::bundle::export_acks(&hub, node, out)?;
            if cli.json {
                output::json(&json!({"node": node, "acks": out}));
            } else {
                println!("wrote the acknowledgements of {node} to {}", out.display());
            }
            Ok(())
        }
        HubCommand::Token { .. } => hub_token(cli, command),
        HubCommand::Audit {
            trail: true,
            action,
            by,
            kind,
            since_ms,
        } => crate::cli::comply::trail(
            cli,
            cairn_hub::comply::trail::TrailFilter {
                kind: kind.clone(),
                who: by.clone(),
                what: action.clone(),
                since_ms: *since_ms,
            },
        ),
        HubCommand::Audit { action, by, .. } => hub_audit(cli, action.as_deref(), by.as_deref()),
        HubCommand::Registry(command) => crate::cli::comply::registry(cli, command),
        HubCommand::Artifact(command) => crate::cli::artifact::hub_artifact(cli, command),
        HubCommand::Judge => crate::cli::comply::judge(cli),
        HubCommand::Status => hub_status(cli),
    }
}

/// `cairn hub enroll NAME --legacy KIND`.
fn hub_enroll_legacy(
    cli: &Cli,
    node: &str,
    kind: &str,
    (scope, allow_from): (&[String], &[String]),
) -> Result<(), Failure> {
    use cairn_hub_sqlite::legacy::LegacyKind;
    let kind = LegacyKind::from_name(kind).ok_or_else(|| {
        Failure::invalid(
            None,
            &[Violation::new(
                "legacy",
                "enum",
                "must be pharmacy, mro-sync, mro-records or mobile",
            )],
        )
    })?;
    let scopes =
        input::parse_scope_args(scope).map_err(|violation| Failure::invalid(None, &[violation]))?;
    for cidr in allow_from {
        let (network, bits) = cidr.split_once('/').unwrap_or((cidr.as_str(), "0"));
        let most = match network.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => Some(32),
            Ok(std::net::IpAddr::V6(_)) => Some(128),
            Err(_) => None,
        };
        if most.is_none_or(|most| bits.parse::<u8>().map_or(true, |bits| bits > most)) {
            return Err(Failure::invalid(
                None,
                &[Violation::new(
                    "allow_from",
                    "format",
                    format!("{cidr:?} is not an address or CIDR range"),
                )],
            ));
        }
    }
    if kind == LegacyKind::MroRecords && allow_from.is_empty() {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "allow_from",
                "required",
                "mro-records clients send no credentials: list the addresses they call from",
            )],
        ));
    }
    let hub = open_hub(cli)?;
    let token =
        hub.enroll_legacy(node, kind, &scopes, allow_from)
            .map_err(|error| match error {
                cairn_edge::StoreError::Config(message) => {
                    Failure::invalid(None, &[Violation::new("node", "enroll", message)])
                }
                other => Failure::fault(anyhow::anyhow!(other)),
            })?;
    if cli.json {
        output::json(
            &json!({"node": node, "legacy": kind.name(), "token": token, "scopes": scopes}),
        );
    } else {
        println!(
            "legacy {} client {node} enrolled; its bearer token (shown once): {token}",
            kind.name()
        );
    }
    Ok(())
}

/// `cairn hub init`.
fn hub_init(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Init {
        origin,
        tls_names,
        pack_files,
        pack_dir,
        database,
    } = command
    else {
        unreachable!("dispatched on HubCommand::Init")
    };
    let custom = crate::cli::pack::read_pack_files(pack_files, pack_dir.as_deref())?;
    let created = match database {
        Some(url) => cairn_hub_sqlite::HubStore::init_postgres(&cli.data, origin, &custom, url),
        None => cairn_hub_sqlite::HubStore::init_with(&cli.data, origin, &custom),
    };
    created.map_err(|error| match error {
        cairn_edge::StoreError::Config(message) => {
            Failure::invalid(None, &[Violation::new("init", "config", message)])
        }
        other => Failure::fault(anyhow::anyhow!(other)),
    })?;
    let hub = open_hub(cli)?;
    let names = if tls_names.is_empty() {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        tls_names.clone()
    };
    let pin = cairn_http::tls::ensure_certificate(&cli.data, &names)?;
    if cli.json {
        output::json(
            &json!({"origin": hub.origin(), "public_key": hex::encode(hub.public_key()), "tls_sha256": hex::encode(pin)}),
        );
    } else {
        println!("initialized hub {} in {}", hub.origin(), cli.data.display());
        println!("public key {}", hex::encode(hub.public_key()));
        println!("TLS certificate sha256 {}", hex::encode(pin));
    }
    Ok(())
}

/// `cairn hub enroll`.
fn hub_enroll_by_token(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Enroll {
        node,
        public_key: None,
        scope,
        valid_hours,
        rekey,
        ..
    } = command
    else {
        unreachable!("dispatched on HubCommand::Enroll")
    };
    let scopes =
        input::parse_scope_args(scope).map_err(|violation| Failure::invalid(None, &[violation]))?;
    let hub = open_hub(cli)?;
    let token = hub
        .create_enrollment(node, &scopes, valid_hours.saturating_mul(3_600_000), *rekey)
        .map_err(|error| match error {
            cairn_edge::StoreError::Config(message) => {
                Failure::invalid(None, &[Violation::new("node", "enroll", message)])
            }
            other => Failure::fault(anyhow::anyhow!(other)),
        })?;
    let pin = cairn_http::tls::certificate_fingerprint(&cli.data)
        .ok()
        .map(hex::encode);
    if cli.json {
        output::json(
            &json!({"node": node, "token": token, "valid_hours": valid_hours, "tls_sha256": pin}),
        );
    } else {
        println!("one-time token for {node} (valid {valid_hours} h): {token}");
        println!("on the node: cairn edge init --node {node} --hub <hub url> --token {token}");
        if let Some(pin) = pin {
            println!("  for an https:// hub add: --hub-cert-sha256 {pin}");
        }
    }
    Ok(())
}

/// `cairn hub enroll`.
fn hub_enroll_with_key(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Enroll {
        node,
        public_key: Some(public_key),
        scope,
        rekey,
        ..
    } = command
    else {
        unreachable!("dispatched on HubCommand::Enroll")
    };
    let scopes =
        input::parse_scope_args(scope).map_err(|violation| Failure::invalid(None, &[violation]))?;
    let key = parse_key(public_key, "public-key")?;
    let hub = open_hub(cli)?;
    let enrolled = if *rekey {
        hub.rekey(node, key, &scopes, "cli")
    } else {
        hub.enroll(node, key, &scopes)
    };
    enrolled.map_err(|error| match error {
        cairn_edge::StoreError::Config(message) => {
            Failure::invalid(None, &[Violation::new("node", "enroll", message)])
        }
        other => Failure::fault(anyhow::anyhow!(other)),
    })?;
    if cli.json {
        output::json(&json!({"node": node, "scopes": scopes}));
    } else {
        println!("enrolled {node}");
    }
    Ok(())
}

/// `cairn hub serve`.
fn hub_serve(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Serve {
        listen,
        tls,
        read_timeout_ms,
        without_judge,
        offline_after_ms,
        database,
    } = command
    else {
        unreachable!("dispatched on HubCommand::Serve")
    };
    let limits = cairn_http::server::ServeLimits {
        read_timeout: std::time::Duration::from_millis(*read_timeout_ms),
        ..cairn_http::hub::HUB_LIMITS
    };
    crate::init_tracing();
    let hub = std::sync::Arc::new(match database {
        Some(url) => cairn_hub_sqlite::HubStore::open_postgres(&cli.data, url)
            .with_context(|| format!("cannot open the hub of {} on {url}", cli.data.display()))?,
        None => open_hub(cli)?,
    });
    let tls = if *tls {
        // Hubs made before TLS existed get their certificate now.
        cairn_http::tls::ensure_certificate(
            &cli.data,
            &["localhost".to_string(), "127.0.0.1".to_string()],
        )?;
        Some(cairn_http::tls::server_config(&cli.data)?)
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    server_runtime()?.block_on(async move {
        let (listener, address) =
            announce(listen, &format!("hub {}", hub.origin()), scheme, |_| Ok(())).await?;
        tracing::info!(origin = %hub.origin(), %address, "hub started");
        cairn_http::hub::run(
            listener,
            hub,
            tls,
            (
                limits,
                cairn_http::hub::HubOptions {
                    judge: !without_judge,
                    offline_after_ms: *offline_after_ms,
                },
            ),
            shutdown_signal(),
        )
        .await
        .context("server failed")?;
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// `cairn hub revoke`.
fn hub_revoke(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Revoke { node, scope } = command else {
        unreachable!("dispatched on HubCommand::Revoke")
    };
    let labels = input::parse_scope_args(std::slice::from_ref(scope))
        .map_err(|violation| Failure::invalid(None, &[violation]))?;
    let (label, value) = labels.into_iter().next().expect("one label parsed");
    let hub = open_hub(cli)?;
    let revoked = hub
        .revoke(node, &label, &value)
        .map_err(|error| match error {
            cairn_edge::StoreError::Config(message) => {
                Failure::invalid(None, &[Violation::new("node", "enrolled", message)])
            }
            other => Failure::fault(anyhow::anyhow!(other)),
        })?;
    if !revoked {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "scope",
                "granted",
                format!("{node} is not granted {label}={value}"),
            )],
        ));
    }
    if cli.json {
        output::json(&json!({"node": node, "revoked": format!("{label}={value}")}));
    } else {
        println!(
            "revoked {label}={value} from {node}; it purges what it pulled under it at its next sync"
        );
    }
    Ok(())
}

/// `cairn hub verify`.
fn hub_verify(cli: &Cli) -> Result<(), Failure> {
    let hub = open_hub(cli)?;
    let report = hub
        .verify()
        .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
    if !report.faults.is_empty() {
        let text = report
            .faults
            .iter()
            .map(|fault| format!("TAMPERED: {fault}"))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(Failure {
            code: exit::TAMPERED,
            json: json!({"intact": false, "report": report}),
            text,
        });
    }
    if cli.json {
        output::json(&json!({"intact": true, "report": report}));
    } else {
        println!(
            "intact: {} leaves, {} streams, {} origin checkpoints and {} signed log checkpoints verified",
            report.leaves, report.streams, report.origin_checkpoints, report.log_checkpoints
        );
    }
    Ok(())
}

/// `cairn hub migrate`.
fn hub_migrate(cli: &Cli, url: &str, into: &std::path::Path) -> Result<(), Failure> {
    let migration =
        cairn_hub_sqlite::migrate::migrate_to_postgres(&cli.data, into, url).map_err(|error| {
            match error {
                cairn_edge::StoreError::Config(message) => {
                    Failure::invalid(None, &[Violation::new("migrate", "config", message)])
                }
                cairn_edge::StoreError::Damaged(message) => Failure {
                    code: exit::TAMPERED,
                    json: json!({"migrated": false, "error": message}),
                    text: format!("NOT MIGRATED: {message}"),
                },
                other => Failure::fault(anyhow::anyhow!(other)),
            }
        })?;
    if cli.json {
        output::json(&json!({"migrated": true, "migration": migration}));
    } else {
        let rows: u64 = migration.rows.iter().map(|(_, count)| count).sum();
        println!(
            "migrated {rows} rows into {}; log of {} leaves, root {} on both; {} signed log checkpoints verified",
            into.display(),
            migration.log_size,
            migration.root,
            migration.verified.log_checkpoints
        );
    }
    Ok(())
}

/// `cairn hub resolve`.
fn hub_resolve(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Resolve {
        node,
        stream,
        reason,
        by,
    } = command
    else {
        unreachable!("dispatched on HubCommand::Resolve")
    };
    let hub = open_hub(cli)?;
    let resolution = hub
        .resolve(node, stream, reason, by)
        .map_err(|error| match error {
            cairn_hub_sqlite::ResolveError::UnknownStream(_) => Failure::invalid(
                None,
                &[Violation::new("stream", "exists", error.to_string())],
            ),
            cairn_hub_sqlite::ResolveError::NotHeld(_) => {
                Failure::invalid(None, &[Violation::new("stream", "held", error.to_string())])
            }
            cairn_hub_sqlite::ResolveError::Reason(message) => {
                Failure::invalid(None, &[Violation::new("reason", "length", message)])
            }
            other => Failure::fault(anyhow::anyhow!(other)),
        })?;
    if cli.json {
        output::json(&json!(resolution));
    } else {
        println!(
            "released {node}:{stream} at seq {}, the hub's version kept; {} quarantined items stay",
            resolution.kept_seq, resolution.quarantined
        );
    }
    Ok(())
}

/// `cairn hub import`.
fn hub_import(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Import { file } = command else {
        unreachable!("dispatched on HubCommand::Import")
    };
    let hub = open_hub(cli)?;
    let report = cairn_hub_sqlite::bundle::import(&hub, file).map_err(|error| Failure {
        code: exit::INVALID,
        json: json!({"error": {"code": "bundle_refused", "message": format!("{error:#}")}}),
        text: format!("error: bundle refused: {error:#}"),
    })?;
    if !cli.json {
        println!(
            "{}: {} accepted, {} already held, {} quarantined",
            report.node,
            report.accepted,
            report.duplicate,
            report.quarantined.len()
        );
        for item in &report.quarantined {
            println!("QUARANTINED: {item}");
        }
    }
    if report.quarantined.is_empty() {
        if cli.json {
            output::json(&json!(report));
        }
        Ok(())
    } else {
        // One JSON document on stdout: the error, with the report.
        Err(Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "quarantined", "message": "the bundle held ops the hub quarantined", "quarantined": report.quarantined}, "report": report}),
            text: "error: the bundle held ops the hub quarantined".into(),
        })
    }
}

/// `cairn hub token`.
fn hub_token(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    let HubCommand::Token {
        subject,
        role,
        minutes,
    } = command
    else {
        unreachable!("dispatched on HubCommand::Token")
    };
    let minutes_max = cairn_core::token::TOKEN_LIFETIME_S_MAX / 60;
    if *minutes == 0 || *minutes > minutes_max {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "minutes",
                "range",
                format!("a staff token lasts 1 to {minutes_max} minutes"),
            )],
        ));
    }
    let hub = open_hub(cli)?;
    let now_s = hub.clock().now_s();
    let token = hub
        .issue_token(subject, role, minutes.saturating_mul(60), now_s)
        .map_err(|error| match error {
            cairn_edge::StoreError::Config(message) => {
                Failure::invalid(None, &[Violation::new("token", "claims", message)])
            }
            other => Failure::fault(anyhow::anyhow!(other)),
        })?;
    if cli.json {
        output::json(
            &json!({"token": token, "subject": subject, "role": role, "expires": now_s + minutes * 60}),
        );
    } else {
        println!("{token}");
    }
    Ok(())
}

/// `cairn hub audit`.
fn hub_audit(cli: &Cli, action: Option<&str>, by: Option<&str>) -> Result<(), Failure> {
    let ops = open_hub(cli)?.audit_ops()?;
    let mut records = Vec::new();
    for bytes in &ops {
        let op = cairn_core::op::Op::decode(bytes)
            .map_err(|fault| Failure::fault(anyhow::anyhow!("audit op: {fault}")))?;
        let record: Value = serde_json::from_slice(&op.draft.payload)
            .map_err(|error| Failure::fault(anyhow::anyhow!("audit op: {error}")))?;
        let acted = record["action"].as_str().unwrap_or_default();
        if action.is_some_and(|prefix| !acted.starts_with(prefix))
            || by.is_some_and(|by| record["by"].as_str() != Some(by))
        {
            continue;
        }
        records.push(json!({"seq": op.seq, "written_ms": op.draft.hlc.wall_ms, "op_hash": op.op_hash.to_hex(), "record": record}));
    }
    if cli.json {
        output::json(&json!({"ops": records}));
    } else {
        let rows = records
            .iter()
            .map(|entry| {
                let record = &entry["record"];
                let detail = ["scopes", "label", "decision", "pack", "key"]
                    .iter()
                    .find_map(|name| record.get(*name))
                    .map_or(String::new(), |detail| detail.to_string());
                vec![
                    entry["seq"].to_string(),
                    output::cell(&record["action"]),
                    output::cell(&record["node"]),
                    output::cell(&record["by"]),
                    detail,
                ]
            })
            .collect();
        println!(
            "{}",
            output::table(&["seq", "action", "node", "by", "detail"], rows)
        );
    }
    Ok(())
}

/// `cairn hub status`.
fn hub_status(cli: &Cli) -> Result<(), Failure> {
    let status = open_hub(cli)?.status()?;
    if cli.json {
        let mut value = json!(status);
        value["tls_sha256"] = json!(
            cairn_http::tls::certificate_fingerprint(&cli.data)
                .ok()
                .map(hex::encode)
        );
        output::json(&value);
    } else {
        println!(
            "hub {}: {} ops in the log, root {}",
            status.origin, status.log_size, status.root
        );
        let rows = status
            .streams
            .iter()
            .map(|(stream, (head, held))| {
                vec![
                    stream.clone(),
                    head.to_string(),
                    if *held { "HELD".into() } else { "ok".into() },
                ]
            })
            .collect();
        println!("{}", output::table(&["stream", "head", "state"], rows));
        println!(
            "{} nodes enrolled, {} items quarantined",
            status.nodes, status.quarantined
        );
        let listed = |map: &std::collections::BTreeMap<String, u64>| -> String {
            let parts: Vec<String> = map
                .iter()
                .map(|(name, count)| format!("{count} {name}"))
                .collect();
            if parts.is_empty() {
                "none".into()
            } else {
                parts.join(", ")
            }
        };
        let packs: Vec<String> = status
            .packs
            .iter()
            .map(|(pack, version)| format!("{pack} {version}"))
            .collect();
        println!(
            "compliance: {}; open review items: {}; rule packs: {}",
            listed(&status.states),
            listed(&status.reviews_open),
            packs.join(", ")
        );
        if !status.quarantine.is_empty() {
            let rows = status
                .quarantine
                .iter()
                .map(|item| {
                    vec![
                        format!("{}:{}", item.node, item.stream),
                        item.seq.map_or("?".into(), |seq| seq.to_string()),
                        item.reason.clone(),
                        item.material_hash[..16].to_string(),
                    ]
                })
                .collect();
            println!(
                "{}",
                output::table(&["stream", "seq", "reason", "material"], rows)
            );
        }
        if let Ok(pin) = cairn_http::tls::certificate_fingerprint(&cli.data) {
            println!("TLS certificate sha256 {}", hex::encode(pin));
        }
        for (node, clock) in &status.clocks {
            if clock.clock_offset_ms.unsigned_abs() > cairn_sync::clock::CLOCK_OFFSET_ALERT_MS {
                println!(
                    "clock of {node}: {} at its last push",
                    cairn_sync::clock::describe(-clock.clock_offset_ms)
                );
            }
        }
        for alert in &status.alerts {
            println!("ALERT: {alert}");
        }
    }
    Ok(())
}
