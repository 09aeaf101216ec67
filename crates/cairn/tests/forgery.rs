//! Forged material from outside (issue 9, items 1 and 2): an op whose
//! payload and payload hash were rewritten, below a genuine checkpoint, over
//! HTTP with the node's own token and in an offline bundle. Nothing of it
//! may reach the log, the hub's own verification stays clean, other nodes
//! keep pulling, and the genuine ops are accepted when they come.

mod common;

use cairn_core::chain::StreamHead;
use cairn_core::identity::NodeIdentity;
use cairn_core::op::{Action, Op, OpDraft};
use common::{Edge, action, cairn, enrolled_node, json_out, now_s, ok, token_at};
use serde_json::{Value, json};
use std::path::Path;

/// Five maintenance actions of `hangar-7`, sealed as its edge seals them.
fn genuine(count: usize) -> Vec<(Op, Vec<u8>)> {
    let mut head = StreamHead::EMPTY;
    (0..count)
        .map(|n| {
            head.append(OpDraft {
                node: "hangar-7".into(),
                stream: "standard".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: now_s() * 1000 + n as u64,
                    counter: 0,
                },
                collection: "maintenance_actions".into(),
                action: Action::Append,
                key: String::new(),
                scope: [("site".to_string(), "hangar-7".to_string())].into(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload: cairn_core::canonical::to_canonical_bytes(&action(&format!("WO-{n}")))
                    .unwrap(),
            })
        })
        .collect()
}

/// `ops` with op `index` forged: a new payload and payload hash, its
/// op hash recomputed, still linking to the op before it.
fn with_forgery(ops: &[(Op, Vec<u8>)], index: usize) -> Vec<Vec<u8>> {
    let mut bytes: Vec<Vec<u8>> = ops.iter().map(|(_, bytes)| bytes.clone()).collect();
    let mut record = action("WO-FORGED");
    record["technician"] = json!("TECH-FORGED");
    let mut draft = ops[index].0.draft.clone();
    draft.payload = cairn_core::canonical::to_canonical_bytes(&record).unwrap();
    bytes[index] = draft.seal(ops[index].0.seq, ops[index].0.prev_hash).1;
    bytes
}

/// A push body for `ops`, signed at the genuine last op by `node`.
fn body(node: &NodeIdentity, ops: &[Vec<u8>], last: &Op) -> Value {
    let checkpoint = node.sign_checkpoint("standard", last.seq, last.op_hash);
    cairn_proto::push_json("hangar-7", "standard", ops, &checkpoint)
}

