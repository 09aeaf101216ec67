//! Every decoder of untrusted bytes in the core, fed mutations of valid
//! encodings: bit flips, truncations, insertions, deletions, length fields
//! rewritten, ranges copied elsewhere. Random bytes almost never get past
//! a format's tag, so a "never panics" test over them cannot fail (STYLE
//! 34); a mutation of a real encoding reaches every field. Each decoder
//! must answer with a clean error (or a value), never a panic. Failing
//! cases proptest found are kept in `proptest-regressions/` and replayed.

use crate::chain::StreamHead;
use crate::hash::Hash;
use crate::identity::NodeIdentity;
use crate::op::{Action, Op, OpDraft, OpHeader, VersionVector};
use proptest::prelude::*;

/// One change to a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, Vec<u8>),
    Delete(prop::sample::Index, usize),
    /// A big-endian u16 or u32 written over two or four bytes: what a
    /// length prefix would read.
    Length(prop::sample::Index, u32, bool),
    /// A range copied over another place.
    Splice(prop::sample::Index, prop::sample::Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let index = any::<prop::sample::Index>;
    prop_oneof![
        (index(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        index().prop_map(Mutation::Truncate),
        (index(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (index(), 1usize..64).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (
            index(),
            prop_oneof![
                Just(0u32),
                Just(1),
                Just(0xFFFF),
                Just(u32::MAX),
                any::<u32>()
            ],
            any::<bool>()
        )
            .prop_map(|(at, value, wide)| Mutation::Length(at, value, wide)),
        (index(), index(), 1usize..64).prop_map(|(from, to, len)| Mutation::Splice(from, to, len)),
    ]
}

/// `bytes` with `mutation` applied (up to three of them in a row).
fn apply(bytes: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for mutation in mutations {
        if out.is_empty() {
            break;
        }
        let len = out.len();
        match mutation {
            Mutation::Flip(at, bit) => out[at.index(len)] ^= 1 << bit,
            Mutation::Truncate(at) => out.truncate(at.index(len)),
            Mutation::Insert(at, bytes) => {
                let at = at.index(len);
                out.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(at, count) => {
                let at = at.index(len);
                out.drain(at..(at + count).min(len));
            }
            Mutation::Length(at, value, wide) => {
                let at = at.index(len);
                let field = if *wide {
                    value.to_be_bytes().to_vec()
                } else {
                    (*value as u16).to_be_bytes().to_vec()
                };
                for (offset, byte) in field.into_iter().enumerate() {
                    if let Some(slot) = out.get_mut(at + offset) {
                        *slot = byte;
                    }
                }
            }
            Mutation::Splice(from, to, count) => {
                let (from, to) = (from.index(len), to.index(len));
                let piece: Vec<u8> = out[from..(from + count).min(len)].to_vec();
                for (offset, byte) in piece.into_iter().enumerate() {
                    if let Some(slot) = out.get_mut(to + offset) {
                        *slot = byte;
                    }
                }
            }
        }
    }
    out
}

/// Two ops that use every field between them: an entity put (key, scope,
/// base version) and a ledger correction (reference, reason).
fn full_ops() -> [(Op, Vec<u8>); 2] {
    let mut base = VersionVector::default();
    base.observe("a:standard", 3);
    base.observe("b:critical", 9);
    let mut head = StreamHead {
        seq: 4,
        hash: Hash::of(b"prev"),
    };
    let draft = OpDraft {
        node: "a".into(),
        stream: "standard".into(),
        hlc: crate::hlc::Hlc {
            wall_ms: 1_764_000_000_000,
            counter: 7,
        },
        collection: "equipment".into(),
        action: Action::Put,
        key: "ahu-3".into(),
        scope: [("building".to_string(), "B12".to_string())].into(),
        base,
        ref_hash: None,
        reason: String::new(),
        payload: br#"{"name":"AHU 3","status":"degraded"}"#.to_vec(),
    };
    let put = head.append(draft.clone());
    let correction = head.append(OpDraft {
        collection: "maintenance_actions".into(),
        action: Action::Correct,
        key: String::new(),
        base: VersionVector::default(),
        ref_hash: Some(Hash::of(b"corrected")),
        reason: "serial misread".into(),
        payload: br#"{"part_serial":"SN-2","work_order":"WO-1"}"#.to_vec(),
        ..draft
    });
    [put, correction]
}

/// The first of [`full_ops`].
fn full_op() -> (Op, Vec<u8>) {
    let [put, _] = full_ops();
    put
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

proptest! {
    #[test]
    fn ops_and_headers_decode_or_refuse(
        mutations in prop::collection::vec(mutation(), 1..4),
        which in 0usize..2,
    ) {
        let (op, bytes) = full_ops()[which].clone();
        let changed = apply(&bytes, &mutations);
        if let Ok(decoded) = Op::decode(&changed)
            && changed != bytes
        {
            // What decodes from other bytes is another op.
            prop_assert_ne!(decoded.op_hash, op.op_hash);
        }
        let header = Op::header_bytes(&bytes).unwrap();
        let _ = OpHeader::decode(&apply(header, &mutations));
    }

    #[test]
    fn signed_notes_verify_or_refuse(mutations in prop::collection::vec(mutation(), 1..4)) {
        let hub = NodeIdentity::from_seed("hub", [3; 32]);
        let checkpoint = crate::note::LogCheckpoint {
            origin: "cairn.example/hub-1".into(),
            size: 1234,
            root: Hash::of(b"root"),
        };
        let note = crate::note::sign(&checkpoint, &checkpoint.origin, &hub);
        let changed = text(&apply(note.as_bytes(), &mutations));
        if let Ok(verified) = crate::note::verify(&changed, &checkpoint.origin, &hub.public_key()) {
            prop_assert_eq!(verified, checkpoint);
        }
    }

    #[test]
    fn tokens_verify_or_refuse(mutations in prop::collection::vec(mutation(), 1..4)) {
        let node = NodeIdentity::from_seed("a", [1; 32]);
        let claims = crate::token::Claims {
            sub: "a".into(),
            aud: "cairn.example/hub-1".into(),
            role: "node".into(),
            iat: 1_000,
            exp: 1_300,
        };
        let token = crate::token::sign(&claims, &node);
        let changed = text(&apply(token.as_bytes(), &mutations));
        let _ = crate::token::peek(&changed);
        if let Ok(verified) = crate::token::verify(&changed, &node.public_key(), &claims.aud, 1_100) {
            prop_assert_eq!(verified, claims);
        }
    }

    #[test]
    fn snapshots_verify_or_refuse(
        mutations in prop::collection::vec(mutation(), 1..4),
        target in 0usize..4,
    ) {
        let hub = NodeIdentity::from_seed("hub", [3; 32]);
        let mut head = StreamHead::EMPTY;
        let mut encoded = Vec::new();
        let mut digest = crate::snapshot::SnapshotDigest::default();
        for n in 0..3u8 {
            let mut draft = full_op().0.draft;
            draft.payload = format!("{{\"n\":{n}}}").into_bytes();
            let (op, bytes) = head.append(draft);
            digest.push(&op.op_hash);
            encoded.push(bytes);
        }
        let (count, digest) = digest.finish();
        let manifest = crate::snapshot::SnapshotManifest {
            origin: "o".into(),
            node: "b".into(),
            from: 0,
            next: 9,
            labels: "*".into(),
            ops: count,
            digest,
        }
        .sign(&hub);
        // Mutate the manifest, or one of the ops.
        let (manifest, encoded) = if target == 3 {
            (text(&apply(manifest.as_bytes(), &mutations)), encoded)
        } else {
            let mut encoded = encoded;
            encoded[target] = apply(&encoded[target], &mutations);
            (manifest, encoded)
        };
        let _ = crate::snapshot::verify(&manifest, encoded, "b", "o", &hub.public_key());
    }

    #[test]
    fn rule_packs_parse_or_refuse(mutations in prop::collection::vec(mutation(), 1..4), pack in 0usize..3) {
        let (_, source) = crate::pack::BUILTIN_PACKS[pack];
        let changed = text(&apply(source.as_bytes(), &mutations));
        let _ = crate::pack::RulePack::from_toml(&changed);
    }

    #[test]
    fn chain_proofs_verify_or_refuse(mutations in prop::collection::vec(mutation(), 1..4), target in 0usize..2) {
        let node = NodeIdentity::from_seed("a", [1; 32]);
        let mut head = StreamHead::EMPTY;
        let ops: Vec<(Op, Vec<u8>)> = (0..3).map(|_| head.append(full_op().0.draft)).collect();
        let checkpoint = node.sign_checkpoint("standard", head.seq, head.hash);
        // The first op carried, the next two proven by their headers.
        let mut headers: Vec<Vec<u8>> = ops[1..]
            .iter()
            .map(|(_, bytes)| Op::header_bytes(bytes).unwrap().to_vec())
            .collect();
        headers[target] = apply(&headers[target], &mutations);
        let proof = crate::provenance::ChainProof {
            checkpoint,
            public_key: node.public_key(),
            headers,
        };
        let _ = crate::provenance::verify(&[&ops[0].0], &[proof]);
    }
}
