//! Verifying a pushed batch of ops: the hub's integrity gate, as a pure
//! function of the batch, what the hub already holds and the node's key.
//!
//! A node pushes the ops of one stream in seq order together with a
//! checkpoint signing the batch's last op. The hub answers per op:
//!
//! * `Accepted`: a new op that extends the hub's head of the stream, with
//!   intact hashes, contiguous seq, correct links and a valid checkpoint;
//! * `Duplicate`: an op the hub already has with the same hash (a retry);
//! * `Quarantined`: an integrity failure (malformed, bad hash, broken link,
//!   gap, foreign stream, bad checkpoint) or an equivocation: the same seq
//!   with a different hash, which also holds the stream until an operator
//!   resolves it. Quarantined ops are kept, never dropped.
//!
//! Nothing here touches storage: the caller passes a lookup of the hashes it
//! holds and persists the verdicts.

use crate::chain::StreamHead;
use crate::hash::Hash;
use crate::identity::Checkpoint;
use crate::op::Op;

/// The hub's verdict on one pushed op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New and intact; extends the stream.
    Accepted,
    /// Already held with the same hash.
    Duplicate,
    /// Kept for forensics, not accepted; the reason says why.
    Quarantined(String),
}

/// Two versions of the same `(node, stream, seq)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Equivocation {
    /// The seq.
    pub seq: u64,
    /// Hash the hub's log already has at that seq.
    pub logged: Hash,
    /// Hash just pushed.
    pub pushed: Hash,
}

/// The outcome of verifying one batch.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// One verdict per pushed op, in order, with the decoded op when it decoded.
    pub verdicts: Vec<(Option<Op>, Verdict)>,
    /// The stream's head after the accepted ops.
    pub head: StreamHead,
    /// Set when the batch rewrote history the hub holds.
    pub equivocation: Option<Equivocation>,
    /// Ops whose HLC is further ahead of the hub's clock than allowed: accepted
    /// (order never follows wall clocks) but reported.
    pub clock_skew: Vec<u64>,
}

/// What the hub knows of the stream before the batch.
pub struct StreamView<'a> {
    /// `node` and `stream` the batch claims.
    pub node: &'a str,
    /// Stream name.
    pub stream: &'a str,
    /// The hub's current head of the stream.
    pub head: StreamHead,
    /// True when an earlier equivocation holds the stream.
    pub held: bool,
    /// The node's enrolled Ed25519 key.
    pub public_key: [u8; 32],
    /// True when the caller already verified the checkpoint's signature
    /// under `public_key` (a pure check, so it need not run twice).
    pub checkpoint_verified: bool,
}

/// Verifies `ops` (encoded) pushed for a stream with `checkpoint`.
///
/// `logged_hash(seq)` returns the hash the hub holds at `seq` (for seq ≤
/// head); its error (a storage fault, or a held op the store cannot find)
/// ends the verification with that error: a fault is never a verdict on
/// the node's ops.
/// `now_ms` and `skew_ms_max` flag ops written with a clock far ahead.
pub fn verify_push<E>(
    view: &StreamView<'_>,
    ops: &[Vec<u8>],
    checkpoint: &Checkpoint,
    logged_hash: impl Fn(u64) -> Result<Hash, E>,
    now_ms: u64,
    skew_ms_max: u64,
) -> Result<PushOutcome, E> {
    verify_decoded(
        view,
        decode_push(ops),
        checkpoint,
        logged_hash,
        now_ms,
        skew_ms_max,
    )
}

/// An op as it decoded, or why it did not (an integrity failure).
pub type Decoded = Result<Op, String>;

/// Decodes each pushed op on its own (its hashes and canonical payload
/// checked). This part needs no stored state, so the hub does it before a
/// push waits for the writer.
pub fn decode_push(ops: &[Vec<u8>]) -> Vec<Decoded> {
    ops.iter()
        .map(|bytes| Op::decode(bytes).map_err(|fault| format!("integrity: {fault}")))
        .collect()
}

