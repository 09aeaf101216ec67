//! Snapshots: how a new node catches up on the hub's log in one answer.
//!
//! A pull page carries an inclusion proof per op, which is most of its bytes
//! once the log is large. A snapshot instead carries every op the node may
//! see up to a log leaf, and one manifest that the hub signs as a C2SP signed
//! note with the same key as its log checkpoints:
//!
//! ```text
//! <origin>
//! snapshot
//! node <node>
//! from <first leaf scanned>
//! next <first leaf not scanned>
//! labels <the scope labels it was cut for, comma-separated, or *>
//! ops <count>
//! digest <base64 SHA-256 of the ops' op hashes, concatenated in order>
//! ```
//!
//! A snapshot comes in pages, each its own manifest, so that a node never
//! holds more than a page: the next page starts at the previous page's
//! `next`. `labels *` means every op the node may see; a list of labels
//! means only those carrying one of them (a node granted a new label takes
//! its history that way).
//!
//! The node checks the signature against the hub key it pinned at
//! enrollment, that the manifest names it, and that the ops it received
//! decode, hash to what they claim and give the signed digest in the signed
//! count; then it merges them and goes on from `next`. The second line,
//! `snapshot`, is never a tree size, so a manifest is never mistaken for a
//! log checkpoint, nor a checkpoint for a manifest.

