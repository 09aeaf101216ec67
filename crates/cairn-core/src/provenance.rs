//! Provenance of ops received from elsewhere: each one linked, through its
//! stream's hash chain, to a checkpoint its origin node signed.
//!
//! A node pulls only the ops in its scopes, so the ops it receives of
//! another node's stream usually have gaps: the seqs in between belong to
//! scopes it may not see. A [`ChainProof`] fills them with op *headers*
//! (`cairn_core::op::OpHeader`): the hashed part of an op without its
//! payload, which is enough to recompute `op_hash` and follow `prev_hash`.
//! Starting from a signed checkpoint `(node, stream, seq, head)`, the chain
//! is walked down seq by seq; every op it reaches is proven to be what the
//! origin node wrote, whoever carried it (hub, relay or bundle).
//!
//! Nothing here trusts the carrier: a header that does not decode, a link
//! that does not match, a head that is not the op at that seq, a signature
//! that does not verify, two versions of one seq, or an op the walk never
//! reaches are each refused with what and where.

use crate::hash::Hash;
use crate::identity::Checkpoint;
use crate::op::{Op, OpHeader, stream_key};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A signed checkpoint of one stream and the headers that link the ops
/// being proven to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainProof {
    /// The origin's checkpoint.
    pub checkpoint: Checkpoint,
    /// The key that signed it (the origin's enrolled key at the time).
    pub public_key: [u8; 32],
    /// Encoded headers ([`Op::header_bytes`]) of the stream's ops between
    /// the proven ops and the checkpoint that are not among them.
    pub headers: Vec<Vec<u8>>,
}

/// Why a set of ops is not proven by its chain proofs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProvenanceError {
    /// A header does not decode.
    #[error("chain proof of {stream}, header {index}: {what}")]
    Header {
        /// `node:stream` of the proof.
        stream: String,
        /// Position of the header in the proof.
        index: usize,
        /// What is wrong with it.
        what: String,
    },
    /// Two different hashes for one seq.
    #[error("{stream} seq {seq} comes in two versions ({first} and {second})")]
    TwoVersions {
        /// `node:stream`.
        stream: String,
        /// The seq.
        seq: u64,
        /// One hash.
        first: Hash,
        /// The other.
        second: Hash,
    },
    /// A checkpoint's signature does not verify.
    #[error("checkpoint {stream} seq {seq}: {what}")]
    Signature {
        /// `node:stream`.
        stream: String,
        /// The checkpoint's seq.
        seq: u64,
        /// Why.
        what: String,
    },
    /// A checkpoint's head is not the op (or header) held at its seq.
    #[error("checkpoint {stream} seq {seq} signs a head that is not the op at that seq")]
    Head {
        /// `node:stream`.
        stream: String,
        /// The checkpoint's seq.
        seq: u64,
    },
    /// `prev_hash` of an op does not match the op before it.
    #[error("{stream} seq {seq}: prev_hash does not match seq {}", seq - 1)]
    BrokenLink {
        /// `node:stream`.
        stream: String,
        /// The op whose link is broken.
        seq: u64,
    },
    /// No checkpoint reaches the op through the chain.
    #[error("op {stream} seq {seq} is not linked to a signed checkpoint")]
    Unproven {
        /// `node:stream`.
        stream: String,
        /// The op.
        seq: u64,
    },
}

/// What a successful check covered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proven {
    /// Ops proven.
    pub ops: usize,
    /// Checkpoint signatures verified.
    pub checkpoints: usize,
    /// Headers used to bridge gaps.
    pub headers: usize,
}

/// One link of a chain: what an op or header says of its place.
#[derive(Clone, Copy)]
struct Entry {
    prev_hash: Hash,
    op_hash: Hash,
}

