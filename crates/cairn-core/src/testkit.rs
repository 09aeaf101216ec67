//! Ops for tests of every crate: a node's `standard` stream of ledger
//! notes, built the one way, so tests do not each spell out an `OpDraft`.
//! Compiled for this crate's tests and for crates that ask for the
//! `testkit` feature in their dev-dependencies; nothing else uses it.

use crate::chain::StreamHead;
use crate::op::{Action, Op, OpDraft};
use std::collections::BTreeMap;

/// The HLC wall time of seq 0 of a test stream, ms.
pub const EPOCH_MS: u64 = 1_700_000_000_000;

/// A ledger note of `node`'s `standard` stream: its payload
/// `{"<tag>": seq}` (so two tags make two histories), its HLC
/// [`EPOCH_MS`] + seq, scope `scope`.
pub fn note(node: &str, seq: u64, tag: &str, scope: &BTreeMap<String, String>) -> OpDraft {
    OpDraft {
        node: node.into(),
        stream: "standard".into(),
        hlc: crate::hlc::Hlc {
            wall_ms: EPOCH_MS + seq,
            counter: 0,
        },
        collection: "notes".into(),
        action: Action::Append,
        key: String::new(),
        scope: scope.clone(),
        base: Default::default(),
        ref_hash: None,
        reason: String::new(),
        payload: format!("{{\"{tag}\":{seq}}}").into_bytes(),
    }
}

/// The next `count` notes of `node` after `head`, encoded; `head` moves on.
pub fn notes(
    node: &str,
    head: &mut StreamHead,
    count: usize,
    tag: &str,
    scope: &BTreeMap<String, String>,
) -> Vec<Vec<u8>> {
    (0..count)
        .map(|_| {
            let draft = note(node, head.seq + 1, tag, scope);
            head.append(draft).1
        })
        .collect()
}

/// The first `count` notes of `node`, decoded.
pub fn stream(node: &str, count: usize) -> Vec<Op> {
    let mut head = StreamHead::EMPTY;
    notes(node, &mut head, count, "n", &BTreeMap::new())
        .iter()
        .map(|bytes| Op::decode(bytes).expect("a test note decodes"))
        .collect()
}
