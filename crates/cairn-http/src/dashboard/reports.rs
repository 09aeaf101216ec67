//! Reports and artifacts: a form that makes a sealed report (the same as
//! `cairn report`) and hands it over as a download, and the artifact
//! versions the hub has published.

use super::{escape, staff};
use crate::error::AppError;
use crate::hub::{HubState, blocking};
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_core::dates::{format_datetime_ms, parse_date_days, parse_datetime_ms};
use cairn_hub::report::ReportQuery;
use cairn_hub_sqlite::reports::ReportFormat;

/// `GET /dashboard/reports`.
pub(super) async fn page(State(state): State<HubState>, headers: HeaderMap) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let hub = state.hub.clone();
    let published = match blocking(move || {
        hub.hub()
            .published()
            .map_err(|error| AppError::Server(error.to_string()))
    })
    .await
    {
        Ok(published) => published,
        Err(error) => return super::fault(error),
    };
    let mut rows = String::new();
    for item in published.iter().rev() {
        let manifest = &item.manifest;
        let scope: Vec<String> = item
            .scope
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
            escape(&manifest.name),
            escape(&manifest.version),
            manifest.size,
            manifest.sha256.to_hex(),
            escape(&scope.join(", ")),
            format_datetime_ms(manifest.published_ms),
        ));
    }
    let body = format!(
        "<h2>Make a report</h2><form method=\"post\" action=\"/dashboard/reports\">\
         <label>Format <select name=\"format\"><option>pdf</option><option>html</option><option>json</option></select></label> \
         <label>From <input name=\"from\" placeholder=\"YYYY-MM-DD\"></label> <label>To <input name=\"to\" placeholder=\"YYYY-MM-DD\"></label> \
         <label>Scope <input name=\"scope\" placeholder=\"site=hangar-7\"></label> <label>Aircraft <input name=\"aircraft\" placeholder=\"N123AB\"></label> \
         <button id=\"make-report\">Make the report</button></form>\
         <p>Every report carries its SHA-256 and the hub's signature; <code>cairn verify report FILE</code> checks it offline.</p>\
         <h2>Artifacts</h2><table id=\"artifacts\"><tr><th>Name</th><th>Version</th><th>Bytes</th><th>SHA-256</th><th>Scope</th><th>Published</th></tr>\n{rows}</table>"
    );
    super::page("Reports and artifacts", Some(&who), &body).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct ReportForm {
    format: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    aircraft: String,
}

fn moment(text: &str) -> Option<Option<u64>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(None);
    }
    parse_datetime_ms(text)
        .or_else(|| parse_date_days(text).map(|days| days * 86_400_000))
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Some)
}

/// `POST /dashboard/reports`: the sealed report as a download.
pub(super) async fn make(
    State(state): State<HubState>,
    headers: HeaderMap,
    Form(form): Form<ReportForm>,
) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let refuse = |why: &str| {
        let body = format!(
            "<p class=\"offline\">{}</p><p><a href=\"/dashboard/reports\">Back</a></p>",
            escape(why)
        );
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            super::page("Report not made", Some(&who), &body),
        )
            .into_response()
    };
    let Some(format) = ReportFormat::from_name(&form.format) else {
        return refuse("format: json, html or pdf");
    };
    let (Some(from_ms), Some(to_ms)) = (moment(&form.from), moment(&form.to)) else {
        return refuse("from, to: a day (YYYY-MM-DD) or an RFC 3339 time");
    };
    let labels: Vec<String> = form
        .scope
        .split(',')
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(String::from)
        .collect();
    let Ok(scope) = cairn_edge::input::parse_scope_args(&labels) else {
        return refuse("scope: label=value, comma-separated");
    };
    let query = ReportQuery {
        from_ms,
        to_ms,
        scope,
        aircraft: Some(form.aircraft.trim().to_string()).filter(|text| !text.is_empty()),
    };
    let hub = state.hub.clone();
    let made = blocking(move || {
        let fault = |error: cairn_edge::StoreError| AppError::Server(error.to_string());
        let report = hub.report(&query).map_err(fault)?;
        hub.sealed_report(&report, format).map_err(fault)
    })
    .await;
    match made {
        Ok((bytes, _seal)) => {
            let (kind, extension) = match format {
                ReportFormat::Json => ("application/json", "json"),
                ReportFormat::Html => ("text/html; charset=utf-8", "html"),
                ReportFormat::Pdf => ("application/pdf", "pdf"),
            };
            let disposition = format!("attachment; filename=\"cairn-report.{extension}\"");
            (
                [
                    (header::CONTENT_TYPE, kind.to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                bytes,
            )
                .into_response()
        }
        Err(error) => super::fault(error),
    }
}
