//! What a node checks before it trusts ops it did not write (pulled from the
//! hub, read from a snapshot or a bundle, or its own taken back): each is
//! linked by its stream's chain to a checkpoint its origin signed
//! (`provenance`), and, with the hub's key known, each signing key is one
//! the hub enrolled in its own signed stream (`hub:audit`), whose acts come
//! with the answer: a hub cannot vouch for a key without logging it. Pure:
//! the sync client (and a simulator) feed it.

use crate::names::{AUDIT_COLLECTION, AUDIT_STREAM, HUB_NODE};
use crate::op::Op;
use crate::provenance::{self, ChainProof, Proven, ProvenanceError};

/// Why received ops are not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// An op is not linked to a checkpoint its origin signed.
    #[error("a pulled op is not what its origin node signed: {0}")]
    Provenance(#[from] ProvenanceError),
    /// A checkpoint was signed by a key the hub never logged.
    #[error("the key that signed {node}:{stream} seq {seq} is not one the hub enrolled")]
    NotEnrolled {
        /// The origin node.
        node: String,
        /// Its stream.
        stream: String,
        /// The checkpoint's seq.
        seq: u64,
    },
    /// The hub answered for one of this node's streams with something else.
    #[error("{0}")]
    NotOwn(String),
}

/// Checks `ops` against `proofs` (and `enrollments`, the hub's acts that
/// enrolled the signing keys, which must be proven too); with `hub_key`,
/// also that every signing key is the hub's own or one an act enrolled.
pub fn verify_origins(
    ops: &[&Op],
    enrollments: &[Op],
    proofs: &[ChainProof],
    hub_key: Option<[u8; 32]>,
) -> Result<Proven, TrustError> {
    let mut all: Vec<&Op> = ops.to_vec();
    all.extend(enrollments);
    let proven = provenance::verify(&all, proofs)?;
    if let Some(hub_key) = hub_key {
        for proof in proofs {
            let node = &proof.checkpoint.node;
            let logged = if node == HUB_NODE {
                proof.public_key == hub_key
            } else {
                enrollments
                    .iter()
                    .any(|act| enrolls(act, node, &proof.public_key))
            };
            if !logged {
                return Err(TrustError::NotEnrolled {
                    node: node.clone(),
                    stream: proof.checkpoint.stream.clone(),
                    seq: proof.checkpoint.seq,
                });
            }
        }
    }
    Ok(proven)
}

/// True when `act` is the hub's act enrolling `node` with `public_key`.
pub fn enrolls(act: &Op, node: &str, public_key: &[u8; 32]) -> bool {
    let record: serde_json::Value = serde_json::from_slice(&act.draft.payload).unwrap_or_default();
    act.draft.node == HUB_NODE
        && act.draft.stream == AUDIT_STREAM
        && act.draft.collection == AUDIT_COLLECTION
        && record["action"] == "enroll"
        && record["node"] == node
        && record["public_key"] == hex::encode(public_key)
}

/// Checks a page of a node's own ops the hub hands back (recovery after a
/// restore from an old backup): all of `node:stream`, contiguous from seq
/// `from`, and chained to checkpoints this node signed with `own_key`.
pub fn verify_own(
    ops: &[&Op],
    proofs: &[ChainProof],
    node: &str,
    stream: &str,
    from: u64,
    own_key: &[u8; 32],
) -> Result<(), TrustError> {
    if let Some(op) = ops
        .iter()
        .find(|op| op.draft.node != node || op.draft.stream != stream)
    {
        return Err(TrustError::NotOwn(format!(
            "the hub answered with {} for {stream}",
            op.record_id()
        )));
    }
    if proofs.iter().any(|proof| proof.public_key != *own_key) {
        return Err(TrustError::NotOwn(format!(
            "the hub answered {stream} with checkpoints this node did not sign"
        )));
    }
    provenance::verify(ops, proofs).map_err(|error| {
        TrustError::NotOwn(format!(
            "an op the hub holds is not what this node signed: {error}"
        ))
    })?;
    let contiguous = ops.first().is_none_or(|first| first.seq == from)
        && ops.windows(2).all(|pair| pair[1].seq == pair[0].seq + 1);
    if !contiguous {
        return Err(TrustError::NotOwn(format!(
            "the hub's ops of {stream} are not contiguous from seq {from}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeIdentity;

    fn stream(node: &str, count: u64) -> Vec<Op> {
        crate::testkit::stream(node, count as usize)
    }

    fn proof(identity: &NodeIdentity, op: &Op) -> ChainProof {
        ChainProof {
            checkpoint: identity.sign_checkpoint("standard", op.seq, op.op_hash),
            public_key: identity.public_key(),
            headers: Vec::new(),
        }
    }

    #[test]
    fn own_ops_taken_back_must_be_contiguous_and_signed_by_this_node() {
        let me = NodeIdentity::from_seed("a", [1; 32]);
        let other = NodeIdentity::from_seed("a", [2; 32]);
        let ops = stream("a", 4);
        let refs: Vec<&Op> = ops.iter().collect();
        let signed = [proof(&me, &ops[3])];
        verify_own(&refs, &signed, "a", "standard", 1, &me.public_key()).unwrap();
        let said = |result: Result<(), TrustError>| result.unwrap_err().to_string();
        let foreign = [proof(&other, &ops[3])];
        assert!(
            said(verify_own(
                &refs,
                &foreign,
                "a",
                "standard",
                1,
                &me.public_key()
            ))
            .contains("checkpoints this node did not sign")
        );
        assert!(
            said(verify_own(
                &refs[1..],
                &signed,
                "a",
                "standard",
                1,
                &me.public_key()
            ))
            .contains("not contiguous from seq 1")
        );
        assert!(
            said(verify_own(
                &refs,
                &signed,
                "b",
                "standard",
                1,
                &me.public_key()
            ))
            .contains("answered with a:standard")
        );
        let gap: Vec<&Op> = vec![&ops[0], &ops[2], &ops[3]];
        assert!(verify_own(&gap, &signed, "a", "standard", 1, &me.public_key()).is_err());
    }

    #[test]
    fn only_keys_the_hub_logged_are_trusted_when_its_key_is_known() {
        let author = NodeIdentity::from_seed("a", [1; 32]);
        let hub = NodeIdentity::from_seed(HUB_NODE, [2; 32]);
        let ops = stream("a", 2);
        let refs: Vec<&Op> = ops.iter().collect();
        let proofs = [proof(&author, &ops[1])];
        // Without the hub's key, only the chains are checked.
        assert_eq!(
            verify_origins(&refs, &[], &proofs, None)
                .unwrap()
                .checkpoints,
            1
        );
        let error = verify_origins(&refs, &[], &proofs, Some(hub.public_key())).unwrap_err();
        assert!(
            matches!(error, TrustError::NotEnrolled { seq: 2, .. }),
            "{error}"
        );
    }
}
