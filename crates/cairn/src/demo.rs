//! `cairn demo`: a walk through an edge node on the embedded SQLite default.
//!
//! It initializes a node with the three built-in packs in a fresh directory,
//! writes from several threads at once (group commit), shows a refusal, a
//! correction, a counter shared by two tills and a Schedule II dispensing
//! routed to the critical stream, then verifies every chain and prints a
//! summary. It exits 0 only if every check held.

use crate::output;
use anyhow::{Context, bail, ensure};
use cairn_core::op::Action;
use cairn_store::{EdgeStore, InitOptions, Record, WriteError, WriteRequest};
use clap::Args;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;

/// `cairn demo` options.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo node (created fresh; removed afterwards unless --keep).
    #[arg(long, default_value = "./cairn-demo")]
    pub dir: PathBuf,
    /// Keep the demo node's directory.
    #[arg(long)]
    pub keep: bool,
}

fn maintenance(work_order: &str, serial: &str, action: &str) -> WriteRequest {
    WriteRequest {
        collection: "maintenance_actions".into(),
        action: Action::Append,
        key: None,
        scope: Default::default(),
        data: json!({
            "work_order": work_order,
            "aircraft_registration": "N123AB",
            "part_serial": serial,
            "technician": "TECH-IA-4412",
            "performed_on": "2026-11-20",
            "certificate_expiry": "2027-11-20",
            "action": action,
            "description": "Engine borescope inspection, no findings",
        }),
        corrects: None,
        reason: None,
    }
}

fn entity(collection: &str, key: &str, data: Value) -> WriteRequest {
    WriteRequest {
        collection: collection.into(),
        action: Action::Put,
        key: Some(key.into()),
        scope: Default::default(),
        data,
        corrects: None,
        reason: None,
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs, json_output: bool) -> anyhow::Result<()> {
    if args.dir.exists() {
        bail!("{} exists; remove it or pass --dir", args.dir.display());
    }
    let result = walk(args, json_output);
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    result
}

fn walk(args: &DemoArgs, json_output: bool) -> anyhow::Result<()> {
    let say = |line: String| {
        if !json_output {
            println!("{line}");
        }
    };
    EdgeStore::init(
        &args.dir,
        &InitOptions {
            node: "demo-edge".into(),
            packs: cairn_core::pack::BUILTIN_PACKS
                .iter()
                .map(|(name, _)| name.to_string())
                .collect(),
            default_scope: [
                ("site", "hangar-7"),
                ("pharmacy", "main-st"),
                ("building", "B12"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            quota_bytes: 0,
        },
    )
    .context("init")?;
    let store = Arc::new(EdgeStore::open(&args.dir).context("open")?);
    say(format!(
        "node demo-edge initialized in {} (packs: mro, pharmacy, field_service)",
        args.dir.display()
    ));

    // Eight technicians log actions at once: group commit shares fsyncs.
    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            std::thread::spawn(move || -> Result<usize, WriteError> {
                for n in 0..25 {
                    store.write(maintenance(
                        &format!("WO-{writer}-{n}"),
                        &format!("SN-{writer}{n:03}"),
                        "inspection",
                    ))?;
                }
                Ok(25)
            })
        })
        .collect();
    let mut written = 0;
    for writer in writers {
        written += writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer panicked"))??;
    }
    say(format!(
        "{written} maintenance actions from 8 concurrent writers, durable in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));

    // A record with an expired certificate and a wrong type is refused whole.
    let mut bad = maintenance("WO-9-1", "SN-1", "repair");
    bad.data["certificate_expiry"] = json!("2025-01-01");
    bad.data["hours"] = json!("three");
    match store.write(bad) {
        Err(WriteError::Invalid { violations, .. }) => {
            ensure!(
                violations.len() == 2,
                "expected two violations, got {violations:?}"
            );
            for violation in &violations {
                say(format!("refused as expected: {violation}"));
            }
        }
        other => bail!("a bad record was not refused: {other:?}"),
    }

    // A correction is a new record; the original stays as it was.
    let original = store.write(maintenance("WO-7-1", "SN-7777", "repair"))?;
    let mut fix = maintenance("WO-7-1", "SN-7778", "repair");
    fix.action = Action::Correct;
    fix.corrects = Some(original.id.clone());
    fix.reason = Some("serial misread from the data plate".into());
    let correction = store.write(fix)?;
    let Some(Record::Ledger(kept)) = store.get("maintenance_actions", &original.id)? else {
        bail!("original record missing");
    };
    ensure!(
        kept.data["part_serial"] == json!("SN-7777")
            && kept.corrected_by == vec![correction.id.clone()]
    );
    say(format!(
        "{} corrected by {} (original unchanged)",
        original.id, correction.id
    ));

    // Schedule II goes on the critical stream; NDC-10 is normalized to NDC-11.
    let dispensing = store.write(WriteRequest {
        collection: "dispensing".into(),
        action: Action::Append,
        key: None,
        scope: Default::default(),
        data: json!({"ndc": "1234-5678-90", "quantity": 30, "dea_schedule": "II", "prescription_id": "RX-1001",
                     "pharmacist_npi": "1234567893", "dispensed_at": "2026-11-22T10:15:00Z"}),
        corrects: None,
        reason: None,
    })?;
    ensure!(
        dispensing.stream == "critical",
        "Schedule II went to {}",
        dispensing.stream
    );
    say(format!(
        "Schedule II dispensing {} routed to the critical stream",
        dispensing.id
    ));

    // Two tills sell the same stock: the counter takes both.
    store.write(entity(
        "inventory",
        "01234-5678-90",
        json!({"ndc": "1234-5678-90", "quantity": 100}),
    ))?;
    let tills: Vec<_> = (0..2)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                store.write(entity(
                    "inventory",
                    "01234-5678-90",
                    json!({"quantity": -3}),
                ))
            })
        })
        .collect();
    for till in tills {
        till.join()
            .map_err(|_| anyhow::anyhow!("till panicked"))??;
    }
    let Some(Record::Entity(stock)) = store.get("inventory", "01234-5678-90")? else {
        bail!("inventory missing");
    };
    ensure!(
        stock.fields["quantity"] == json!(94),
        "stock is {}",
        stock.fields["quantity"]
    );
    say("inventory 01234-5678-90: 100 - 3 - 3 = 94".into());

    store.write(entity(
        "equipment",
        "ahu-3",
        json!({"building_id": "B12", "name": "Air handler 3", "status": "operational",
        "location_x": 1.0, "location_y": 2.0, "location_z": 0.0, "location_confidence": 0.4}),
    ))?;
    store.write(entity(
        "equipment",
        "ahu-3",
        json!({"status": "degraded", "tags": ["hvac", "roof"]}),
    ))?;

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as u64;
    let status = store.status(now_ms)?;
    let report = store.verify()?;
    if let Some(fault) = &report.fault {
        bail!("verification failed: {fault}");
    }
    let rows = status
        .streams
        .iter()
        .map(|stream| {
            vec![
                stream.stream.clone(),
                stream.head_seq.to_string(),
                stream.pending.to_string(),
            ]
        })
        .collect();
    if json_output {
        output::json(
            &json!({"ok": true, "status": status, "verified_streams": report.streams, "verified_states": report.states}),
        );
    } else {
        println!(
            "{}",
            output::table(&["stream", "ops", "pending for the hub"], rows)
        );
        println!(
            "verified: every chain, checkpoint and {} materialized states intact",
            report.states
        );
        println!("demo OK");
    }
    Ok(())
}
