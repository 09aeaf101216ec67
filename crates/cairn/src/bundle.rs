//! Offline bundles, for sites offline for weeks: the edge writes its
//! unacknowledged ops to a file (a USB stick), the hub imports it with
//! exactly the verification of a push, and the hub's signed
//! acknowledgements travel back the same way.
//!
//! The formats are `cairn_proto::bundle`'s: a header line, then one push
//! body per line; an acknowledgement file is the hub's signature over the
//! canonical bytes of its `acks`. The edge acknowledges a stream only up to
//! a seq whose hash matches its own op there.

use anyhow::{Context, bail, ensure};
use cairn_core::canonical;
use cairn_core::hash::Hash;
use cairn_edge::EdgeStore;
use cairn_hub::ingest::push_from_json;
use cairn_hub_sqlite::HubStore;
use cairn_proto::bundle::{ACKS_FORMAT, AckHead, Acks, AcksFile, BUNDLE_FORMAT, BundleHeader};
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::path::Path;

/// Longest line read from a bundle, bytes.
const LINE_BYTES_MAX: usize = 64 * 1024 * 1024;

use cairn_edge::clock::now_ms;

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
        while let Some(batch) =
            store.pending_batch_after(&stream, from_seq, cairn_hub_sqlite::PUSH_OPS_MAX)?
        {
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A hub, an enrolled edge with three records, its bundle and the hub's
    /// acknowledgements of it, as files.
    struct Setup {
        _dir: tempfile::TempDir,
        hub: HubStore,
        edge: EdgeStore,
        bundle: Vec<u8>,
        acks: Vec<u8>,
        scratch: std::path::PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        HubStore::init(&dir.path().join("hub"), "test.hub").unwrap();
        let hub = HubStore::open(&dir.path().join("hub")).unwrap();
        let options = cairn_edge::InitOptions {
            node: "site-9".into(),
            packs: vec!["mro".into()],
            default_scope: [("site".to_string(), "site-9".to_string())].into(),
            quota_bytes: 0,
        };
        EdgeStore::init(&dir.path().join("edge"), &options).unwrap();
        let edge = EdgeStore::open(&dir.path().join("edge")).unwrap();
        hub.enroll("site-9", edge.settings().public_key, &Default::default())
            .unwrap();
        for n in 0..3 {
            let record = json!({"collection": "maintenance_actions", "data": {
                "work_order": format!("WO-{n}"), "aircraft_registration": "N123AB",
                "part_serial": "SN-1", "technician": "TECH-IA-4412",
                "performed_on": "2026-11-20", "certificate_expiry": "2027-11-20",
                "action": "inspection"}});
            edge.write(cairn_edge::input::write_request(edge.catalog(), &record, 0).unwrap())
                .unwrap();
        }
        let bundle_path = dir.path().join("bundle.jsonl");
        export(&edge, &bundle_path).unwrap();
        import(&hub, &bundle_path).unwrap();
        let acks_path = dir.path().join("acks.json");
        export_acks(&hub, "site-9", &acks_path).unwrap();
        Setup {
            bundle: std::fs::read(&bundle_path).unwrap(),
            acks: std::fs::read(&acks_path).unwrap(),
            scratch: dir.path().join("scratch"),
            _dir: dir,
            hub,
            edge,
        }
    }

    thread_local! {
        static SETUP: Setup = setup();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Bundles and acknowledgement files off a USB stick, mutated:
        /// refused cleanly or taken with the verification of a push, never
        /// a panic.
        #[test]
        fn bundles_and_acks_import_or_refuse(
            at in any::<usize>(),
            kind in any::<u8>(),
            extra in prop::collection::vec(any::<u8>(), 1..12),
        ) {
            SETUP.with(|setup| {
                let mutated = cairn_core::mutation::mutated(&setup.bundle, at, kind, &extra);
                std::fs::write(&setup.scratch, &mutated).unwrap();
                let _ = import(&setup.hub, &setup.scratch);
                let mutated = cairn_core::mutation::mutated(&setup.acks, at, kind, &extra);
                std::fs::write(&setup.scratch, &mutated).unwrap();
                let key = setup.hub.public_key();
                let _ = import_acks(&setup.edge, &setup.scratch, "test.hub", &key);
            });
        }
    }
}
