//! Streams: appending ops to a hash chain, and verifying a stored chain.
//!
//! Verification is streaming (one op at a time, constant memory) so that a
//! stream of millions of ops can be checked straight off a database cursor.
//! It reports the *first* bad seq and why; the order of the checks makes the
//! reported seq the one that was changed, deleted, inserted or moved.

use crate::hash::Hash;
use crate::identity::{Checkpoint, SignatureError};
use crate::op::{Op, OpDraft, OpFault};
use std::fmt;

/// The tip of a stream: what the next append links to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamHead {
    /// Seq of the last op; 0 for an empty stream.
    pub seq: u64,
    /// `op_hash` of the last op; zero for an empty stream.
    pub hash: Hash,
}

impl StreamHead {
    /// The head of a stream with no ops.
    pub const EMPTY: StreamHead = StreamHead {
        seq: 0,
        hash: Hash::ZERO,
    };

    /// Seals `draft` as the next op, advancing the head.
    pub fn append(&mut self, draft: OpDraft) -> (Op, Vec<u8>) {
        let payload_hash = crate::canonical::payload_hash(&draft.payload);
        self.append_prehashed(draft, payload_hash)
    }

    /// [`StreamHead::append`] with the payload hash computed earlier.
    pub fn append_prehashed(&mut self, draft: OpDraft, payload_hash: Hash) -> (Op, Vec<u8>) {
        let (op, bytes) = draft.seal_prehashed(self.seq + 1, self.hash, payload_hash);
        self.seq = op.seq;
        self.hash = op.op_hash;
        (op, bytes)
    }
}

/// What is wrong at the first bad seq of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainFaultKind {
    /// The op itself is malformed or its payload hash does not match.
    Op(OpFault),
    /// The row's seq differs from the seq encoded in the op (a moved op).
    SeqMismatch {
        /// Seq encoded in the op.
        encoded: u64,
    },
    /// Ops are missing before this seq.
    Gap {
        /// The seq that should have come next.
        expected: u64,
    },
    /// The op belongs to another stream.
    WrongStream {
        /// `node:stream` encoded in the op.
        encoded: String,
    },
    /// `prev_hash` does not match the previous op's hash.
    PrevHash {
        /// Hash of the previous op.
        expected: Hash,
        /// `prev_hash` recorded in this op.
        found: Hash,
    },
    /// The stored `op_hash` differs from the hash of the op's bytes.
    OpHash {
        /// Hash kept beside the op.
        stored: Hash,
        /// Hash computed from the op's bytes.
        computed: Hash,
    },
    /// A checkpoint at this seq names another head.
    CheckpointHead {
        /// Head named by the checkpoint.
        signed: Hash,
        /// Hash of the op at that seq.
        found: Hash,
    },
    /// A checkpoint at this seq does not verify.
    CheckpointSignature(SignatureError),
    /// A checkpoint covers ops the stream no longer has (truncation).
    Truncated {
        /// Seq of the checkpoint.
        signed_seq: u64,
    },
    /// Ops after the last checkpoint: written but never signed.
    Unsigned {
        /// Seq of the newest checkpoint (0 if none).
        signed_seq: u64,
    },
}

/// The first broken link of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFault {
    /// `node:stream`.
    pub stream: String,
    /// The first seq at which the chain is wrong.
    pub seq: u64,
    /// What is wrong there.
    pub kind: ChainFaultKind,
}

