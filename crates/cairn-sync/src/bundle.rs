//! Offline bundles, for sites offline for weeks, the edge's side: it
//! writes its unacknowledged ops to a file (a USB stick) in
//! `cairn_proto::bundle`'s format, and applies the hub's signed
//! acknowledgements when they come back the same way, a stream only up to a
//! seq whose hash matches its own op there. The hub's side is
//! `cairn_hub_sqlite::bundle`.

use anyhow::{Context, bail, ensure};
use cairn_core::canonical;
use cairn_core::hash::Hash;
use cairn_edge::EdgeStore;
use cairn_edge::clock::now_ms;
use cairn_proto::bundle::{ACKS_FORMAT, Acks, AcksFile, BUNDLE_FORMAT, BundleHeader};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;

/// Most ops per line of a bundle (one push's worth).
const LINE_OPS_MAX: usize = cairn_core::limits::PUSH_OPS_MAX;

/// Writes every unacknowledged op to a new file; returns the number of ops.
pub fn export(store: &EdgeStore, path: &Path) -> anyhow::Result<u64> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let node = &store.settings().node;
    let header = BundleHeader {
        format: BUNDLE_FORMAT.into(),
        node: node.clone(),
        created_ms: now_ms(),
    };
    writeln!(out, "{}", json!(header))?;
    let mut count = 0;
    for stream in store.streams()? {
        // Walk the stream batch by batch without acknowledging anything:
        // only the hub's signed acknowledgements do that.
        let mut from_seq = None;
        while let Some(batch) = store.pending_batch_after(&stream, from_seq, LINE_OPS_MAX)? {
            count += batch.ops.len() as u64;
            from_seq = Some(batch.checkpoint.seq);
            let line = cairn_proto::push_json(node, &batch.stream, &batch.ops, &batch.checkpoint);
            writeln!(out, "{line}")?;
        }
    }
    let file = out.into_inner().context("cannot flush the bundle")?;
    file.sync_all().context("cannot fsync the bundle")?;
    Ok(count)
}

/// Applies a hub's acknowledgement file; returns the streams acknowledged.
pub fn import_acks(
    store: &EdgeStore,
    path: &Path,
    origin: &str,
    hub_key: &[u8; 32],
) -> anyhow::Result<Vec<(String, u64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let document: Value =
        serde_json::from_str(&text).context("the acknowledgement file is not JSON")?;
    ensure!(
        document["format"] == ACKS_FORMAT,
        "format must be {ACKS_FORMAT:?}"
    );
    let document: AcksFile = cairn_proto::from_value(document)?;
    let signature: [u8; 64] = hex::decode(&document.signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .context("signature must be 128 hex characters")?;
    // The signature covers the bytes as received; only then are they read.
    cairn_core::identity::verify_signature(
        hub_key,
        &canonical::to_canonical_bytes(&document.acks)?,
        &signature,
    )
    .map_err(|_| anyhow::anyhow!("the acknowledgements are not signed by the hub's key"))?;
    let acks: Acks = cairn_proto::from_value(document.acks).context("acks")?;
    ensure!(
        acks.origin == origin,
        "the acknowledgements come from {}, not {origin}",
        acks.origin
    );
    ensure!(
        acks.node == store.settings().node,
        "the acknowledgements are for {}, not this node",
        acks.node
    );
    let mut applied = Vec::new();
    for (stream, head) in &acks.streams {
        let seq = head.seq;
        let hash = Hash::from_hex(&head.head).context("head must be 64 hex characters")?;
        match store.own_op_hash(stream, seq)? {
            Some(own) if own == hash => {
                store.acknowledge(stream, seq)?;
                applied.push((stream.clone(), seq));
            }
            Some(_) => bail!(
                "stream {stream}: the hub holds a different op at seq {seq}: this node's history was rewritten (restored from a backup?)"
            ),
            None => bail!(
                "stream {stream}: the hub acknowledges seq {seq}, which this node does not have"
            ),
        }
    }
    Ok(applied)
}