/// Checks that every op in `ops` is linked by its stream's chain to one of
/// the signed checkpoints in `proofs`.
pub fn verify(ops: &[&Op], proofs: &[ChainProof]) -> Result<Proven, ProvenanceError> {
    let mut chains: HashMap<String, BTreeMap<u64, Entry>> = HashMap::new();
    let mut add = |stream: String, seq: u64, link: Entry| -> Result<(), ProvenanceError> {
        let chain = chains.entry(stream.clone()).or_default();
        match chain.get(&seq) {
            Some(held) if held.op_hash != link.op_hash => Err(ProvenanceError::TwoVersions {
                stream,
                seq,
                first: held.op_hash,
                second: link.op_hash,
            }),
            Some(_) => Ok(()),
            None => {
                chain.insert(seq, link);
                Ok(())
            }
        }
    };
    for op in ops {
        add(
            op.stream_key(),
            op.seq,
            Entry {
                prev_hash: op.prev_hash,
                op_hash: op.op_hash,
            },
        )?;
    }
    let mut proven = Proven::default();
    for proof in proofs {
        let stream = stream_key(&proof.checkpoint.node, &proof.checkpoint.stream);
        for (index, bytes) in proof.headers.iter().enumerate() {
            let header = OpHeader::decode(bytes).map_err(|error| ProvenanceError::Header {
                stream: stream.clone(),
                index,
                what: error.to_string(),
            })?;
            if header.node != proof.checkpoint.node || header.stream != proof.checkpoint.stream {
                return Err(ProvenanceError::Header {
                    stream,
                    index,
                    what: format!("belongs to {}:{}", header.node, header.stream),
                });
            }
            add(
                stream.clone(),
                header.seq,
                Entry {
                    prev_hash: header.prev_hash,
                    op_hash: header.op_hash,
                },
            )?;
            proven.headers += 1;
        }
    }
    // Walk each chain down from each checkpoint, marking what it reaches.
    let mut reached: HashMap<&str, BTreeSet<u64>> = HashMap::new();
    let keys: Vec<String> = proofs
        .iter()
        .map(|proof| stream_key(&proof.checkpoint.node, &proof.checkpoint.stream))
        .collect();
    for (proof, stream) in proofs.iter().zip(&keys) {
        let checkpoint = &proof.checkpoint;
        checkpoint
            .verify(&proof.public_key)
            .map_err(|error| ProvenanceError::Signature {
                stream: stream.clone(),
                seq: checkpoint.seq,
                what: error.to_string(),
            })?;
        proven.checkpoints += 1;
        let chain = chains.get(stream.as_str());
        let at_head = chain.and_then(|chain| chain.get(&checkpoint.seq));
        if at_head.is_none_or(|link| link.op_hash != checkpoint.head) {
            return Err(ProvenanceError::Head {
                stream: stream.clone(),
                seq: checkpoint.seq,
            });
        }
        let chain = chain.expect("the head is in it");
        let marks = reached.entry(stream.as_str()).or_default();
        let mut seq = checkpoint.seq;
        loop {
            if !marks.insert(seq) {
                break; // An earlier walk went on from here.
            }
            let Some(below) = seq.checked_sub(1).and_then(|below| chain.get(&below)) else {
                break;
            };
            if chain[&seq].prev_hash != below.op_hash {
                return Err(ProvenanceError::BrokenLink {
                    stream: stream.clone(),
                    seq,
                });
            }
            seq -= 1;
        }
    }
    for op in ops {
        let stream = op.stream_key();
        if !reached
            .get(stream.as_str())
            .is_some_and(|marks| marks.contains(&op.seq))
        {
            return Err(ProvenanceError::Unproven {
                stream,
                seq: op.seq,
            });
        }
    }
    proven.ops = ops.len();
    Ok(proven)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::StreamHead;
    use crate::identity::NodeIdentity;
    use crate::op::tests::sample_draft;

    /// A stream of `count` ops by `identity`, alternating two scopes.
    fn stream(identity: &NodeIdentity, count: u64) -> Vec<(Op, Vec<u8>)> {
        let mut head = StreamHead::EMPTY;
        (1..=count)
            .map(|n| {
                let mut draft = sample_draft();
                draft.node = identity.node.clone();
                draft.payload = format!(r#"{{"n":{n}}}"#).into_bytes();
                draft.scope = [(
                    "site".to_string(),
                    if n % 2 == 0 { "a" } else { "b" }.to_string(),
                )]
                .into();
                head.append(draft)
            })
            .collect()
    }

    fn proof(
        identity: &NodeIdentity,
        ops: &[(Op, Vec<u8>)],
        at: u64,
        headers_of: impl Fn(u64) -> bool,
    ) -> ChainProof {
        let head = &ops[at as usize - 1].0;
        ChainProof {
            checkpoint: identity.sign_checkpoint("standard", at, head.op_hash),
            public_key: identity.public_key(),
            headers: ops
                .iter()
                .filter(|(op, _)| headers_of(op.seq))
                .map(|(_, bytes)| Op::header_bytes(bytes).unwrap().to_vec())
                .collect(),
        }
    }

    fn identity() -> NodeIdentity {
        NodeIdentity::from_seed("hangar-7", [7; 32])
    }

    #[test]
    fn ops_with_gaps_are_proven_through_the_headers_between_them() {
        let identity = identity();
        let ops = stream(&identity, 10);
        // The puller sees the even seqs only; the odd ones come as headers.
        let seen: Vec<&Op> = ops
            .iter()
            .map(|(op, _)| op)
            .filter(|op| op.seq % 2 == 0)
            .collect();
        let proofs = [proof(&identity, &ops, 10, |seq| seq % 2 == 1)];
        let proven = verify(&seen, &proofs).unwrap();
        assert_eq!(
            proven,
            Proven {
                ops: 5,
                checkpoints: 1,
                headers: 5
            }
        );
        // A header reveals no payload.
        assert!(
            proofs[0]
                .headers
                .iter()
                .all(|header| !header.windows(3).any(|window| window == b"\"n\""))
        );
    }

    #[test]
    fn a_missing_header_leaves_the_ops_below_it_unproven() {
        let identity = identity();
        let ops = stream(&identity, 10);
        let seen: Vec<&Op> = ops
            .iter()
            .map(|(op, _)| op)
            .filter(|op| op.seq % 2 == 0)
            .collect();
        let proofs = [proof(&identity, &ops, 10, |seq| seq % 2 == 1 && seq != 5)];
        assert_eq!(
            verify(&seen, &proofs),
            Err(ProvenanceError::Unproven {
                stream: "hangar-7:standard".into(),
                seq: 2
            })
        );
    }

    #[test]
    fn a_forged_op_breaks_the_link_above_it() {
        let identity = identity();
        let ops = stream(&identity, 6);
        // The carrier swaps seq 4's payload and reseals it in place.
        let mut draft = ops[3].0.draft.clone();
        draft.payload = br#"{"n":400}"#.to_vec();
        let (forged, _) = draft.seal(4, ops[3].0.prev_hash);
        let seen = vec![&ops[1].0, &forged, &ops[5].0];
        let proofs = [proof(&identity, &ops, 6, |seq| seq % 2 == 1)];
        assert_eq!(
            verify(&seen, &proofs),
            Err(ProvenanceError::BrokenLink {
                stream: "hangar-7:standard".into(),
                seq: 5
            })
        );
    }

    #[test]
    fn a_forged_op_at_the_head_fails_the_signature_or_the_head() {
        let identity = identity();
        let ops = stream(&identity, 4);
        let mut draft = ops[3].0.draft.clone();
        draft.payload = br#"{"n":400}"#.to_vec();
        let (forged, _) = draft.seal(4, ops[3].0.prev_hash);
        let mut proofs = [proof(&identity, &ops, 4, |seq| seq < 4)];
        assert!(matches!(
            verify(&[&forged], &proofs),
            Err(ProvenanceError::TwoVersions { seq: 4, .. }) | Err(ProvenanceError::Head { .. })
        ));
        // Re-pointing the checkpoint at the forgery breaks its signature.
        proofs[0].checkpoint.head = forged.op_hash;
        assert!(matches!(
            verify(&[&forged], &proofs),
            Err(ProvenanceError::Signature { seq: 4, .. })
        ));
    }

    #[test]
    fn another_key_or_a_checkpoint_of_another_stream_proves_nothing() {
        let identity = identity();
        let ops = stream(&identity, 3);
        let seen = vec![&ops[2].0];
        let mut proofs = [proof(&identity, &ops, 3, |_| false)];
        proofs[0].public_key = NodeIdentity::from_seed("hangar-7", [8; 32]).public_key();
        assert!(matches!(
            verify(&seen, &proofs),
            Err(ProvenanceError::Signature { .. })
        ));
        let other = NodeIdentity::from_seed("pharmacy-2", [9; 32]);
        let theirs = stream(&other, 3);
        let proofs = [proof(&other, &theirs, 3, |seq| seq == 3)];
        assert!(matches!(
            verify(&seen, &proofs),
            Err(ProvenanceError::Unproven { seq: 3, .. })
        ));
    }

    #[test]
    fn headers_of_another_stream_or_damaged_headers_are_refused() {
        let identity = identity();
        let ops = stream(&identity, 4);
        let seen = vec![&ops[3].0];
        let other = NodeIdentity::from_seed("pharmacy-2", [9; 32]);
        let theirs = stream(&other, 4);
        let mut proofs = [proof(&identity, &ops, 4, |_| false)];
        proofs[0]
            .headers
            .push(Op::header_bytes(&theirs[0].1).unwrap().to_vec());
        assert!(matches!(
            verify(&seen, &proofs),
            Err(ProvenanceError::Header { index: 0, .. })
        ));
        let mut damaged = Op::header_bytes(&ops[0].1).unwrap().to_vec();
        damaged.push(0);
        proofs[0].headers = vec![damaged];
        assert!(matches!(
            verify(&seen, &proofs),
            Err(ProvenanceError::Header { index: 0, .. })
        ));
        // A whole op is not a header either: the payload trails it.
        proofs[0].headers = vec![ops[0].1.clone()];
        assert!(matches!(
            verify(&seen, &proofs),
            Err(ProvenanceError::Header { index: 0, .. })
        ));
    }

    #[test]
    fn every_single_byte_change_of_a_header_is_caught() {
        let identity = identity();
        let ops = stream(&identity, 3);
        let seen = vec![&ops[0].0, &ops[2].0];
        let good = proof(&identity, &ops, 3, |seq| seq == 2);
        assert!(verify(&seen, std::slice::from_ref(&good)).is_ok());
        for index in 0..good.headers[0].len() {
            let mut bad = good.clone();
            bad.headers[0][index] ^= 0x01;
            assert!(
                verify(&seen, &[bad]).is_err(),
                "a flipped bit at byte {index} went unnoticed"
            );
        }
    }
}
