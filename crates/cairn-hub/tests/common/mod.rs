//! Nodes and pushes for the hub crate's tests.

use cairn_core::chain::StreamHead;
use cairn_core::identity::NodeIdentity;
use cairn_hub::PushRequest;

/// A test node's identity: its key seeded from its name.
pub fn identity(node: &str) -> NodeIdentity {
    NodeIdentity::from_seed(node, [node.as_bytes()[0]; 32])
}

/// A push of the next `count` notes of `node`'s `standard` stream after
/// `head` (`cairn_core::testkit::notes`, scope `site=x`), signed at its
/// last op by `node`.
pub fn push(node: &str, head: &mut StreamHead, count: usize, tag: &str) -> PushRequest {
    let scope = [("site".to_string(), "x".to_string())].into();
    let ops = cairn_core::testkit::notes(node, head, count, tag, &scope);
    PushRequest {
        decoded: None,
        checkpoint_key: None,
        node_time_ms: None,
        built_on: None,
        node: node.into(),
        stream: "standard".into(),
        ops,
        checkpoint: identity(node).sign_checkpoint("standard", head.seq, head.hash),
    }
}

/// [`push`], decoded as the HTTP handler decodes it.
#[allow(dead_code)] // Not every test binary decodes its pushes ahead.
pub fn decoded(node: &str, head: &mut StreamHead, count: usize) -> PushRequest {
    let mut request = push(node, head, count, "n");
    request.decoded = Some(cairn_core::push::decode_push(&request.ops));
    request
}
