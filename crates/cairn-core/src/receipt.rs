//! What a node checks of the hub's answer to its push, before it believes
//! it: the ops the hub calls accepted are, in order, the leaves its range
//! receipt proves in the signed log; and how far the node may acknowledge
//! its stream (only ops the hub confirmed one by one, in order, never the
//! hub's watermark alone). Pure: the sync client (and a simulator) feed it.

use crate::hash::Hash;
use crate::merkle::{self, ProofError, RangeProof};
use crate::note::LogCheckpoint;
use crate::op::Op;

/// The hub's verdict on one pushed op, as the node reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answered {
    /// Logged now, at this leaf.
    Accepted {
        /// The leaf the hub says it took.
        leaf: Option<u64>,
    },
    /// Logged before.
    Duplicate {
        /// The seq the hub says it holds.
        seq: Option<u64>,
    },
    /// Refused for integrity, kept by the hub.
    Quarantined {
        /// The seq the hub read, if it could.
        seq: Option<u64>,
        /// Why.
        reason: Option<String>,
    },
}

/// A range receipt: the accepted ops are the leaves `[begin, end)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// First leaf.
    pub begin: u64,
    /// One past the last leaf.
    pub end: u64,
    /// The range proof against the answer's checkpoint.
    pub proof: RangeProof,
}

/// Why a push answer is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// An op called accepted is one the node cannot decode itself.
    #[error("own op does not decode")]
    OwnOp,
    /// An op called accepted has no leaf.
    #[error("an accepted op has no leaf")]
    NoLeaf,
    /// Ops are called accepted, but no receipt proves them.
    #[error("the hub's answer has accepted ops but no receipt")]
    Missing,
    /// The receipt's range is not the accepted ops' leaves.
    #[error("the hub's receipt does not cover the accepted ops' leaves")]
    NotCovered,
    /// The proof does not lead to the checkpoint's root.
    #[error("the hub's receipt does not verify: {0}")]
    Proof(#[from] ProofError),
}

/// Checks that the ops `answers` call accepted (of `ops`, the push's ops in
/// order, `None` where the node's own op does not decode) are the leaves
/// `[begin, end)` of `checkpoint`'s tree, with one range proof for the
/// whole push.
pub fn verify(
    answers: &[Answered],
    ops: &[Option<&Op>],
    receipt: Option<&Receipt>,
    checkpoint: &LogCheckpoint,
) -> Result<(), ReceiptError> {
    let mut leaves: Vec<(Option<u64>, Hash)> = Vec::new();
    for (answer, op) in answers.iter().zip(ops) {
        if let Answered::Accepted { leaf } = answer {
            let op = op.ok_or(ReceiptError::OwnOp)?;
            leaves.push((*leaf, merkle::leaf_hash(&op.op_hash.0)));
        }
    }
    let Some(&(first, _)) = leaves.first() else {
        return Ok(());
    };
    let begin = first.ok_or(ReceiptError::NoLeaf)?;
    let receipt = receipt.ok_or(ReceiptError::Missing)?;
    let contiguous = leaves
        .iter()
        .enumerate()
        .all(|(offset, (leaf, _))| *leaf == Some(begin + offset as u64));
    if receipt.begin != begin || receipt.end != begin + leaves.len() as u64 || !contiguous {
        return Err(ReceiptError::NotCovered);
    }
    let hashes: Vec<Hash> = leaves.into_iter().map(|(_, hash)| hash).collect();
    merkle::verify_range(
        begin,
        &hashes,
        checkpoint.size,
        &receipt.proof,
        &checkpoint.root,
    )?;
    Ok(())
}

/// How far a push's answer lets the node acknowledge its stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The last seq of the unbroken run of confirmed ops from the start.
    pub confirmed: Option<u64>,
    /// False when an op was quarantined: what follows it is not confirmed.
    pub unbroken: bool,
    /// Ops accepted.
    pub accepted: u64,
    /// Ops the hub held already.
    pub duplicate: u64,
    /// Quarantined ops: this node's seq of each, and the hub's reason.
    pub quarantined: Vec<(Option<u64>, String)>,
}