/// [`verify_push`] for ops [`decode_push`] already decoded, in push order.
///
/// The checkpoint signs one op, the batch's last; through the chain it
/// proves every op that links to it hash by hash, and nothing else. So a
/// batch is judged whole: when any op of it is malformed, foreign, or does
/// not link to the next, the signature proves nothing below the break, and
/// no op of the batch enters the log (each is quarantined, naming why).
/// Only an op the signature proves can rewrite a seq the hub holds (an
/// equivocation, which holds the stream): an unproven one is just forged
/// material, which must not let anyone stop a node's stream.
pub fn verify_decoded<E>(
    view: &StreamView<'_>,
    decoded: Vec<Decoded>,
    checkpoint: &Checkpoint,
    logged_hash: impl Fn(u64) -> Result<Hash, E>,
    now_ms: u64,
    skew_ms_max: u64,
) -> Result<PushOutcome, E> {
    let mut outcome = PushOutcome {
        verdicts: Vec::with_capacity(decoded.len()),
        head: view.head,
        equivocation: None,
        clock_skew: Vec::new(),
    };
    let unproven = unproven_reason(view, &decoded, checkpoint);
    let mut head = view.head;
    let mut held = view.held;
    for op in decoded {
        let op = match op {
            Ok(op) => op,
            Err(reason) => {
                outcome.verdicts.push((None, Verdict::Quarantined(reason)));
                continue;
            }
        };
        let verdict = if op.draft.node != view.node || op.draft.stream != view.stream {
            Verdict::Quarantined(format!(
                "op belongs to {}, pushed as {}:{}",
                op.stream_key(),
                view.node,
                view.stream
            ))
        } else if op.seq <= head.seq {
            match logged_hash(op.seq)? {
                hash if hash == op.op_hash => Verdict::Duplicate,
                hash => match &unproven {
                    Some(reason) => Verdict::Quarantined(format!(
                        "seq {} differs from the op the hub holds, and {reason}",
                        op.seq
                    )),
                    None => {
                        held = true;
                        if outcome.equivocation.is_none() {
                            outcome.equivocation = Some(Equivocation {
                                seq: op.seq,
                                logged: hash,
                                pushed: op.op_hash,
                            });
                        }
                        Verdict::Quarantined(format!(
                            "equivocation: seq {} is held with hash {hash}",
                            op.seq
                        ))
                    }
                },
            }
        } else if held {
            Verdict::Quarantined(
                "stream held after an equivocation; an operator must resolve it".into(),
            )
        } else if let Some(reason) = &unproven {
            Verdict::Quarantined(reason.clone())
        } else if op.seq != head.seq + 1 {
            Verdict::Quarantined(format!(
                "gap: expected seq {}, got {}",
                head.seq + 1,
                op.seq
            ))
        } else if op.prev_hash != head.hash {
            Verdict::Quarantined(format!(
                "broken link: prev_hash does not match seq {}",
                head.seq
            ))
        } else {
            head = StreamHead {
                seq: op.seq,
                hash: op.op_hash,
            };
            if op.draft.hlc.wall_ms > now_ms.saturating_add(skew_ms_max) {
                outcome.clock_skew.push(op.seq);
            }
            Verdict::Accepted
        };
        outcome.verdicts.push((Some(op), verdict));
    }
    outcome.head = head;
    Ok(outcome)
}

