//! `cairn hub verify`: an auditor's check of the whole hub log, from the
//! database alone and the hub's public key.
//!
//! It re-derives everything the hub signed or was handed: each leaf decodes
//! and hashes to its stored `op_hash`; each stream runs from seq 1 without
//! gaps, every `prev_hash` naming the op before and its head being the
//! stream's recorded head; each origin checkpoint verifies with its key, and
//! that key is one an enrollment act of the hub's own stream (`hub:audit`)
//! names (the `node_keys` table is only an index, and is not trusted) or
//! the hub's own; every stream's head is signed; and every signed log checkpoint
//! verifies with the hub's key and its root is the tree recomputed from the
//! leaves. The first fault of each kind is named; the rest are counted.

use crate::{HUB_NODE, HubStore};
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::merkle::{self, MemoryTree};
use cairn_sqlite::StoreError;
use std::collections::HashMap;

/// What `HubStore::verify` checked, and what it found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HubVerifyReport {
    /// Leaves read.
    pub leaves: u64,
    /// Streams whose chains were walked.
    pub streams: u64,
    /// Origin checkpoint signatures verified.
    pub origin_checkpoints: u64,
    /// Signed log checkpoints whose signature and root were verified.
    pub log_checkpoints: u64,
    /// Faults found, in the order met (at most [`FAULTS_MAX`]).
    pub faults: Vec<String>,
}

/// Most faults a report lists.
pub const FAULTS_MAX: usize = 100;

impl HubVerifyReport {
    fn fault(&mut self, fault: String) {
        if self.faults.len() < FAULTS_MAX {
            self.faults.push(fault);
        }
    }
}

/// A stream as the walk has seen it so far.
struct Walk {
    name: String,
    seq: u64,
    hash: Hash,
}

impl HubStore {
    /// Verifies the whole log (see the module documentation). Faults are in
    /// the report; an error means the database could not be read.
    pub fn verify(&self) -> Result<HubVerifyReport, StoreError> {
        let tx = self.read()?;
        let conn = tx.conn();
        let mut report = HubVerifyReport::default();
        let names: HashMap<i64, (String, String)> = conn
            .prepare("SELECT id, node, stream FROM streams")?
            .query_map([], |row| Ok((row.get(0)?, (row.get(1)?, row.get(2)?))))?
            .collect::<Result<_, _>>()?;
        let mut walks: HashMap<i64, Walk> = HashMap::new();
        // (node, key) of every enrollment act met in the log.
        let mut enrolled = std::collections::HashSet::new();
        let mut tree = MemoryTree::default();
        let mut next_leaf = 0;
        let mut statement =
            conn.prepare("SELECT leaf, stream_id, seq, op_hash, op FROM log ORDER BY leaf")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let leaf = row.get::<_, i64>(0)? as u64;
            let stream_id: i64 = row.get(1)?;
            let seq = row.get::<_, i64>(2)? as u64;
            let stored = Hash::from_slice(&row.get::<_, Vec<u8>>(3)?).unwrap_or(Hash::ZERO);
            let bytes: Vec<u8> = row.get(4)?;
            if leaf != next_leaf {
                report.fault(format!(
                    "leaf {leaf} comes where leaf {next_leaf} should: the log has a hole"
                ));
            }
            next_leaf = leaf + 1;
            report.leaves += 1;
            // The tree is over the stored hashes, as the hub signed it; a
            // stored hash that is not the op's is a fault of its own.
            tree.push(merkle::leaf_hash(&stored.0));
            let name = names
                .get(&stream_id)
                .map(|(node, stream)| format!("{node}:{stream}"))
                .unwrap_or_else(|| format!("stream {stream_id}"));
            let op = match cairn_core::op::Op::decode(&bytes) {
                Ok(op) => op,
                Err(fault) => {
                    report.fault(format!("leaf {leaf} ({name} seq {seq}): {fault}"));
                    continue;
                }
            };
            if op.op_hash != stored {
                report.fault(format!(
                    "leaf {leaf} ({name} seq {seq}): the op hashes to {}, the log says {stored}",
                    op.op_hash
                ));
            }
            if op.seq != seq
                || Some(&(op.draft.node.clone(), op.draft.stream.clone())) != names.get(&stream_id)
            {
                report.fault(format!(
                    "leaf {leaf}: the op is {} but is filed as {name} seq {seq}",
                    op.record_id()
                ));
            }
            if op.draft.node == HUB_NODE && op.draft.stream == crate::AUDIT_STREAM {
                let act: serde_json::Value =
                    serde_json::from_slice(&op.draft.payload).unwrap_or_default();
                if let (Some("enroll"), Some(node), Some(key)) = (
                    act["action"].as_str(),
                    act["node"].as_str(),
                    act["public_key"].as_str(),
                ) {
                    enrolled.insert((node.to_string(), key.to_string()));
                }
            }
            let walk = walks.entry(stream_id).or_insert(Walk {
                name,
                seq: 0,
                hash: Hash::ZERO,
            });
            if op.seq != walk.seq + 1 {
                report.fault(format!(
                    "{} seq {}: expected seq {}",
                    walk.name,
                    op.seq,
                    walk.seq + 1
                ));
            } else if op.prev_hash != walk.hash {
                report.fault(format!(
                    "{} seq {}: prev_hash does not match seq {}",
                    walk.name, op.seq, walk.seq
                ));
            }
            walk.seq = op.seq;
            walk.hash = op.op_hash;
        }
        drop(rows);
        drop(statement);
        report.streams = walks.len() as u64;