/// Acknowledge only what the hub confirmed op by op, in order: its
/// watermark may run ahead of the node (a node restored from a backup).
/// `ops[i]` is the node's own op the hub answered with `answers[i]`, when
/// it decodes.
pub fn acknowledge(answers: &[Answered], ops: &[Option<&Op>]) -> Acknowledgement {
    let mut ack = Acknowledgement {
        unbroken: true,
        ..Acknowledgement::default()
    };
    for (answer, op) in answers.iter().zip(ops) {
        match answer {
            Answered::Accepted { .. } => {
                ack.accepted += 1;
                if ack.unbroken {
                    ack.confirmed = op.map(|op| op.seq);
                }
            }
            Answered::Duplicate { seq } => {
                ack.duplicate += 1;
                if ack.unbroken {
                    ack.confirmed = *seq;
                }
            }
            Answered::Quarantined { seq, reason } => {
                ack.unbroken = false;
                // This node's own seq at that place: the hub may not have
                // been able to read one.
                let seq = op.map(|op| op.seq).or(*seq);
                let reason = reason.clone().unwrap_or_else(|| "no reason given".into());
                ack.quarantined.push((seq, reason));
            }
        }
    }
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(count: u64) -> Vec<Op> {
        crate::testkit::stream("a", count as usize)
    }

    #[test]
    fn push_receipts_must_cover_the_accepted_ops_and_lead_to_the_root() {
        // Seven older leaves, then a push of four ops: the first a duplicate.
        let mut tree = merkle::MemoryTree::default();
        for n in 0..7u64 {
            tree.push(merkle::leaf_hash(&n.to_be_bytes()));
        }
        let owned = ops(4);
        let pushed: Vec<Option<&Op>> = owned.iter().map(Some).collect();
        for op in &owned[1..] {
            tree.push(merkle::leaf_hash(&op.op_hash.0));
        }
        let checkpoint = LogCheckpoint {
            origin: "test".into(),
            size: 10,
            root: merkle::root(&tree, 10).unwrap(),
        };
        let receipt = Receipt {
            begin: 7,
            end: 10,
            proof: merkle::range_proof(&tree, 7, 10, 10).unwrap(),
        };
        let answers = vec![
            Answered::Duplicate { seq: Some(1) },
            Answered::Accepted { leaf: Some(7) },
            Answered::Accepted { leaf: Some(8) },
            Answered::Accepted { leaf: Some(9) },
        ];
        verify(&answers, &pushed, Some(&receipt), &checkpoint).unwrap();

        let refused = |answers: &[Answered], receipt: Option<&Receipt>| {
            verify(answers, &pushed, receipt, &checkpoint)
                .unwrap_err()
                .to_string()
        };
        let mut shifted = answers.clone();
        shifted[2] = Answered::Accepted { leaf: Some(12) };
        assert!(refused(&shifted, Some(&receipt)).contains("does not cover"));
        let short = Receipt {
            end: 9,
            ..receipt.clone()
        };
        assert!(refused(&answers, Some(&short)).contains("does not cover"));
        let mut forged = receipt.clone();
        forged.proof.left[0] = Hash::ZERO;
        assert!(refused(&answers, Some(&forged)).contains("does not verify"));
        assert!(refused(&answers, None).contains("no receipt"));
        let mut leafless = answers.clone();
        leafless[1] = Answered::Accepted { leaf: None };
        assert!(refused(&leafless, Some(&receipt)).contains("no leaf"));
        // Nothing accepted: nothing to prove.
        verify(&answers[..1], &pushed[..1], None, &checkpoint).unwrap();
        // An accepted op the node cannot decode is not believed.
        let mut damaged = pushed.clone();
        damaged[1] = None;
        let error = verify(&answers, &damaged, Some(&receipt), &checkpoint).unwrap_err();
        assert_eq!(error, ReceiptError::OwnOp);
    }

    #[test]
    fn only_what_the_hub_confirmed_in_order_is_acknowledged() {
        let own = ops(4);
        let own: Vec<Option<&Op>> = own.iter().map(Some).collect();
        let all = acknowledge(
            &[
                Answered::Duplicate { seq: Some(1) },
                Answered::Accepted { leaf: Some(7) },
                Answered::Accepted { leaf: Some(8) },
                Answered::Accepted { leaf: Some(9) },
            ],
            &own,
        );
        assert_eq!(
            (all.confirmed, all.unbroken, all.accepted, all.duplicate),
            (Some(4), true, 3, 1)
        );
        // A quarantined op breaks the run: nothing after it is confirmed,
        // and it is reported with this node's own seq.
        let broken = acknowledge(
            &[
                Answered::Accepted { leaf: Some(7) },
                Answered::Quarantined {
                    seq: None,
                    reason: Some("bad".into()),
                },
                Answered::Accepted { leaf: Some(8) },
            ],
            &own[..3],
        );
        assert_eq!(broken.confirmed, Some(1));
        assert!(!broken.unbroken);
        assert_eq!(broken.quarantined, vec![(Some(2), "bad".to_string())]);
        // A duplicate the hub names without a seq confirms nothing.
        let unnamed = acknowledge(&[Answered::Duplicate { seq: None }], &own[..1]);
        assert_eq!(unnamed.confirmed, None);
    }
}