/// Why the push's checkpoint does not prove every op of the batch, or
/// `None` when it does: the checkpoint is this stream's, signs the batch's
/// last op with the node's key, and every op links to the next by seq and
/// hash, so that the signature reaches each of them.
fn unproven_reason(
    view: &StreamView<'_>,
    decoded: &[Decoded],
    checkpoint: &Checkpoint,
) -> Option<String> {
    if checkpoint.node != view.node || checkpoint.stream != view.stream {
        return Some(format!(
            "checkpoint is for {}:{}, not {}:{}",
            checkpoint.node, checkpoint.stream, view.node, view.stream
        ));
    }
    let last = decoded.last().and_then(|op| op.as_ref().ok());
    if last.map(|op| (op.seq, op.op_hash)) != Some((checkpoint.seq, checkpoint.head)) {
        return Some("checkpoint does not sign the batch's last op".to_string());
    }
    if !view.checkpoint_verified
        && let Err(error) = checkpoint.verify(&view.public_key)
    {
        return Some(format!("checkpoint {error}"));
    }
    // Walk down from the signed head: each op must be what the next one
    // links to. The first break leaves everything below it unproven.
    let mut next: Option<&Op> = None;
    for op in decoded.iter().rev() {
        let op = match op {
            Ok(op) => op,
            Err(_) => {
                let below = next.map_or(checkpoint.seq, |op| op.seq);
                return Some(format!(
                    "not proven by the push's checkpoint: the chain below seq {below} holds a malformed op; nothing of this push is logged"
                ));
            }
        };
        if op.draft.node != view.node || op.draft.stream != view.stream {
            return Some(format!(
                "not proven by the push's checkpoint: the batch holds an op of {}; nothing of this push is logged",
                op.stream_key()
            ));
        }
        if let Some(next) = next
            && (next.seq != op.seq + 1 || next.prev_hash != op.op_hash)
        {
            return Some(format!(
                "not proven by the push's checkpoint: seq {} does not link to seq {}; nothing of this push is logged",
                next.seq, op.seq
            ));
        }
        next = Some(op);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeIdentity;
    use crate::op::tests::sample_draft;

    fn stream(len: u64) -> (NodeIdentity, Vec<Op>, Vec<Vec<u8>>) {
        let identity = NodeIdentity::from_seed("hangar-7", [5; 32]);
        let mut head = StreamHead::EMPTY;
        let (mut ops, mut bytes) = (Vec::new(), Vec::new());
        for n in 0..len {
            let mut draft = sample_draft();
            draft.payload = format!("{{\"n\":{n}}}").into_bytes();
            let (op, encoded) = head.append(draft);
            ops.push(op);
            bytes.push(encoded);
        }
        (identity, ops, bytes)
    }

    /// The hub holds nothing yet.
    fn nothing_held(_: u64) -> Result<Hash, &'static str> {
        Err("not held")
    }

    fn view(identity: &NodeIdentity, head: StreamHead) -> StreamView<'static> {
        StreamView {
            node: "hangar-7",
            stream: "standard",
            head,
            held: false,
            public_key: identity.public_key(),
            checkpoint_verified: false,
        }
    }

    fn accepted(outcome: &PushOutcome) -> usize {
        outcome
            .verdicts
            .iter()
            .filter(|(_, verdict)| *verdict == Verdict::Accepted)
            .count()
    }

    #[test]
    fn a_fresh_batch_is_accepted_and_a_retry_is_a_duplicate() {
        let (identity, ops, bytes) = stream(5);
        let checkpoint = identity.sign_checkpoint("standard", 5, ops[4].op_hash);
        let outcome = verify_push(
            &view(&identity, StreamHead::EMPTY),
            &bytes,
            &checkpoint,
            nothing_held,
            0,
            0,
        )
        .unwrap();
        assert_eq!(accepted(&outcome), 5);
        assert_eq!(outcome.head.seq, 5);
        let held = |seq: u64| {
            ops.get(seq as usize - 1)
                .map(|op| op.op_hash)
                .ok_or("not held")
        };
        let retry = verify_push(
            &view(&identity, outcome.head),
            &bytes,
            &checkpoint,
            held,
            0,
            0,
        )
        .unwrap();
        assert!(
            retry
                .verdicts
                .iter()
                .all(|(_, verdict)| *verdict == Verdict::Duplicate)
        );
        assert_eq!(retry.head, outcome.head);
    }

    #[test]
    fn a_rewritten_seq_is_an_equivocation_that_holds_the_stream() {
        let (identity, ops, _) = stream(3);
        let head = StreamHead {
            seq: 3,
            hash: ops[2].op_hash,
        };
        // The node was restored from a backup and wrote a different seq 3, then 4.
        let mut other = StreamHead {
            seq: 2,
            hash: ops[1].op_hash,
        };
        let mut draft = sample_draft();
        draft.payload = b"{\"n\":99}".to_vec();
        let (fork3, fork3_bytes) = other.append(draft.clone());
        let (fork4, fork4_bytes) = other.append(draft);
        let checkpoint = identity.sign_checkpoint("standard", 4, fork4.op_hash);
        let held = |seq: u64| {
            ops.get(seq as usize - 1)
                .map(|op| op.op_hash)
                .ok_or("not held")
        };
        let outcome = verify_push(
            &view(&identity, head),
            &[fork3_bytes, fork4_bytes],
            &checkpoint,
            held,
            0,
            0,
        )
        .unwrap();
        let equivocation = outcome.equivocation.unwrap();
        assert_eq!((equivocation.seq, equivocation.pushed), (3, fork3.op_hash));
        assert!(
            matches!(&outcome.verdicts[1].1, Verdict::Quarantined(reason) if reason.contains("held"))
        );
        assert_eq!(outcome.head, head, "nothing of a fork is accepted");
    }

    #[test]
    fn forged_checkpoints_gaps_and_foreign_ops_are_quarantined() {
        let (identity, ops, bytes) = stream(4);
        let forger = NodeIdentity::from_seed("hangar-7", [6; 32]);
        let forged = forger.sign_checkpoint("standard", 4, ops[3].op_hash);
        let outcome = verify_push(
            &view(&identity, StreamHead::EMPTY),
            &bytes,
            &forged,
            nothing_held,
            0,
            0,
        )
        .unwrap();
        assert_eq!(accepted(&outcome), 0);
        assert!(
            matches!(&outcome.verdicts[0].1, Verdict::Quarantined(reason) if reason.contains("signature"))
        );
        // A gap: seq 1 missing.
        let checkpoint = identity.sign_checkpoint("standard", 4, ops[3].op_hash);
        let outcome = verify_push(
            &view(&identity, StreamHead::EMPTY),
            &bytes[1..],
            &checkpoint,
            nothing_held,
            0,
            0,
        )
        .unwrap();
        assert!(
            matches!(&outcome.verdicts[0].1, Verdict::Quarantined(reason) if reason.contains("gap"))
        );
        // Ops of hangar-7 pushed as another node (a replay).
        let mut other = view(&identity, StreamHead::EMPTY);
        other.node = "pharmacy-1";
        let outcome = verify_push(&other, &bytes, &checkpoint, nothing_held, 0, 0).unwrap();
        assert_eq!(accepted(&outcome), 0);
        // A damaged op.
        let mut damaged = bytes.clone();
        damaged[0][20] ^= 1;
        let outcome = verify_push(
            &view(&identity, StreamHead::EMPTY),
            &damaged,
            &checkpoint,
            nothing_held,
            0,
            0,
        )
        .unwrap();
        assert!(
            matches!(&outcome.verdicts[0].1, Verdict::Quarantined(reason) if reason.starts_with("integrity"))
        );
    }

    /// Op `index` of `ops` with its payload (and so its payload hash and
    /// op hash) rewritten, still linking to the op before it: what a forger
    /// without the node's key can make.
    fn forged(ops: &[Op], index: usize) -> (Op, Vec<u8>) {
        let mut draft = ops[index].draft.clone();
        draft.payload = b"{\"forged\":true}".to_vec();
        draft.seal(ops[index].seq, ops[index].prev_hash)
    }

    #[test]
    fn issue_9_1_a_forged_op_below_a_genuine_checkpoint_is_not_accepted() {
        let (identity, ops, mut bytes) = stream(5);
        let checkpoint = identity.sign_checkpoint("standard", 5, ops[4].op_hash);
        // The third op rewritten: ops 1 and 2 still link, 4 no longer does.
        bytes[2] = forged(&ops, 2).1;
        let outcome = verify_push(
            &view(&identity, StreamHead::EMPTY),
            &bytes,
            &checkpoint,
            nothing_held,
            0,
            0,
        )
        .unwrap();
        assert_eq!(accepted(&outcome), 0, "{:?}", outcome.verdicts);
        assert_eq!(outcome.head, StreamHead::EMPTY);
        assert!(outcome.verdicts.iter().all(|(_, verdict)| matches!(
            verdict,
            Verdict::Quarantined(reason) if reason.contains("seq 4 does not link to seq 3")
        )));
        // A forged first op, and a forged op as the only new one after
        // duplicates: the same.
        for index in [0, 3] {
            let (_, _, mut bytes) = stream(5);
            bytes[index] = forged(&ops, index).1;
            let head = StreamHead {
                seq: index as u64,
                hash: if index == 0 {
                    Hash::ZERO
                } else {
                    ops[index - 1].op_hash
                },
            };
            let held = |seq: u64| {
                ops.get(seq as usize - 1)
                    .map(|op| op.op_hash)
                    .ok_or("not held")
            };
            let outcome =
                verify_push(&view(&identity, head), &bytes, &checkpoint, held, 0, 0).unwrap();
            assert_eq!(accepted(&outcome), 0, "forged op {index}");
        }
    }

    #[test]
    fn issue_9_1_an_unproven_rewrite_of_a_held_seq_does_not_hold_the_stream() {
        let (identity, ops, bytes) = stream(4);
        let head = StreamHead {
            seq: 2,
            hash: ops[1].op_hash,
        };
        let held = |seq: u64| {
            ops.get(seq as usize - 1)
                .map(|op| op.op_hash)
                .ok_or("not held")
        };
        let checkpoint = identity.sign_checkpoint("standard", 4, ops[3].op_hash);
        // Seq 2 forged, 3 and 4 genuine: 3 links to the genuine 2, not to
        // the forged one, so the checkpoint does not prove the rewrite.
        let mut pushed = bytes.clone();
        pushed[1] = forged(&ops, 1).1;
        let outcome =
            verify_push(&view(&identity, head), &pushed, &checkpoint, held, 0, 0).unwrap();
        assert!(outcome.equivocation.is_none(), "no hold on forged material");
        assert_eq!(accepted(&outcome), 0);
        assert_eq!(outcome.verdicts[0].1, Verdict::Duplicate);
        assert!(matches!(&outcome.verdicts[1].1,
            Verdict::Quarantined(reason) if reason.contains("differs from the op the hub holds")));
        // The genuine batch is then accepted.
        let outcome = verify_push(&view(&identity, head), &bytes, &checkpoint, held, 0, 0).unwrap();
        assert_eq!(accepted(&outcome), 2);
    }

    #[test]
    fn clock_skew_is_flagged_not_refused() {
        let (identity, ops, bytes) = stream(1);
        let checkpoint = identity.sign_checkpoint("standard", 1, ops[0].op_hash);
        let now = ops[0].draft.hlc.wall_ms - 10 * 60 * 1000;
        let outcome = verify_push(
            &view(&identity, StreamHead::EMPTY),
            &bytes,
            &checkpoint,
            nothing_held,
            now,
            60_000,
        )
        .unwrap();
        assert_eq!(accepted(&outcome), 1);
        assert_eq!(outcome.clock_skew, vec![1]);
    }
}