        // Heads as recorded, and each signed.
        let heads: Vec<(i64, i64, Vec<u8>)> = conn
            .prepare("SELECT id, head_seq, head_hash FROM streams WHERE head_seq > 0")?
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (stream_id, head_seq, head_hash) in heads {
            let name = names
                .get(&stream_id)
                .map(|(node, stream)| format!("{node}:{stream}"))
                .unwrap_or_default();
            let walked = walks.get(&stream_id).map(|walk| (walk.seq, walk.hash));
            if walked
                != Some((
                    head_seq as u64,
                    Hash::from_slice(&head_hash).unwrap_or(Hash::ZERO),
                ))
            {
                report.fault(format!(
                    "{name}: the recorded head (seq {head_seq}) is not the last op of the log"
                ));
            }
            let signed: Option<i64> = conn.query_row(
                "SELECT max(seq) FROM origin_checkpoints WHERE stream_id = ?1",
                [stream_id],
                |row| row.get(0),
            )?;
            if signed != Some(head_seq) {
                report.fault(format!(
                    "{name}: no origin checkpoint signs its head (seq {head_seq})"
                ));
            }
        }

        // Origin checkpoints: signature, head, enrolled key.
        let hub_key = self.public_key();
        let mut statement = conn.prepare(
            "SELECT c.stream_id, c.seq, c.signature, c.public_key, l.op_hash
             FROM origin_checkpoints c
             LEFT JOIN log l ON l.stream_id = c.stream_id AND l.seq = c.seq
             ORDER BY c.stream_id, c.seq",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let stream_id: i64 = row.get(0)?;
            let seq = row.get::<_, i64>(1)? as u64;
            let (node, stream) = names.get(&stream_id).cloned().unwrap_or_default();
            let name = format!("{node}:{stream}");
            let signature: Option<[u8; 64]> = row.get::<_, Vec<u8>>(2)?.try_into().ok();
            let key: Option<[u8; 32]> = row.get::<_, Vec<u8>>(3)?.try_into().ok();
            let head = row
                .get::<_, Option<Vec<u8>>>(4)?
                .and_then(|hash| Hash::from_slice(&hash));
            let (Some(signature), Some(key), Some(head)) = (signature, key, head) else {
                report.fault(format!(
                    "{name} checkpoint seq {seq}: signs no op of the log"
                ));
                continue;
            };
            let checkpoint = Checkpoint {
                node: node.clone(),
                stream,
                seq,
                head,
                signature,
            };
            if let Err(error) = checkpoint.verify(&key) {
                report.fault(format!("{name} checkpoint seq {seq}: {error}"));
            }
            let known = if node == HUB_NODE {
                key == hub_key
            } else {
                enrolled.contains(&(node.clone(), hex::encode(key)))
            };
            if !known {
                report.fault(format!(
                    "{name} checkpoint seq {seq}: signed by a key the hub never enrolled"
                ));
            }
            report.origin_checkpoints += 1;
        }
        drop(rows);
        drop(statement);

        // Signed log checkpoints: signature and root.
        let mut statement = conn.prepare("SELECT size, note FROM log_checkpoints ORDER BY size")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let size = row.get::<_, i64>(0)? as u64;
            let note: String = row.get(1)?;
            match cairn_core::note::verify(&note, self.origin(), &hub_key) {
                Err(error) => report.fault(format!("log checkpoint {size}: {error}")),
                Ok(signed) if signed.size != size => report.fault(format!(
                    "log checkpoint {size}: the note says size {}",
                    signed.size
                )),
                Ok(signed) => {
                    if size > tree.size() || merkle::root(&tree, size) != Some(signed.root) {
                        report.fault(format!(
                            "log checkpoint {size}: its root is not the tree of the log's first {size} leaves"
                        ));
                    }
                }
            }
            report.log_checkpoints += 1;
        }
        Ok(report)
    }
}
