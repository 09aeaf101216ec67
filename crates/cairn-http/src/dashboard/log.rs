//! The log page: the latest signed checkpoint, the history of checkpoints
//! with each one's consistency with the newest checked (a proof the hub
//! computes and this page verifies with the core's RFC 6962 code), and the
//! audit trail, filterable by kind, person and action.

use super::{escape, staff};
use crate::error::AppError;
use crate::hub::{HubState, blocking};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cairn_core::dates::format_datetime_ms;
use cairn_core::hash::Hash;
use cairn_hub::comply::trail::TrailFilter;
use std::collections::BTreeMap;

/// Checkpoints the page lists.
const HISTORY: usize = 20;
/// Trail entries it shows, newest first.
const TRAIL_SHOWN: usize = 200;

/// Whether checkpoint `old` is consistent with `new`, as the hub proves it.
fn consistent(
    state: &HubState,
    old: &cairn_hub_sqlite::history::CheckpointRow,
    new: &cairn_hub_sqlite::history::CheckpointRow,
) -> bool {
    let roots = (Hash::from_hex(&old.root), Hash::from_hex(&new.root));
    let (Some(old_root), Some(new_root)) = roots else {
        return false;
    };
    let Ok(Some(proof)) = state.hub.consistency_proof(old.size, new.size) else {
        return false;
    };
    let proof: Option<Vec<Hash>> = proof.iter().map(|hash| Hash::from_hex(hash)).collect();
    proof.is_some_and(|proof| {
        cairn_core::merkle::verify_consistency(old.size, new.size, &old_root, &new_root, &proof)
            .is_ok()
    })
}

/// `GET /dashboard/log?kind=&by=&action=`.
pub(super) async fn page(
    State(state): State<HubState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let who = match staff(&state, &headers) {
        Ok(who) => who,
        Err(redirect) => return redirect.into_response(),
    };
    let filter = TrailFilter {
        kind: query.get("kind").filter(|text| !text.is_empty()).cloned(),
        who: query.get("by").filter(|text| !text.is_empty()).cloned(),
        what: query.get("action").filter(|text| !text.is_empty()).cloned(),
        since_ms: 0,
    };
    let reading = state.clone();
    let read = blocking(move || {
        let fault = |error: String| AppError::Server(error);
        let note = reading
            .hub
            .checkpoint()
            .map_err(|error| fault(error.to_string()))?;
        let history = reading
            .hub
            .checkpoint_history(HISTORY)
            .map_err(|error| fault(error.to_string()))?;
        let checks: Vec<bool> = history
            .iter()
            .map(|old| {
                history
                    .first()
                    .is_some_and(|new| consistent(&reading, old, new))
            })
            .collect();
        let trail = reading
            .hub
            .hub()
            .audit_trail(&filter)
            .map_err(|error| fault(error.to_string()))?;
        Ok((note, history, checks, trail))
    })
    .await;
    let (note, history, checks, trail) = match read {
        Ok(read) => read,
        Err(error) => return super::fault(error),
    };
    let mut rows = String::new();
    for (row, ok) in history.iter().zip(checks) {
        rows.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
            row.size,
            escape(&row.root),
            format_datetime_ms(row.created_ms),
            if ok {
                "consistent with the newest"
            } else {
                "NOT consistent"
            }
        ));
    }
    let mut entries = String::new();
    for entry in trail.iter().rev().take(TRAIL_SHOWN) {
        entries.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            format_datetime_ms(entry.at_ms),
            escape(entry.kind),
            escape(&entry.who),
            escape(&entry.what),
            escape(&entry.before.to_string()),
            escape(&entry.after.to_string()),
        ));
    }
    let value = |name: &str| escape(query.get(name).map_or("", String::as_str));
    let body = format!(
        "<h2>Latest signed checkpoint</h2><pre id=\"checkpoint\">{}</pre>\
         <h2>History</h2><table id=\"history\"><tr><th>Size</th><th>Root</th><th>Signed</th><th>Consistency</th></tr>\n{rows}</table>\
         <h2>Audit trail</h2><form method=\"get\" action=\"/dashboard/log\">\
         <label>Kind <select name=\"kind\"><option value=\"\">any</option><option>act</option><option>push</option><option>transition</option></select></label> \
         <label>By <input name=\"by\" value=\"{}\"></label> <label>Action <input name=\"action\" value=\"{}\"></label> <button>Filter</button></form>\
         <table id=\"trail\"><tr><th>When</th><th>Kind</th><th>Who</th><th>What</th><th>Before</th><th>After</th></tr>\n{entries}</table>",
        escape(&note),
        value("by"),
        value("action"),
    );
    super::page("Log and audit trail", Some(&who), &body).into_response()
}
