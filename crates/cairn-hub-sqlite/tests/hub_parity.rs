//! Backend parity (issue 10, item 2): the same acts and pushes through the
//! hub's pipeline on SQLite and on the in-memory backend give the same
//! answers, byte for byte (verdicts, leaves, receipts, signed checkpoints),
//! so what tests show on memory (the fault injection of
//! `cairn-hub/tests/faults.rs`) holds for the SQLite hub. The same story
//! runs on PostgreSQL (issue 14) when `CAIRN_PG_URL` names a server.

mod common;

use cairn_core::chain::StreamHead;
use cairn_core::clock::ManualClock;
use cairn_core::identity::NodeIdentity;
use cairn_hub::memory::MemoryBackend;
use cairn_hub::signer::LogSigner;
use cairn_hub::{Hub, PushError};
use cairn_hub_sqlite::{HubStore, PushRequest, PushResponse};
use std::sync::Arc;

const NOW_MS: u64 = 1_700_000_000_000;

fn shown(answer: Result<PushResponse, PushError>) -> String {
    match answer {
        Ok(answer) => format!("{answer:?}"),
        Err(refusal) => format!("refused: {refusal}"),
    }
}

#[test]
fn the_memory_backend_answers_as_sqlite_does() {
    let hub_key = NodeIdentity::from_seed("hub", [9; 32]);
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    std::fs::write(dir.path().join("hub.key"), hub_key.to_key_file()).unwrap();
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let sqlite = HubStore::open_with_clock(dir.path(), clock.clone()).unwrap();
    answers_alike(&sqlite, hub_key, clock);
}

#[test]
fn the_memory_backend_answers_as_postgres_does() {
    let Some(server) = common::postgres_server() else {
        return;
    };
    let hub_key = NodeIdentity::from_seed("hub", [9; 32]);
    let dir = tempfile::tempdir().unwrap();
    let url = common::new_database(&server);
    HubStore::init_postgres(dir.path(), "test.hub", &[], &url).unwrap();
    // The fixed key, in the directory and in the database's record of it.
    std::fs::write(dir.path().join("hub.key"), hub_key.to_key_file()).unwrap();
    cairn_hub_postgres::PgBackend::connect(&url)
        .unwrap()
        .batch(&format!(
            "UPDATE meta SET value = '{}' WHERE key = 'hub_key'",
            hex::encode(hub_key.public_key())
        ))
        .unwrap();
    let clock = Arc::new(ManualClock::at(NOW_MS));
    let postgres = HubStore::open_postgres_with_clock(dir.path(), &url, clock.clone()).unwrap();
    answers_alike(&postgres, hub_key, clock);
    assert!(postgres.verify().unwrap().faults.is_empty());
}

/// The story, on `store` and on memory: every answer alike.
fn answers_alike(sqlite: &HubStore, hub_key: NodeIdentity, clock: Arc<ManualClock>) {
    let memory = Hub::new(
        MemoryBackend::new(),
        LogSigner::new(hub_key, "test.hub".into()),
        clock,
    );
    let a = NodeIdentity::from_seed("a", [1; 32]);
    let b = NodeIdentity::from_seed("b", [2; 32]);
    let r = NodeIdentity::from_seed("r", [3; 32]);
    let site_x: std::collections::BTreeMap<String, String> =
        [("site".to_string(), "x".to_string())].into();
    for (node, scopes) in [
        (&a, Default::default()),
        (&b, Default::default()),
        (&r, site_x),
    ] {
        sqlite
            .enroll(&node.node, node.public_key(), &scopes)
            .unwrap();
        // The same act on memory: the same admin code over the other backend.
        memory
            .enroll(&node.node, node.public_key(), &scopes, false, "cli")
            .unwrap();
    }
    assert_eq!(sqlite.checkpoint().unwrap(), memory.checkpoint().unwrap());
    let (mut head_a, mut head_b, mut again) =
        (StreamHead::EMPTY, StreamHead::EMPTY, StreamHead::EMPTY);
    let site = |n: usize| if n.is_multiple_of(2) { "x" } else { "y" };
    let mut forged = common::push_after(&b, &mut head_b.clone(), 4, site);
    *forged.ops[1].last_mut().unwrap() ^= 1;
    let mut fresh = StreamHead::EMPTY;
    let mut stranger = common::push_after(&a, &mut fresh, 2, site);
    stranger.node = "nobody".into();
    let pushes: Vec<PushRequest> = vec![
        common::push_after(&a, &mut head_a, 20, site),
        forged,
        common::push_after(&b, &mut head_b, 3, site),
        common::push_after(&a, &mut again, 30, site),
        stranger,
    ];
    for push in pushes {
        assert_eq!(shown(sqlite.push(push.clone())), shown(memory.push(push)),);
    }
    let group: Vec<PushRequest> = vec![
        common::push_after(&b, &mut head_b, 17, site),
        common::push_after(&a, &mut again, 2, site),
    ];
    let left: Vec<String> = sqlite
        .push_group(group.clone())
        .into_iter()
        .map(shown)
        .collect();
    let right: Vec<String> = memory.push_group(group).into_iter().map(shown).collect();
    assert_eq!(left, right);
    let status = sqlite.status().unwrap();
    assert_eq!((status.log_size, status.root), {
        let (size, root) = memory.root().unwrap();
        (size, root.to_hex())
    });
    assert_eq!(
        status.quarantined,
        memory.backend().state().quarantine.len() as u64
    );
}
