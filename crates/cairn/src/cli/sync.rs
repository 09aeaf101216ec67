//! `cairn sync` and `cairn edge recover`: one round with the hub from the command line.

use super::*;

pub(super) fn sync(cli: &Cli, args: &SyncArgs) -> Result<(), Failure> {
    let _not_serving = serve_lock(&cli.data)?;
    let store = open(cli)?;
    // A progress bar on a terminal (indicatif hides it elsewhere), never with --json.
    let pending = store.status(now_ms())?.pending_total;
    let progress = (!cli.json && pending > 0).then(|| {
        let bar = indicatif::ProgressBar::new(pending);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("pushing {bar:40} {pos}/{len} ops {elapsed}")
        {
            bar.set_style(style);
        }
        bar
    });
    let runtime = one_shot_runtime()?;
    let (client, hub_url, hub_key) = connect(&store, args)?;
    let link = hub_link(&client, &hub_url, &hub_key);
    let result = runtime.block_on(async {
        if args.accept_log_rollback {
            let audience = cairn_sync::hub_audience(&client, &hub_url, link.key).await?;
            for (stream, head) in
                cairn_sync::hub_log::accept_rollback(&store, &link, &audience).await?
            {
                tracing::warn!(%stream, head, "the hub lost ops it had acknowledged: pushing them again");
                if !cli.json {
                    eprintln!("{stream}: the hub holds up to seq {head}; pushing the rest again");
                }
            }
        }
        let pushed = cairn_sync::push_all(
            &store,
            &link,
            args.batch_ops.max(1),
            None,
            &Default::default(),
            args.encoding,
            progress.as_ref(),
        )
        .await?;
        let pulled = cairn_sync::pull_all(&store, &link).await?;
        let states = cairn_sync::learn_states(&store, &link).await?;
        anyhow::Ok((pushed, (pulled, states)))
    });
    if let Some(progress) = &progress {
        progress.finish_and_clear();
    }
    let (report, (pulled, states)) = result.map_err(|error| Failure {
        code: exit::SYNC_INCOMPLETE,
        json: json!({"error": {"code": "sync_incomplete", "message": format!("{error:#}")}}),
        text: format!("error: sync incomplete, nothing acknowledged was lost: {error:#}"),
    })?;
    if !report.quarantined.is_empty() {
        let lines: Vec<String> = report
            .quarantined
            .iter()
            .map(|item| format!("QUARANTINED: {item}"))
            .collect();
        return Err(Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "quarantined", "message": "the hub quarantined ops"}, "report": report}),
            text: format!(
                "error: the hub quarantined ops ({} accepted before that)\n{}",
                report.accepted,
                lines.join("\n")
            ),
        });
    }
    print_round(cli, &report, &pulled, &states);
    Ok(())
}

/// What one `cairn sync` round did, for people or scripts.
fn print_round(
    cli: &Cli,
    report: &cairn_sync::SyncReport,
    pulled: &cairn_sync::PullReport,
    states: &cairn_sync::StatesReport,
) {
    if cli.json {
        let mut value = json!(report);
        value["pulled"] = json!(pulled);
        value["rejected"] = json!(states.rejected);
        output::json(&value);
    } else {
        println!(
            "pushed: {} accepted ({} receipts verified), {} already at the hub",
            report.accepted, report.receipts_verified, report.duplicate
        );
        if pulled.snapshot_ops > 0 {
            println!(
                "bootstrapped from the hub's signed snapshot: {} ops",
                pulled.snapshot_ops
            );
        }
        println!(
            "pulled: {} new ops of other nodes ({} receipts verified)",
            pulled.applied, pulled.receipts_verified
        );
        for line in &states.rejected {
            println!("REJECTED by the hub's rule packs: {line}");
        }
    }
}

/// A hub's log origin and public key.
pub(super) type HubKey = (String, [u8; 32]);

/// The hub `args` name (or the one the node enrolled with), its key when
/// known, and a client that trusts only its pinned certificate.
pub(super) fn connect(
    store: &EdgeStore,
    args: &SyncArgs,
) -> Result<(reqwest::Client, String, Option<HubKey>), Failure> {
    let Some((hub_url, hub_key)) = resolve_hub(store, &args.hub, &args.hub_key, &args.hub_origin)?
    else {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "hub",
                "required",
                "no --hub given and the node never enrolled with one",
            )],
        ));
    };
    let pin = resolve_pin(store, &args.hub_cert_sha256)?;
    let client = cairn_http::tls::client(&hub_url, pin, Some(std::time::Duration::from_secs(30)))
        .map_err(pin_failure)?;
    Ok((client, hub_url, hub_key))
}

/// How a command reaches the hub `connect` named.
pub(super) fn hub_link<'a>(
    client: &'a reqwest::Client,
    url: &'a str,
    key: &'a Option<HubKey>,
) -> cairn_sync::HubLink<'a> {
    cairn_sync::HubLink {
        client,
        url,
        key: key.as_ref().map(|(origin, key)| (origin.as_str(), *key)),
        clock: Default::default(),
    }
}

/// `cairn edge recover`: takes this node's streams back from the hub.
pub(super) fn recover(cli: &Cli, args: &SyncArgs) -> Result<(), Failure> {
    let _not_serving = serve_lock(&cli.data)?;
    let store = open(cli)?;
    let (client, hub_url, hub_key) = connect(&store, args)?;
    let link = hub_link(&client, &hub_url, &hub_key);
    let runtime = one_shot_runtime()?;
    let report = runtime
        .block_on(cairn_sync::recover(&store, &link))
        .map_err(|error| Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "recovery_incomplete", "message": format!("{error:#}")}}),
            text: format!("error: recovery incomplete (each stream is taken back whole or not at all): {error:#}"),
        })?;
    if cli.json {
        output::json(&json!({"streams": report}));
    } else {
        for stream in &report {
            println!(
                "{}: the hub holds it up to seq {}; {} of this node's ops taken back, {} diverged ops appended again after them",
                stream.stream,
                stream.hub_head,
                stream.taken_back,
                stream.reappended.len()
            );
        }
    }
    Ok(())
}

/// An Ed25519 public key given as 64 hex characters in option `field`.
pub(super) fn parse_key(text: &str, field: &str) -> Result<[u8; 32], Failure> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            Failure::invalid(
                None,
                &[Violation::new(field, "format", "must be 64 hex characters")],
            )
        })
}

pub(super) fn parse_hub_key(
    key: &Option<String>,
    origin: &Option<String>,
) -> Result<Option<(String, [u8; 32])>, Failure> {
    match (key, origin) {
        (Some(key), Some(origin)) => Ok(Some((origin.clone(), parse_key(key, "hub-key")?))),
        _ => Ok(None),
    }
}
