//! A report as one self-contained HTML page (no scripts, no external
//! files), its charts inline SVG. Written out by hand: one page of tables
//! and two charts, escaped by `escape`, needs no template engine.

use super::Report;
use super::text::sections;

/// `text` with HTML's special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Bars of `values` (label, count) as an SVG chart.
pub fn bar_chart(title: &str, values: &[(String, u64)]) -> String {
    let (width, height, bar_gap) = (560.0, 160.0, 4.0);
    let top = values
        .iter()
        .map(|(_, value)| *value)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar = (width / values.len().max(1) as f64) - bar_gap;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" width="{width}" height="{}" viewBox="0 0 {width} {}">"#,
        escape(title),
        height + 30.0,
        height + 30.0
    );
    for (index, (label, value)) in values.iter().enumerate() {
        let x = index as f64 * (bar + bar_gap);
        let h = *value as f64 / top * height;
        svg.push_str(&format!(
            r##"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{h:.1}" fill="#3b6ea5"><title>{}: {value}</title></rect><text x="{:.1}" y="{}" font-size="9" text-anchor="middle">{}</text>"##,
            height - h,
            escape(label),
            x + bar / 2.0,
            height + 12.0,
            escape(label)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A line of `points` (x, y) as an SVG chart, with marks at `marks` (x).
pub fn line_chart(title: &str, points: &[(u64, u64)], marks: &[u64]) -> String {
    let (width, height) = (560.0, 160.0);
    let (x0, x1) = (
        points.first().map_or(0, |p| p.0),
        points
            .last()
            .map_or(1, |p| p.0)
            .max(points.first().map_or(0, |p| p.0) + 1),
    );
    let top = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let x = |at: u64| (at.saturating_sub(x0)) as f64 / (x1 - x0) as f64 * width;
    let path: Vec<String> = points
        .iter()
        .map(|(at, depth)| format!("{:.1},{:.1}", x(*at), height - *depth as f64 / top * height))
        .collect();
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" width="{width}" height="{height}" viewBox="0 0 {width} {height}"><polyline fill="none" stroke="#3b6ea5" stroke-width="2" points="{}"/>"##,
        escape(title),
        path.join(" ")
    );
    for mark in marks {
        let at = x(*mark);
        svg.push_str(&format!(
            r##"<line x1="{at:.1}" x2="{at:.1}" y1="0" y2="{height}" stroke="#b03a2e" stroke-dasharray="4 3"/>"##
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The report as an HTML page.
pub fn render(report: &Report) -> String {
    let mut page = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Cairn compliance report</title>\
         <style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;color:#222}\
         table{border-collapse:collapse;margin-bottom:1.5rem}td{border-bottom:1px solid #ddd;padding:.25rem .75rem}\
         td:first-child{color:#555}</style></head><body>\n<h1>Cairn compliance report</h1>\n",
    );
    for section in sections(report) {
        page.push_str(&format!("<h2>{}</h2>\n<table>\n", escape(&section.title)));
        for (label, value) in &section.rows {
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>\n",
                escape(label),
                escape(value)
            ));
        }
        page.push_str("</table>\n");
        if section.title.starts_with("Reconciliation") {
            let buckets: Vec<(String, u64)> = report
                .latency
                .buckets
                .iter()
                .map(|(bound, count)| {
                    (
                        bound.map_or("more".to_string(), |ms| format!("≤{}s", ms / 1000)),
                        *count,
                    )
                })
                .collect();
            page.push_str(&bar_chart("Reconciliation latency", &buckets));
            page.push('\n');
        }
        if section.title.starts_with("Queue depth") {
            let marks: Vec<u64> = report.disconnects.iter().map(|gap| gap.to_ms).collect();
            page.push_str(&line_chart(
                "Queue depth over time",
                &report.queue_depth,
                &marks,
            ));
            page.push('\n');
        }
    }
    page.push_str("</body></html>\n");
    page
}