/// The hub verifies clean, and the reader syncs and holds no forged record.
fn assert_clean(hub_dir: &Path, reader: &Path, hub: &Edge, hub_key: &str, records: usize) {
    let verified = cairn(hub_dir, &["--json", "hub", "verify"]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let output = cairn(
        reader,
        &[
            "--json",
            "sync",
            "--hub",
            &hub.url,
            "--hub-key",
            hub_key,
            "--hub-origin",
            "test.hub",
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let list = ok(&cairn(
        reader,
        &["--json", "record", "list", "maintenance_actions"],
    ));
    let text = list.to_string();
    assert!(!text.contains("FORGED"), "{text}");
    assert_eq!(list["records"].as_array().unwrap().len(), records, "{list}");
}

fn setup(work: &Path) -> (std::path::PathBuf, String, NodeIdentity, std::path::PathBuf) {
    let hub_dir = work.join("hub");
    let hub_key = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let node = NodeIdentity::from_seed("hangar-7", [3; 32]);
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "enroll",
            "hangar-7",
            "--public-key",
            &hex::encode(node.public_key()),
            "--scope",
            "site=hangar-7",
        ],
    ));
    let reader = enrolled_node(work, &hub_dir, "reader", "site=hangar-7");
    (hub_dir, hub_key, node, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_9_1_a_forged_push_with_a_genuine_checkpoint_logs_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hub_key, node, reader) = setup(work.path());
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let ops = genuine(5);
    let client = cairn_http::tls::builder().build().unwrap();
    let push = |body: Value| {
        let (client, url) = (client.clone(), hub.url.clone());
        let token = token_at("hangar-7", "node", now_s(), &node);
        async move { common::post_push(&client, &url, &token, &body).await }
    };
    // A forged op in the middle, then at the start: each push is refused whole.
    for index in [2, 0, 3] {
        let (status, answer) = push(body(&node, &with_forgery(&ops, index), &ops[4].0)).await;
        assert_eq!(status, 200, "{answer}");
        for result in answer["results"].as_array().unwrap() {
            assert_eq!(result["status"], "quarantined", "{answer}");
        }
        assert!(answer["receipt"].is_null(), "{answer}");
        assert_eq!(answer["watermark"], 0);
        assert_eq!(answer["held"], false);
    }
    tokio::task::block_in_place(|| assert_clean(&hub_dir, &reader, &hub, &hub_key, 0));
    // The same forgery pushed again adds nothing to the quarantine.
    let status = json_out(&tokio::task::block_in_place(|| {
        cairn(&hub_dir, &["--json", "hub", "status"])
    }));
    let quarantined = status["quarantined"].as_u64().unwrap();
    push(body(&node, &with_forgery(&ops, 2), &ops[4].0)).await;
    let status = json_out(&tokio::task::block_in_place(|| {
        cairn(&hub_dir, &["--json", "hub", "status"])
    }));
    assert_eq!(status["quarantined"].as_u64().unwrap(), quarantined);
    assert!(
        status["alerts"].to_string().contains("integrity"),
        "{status}"
    );
    // The items themselves are listed (issue 9, item 13), with the seq the
    // material claims.
    let items = status["quarantine"].as_array().unwrap();
    assert_eq!(items.len() as u64, quarantined, "{status}");
    assert!(
        items
            .iter()
            .all(|item| item["seq"].is_u64() && item["reason"].is_string())
    );
    assert!(
        status["streams"].get("hangar-7:standard").is_none(),
        "no stream row for what was never accepted: {status}"
    );

    // The genuine push is accepted, whole, and reaches the reader.
    let genuine_bytes: Vec<Vec<u8>> = ops.iter().map(|(_, bytes)| bytes.clone()).collect();
    let (status, answer) = push(body(&node, &genuine_bytes, &ops[4].0)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|result| result["status"] == "accepted"),
        "{answer}"
    );
    tokio::task::block_in_place(|| assert_clean(&hub_dir, &reader, &hub, &hub_key, 5));
    // A forgery of a seq the hub now holds is not an equivocation: the
    // stream is not held, and the node's next op is accepted.
    let (_, answer) = push(body(&node, &with_forgery(&ops, 3), &ops[4].0)).await;
    assert_eq!(answer["held"], false, "{answer}");
    assert_eq!(answer["results"][3]["status"], "quarantined", "{answer}");
}

#[test]
fn issue_9_1_a_forged_bundle_logs_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hub_key, node, reader) = setup(work.path());
    let ops = genuine(5);
    let bundle = work.path().join("forged.jsonl");
    let header = json!({"format": "cairn-bundle/1", "node": "hangar-7", "created_ms": 1});
    std::fs::write(
        &bundle,
        format!(
            "{header}\n{}\n",
            body(&node, &with_forgery(&ops, 1), &ops[4].0)
        ),
    )
    .unwrap();
    let output = cairn(
        &hub_dir,
        &["--json", "hub", "import", bundle.to_str().unwrap()],
    );
    assert_ne!(output.status.code(), Some(0));
    let report = json_out(&output);
    assert_eq!(
        report["error"]["quarantined"].as_array().unwrap().len(),
        5,
        "{report}"
    );
    let hub = Edge::start_hub(&hub_dir);
    assert_clean(&hub_dir, &reader, &hub, &hub_key, 0);

    // The genuine bundle then goes in whole (no stale checkpoint in the way).
    let genuine_bytes: Vec<Vec<u8>> = ops.iter().map(|(_, bytes)| bytes.clone()).collect();
    let bundle = work.path().join("genuine.jsonl");
    std::fs::write(
        &bundle,
        format!("{header}\n{}\n", body(&node, &genuine_bytes, &ops[4].0)),
    )
    .unwrap();
    let report = ok(&cairn(
        &hub_dir,
        &["--json", "hub", "import", bundle.to_str().unwrap()],
    ));
    assert_eq!(report["accepted"], 5, "{report}");
    assert_clean(&hub_dir, &reader, &hub, &hub_key, 5);
}
