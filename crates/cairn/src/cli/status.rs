//! `cairn status` and `cairn verify`.

use super::*;

pub(super) fn status(cli: &Cli, args: &StatusArgs) -> Result<(), Failure> {
    let store = open(cli)?;
    let thresholds = cairn_edge::AlertThresholds {
        pending_age_ms: args.pending_alert_secs.saturating_mul(1000),
        storage_percent: args.storage_alert_percent,
    };
    let status = store.status_with(now_ms(), &thresholds)?;
    let alerts = status.alerts.clone();
    if cli.json {
        output::json(&json!(status));
        return Ok(());
    }
    println!("node {}", status.node);
    let rows = status
        .streams
        .iter()
        .map(|stream| {
            vec![
                stream.stream.clone(),
                stream.head_seq.to_string(),
                stream.acked_seq.to_string(),
                stream.pending.to_string(),
                stream
                    .oldest_pending_age_ms
                    .map_or("-".into(), output::duration_ms),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(
            &["stream", "head", "acked", "pending", "oldest pending"],
            rows
        )
    );
    let quota = if status.quota_bytes > 0 {
        format!(" of {}", output::bytes(status.quota_bytes))
    } else {
        String::new()
    };
    println!(
        "storage {}{quota}; open conflicts {}",
        output::bytes(status.storage_bytes),
        status.conflicts
    );
    if !status.states.is_empty() {
        let states: Vec<String> = status
            .states
            .iter()
            .map(|(state, count)| format!("{count} {state}"))
            .collect();
        println!("own ops at the hub: {}", states.join(", "));
    }
    print_sync_state(status.sync.as_ref());
    for alert in &alerts {
        println!("ALERT: {alert}");
    }
    Ok(())
}

/// The background sync's last state, as `edge serve` saved it.
pub(super) fn print_sync_state(sync: Option<&Value>) {
    let Some(sync) = sync else {
        println!("sync: never ran here (`cairn edge serve --hub`, or `cairn sync`)");
        return;
    };
    let online = if sync["online"] == true {
        "online"
    } else {
        "offline"
    };
    let last_sync = sync["last_sync_ms"]
        .as_u64()
        .map_or("never".to_string(), |at| {
            format!("{} ago", output::duration_ms(now_ms().saturating_sub(at)))
        });
    println!(
        "sync with {}: {online}, breaker {}, last sync {last_sync}",
        sync["hub"].as_str().unwrap_or("?"),
        sync["breaker"].as_str().unwrap_or("?")
    );
    if let Some(offset) = sync["clock_offset_ms"].as_i64() {
        println!("clock: {}", cairn_sync::clock::describe(offset));
    }
    if let Some(error) = sync["last_error"].as_str() {
        println!("last error: {error}");
    }
}

pub(super) fn verify(cli: &Cli) -> Result<(), Failure> {
    let store = open(cli)?;
    let report = store.verify()?;
    let streams: Vec<Value> = report.streams.iter().map(|stream| json!(stream)).collect();
    match &report.fault {
        None => {
            if cli.json {
                output::json(&json!({"intact": true, "streams": streams, "states": report.states}));
            } else {
                let rows = report
                    .streams
                    .iter()
                    .map(|stream| {
                        vec![
                            stream.stream.clone(),
                            stream.ops.to_string(),
                            stream.checkpoints.to_string(),
                        ]
                    })
                    .collect();
                println!("{}", output::table(&["stream", "ops", "checkpoints"], rows));
                println!(
                    "intact: every chain, checkpoint and materialized state ({} states) verified",
                    report.states
                );
            }
            Ok(())
        }
        Some(fault) => Err(Failure {
            code: exit::TAMPERED,
            json: json!({"intact": false, "streams": streams, "fault": {"seq": fault.seq(), "message": fault.to_string()}}),
            text: format!("TAMPERED: {fault}"),
        }),
    }
}
