//! Pushes built by hand for the hub store's tests.
#![allow(dead_code)]

use cairn_core::chain::StreamHead;
use cairn_core::identity::NodeIdentity;
use cairn_core::op::{Action, OpDraft};
use cairn_hub_sqlite::PushRequest;

/// A push of the next `count` ops of `identity`'s `standard` stream after
/// `head`, ledger notes whose scope `site` label `site_of(n)` gives (`n`
/// counts from 0 within the push), signed at its last op.
pub fn push_after(
    identity: &NodeIdentity,
    head: &mut StreamHead,
    count: usize,
    site_of: impl Fn(usize) -> &'static str,
) -> PushRequest {
    let ops = (0..count)
        .map(|n| {
            head.append(OpDraft {
                node: identity.node.clone(),
                stream: "standard".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: 1_700_000_000_000 + head.seq,
                    counter: 0,
                },
                collection: "notes".into(),
                action: Action::Append,
                key: String::new(),
                scope: [("site".to_string(), site_of(n).to_string())].into(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload: format!("{{\"secret\":{}}}", head.seq + 1).into_bytes(),
            })
            .1
        })
        .collect();
    PushRequest {
        decoded: None,
        checkpoint_key: None,
        node_time_ms: None,
        built_on: None,
        node: identity.node.clone(),
        stream: "standard".into(),
        ops,
        checkpoint: identity.sign_checkpoint("standard", head.seq, head.hash),
    }
}

/// The PostgreSQL server tests may make databases on (`CAIRN_PG_URL`, which
/// `.ci/run` sets). Without it the PostgreSQL half of a test is skipped,
/// said on stderr; under CI (`CI` set) that is a failure, not a skip.
pub fn postgres_server() -> Option<String> {
    match std::env::var("CAIRN_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CAIRN_PG_URL is not set: .ci/run starts a PostgreSQL server for these tests")
        }
        _ => {
            eprintln!("CAIRN_PG_URL is not set: the PostgreSQL half of this test is skipped");
            None
        }
    }
}

/// A fresh database on `server`, its URL.
pub fn new_database(server: &str) -> String {
    cairn_hub_postgres::create_fresh_database(server, "cairn_t").expect("a test database")
}
