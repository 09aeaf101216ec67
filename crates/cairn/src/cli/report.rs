//! `cairn report` (on a hub's data directory) and `cairn verify report`
//! (anywhere, offline).

use super::*;
use cairn_hub::report::ReportQuery;
use cairn_hub_sqlite::reports::ReportFormat;

/// A day (`YYYY-MM-DD`, its start) or an RFC 3339 time, as ms.
fn moment(field: &'static str, text: &str) -> Result<u64, Failure> {
    cairn_core::dates::parse_datetime_ms(text)
        .or_else(|| cairn_core::dates::parse_date_days(text).map(|days| days * 86_400_000))
        .and_then(|ms| u64::try_from(ms).ok())
        .ok_or_else(|| {
            Failure::invalid(
                None,
                &[Violation::new(
                    field,
                    "format",
                    "a day (YYYY-MM-DD) or an RFC 3339 time",
                )],
            )
        })
}

/// `cairn report`.
pub(super) fn report(cli: &Cli, args: &ReportArgs) -> Result<(), Failure> {
    let format = ReportFormat::from_name(&args.format).ok_or_else(|| {
        Failure::invalid(
            None,
            &[Violation::new("format", "enum", "json, html or pdf")],
        )
    })?;
    let query = ReportQuery {
        from_ms: args
            .from
            .as_deref()
            .map(|text| moment("from", text))
            .transpose()?,
        to_ms: args
            .to
            .as_deref()
            .map(|text| moment("to", text))
            .transpose()?,
        scope: input::parse_scope_args(&args.scope)
            .map_err(|violation| Failure::invalid(None, &[violation]))?,
        aircraft: args.aircraft.clone(),
    };
    let hub = open_hub(cli)?;
    let fault = |error: cairn_edge::StoreError| Failure::fault(anyhow::anyhow!(error));
    let started = std::time::Instant::now();
    let made = hub.report(&query).map_err(fault)?;
    let (bytes, seal) = hub.sealed_report(&made, format).map_err(fault)?;
    let write = |path: &std::path::Path, bytes: &[u8]| {
        std::fs::write(path, bytes)
            .with_context(|| format!("cannot write {}", path.display()))
            .map_err(Failure::from)
    };
    write(&args.out, &bytes)?;
    let sig = signature_path(&args.out);
    write(
        &sig,
        serde_json::to_string_pretty(&seal)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    if cli.json {
        output::json(&json!({
            "out": args.out, "signature": sig, "sha256": seal.sha256, "records": made.records,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    } else {
        println!(
            "{} written ({} records, sha256 {}), its seal in {}",
            args.out.display(),
            made.records,
            seal.sha256,
            sig.display()
        );
    }
    Ok(())
}

fn signature_path(file: &std::path::Path) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

/// `cairn verify report FILE`.
pub(super) fn verify_report(
    cli: &Cli,
    file: &std::path::Path,
    hub_key: Option<&str>,
) -> Result<(), Failure> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let detached = match std::fs::read(signature_path(file)) {
        Ok(text) => Some(
            serde_json::from_slice::<cairn_core::seal::Seal>(&text).map_err(|error| {
                Failure::invalid(
                    None,
                    &[Violation::new("signature", "format", error.to_string())],
                )
            })?,
        ),
        Err(_) => None,
    };
    let tampered = |message: String| Failure {
        code: exit::TAMPERED,
        json: json!({"error": {"code": "tampered", "message": message}}),
        text: format!("error: {} does not verify: {message}", file.display()),
    };
    let seal = cairn_core::seal::verify_sealed(&bytes, detached.as_ref())
        .map_err(|error| tampered(error.to_string()))?;
    if let Some(key) = hub_key
        && !key.eq_ignore_ascii_case(&seal.public_key)
    {
        return Err(tampered(format!(
            "sealed with key {}, not the hub's {key}",
            seal.public_key
        )));
    }
    if cli.json {
        output::json(&json!({"verified": true, "seal": seal, "detached": detached.is_some()}));
    } else {
        println!(
            "{}: sealed by {} (key {}), sha256 {}{}",
            file.display(),
            seal.origin,
            seal.public_key,
            seal.sha256,
            if detached.is_some() {
                "; the .sig file matches"
            } else {
                ""
            }
        );
    }
    Ok(())
}
