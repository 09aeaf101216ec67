//! Chain proofs in pulls and snapshots: every op handed to a node comes with
//! its origin's signed checkpoint and the headers (never the payloads) of
//! the ops between, and a page stops before its proofs grow past
//! `CHAIN_SPAN_MAX` seqs.

mod common;

use base64::Engine;
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::{Checkpoint, NodeIdentity};
use cairn_core::op::Op;
use cairn_core::provenance::{self, ChainProof, Proven};
use cairn_hub_sqlite::{
    CHAIN_SPAN_MAX, ChainSegment, HubStore, PUSH_OPS_MAX, PullPage, PushRequest,
};

/// A push of `count` ops; only the first is in scope `site=x`, the others
/// are in `site=y`.
fn push(identity: &NodeIdentity, head: &mut StreamHead, count: usize) -> PushRequest {
    common::push_after(identity, head, count, |n| if n == 0 { "x" } else { "y" })
}

/// The page's ops, then the hub's acts that enrolled their signing keys.
fn decoded(page: &PullPage) -> Vec<Op> {
    let decode = |text: &String| {
        Op::decode(
            &base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap(),
        )
        .unwrap()
    };
    page.ops
        .iter()
        .map(|item| decode(&item.op))
        .chain(page.enrollments.iter().map(decode))
        .collect()
}

fn proofs(chains: &[ChainSegment]) -> Vec<ChainProof> {
    let unhex = |text: &str| hex::decode(text).unwrap();
    chains
        .iter()
        .map(|segment| ChainProof {
            checkpoint: Checkpoint {
                node: segment.node.clone(),
                stream: segment.stream.clone(),
                seq: segment.seq,
                head: Hash::from_slice(&unhex(&segment.head)).unwrap(),
                signature: unhex(&segment.signature).try_into().unwrap(),
            },
            public_key: unhex(&segment.public_key).try_into().unwrap(),
            headers: segment
                .headers
                .iter()
                .map(|header| {
                    base64::engine::general_purpose::STANDARD
                        .decode(header)
                        .unwrap()
                })
                .collect(),
        })
        .collect()
}

