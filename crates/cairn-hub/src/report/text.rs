//! A report's figures as titled rows of text, the one wording both the
//! HTML and the PDF use (so the two always say the same).

use super::Report;
use cairn_core::dates::format_datetime_ms;

/// A titled section of label and value rows.
pub struct Section {
    /// Its title.
    pub title: String,
    /// Its rows.
    pub rows: Vec<(String, String)>,
}

fn section(title: &str, rows: Vec<(String, String)>) -> Section {
    Section {
        title: title.to_string(),
        rows,
    }
}

fn row(label: impl Into<String>, value: impl ToString) -> (String, String) {
    (label.into(), value.to_string())
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// Every section of `report`, in order.
pub fn sections(report: &Report) -> Vec<Section> {
    let mut sections = vec![
        period(report),
        records(report),
        latency(report),
        rejections(report),
        reviews(report),
        pharmacy(report),
        queue(report),
        sign_offs(report),
    ];
    sections.extend(aircraft(report));
    sections
}

fn period(report: &Report) -> Section {
    let scope = if report.scope.is_empty() {
        "all".to_string()
    } else {
        let labels: Vec<String> = report
            .scope
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        labels.join(", ")
    };
    section(
        "Period",
        vec![
            row("Hub", &report.origin),
            row("From", format_datetime_ms(report.from_ms)),
            row("To", format_datetime_ms(report.to_ms)),
            row("Scope", scope),
            row("Log size when made", report.log_size),
            row(
                "Leaves covered",
                format!("{} to {}", report.leaves.0, report.leaves.1),
            ),
            row("Made", format_datetime_ms(report.generated_ms)),
        ],
    )
}

fn records(report: &Report) -> Section {
    let mut rows = vec![row("Records", report.records)];
    rows.extend(
        report
            .by_state
            .iter()
            .map(|(state, count)| row(format!("State {state}"), count)),
    );
    rows.extend(
        report
            .by_collection
            .iter()
            .map(|(name, count)| row(format!("Collection {name}"), count)),
    );
    section("Records", rows)
}

fn latency(report: &Report) -> Section {
    let latency = &report.latency;
    section(
        "Reconciliation latency (write to hub verdict)",
        vec![
            row("Judged records", latency.count),
            row("p50", seconds(latency.p50_ms)),
            row("p90", seconds(latency.p90_ms)),
            row("p99", seconds(latency.p99_ms)),
            row("Max", seconds(latency.max_ms)),
        ],
    )
}

fn rejections(report: &Report) -> Section {
    let mut rows: Vec<(String, String)> = report
        .rejections_by_rule
        .iter()
        .map(|(rule, count)| row(format!("Rule {rule}"), count))
        .collect();
    if rows.is_empty() {
        rows.push(row("Rejections", 0));
    }
    section("Rejections by rule", rows)
}

fn reviews(report: &Report) -> Section {
    let mut rows = vec![
        row("Quarantined pushes", report.quarantines),
        row("Conflicts raised", report.conflicts),
    ];
    for (kind, raised) in &report.reviews_raised {
        let open = report.reviews_open.get(kind).copied().unwrap_or(0);
        rows.push(row(
            format!("Review {kind}"),
            format!("{raised} raised, {open} open"),
        ));
    }
    section("Quarantines, conflicts and reviews", rows)
}

fn pharmacy(report: &Report) -> Section {
    let two = &report.schedule_two;
    let (ndc11, dispensings) = report.ndc_normalized;
    let rate = if dispensings == 0 {
        0.0
    } else {
        ndc11 as f64 * 100.0 / dispensings as f64
    };
    section(
        "Pharmacy",
        vec![
            row("Schedule II dispensings", two.dispensed),
            row("Missing second verification", two.missing_verification),
            row("Still open", two.still_open),
            row("Dispensings", dispensings),
            row("NDC in NDC-11 form", format!("{ndc11} ({rate:.1} %)")),
        ],
    )
}

fn queue(report: &Report) -> Section {
    let peak = report
        .queue_depth
        .iter()
        .map(|(_, depth)| *depth)
        .max()
        .unwrap_or(0);
    let mut rows = vec![
        row("Peak queue depth", peak),
        row("Disconnects", report.disconnects.len()),
    ];
    rows.extend(report.disconnects.iter().map(|gap| {
        row(
            format!("Disconnect {}", gap.node),
            format!(
                "{} to {}",
                format_datetime_ms(gap.from_ms),
                format_datetime_ms(gap.to_ms)
            ),
        )
    }));
    section("Queue depth and disconnects", rows)
}

fn sign_offs(report: &Report) -> Section {
    let mut rows: Vec<(String, String)> = report
        .sign_offs
        .iter()
        .map(|(meaning, count)| row(format!("Meaning {meaning}"), count))
        .collect();
    if rows.is_empty() {
        rows.push(row("Sign-offs", "none in the period's collections"));
    }
    section("Sign-offs by meaning", rows)
}

fn aircraft(report: &Report) -> Option<Section> {
    let (registration, records) = report.aircraft.as_ref()?;
    let rows = records
        .iter()
        .map(|record| {
            row(
                format!(
                    "{} {}",
                    format_datetime_ms(record.written_ms),
                    record.collection
                ),
                format!("{} [{}] {}", record.record, record.state, record.data),
            )
        })
        .collect();
    Some(section(
        &format!("Aircraft {registration}: every record (14 CFR 91.417)"),
        rows,
    ))
}
