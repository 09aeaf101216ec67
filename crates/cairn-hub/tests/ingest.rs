//! Push bodies from the network into requests: every bad field named,
//! and mutated bodies (JSON, postcard, zstd) refused cleanly or decoded,
//! never a panic (issue 10, item 6).

mod common;

use base64::Engine;
use cairn_core::mutation::mutated;
use cairn_hub::PushRequest;
use cairn_hub::ingest::{push_from_binary, push_from_json};
use cairn_proto::PushWire;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn binary_push_bodies_keep_their_wire_format() {
    // The layout before ops were byte strings: a sequence of u8 each.
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Elementwise {
        node: String,
        stream: String,
        ops: Vec<Vec<u8>>,
        checkpoint_seq: u64,
        checkpoint_head: [u8; 32],
        checkpoint_signature: Vec<u8>,
    }
    let ops = vec![vec![0, 1, 255, 128], Vec::new(), vec![7; 300]];
    let wire = PushWire {
        node: "a".into(),
        stream: "standard".into(),
        ops: ops.clone(),
        checkpoint_seq: 300,
        checkpoint_head: [9; 32],
        checkpoint_signature: vec![3; 64],
    };
    let before = Elementwise {
        node: "a".into(),
        stream: "standard".into(),
        ops,
        checkpoint_seq: 300,
        checkpoint_head: [9; 32],
        checkpoint_signature: vec![3; 64],
    };
    let bytes = postcard::to_allocvec(&wire).unwrap();
    assert_eq!(bytes, postcard::to_allocvec(&before).unwrap());
    assert_eq!(postcard::from_bytes::<PushWire>(&bytes).unwrap(), wire);
    assert_eq!(postcard::from_bytes::<Elementwise>(&bytes).unwrap(), before);
}

fn request(head: &mut cairn_core::chain::StreamHead, count: u64) -> PushRequest {
    common::decoded("a", head, count as usize)
}

proptest! {
    /// Push bodies from the network, JSON and binary (plain and zstd),
    /// mutated: a clean refusal or a request, never a panic.
    #[test]
    fn push_bodies_decode_or_refuse(
        at in any::<usize>(),
        kind in any::<u8>(),
        extra in prop::collection::vec(any::<u8>(), 1..12),
    ) {
        let mut head = cairn_core::chain::StreamHead::EMPTY;
        let request = request(&mut head, 3);
        let wire = PushWire {
            node: request.node.clone(),
            stream: request.stream.clone(),
            ops: request.ops.clone(),
            checkpoint_seq: request.checkpoint.seq,
            checkpoint_head: request.checkpoint.head.0,
            checkpoint_signature: request.checkpoint.signature.to_vec(),
        };
        let raw = postcard::to_allocvec(&wire).unwrap();
                    let _ = push_from_binary(&mutated(&raw, at, kind, &extra), false);
        let _ = push_from_binary(&mutated(&wire.encode(), at, kind, &extra), true);
        let json = serde_json::json!({
            "node": request.node,
            "stream": request.stream,
            "ops": request.ops.iter().map(|op| base64::engine::general_purpose::STANDARD.encode(op)).collect::<Vec<_>>(),
            "checkpoint": {"seq": request.checkpoint.seq, "head": request.checkpoint.head.to_hex(), "signature": hex::encode(request.checkpoint.signature)},
        })
        .to_string();
        if let Ok(value) = cairn_proto::json::parse_json(&mutated(json.as_bytes(), at, kind, &extra), "body") {
            let _ = push_from_json(&value);
        }
    }
}

#[test]
fn push_bodies_name_every_bad_field() {
    let violations = push_from_json(
        &json!({"node": 1, "ops": ["%%%"], "checkpoint": {"seq": "x"}, "extra": true}),
    )
    .unwrap_err();
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "extra",
            "node",
            "stream",
            "ops[0]",
            "checkpoint.seq",
            "checkpoint.head",
            "checkpoint.signature"
        ]
    );
}