#[test]
fn pulls_and_snapshots_prove_sparse_ops_and_pages_bound_their_proofs() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let author = NodeIdentity::from_seed("author", [1; 32]);
    let reader = NodeIdentity::from_seed("reader", [2; 32]);
    let both = [("site".to_string(), "x".to_string())].into();
    hub.enroll("author", author.public_key(), &Default::default())
        .unwrap();
    hub.enroll("reader", reader.public_key(), &both).unwrap();
    // Five full pushes: the reader may see one op in each, 8,191 seqs below
    // the checkpoint that ends the push.
    let mut head = StreamHead::EMPTY;
    for _ in 0..5 {
        let answer = hub.push(push(&author, &mut head, PUSH_OPS_MAX)).unwrap();
        assert!(
            answer
                .results
                .iter()
                .all(|result| result.status == "accepted")
        );
    }
    let fits = CHAIN_SPAN_MAX / PUSH_OPS_MAX;
    assert!(fits < 5, "the test needs more pushes than a page spans");

    let first = hub.pull("reader", 0, 1_000).unwrap();
    let proofs_of_first = proofs(&first.chains);
    let (mut page, mut sizes) = (first.clone(), Vec::new());
    loop {
        let ops = decoded(&page);
        // One act: the author's enrollment, under the hub's own checkpoint.
        assert_eq!(page.enrollments.len(), 1);
        let act: serde_json::Value =
            serde_json::from_slice(&ops.last().unwrap().draft.payload).unwrap();
        assert_eq!(act["action"], "enroll");
        assert_eq!(act["public_key"], hex::encode(author.public_key()));
        let carried = page.ops.len();
        assert_eq!(
            provenance::verify(&ops.iter().collect::<Vec<_>>(), &proofs(&page.chains)).unwrap(),
            Proven {
                ops: carried + 1,
                checkpoints: carried + 1,
                headers: carried * (PUSH_OPS_MAX - 1),
            }
        );
        // Headers carry no payload: no `secret` of the scope the reader lacks.
        for segment in &page.chains {
            for header in &segment.headers {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(header)
                    .unwrap();
                assert!(!bytes.windows(6).any(|window| window == b"secret"));
            }
        }
        sizes.push(carried);
        if !page.more {
            break;
        }
        // The next page starts at the op this one left out.
        page = hub.pull("reader", page.next, 1_000).unwrap();
    }
    assert_eq!(
        sizes,
        [fits, fits, 5 - 2 * fits],
        "each page stops before its proofs outgrow the bound"
    );

    // Snapshot pages bound their proofs the same way, each page proven,
    // and together they hold all five.
    let mut query = cairn_hub_sqlite::SnapshotQuery::default();
    let mut total = 0;
    for _ in 0..10 {
        let snapshot = hub.snapshot("reader", &query).unwrap();
        let ops: Vec<Op> = snapshot
            .ops
            .iter()
            .chain(&snapshot.enrollments)
            .map(|bytes| Op::decode(bytes).unwrap())
            .collect();
        let proven =
            provenance::verify(&ops.iter().collect::<Vec<_>>(), &proofs(&snapshot.chains)).unwrap();
        assert_eq!(
            proven.checkpoints,
            snapshot.ops.len() + 1,
            "the author's, one of the hub's"
        );
        total += snapshot.ops.len();
        // The note's body, its signature line left off.
        let body = snapshot.manifest.split("\n\n").next().unwrap().to_string() + "\n";
        let next = cairn_core::snapshot::SnapshotManifest::parse_body(&body)
            .unwrap()
            .next;
        if !snapshot.more {
            break;
        }
        query.from = next;
    }
    assert_eq!(total, 5);

    // A page whose proofs were cut short proves nothing.
    let mut short = proofs_of_first.clone();
    let author_segment = short
        .iter_mut()
        .find(|proof| proof.checkpoint.node == "author")
        .unwrap();
    assert!(author_segment.headers.pop().is_some());
    let ops = decoded(&first);
    assert!(provenance::verify(&ops.iter().collect::<Vec<_>>(), &short).is_err());
}

/// A node re-enrolled with a new key keeps its stream: ops signed before
/// come with the old key and the act that enrolled it, ops signed after with
/// the new one and its act.
#[test]
fn a_rekeyed_node_s_ops_come_with_the_act_that_enrolled_each_key() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    let (old, new) = (
        NodeIdentity::from_seed("author", [1; 32]),
        NodeIdentity::from_seed("author", [4; 32]),
    );
    let reader = NodeIdentity::from_seed("reader", [2; 32]);
    let granted = [("site".to_string(), "x".to_string())].into();
    hub.enroll("author", old.public_key(), &Default::default())
        .unwrap();
    hub.enroll("reader", reader.public_key(), &granted).unwrap();
    let mut head = StreamHead::EMPTY;
    hub.push(push(&old, &mut head, 1)).unwrap();
    hub.rekey("author", new.public_key(), &Default::default(), "test")
        .unwrap();
    hub.push(push(&new, &mut head, 1)).unwrap();

    let page = hub.pull("reader", 0, 1_000).unwrap();
    assert_eq!(page.ops.len(), 2);
    let ops = decoded(&page);
    provenance::verify(&ops.iter().collect::<Vec<_>>(), &proofs(&page.chains)).unwrap();
    let acts: Vec<serde_json::Value> = ops[2..]
        .iter()
        .map(|act| serde_json::from_slice(&act.draft.payload).unwrap())
        .collect();
    for segment in page
        .chains
        .iter()
        .filter(|segment| segment.node == "author")
    {
        assert!(
            acts.iter()
                .any(|act| act["public_key"] == segment.public_key.as_str()),
            "no act enrolls the key of checkpoint {}",
            segment.seq
        );
    }
    let keys: std::collections::BTreeSet<&str> = page
        .chains
        .iter()
        .filter(|s| s.node == "author")
        .map(|s| s.public_key.as_str())
        .collect();
    assert_eq!(keys.len(), 2, "each checkpoint with the key that signed it");
}