impl fmt::Display for ChainFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {}, seq {}: ", self.stream, self.seq)?;
        match &self.kind {
            ChainFaultKind::Op(fault) => write!(f, "{fault}"),
            ChainFaultKind::SeqMismatch { encoded } => {
                write!(
                    f,
                    "stored at seq {} but the op says seq {encoded} (moved or reordered)",
                    self.seq
                )
            }
            ChainFaultKind::Gap { expected } => {
                write!(f, "ops missing: expected seq {expected} next")
            }
            ChainFaultKind::WrongStream { encoded } => write!(f, "op belongs to stream {encoded}"),
            ChainFaultKind::PrevHash { expected, found } => {
                write!(
                    f,
                    "prev_hash {found} does not link to the previous op {expected}"
                )
            }
            ChainFaultKind::OpHash { stored, computed } => {
                write!(
                    f,
                    "op bytes hash to {computed}, but {stored} is recorded (altered op)"
                )
            }
            ChainFaultKind::CheckpointHead { signed, found } => {
                write!(f, "checkpoint signs head {signed}, stream has {found}")
            }
            ChainFaultKind::CheckpointSignature(error) => write!(f, "checkpoint {error}"),
            ChainFaultKind::Truncated { signed_seq } => {
                write!(
                    f,
                    "ops missing: a checkpoint signs seq {signed_seq} but the stream ends before it"
                )
            }
            ChainFaultKind::Unsigned { signed_seq } => {
                write!(
                    f,
                    "op is not covered by any checkpoint (newest signed seq {signed_seq})"
                )
            }
        }
    }
}

/// Summary of a verified stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSummary {
    /// The verified head.
    pub head: StreamHead,
    /// Checkpoints checked.
    pub checkpoints: u64,
}

/// Verifies one stream op by op, in seq order.
pub struct StreamVerifier {
    node: String,
    stream: String,
    public_key: [u8; 32],
    /// Checkpoints sorted by seq, consumed as ops reach them.
    checkpoints: std::collections::VecDeque<Checkpoint>,
    head: StreamHead,
    checkpoints_checked: u64,
    newest_signed_seq: u64,
}

impl StreamVerifier {
    /// A verifier for `node:stream`, checking checkpoints with `public_key`.
    pub fn new(
        node: &str,
        stream: &str,
        public_key: [u8; 32],
        mut checkpoints: Vec<Checkpoint>,
    ) -> StreamVerifier {
        checkpoints.sort_by_key(|checkpoint| checkpoint.seq);
        StreamVerifier {
            node: node.to_string(),
            stream: stream.to_string(),
            public_key,
            checkpoints: checkpoints.into(),
            head: StreamHead::EMPTY,
            checkpoints_checked: 0,
            newest_signed_seq: 0,
        }
    }

    fn fault(&self, seq: u64, kind: ChainFaultKind) -> ChainFault {
        ChainFault {
            stream: crate::op::stream_key(&self.node, &self.stream),
            seq,
            kind,
        }
    }

    /// Checks the next stored op: its row seq, the hash stored beside it, and its bytes.
    pub fn push(
        &mut self,
        row_seq: u64,
        stored_hash: Hash,
        bytes: &[u8],
    ) -> Result<Op, ChainFault> {
        let expected = self.head.seq + 1;
        if row_seq != expected {
            // A missing op is named by the seq that should have been there.
            return Err(self.fault(expected, ChainFaultKind::Gap { expected }));
        }
        let op =
            Op::decode(bytes).map_err(|fault| self.fault(row_seq, ChainFaultKind::Op(fault)))?;
        if op.seq != row_seq {
            return Err(self.fault(row_seq, ChainFaultKind::SeqMismatch { encoded: op.seq }));
        }
        if op.draft.node != self.node || op.draft.stream != self.stream {
            return Err(self.fault(
                row_seq,
                ChainFaultKind::WrongStream {
                    encoded: op.stream_key(),
                },
            ));
        }
        if op.prev_hash != self.head.hash {
            return Err(self.fault(
                row_seq,
                ChainFaultKind::PrevHash {
                    expected: self.head.hash,
                    found: op.prev_hash,
                },
            ));
        }
        if op.op_hash != stored_hash {
            return Err(self.fault(
                row_seq,
                ChainFaultKind::OpHash {
                    stored: stored_hash,
                    computed: op.op_hash,
                },
            ));
        }
        self.head = StreamHead {
            seq: op.seq,
            hash: op.op_hash,
        };
        while self
            .checkpoints
            .front()
            .is_some_and(|checkpoint| checkpoint.seq <= op.seq)
        {
            let checkpoint = self.checkpoints.pop_front().expect("front exists");
            if checkpoint.seq < op.seq {
                // Only reachable when a checkpoint names seq 0.
                return Err(self.fault(
                    checkpoint.seq,
                    ChainFaultKind::Truncated {
                        signed_seq: checkpoint.seq,
                    },
                ));
            }
            if checkpoint.head != op.op_hash
                || checkpoint.node != self.node
                || checkpoint.stream != self.stream
            {
                return Err(self.fault(
                    op.seq,
                    ChainFaultKind::CheckpointHead {
                        signed: checkpoint.head,
                        found: op.op_hash,
                    },
                ));
            }
            checkpoint
                .verify(&self.public_key)
                .map_err(|error| self.fault(op.seq, ChainFaultKind::CheckpointSignature(error)))?;
            self.checkpoints_checked += 1;
            self.newest_signed_seq = op.seq;
        }
        Ok(op)
    }

