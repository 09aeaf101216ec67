//! Offline bundles, the hub's side: it imports a bundle with exactly the
//! verification of a push (`cairn_hub::ingest`, then the pipeline), and
//! writes its signed acknowledgements for the node to carry back. The
//! edge's side is `cairn_sync::bundle`; the format is `cairn_proto::bundle`.

use crate::HubStore;
use anyhow::{Context, ensure};
use cairn_core::canonical;
use cairn_hub::ingest::push_from_json;
use cairn_proto::bundle::{ACKS_FORMAT, AckHead, Acks, AcksFile, BUNDLE_FORMAT, BundleHeader};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::Path;

/// Longest line read from a bundle, bytes.
const LINE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// What an import did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImportReport {
    /// The node the bundle came from.
    pub node: String,
    /// Ops accepted.
    pub accepted: u64,
    /// Ops already held.
    pub duplicate: u64,
    /// Ops quarantined, with reasons.
    pub quarantined: Vec<String>,
}

/// Verifies and ingests a bundle exactly as pushes would be.
pub fn import(hub: &HubStore, path: &Path) -> anyhow::Result<ImportReport> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header: Value = serde_json::from_str(
        &lines
            .next()
            .context("line 1: the bundle is empty")?
            .context("line 1: not UTF-8 text")?,
    )
    .context("line 1: the header is not JSON")?;
    ensure!(
        header["format"] == BUNDLE_FORMAT,
        "line 1: format must be {BUNDLE_FORMAT:?}, got {}",
        header["format"]
    );
    let header: BundleHeader = cairn_proto::from_value(header).context("line 1")?;
    let node = header.node;
    let mut report = ImportReport {
        node: node.clone(),
        ..ImportReport::default()
    };
    for (index, line) in lines.enumerate() {
        let number = index + 2;
        let line = line.with_context(|| format!("line {number}: not UTF-8 text"))?;
        ensure!(
            line.len() <= LINE_BYTES_MAX,
            "line {number}: longer than {LINE_BYTES_MAX} bytes"
        );
        let value: Value =
            serde_json::from_str(&line).with_context(|| format!("line {number}: not JSON"))?;
        let request = push_from_json(&value).map_err(|violations| {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("line {number}: {}", list.join("; "))
        })?;
        ensure!(
            request.node == node,
            "line {number}: ops of {:?} in a bundle of {node:?}",
            request.node
        );
        let stream = request.stream.clone();
        let response = hub
            .push(request)
            .with_context(|| format!("line {number}"))?;
        for result in response.results {
            match result.status {
                cairn_proto::OpStatus::Accepted => report.accepted += 1,
                cairn_proto::OpStatus::Duplicate => report.duplicate += 1,
                cairn_proto::OpStatus::Quarantined => report.quarantined.push(format!(
                    "{} seq {}: {}",
                    stream,
                    result.seq.map_or("?".into(), |seq| seq.to_string()),
                    result.reason.unwrap_or_default()
                )),
            }
        }
    }
    Ok(report)
}

/// Writes the hub's signed acknowledgements for `node` to a new file.
pub fn export_acks(hub: &HubStore, node: &str, path: &Path) -> anyhow::Result<u64> {
    let heads = hub.stream_heads(node)?;
    let acks = json!(Acks {
        origin: hub.origin().to_string(),
        node: node.to_string(),
        streams: heads
            .iter()
            .map(|(stream, (seq, head))| {
                let head = AckHead {
                    seq: *seq,
                    head: head.to_hex(),
                };
                (stream.clone(), head)
            })
            .collect(),
    });
    let signature = hub.sign(&canonical::to_canonical_bytes(&acks)?);
    let document = json!(AcksFile {
        format: ACKS_FORMAT.into(),
        acks,
        signature: hex::encode(signature),
    });
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{document}")?;
    file.sync_all()?;
    Ok(heads.values().map(|(seq, _)| seq).sum())
}