use crate::hash::Hash;
use crate::identity::NodeIdentity;
use crate::note::{self, NoteError};
use crate::op::Op;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// What the hub signs about a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotManifest {
    /// The hub log's origin line.
    pub origin: String,
    /// The node the snapshot was cut for.
    pub node: String,
    /// The first log leaf the page scanned.
    pub from: u64,
    /// The first log leaf the page does not cover: the node goes on from here.
    pub next: u64,
    /// The scope labels (`name=value`, sorted, comma-separated) it was cut
    /// for, or `*` for every op the node may see.
    pub labels: String,
    /// Number of ops.
    pub ops: u64,
    /// SHA-256 over the ops' op hashes, concatenated in snapshot order.
    pub digest: Hash,
}

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The manifest is not a note signed by the pinned hub key.
    #[error("manifest: {0}")]
    Note(#[from] NoteError),
    /// The manifest's body is not the snapshot form.
    #[error("manifest: {0}")]
    Malformed(&'static str),
    /// The manifest was cut for another node.
    #[error("manifest: cut for node {0:?}, not this node")]
    OtherNode(String),
    /// An op is damaged.
    #[error("op {index}: {message}")]
    Op {
        /// Position in the snapshot.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The ops are not the ones the manifest signs.
    #[error("ops: {0}")]
    Mismatch(String),
}

impl SnapshotManifest {
    /// The manifest's note body.
    pub fn body(&self) -> String {
        format!(
            "{}\nsnapshot\nnode {}\nfrom {}\nnext {}\nlabels {}\nops {}\ndigest {}\n",
            self.origin,
            self.node,
            self.from,
            self.next,
            self.labels,
            self.ops,
            STANDARD.encode(self.digest.0)
        )
    }

    /// Parses a body; `None` unless it is exactly the snapshot form.
    pub fn parse_body(body: &str) -> Option<SnapshotManifest> {
        let mut lines = body.strip_suffix('\n')?.split('\n');
        let origin = lines.next().filter(|origin| !origin.is_empty())?;
        if lines.next()? != "snapshot" {
            return None;
        }
        let mut field = |name: &str| lines.next()?.strip_prefix(name)?.strip_prefix(' ');
        let node = field("node")?.to_string();
        let from = field("from")?.parse().ok()?;
        let next = field("next")?.parse().ok()?;
        let labels = field("labels")?.to_string();
        let ops = field("ops")?.parse().ok()?;
        let digest = Hash::from_slice(&STANDARD.decode(field("digest")?).ok()?)?;
        if lines.next().is_some() {
            return None;
        }
        Some(SnapshotManifest {
            origin: origin.to_string(),
            node,
            from,
            next,
            labels,
            ops,
            digest,
        })
    }

    /// Signs the manifest as the hub log `origin`.
    pub fn sign(&self, identity: &NodeIdentity) -> String {
        note::sign_body(&self.body(), &self.origin, identity)
    }
}

/// Accumulates the digest of a snapshot's ops.
#[derive(Clone, Default)]
pub struct SnapshotDigest {
    hasher: Sha256,
    ops: u64,
}

impl SnapshotDigest {
    /// Adds the next op's hash.
    pub fn push(&mut self, op_hash: &Hash) {
        self.hasher.update(op_hash.0);
        self.ops += 1;
    }

    /// Ops added so far and the digest over them.
    pub fn finish(self) -> (u64, Hash) {
        (self.ops, Hash(self.hasher.finalize().into()))
    }
}

/// An op and the bytes it was decoded from.
pub type DecodedOp = (Op, Vec<u8>);

/// Checks a snapshot for `node` against the hub key `(origin, key)`;
/// returns the manifest and the decoded ops, in order.
pub fn verify(
    manifest_note: &str,
    encoded_ops: Vec<Vec<u8>>,
    node: &str,
    origin: &str,
    hub_key: &[u8; 32],
) -> Result<(SnapshotManifest, Vec<DecodedOp>), SnapshotError> {
    let body = note::verify_body(manifest_note, origin, hub_key)?;
    let manifest = SnapshotManifest::parse_body(&body).ok_or(SnapshotError::Malformed(
        "not origin, snapshot, node, next, ops, digest",
    ))?;
    if manifest.node != node {
        return Err(SnapshotError::OtherNode(manifest.node));
    }
    if encoded_ops.len() as u64 != manifest.ops {
        return Err(SnapshotError::Mismatch(format!(
            "{} ops received, the manifest signs {}",
            encoded_ops.len(),
            manifest.ops
        )));
    }
    let mut digest = SnapshotDigest::default();
    let mut ops = Vec::with_capacity(encoded_ops.len());
    for (index, bytes) in encoded_ops.into_iter().enumerate() {
        let op = Op::decode(&bytes).map_err(|fault| SnapshotError::Op {
            index,
            message: fault.to_string(),
        })?;
        digest.push(&op.op_hash);
        ops.push((op, bytes));
    }
    let (_, computed) = digest.finish();
    if computed != manifest.digest {
        return Err(SnapshotError::Mismatch(
            "the ops' digest differs from the signed one".into(),
        ));
    }
    Ok((manifest, ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::StreamHead;
    use crate::hlc::Hlc;
    use crate::op::{Action, OpDraft};

    const ORIGIN: &str = "cairn.test/hub";

    fn ops(count: u64) -> Vec<Vec<u8>> {
        let mut head = StreamHead::EMPTY;
        (0..count)
            .map(|n| {
                let payload = format!("{{\"n\":{n}}}").into_bytes();
                let hash = crate::canonical::payload_hash(&payload);
                let draft = OpDraft {
                    node: "a".into(),
                    stream: "standard".into(),
                    hlc: Hlc {
                        wall_ms: 1 + n,
                        counter: 0,
                    },
                    collection: "notes".into(),
                    action: Action::Append,
                    key: String::new(),
                    scope: [("site".to_string(), "x".to_string())].into(),
                    base: Default::default(),
                    ref_hash: None,
                    reason: String::new(),
                    payload,
                };
                head.append_prehashed(draft, hash).1
            })
            .collect()
    }

    fn signed(hub: &NodeIdentity, encoded: &[Vec<u8>], node: &str) -> String {
        let mut digest = SnapshotDigest::default();
        for bytes in encoded {
            digest.push(&Op::decode(bytes).unwrap().op_hash);
        }
        let (count, digest) = digest.finish();
        SnapshotManifest {
            origin: ORIGIN.into(),
            node: node.into(),
            from: 0,
            next: 42,
            labels: "*".into(),
            ops: count,
            digest,
        }
        .sign(hub)
    }

    #[test]
    fn a_signed_snapshot_verifies_and_any_change_is_refused() {
        let hub = NodeIdentity::from_seed("hub", [3; 32]);
        let key = hub.public_key();
        let encoded = ops(5);
        let note = signed(&hub, &encoded, "b");
        let (manifest, decoded) = verify(&note, encoded.clone(), "b", ORIGIN, &key).unwrap();
        assert_eq!((manifest.next, manifest.ops, decoded.len()), (42, 5, 5));

        // Another node's snapshot.
        assert_eq!(
            verify(&note, encoded.clone(), "c", ORIGIN, &key).unwrap_err(),
            SnapshotError::OtherNode("b".into())
        );
        // A dropped op, a reordered pair, a flipped byte.
        let mut dropped = encoded.clone();
        dropped.pop();
        assert!(matches!(
            verify(&note, dropped, "b", ORIGIN, &key),
            Err(SnapshotError::Mismatch(_))
        ));
        let mut swapped = encoded.clone();
        swapped.swap(0, 1);
        assert!(matches!(
            verify(&note, swapped, "b", ORIGIN, &key),
            Err(SnapshotError::Mismatch(_))
        ));
        let mut flipped = encoded.clone();
        let last = flipped[2].len() - 2;
        flipped[2][last] ^= 1;
        assert!(matches!(
            verify(&note, flipped, "b", ORIGIN, &key),
            Err(SnapshotError::Op { index: 2, .. })
        ));
        // An edited manifest, another hub's key.
        let edited = note.replacen("next 42", "next 43", 1);
        assert!(matches!(
            verify(&edited, encoded.clone(), "b", ORIGIN, &key),
            Err(SnapshotError::Note(NoteError::Unsigned(_)))
        ));
        let other = NodeIdentity::from_seed("hub", [4; 32]).public_key();
        assert!(verify(&note, encoded, "b", ORIGIN, &other).is_err());
    }

    #[test]
    fn manifests_and_log_checkpoints_never_parse_as_each_other() {
        let hub = NodeIdentity::from_seed("hub", [3; 32]);
        let checkpoint = note::LogCheckpoint {
            origin: ORIGIN.into(),
            size: 7,
            root: Hash::ZERO,
        };
        let checkpoint_note = note::sign(&checkpoint, ORIGIN, &hub);
        assert!(matches!(
            verify(&checkpoint_note, Vec::new(), "b", ORIGIN, &hub.public_key()),
            Err(SnapshotError::Malformed(_))
        ));
        let manifest_note = signed(&hub, &[], "b");
        assert!(note::verify(&manifest_note, ORIGIN, &hub.public_key()).is_err());
    }
}