    /// Ends verification: every checkpoint must have been reached and every op signed.
    pub fn finish(self) -> Result<StreamSummary, ChainFault> {
        if let Some(checkpoint) = self.checkpoints.front() {
            return Err(self.fault(
                self.head.seq + 1,
                ChainFaultKind::Truncated {
                    signed_seq: checkpoint.seq,
                },
            ));
        }
        if self.newest_signed_seq < self.head.seq {
            return Err(self.fault(
                self.newest_signed_seq + 1,
                ChainFaultKind::Unsigned {
                    signed_seq: self.newest_signed_seq,
                },
            ));
        }
        Ok(StreamSummary {
            head: self.head,
            checkpoints: self.checkpoints_checked,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeIdentity;
    use crate::op::tests::sample_draft;
    use proptest::prelude::*;

    /// A stored op: row seq, stored hash, bytes.
    type Row = (u64, Hash, Vec<u8>);

    /// A stream of `len` ops with a checkpoint after every `every` ops and at the end.
    fn build(len: u64, every: u64) -> (NodeIdentity, Vec<Row>, Vec<Checkpoint>) {
        let identity = NodeIdentity::from_seed("hangar-7", [1; 32]);
        let mut head = StreamHead::EMPTY;
        let mut rows = Vec::new();
        let mut checkpoints = Vec::new();
        for index in 0..len {
            let mut draft = sample_draft();
            draft.payload = format!(r#"{{"n":{index}}}"#).into_bytes();
            draft.hlc.counter = index as u32;
            let (op, bytes) = head.append(draft);
            rows.push((op.seq, op.op_hash, bytes));
            if op.seq % every == 0 || op.seq == len {
                checkpoints.push(identity.sign_checkpoint("standard", op.seq, op.op_hash));
            }
        }
        (identity, rows, checkpoints)
    }

    fn verify(
        identity: &NodeIdentity,
        rows: &[(u64, Hash, Vec<u8>)],
        checkpoints: Vec<Checkpoint>,
    ) -> Result<StreamSummary, ChainFault> {
        let mut verifier =
            StreamVerifier::new("hangar-7", "standard", identity.public_key(), checkpoints);
        for (seq, hash, bytes) in rows {
            verifier.push(*seq, *hash, bytes)?;
        }
        verifier.finish()
    }

    #[test]
    fn an_intact_stream_verifies() {
        let (identity, rows, checkpoints) = build(10, 3);
        let summary = verify(&identity, &rows, checkpoints).unwrap();
        assert_eq!(summary.head.seq, 10);
        assert_eq!(summary.checkpoints, 4);
    }

    #[test]
    fn deleting_an_op_names_its_seq() {
        let (identity, mut rows, checkpoints) = build(10, 3);
        rows.remove(4);
        let fault = verify(&identity, &rows, checkpoints).unwrap_err();
        assert_eq!(fault.seq, 5);
        assert!(matches!(fault.kind, ChainFaultKind::Gap { expected: 5 }));
    }

    #[test]
    fn truncating_the_tail_is_caught_by_the_checkpoint() {
        let (identity, mut rows, checkpoints) = build(10, 3);
        rows.truncate(8);
        let fault = verify(&identity, &rows, checkpoints).unwrap_err();
        assert_eq!(fault.seq, 9);
        assert!(matches!(
            fault.kind,
            ChainFaultKind::Truncated { signed_seq: 9 }
        ));
    }

    #[test]
    fn a_forged_checkpoint_is_refused() {
        let (identity, rows, mut checkpoints) = build(4, 10);
        let forger = NodeIdentity::from_seed("hangar-7", [9; 32]);
        checkpoints[0] = forger.sign_checkpoint("standard", 4, rows[3].1);
        let fault = verify(&identity, &rows, checkpoints).unwrap_err();
        assert_eq!(fault.seq, 4);
        assert!(matches!(fault.kind, ChainFaultKind::CheckpointSignature(_)));
    }

    #[test]
    fn a_fully_rehashed_forgery_is_caught_at_the_next_checkpoint() {
        // An attacker without the key re-seals ops 3.. after changing op 3.
        let (identity, rows, checkpoints) = build(6, 2);
        let mut forged = rows[..2].to_vec();
        let mut head = StreamHead {
            seq: 2,
            hash: rows[1].1,
        };
        for (index, (_, _, bytes)) in rows[2..].iter().enumerate() {
            let mut draft = Op::decode(bytes).unwrap().draft;
            if index == 0 {
                draft.payload = br#"{"n":999}"#.to_vec();
            }
            let (op, bytes) = head.append(draft);
            forged.push((op.seq, op.op_hash, bytes));
        }
        let fault = verify(&identity, &forged, checkpoints).unwrap_err();
        assert_eq!(fault.seq, 4);
        assert!(matches!(fault.kind, ChainFaultKind::CheckpointHead { .. }));
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Flip {
            index: prop::sample::Index,
            at: prop::sample::Index,
            bit: u8,
        },
        Delete {
            index: prop::sample::Index,
        },
        Insert {
            index: prop::sample::Index,
            copy_of: prop::sample::Index,
        },
        Swap {
            index: prop::sample::Index,
        },
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            (
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                0u8..8
            )
                .prop_map(|(index, at, bit)| Damage::Flip { index, at, bit }),
            any::<prop::sample::Index>().prop_map(|index| Damage::Delete { index }),
            (any::<prop::sample::Index>(), any::<prop::sample::Index>())
                .prop_map(|(index, copy_of)| Damage::Insert { index, copy_of }),
            any::<prop::sample::Index>().prop_map(|index| Damage::Swap { index }),
        ]
    }

    proptest! {
        /// Any single damage to a stored stream is found, at the right seq.
        #[test]
        fn any_damage_is_found_at_the_right_seq(len in 2u64..12, every in 1u64..5, damage in damage()) {
            let (identity, rows, checkpoints) = build(len, every);
            let mut damaged = rows.clone();
            let expected_seq = match damage {
                Damage::Flip { index, at, bit } => {
                    let row = index.index(damaged.len());
                    let bytes = &mut damaged[row].2;
                    let at = at.index(bytes.len());
                    bytes[at] ^= 1 << bit;
                    row as u64 + 1
                }
                Damage::Delete { index } => {
                    let row = index.index(damaged.len());
                    damaged.remove(row);
                    // Renumbering is what a careless edit would not do: the gap is at `row + 1`.
                    row as u64 + 1
                }
                Damage::Insert { index, copy_of } => {
                    // Insert a copy of another op, renumbering everything after it.
                    let row = index.index(damaged.len());
                    let copy = damaged[copy_of.index(damaged.len())].clone();
                    damaged.insert(row, copy);
                    for (position, entry) in damaged.iter_mut().enumerate().skip(row) {
                        entry.0 = position as u64 + 1;
                    }
                    // Inserting a copy of the op already at `row` leaves that row intact:
                    // the chain departs from the original at the first row that differs.
                    let first_difference = damaged.iter().zip(&rows).position(|(a, b)| a != b).unwrap_or(rows.len());
                    first_difference as u64 + 1
                }
                Damage::Swap { index } => {
                    let row = index.index(damaged.len() - 1);
                    damaged.swap(row, row + 1);
                    // Rows keep their seq column: the ops are what moved.
                    damaged[row].0 = row as u64 + 1;
                    damaged[row + 1].0 = row as u64 + 2;
                    row as u64 + 1
                }
            };
            let fault = verify(&identity, &damaged, checkpoints).unwrap_err();
            prop_assert_eq!(fault.seq, expected_seq, "{}", fault);
        }
    }
}
