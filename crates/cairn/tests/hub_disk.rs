//! A hub whose disk fills up (issue 9, item 14): a push answers 507 naming
//! storage, stores nothing, and goes through once there is space again.
//! The hub runs on a small tmpfs this test mounts (CI runs as root).

mod common;

use cairn_core::chain::StreamHead;
use cairn_core::identity::NodeIdentity;
use cairn_core::op::{Action, OpDraft};
use common::{Edge, action, cairn, now_s, ok, token_at};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root)"
        );
        Tmpfs(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A push body of `count` ops of `hangar-7`, with a large description each.
fn push_body(node: &NodeIdentity, count: usize) -> Value {
    let mut head = StreamHead::EMPTY;
    let ops: Vec<Vec<u8>> = (0..count)
        .map(|n| {
            let mut record = action(&format!("WO-{n}"));
            record["description"] = json!("x".repeat(4_000));
            head.append(OpDraft {
                node: "hangar-7".into(),
                stream: "standard".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: now_s() * 1000,
                    counter: n as u32,
                },
                collection: "maintenance_actions".into(),
                action: Action::Append,
                key: String::new(),
                scope: Default::default(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload: cairn_core::canonical::to_canonical_bytes(&record).unwrap(),
            })
            .1
        })
        .collect();
    let checkpoint = node.sign_checkpoint("standard", head.seq, head.hash);
    cairn_proto::push_json("hangar-7", "standard", &ops, &checkpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_9_14_a_full_disk_on_the_hub_is_a_507_naming_storage() {
    if common::sqlite_file_only("hub.db is on a small tmpfs that fills") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mount = work.path().join("disk");
    let _tmpfs = Tmpfs::mount(&mount, "6m");
    let hub_dir = mount.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let node = NodeIdentity::from_seed("hangar-7", [3; 32]);
    let key = hex::encode(node.public_key());
    assert!(
        cairn(
            &hub_dir,
            &["hub", "enroll", "hangar-7", "--public-key", &key]
        )
        .status
        .success()
    );
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    // Fill the disk.
    let filler = mount.join("filler");
    {
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
    }
    let body = push_body(&node, 200);
    let client = cairn_http::tls::builder().build().unwrap();
    let push = || {
        let (client, url, body) = (client.clone(), hub.url.clone(), body.clone());
        let token = token_at("hangar-7", "node", now_s(), &node);
        async move { common::post_push(&client, &url, &token, &body).await }
    };
    let (status, answer) = push().await;
    assert_eq!(status, 507, "{answer}");
    assert_eq!(answer["error"]["code"], "storage_full", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("storage"),
        "{answer}"
    );
    // Space again: the same push goes in whole.
    std::fs::remove_file(&filler).unwrap();
    let (status, answer) = push().await;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|result| result["status"] == "accepted"),
        "{answer}"
    );
    hub.kill();
    assert_eq!(cairn(&hub_dir, &["hub", "verify"]).status.code(), Some(0));
}
