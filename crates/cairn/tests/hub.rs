//! The hub and the edge's push, with real processes on 127.0.0.1: offline
//! writes reach the hub with verified receipts; retries are duplicates; an
//! op edited in the edge's SQLite file is quarantined; a node restored from
//! an old backup that rewrites history is caught as an equivocation that
//! holds its stream; an unknown node is refused.

mod common;

use common::{Edge, action, cairn, json_out, now_s, token_at};
use rusqlite::Connection;
use std::path::Path;

const SYNC_INCOMPLETE: i32 = 7;

/// Leaves of the nodes' ops in a `hub status`: the log less the hub's own
/// record of its administrative acts (`hub:audit`).
fn node_leaves(status: &serde_json::Value) -> u64 {
    status["log_size"].as_u64().unwrap() - status["streams"]["hub:audit"][0].as_u64().unwrap_or(0)
}

/// Initializes an edge node and returns its public key.
fn edge_init(dir: &Path, node: &str) -> String {
    let output = cairn(
        dir,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            node,
            "--scope",
            "site=hangar-7",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    json_out(&output)["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn add(dir: &Path, n: usize) {
    // A work order of its own per record: the same one twice within a day
    // is refused as a duplicate (the mro pack's idempotency key).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..n {
        let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let output = cairn(
            dir,
            &[
                "record",
                "add",
                "maintenance_actions",
                &action(&format!("WO-{i}")).to_string(),
            ],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn sync(dir: &Path, hub: &Edge, key: &str) -> (i32, serde_json::Value) {
    let output = cairn(
        dir,
        &[
            "--json",
            "sync",
            "--hub",
            &hub.url,
            "--hub-key",
            key,
            "--hub-origin",
            "test.hub",
            "--batch-ops",
            "4",
        ],
    );
    (output.status.code().unwrap_or(-1), json_out(&output))
}

/// Enrolls node `hangar-7`, with a fixed test key, at the hub in `hub_dir`;
/// returns its identity, to sign as the node.
fn enroll_hangar(hub_dir: &Path) -> cairn_core::identity::NodeIdentity {
    let node = cairn_core::identity::NodeIdentity::from_seed("hangar-7", [3; 32]);
    let key = hex::encode(node.public_key());
    assert!(
        cairn(
            hub_dir,
            &["hub", "enroll", "hangar-7", "--public-key", &key]
        )
        .status
        .success()
    );
    node
}

/// A hub (not started) and node `hangar-7` enrolled by key in `work`; the
/// node writes three records and a copy of its store is taken, as a backup.
/// Returns the hub's directory and key, the node's and the backup's.
fn edge_with_backup(
    work: &Path,
) -> (
    std::path::PathBuf,
    String,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let hub_dir = work.join("hub");
    let hub_key = json_out(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let edge = work.join("edge");
    let edge_key = edge_init(&edge, "hangar-7");
    assert!(
        cairn(
            &hub_dir,
            &["hub", "enroll", "hangar-7", "--public-key", &edge_key]
        )
        .status
        .success()
    );
    add(&edge, 3);
    let backup = work.join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    for name in ["cairn.db", "node.key"] {
        std::fs::copy(edge.join(name), backup.join(name)).unwrap();
    }
    (hub_dir, hub_key, edge, backup)
}

/// A hub initialized in `work` with node `hangar-7` enrolled by key, served
/// on 127.0.0.1: its directory, the node's identity and the running hub.
fn hub_with_node(work: &Path) -> (std::path::PathBuf, cairn_core::identity::NodeIdentity, Edge) {
    let hub_dir = work.join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let node = enroll_hangar(&hub_dir);
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    (hub_dir, node, hub)
}

#[test]
fn offline_writes_reach_the_hub_and_tampering_is_quarantined() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    let output = cairn(&hub_dir, &["--json", "hub", "init", "--origin", "test.hub"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hub_key = json_out(&output)["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let edge = work.path().join("edge");
    let edge_key = edge_init(&edge, "hangar-7");
    assert!(
        cairn(
            &hub_dir,
            &[
                "hub",
                "enroll",
                "hangar-7",
                "--public-key",
                &edge_key,
                "--scope",
                "site=hangar-7"
            ]
        )
        .status
        .success()
    );

    // Written while the hub is not even running; a backup is taken midway.
    add(&edge, 8);
    let backup = work.path().join("backup");
    std::fs::create_dir_all(&backup).unwrap();
    for name in ["cairn.db", "node.key"] {
        std::fs::copy(edge.join(name), backup.join(name)).unwrap();
    }
    add(&edge, 2);
    let hub = Edge::start_hub(&hub_dir);
    // JSON for interoperability; the other syncs negotiate the binary body.
    let output = cairn(
        &edge,
        &[
            "--json",
            "sync",
            "--hub",
            &hub.url,
            "--batch-ops",
            "4",
            "--encoding",
            "json",
        ],
    );
    let report = json_out(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert_eq!(report["accepted"], 10);
    assert_eq!(report["receipts_verified"], 10);
    let status = json_out(&cairn(&edge, &["--json", "status"]));
    assert_eq!(status["pending_total"], 0);
    // Nothing left to send: a second round pushes nothing.
    let (code, report) = sync(&edge, &hub, &hub_key);
    assert_eq!(
        (code, report["accepted"].clone()),
        (0, serde_json::json!(0))
    );

    // An op edited in the edge's SQLite file after it was written.
    add(&edge, 2);
    {
        let conn = Connection::open(edge.join("cairn.db")).unwrap();
        let (id, mut op): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT id, op FROM ops ORDER BY id DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        let at = op.len() - 5;
        op[at] ^= 0x01;
        conn.execute(
            "UPDATE ops SET op = ?1 WHERE id = ?2",
            rusqlite::params![op, id],
        )
        .unwrap();
    }
    let (code, report) = sync(&edge, &hub, &hub_key);
    assert_eq!(code, SYNC_INCOMPLETE, "{report}");
    assert_eq!(report["error"]["code"], "quarantined");
    // The edited op is named by its seq, not "null" (issue 9, item 13).
    let quarantined = report["report"]["quarantined"].to_string();
    assert!(
        quarantined.contains("standard seq 12") && !quarantined.contains("null"),
        "{quarantined}"
    );

    // The node is restored from the backup and writes a different seq 9,
    // which the hub already holds.
    add(&backup, 1);
    let (code, report) = sync(&backup, &hub, &hub_key);
    assert_eq!(code, SYNC_INCOMPLETE, "{report}");
    let hub_status = json_out(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(
        hub_status["streams"]["hangar-7:standard"][1], true,
        "the stream is held: {hub_status}"
    );
    assert!(hub_status["quarantined"].as_u64().unwrap() >= 2);
    assert!(
        hub_status["alerts"].to_string().contains("equivocation"),
        "{hub_status}"
    );
    assert_eq!(
        node_leaves(&hub_status),
        10,
        "the accepted ops stay, nothing of the fork is logged"
    );

    // A node the hub never enrolled is refused.
    let stranger = work.path().join("stranger");
    edge_init(&stranger, "stranger");
    add(&stranger, 1);
    let output = cairn(&stranger, &["sync", "--hub", &hub.url]);
    assert_eq!(output.status.code(), Some(SYNC_INCOMPLETE));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("not enrolled"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    hub.kill();
}

#[tokio::test]
async fn bad_input_to_every_hub_endpoint_is_a_precise_4xx() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let hub = Edge::start_hub(&hub_dir);
    let client = cairn_http::tls::builder().build().unwrap();
    // The hub reads a push's body only for a caller it knows: body errors
    // are for an enrolled node's own token.
    let node = enroll_hangar(&hub_dir);
    let post_as = |token: Option<String>, body: Vec<u8>| {
        let client = client.clone();
        let url = format!("{}/v1/push", hub.url);
        async move {
            let mut request = client
                .post(url)
                .header("content-type", "application/json")
                .body(body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let post = |body: Vec<u8>| post_as(Some(token_at("hangar-7", "node", now_s(), &node)), body);
    let rule = |body: &serde_json::Value| {
        let violation = &body["error"]["violations"][0];
        (
            violation["field"].as_str().unwrap().to_string(),
            violation["rule"].as_str().unwrap().to_string(),
        )
    };
    let (status, body) = post(b"{\"node\":".to_vec()).await;
    assert_eq!((status, rule(&body)), (400, ("body".into(), "json".into())));
    let (status, body) = post(b"[1]".to_vec()).await;
    assert_eq!((status, rule(&body)), (422, ("body".into(), "type".into())));
    let (status, body) = post(serde_json::json!({"node": 7, "stream": "s", "ops": ["AA=="], "checkpoint": {"seq": 1, "head": "00", "signature": "00"}}).to_string().into_bytes()).await;
    assert_eq!(
        (status, rule(&body)),
        (422, ("node".into(), "required".into()))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checkpoint.head"),
        "{body}"
    );
    let too_many: Vec<&str> = vec!["AA=="; cairn_hub_sqlite::PUSH_OPS_MAX + 1];
    let (status, body) = post(serde_json::json!({"node": "n", "stream": "s", "ops": too_many, "checkpoint": {"seq": 1, "head": "0".repeat(64), "signature": "0".repeat(128)}}).to_string().into_bytes()).await;
    assert_eq!(
        (status, rule(&body)),
        (422, ("ops".into(), "max_ops".into()))
    );
    let push_as = |node: &str| {
        serde_json::json!({"node": node, "stream": "standard", "ops": ["AA=="], "checkpoint": {"seq": 1, "head": "0".repeat(64), "signature": "0".repeat(128)}}).to_string()
    };
    let (status, body) = post_as(None, push_as("ghost").into_bytes()).await;
    assert_eq!(
        (status, rule(&body)),
        (401, ("authorization".into(), "required".into()))
    );
    // Without a token, even a malformed body is refused for the caller,
    // not parsed.
    let (status, body) = post_as(None, b"{\"node\":".to_vec()).await;
    assert_eq!(
        (status, rule(&body)),
        (401, ("authorization".into(), "required".into()))
    );
    // Tokens: a node's own token used to push as another node, an expired
    // token, a forged one, and one whose subject was never enrolled.
    let now = now_s();
    let token = |sub: &str, iat: u64, signer: &cairn_core::identity::NodeIdentity| {
        token_at(sub, "node", iat, signer)
    };
    let send = |token: String, body: String| {
        let client = client.clone();
        let url = format!("{}/v1/push", hub.url);
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = send(token("hangar-7", now, &node), push_as("pharmacy-1")).await;
    assert_eq!(
        (status, rule(&body)),
        (403, ("node".into(), "identity".into()))
    );
    let (status, body) = send(token("hangar-7", now - 5_000, &node), push_as("hangar-7")).await;
    assert_eq!(
        (status, rule(&body)),
        (401, ("authorization".into(), "token".into()))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    let forger = cairn_core::identity::NodeIdentity::from_seed("hangar-7", [4; 32]);
    let (status, body) = send(token("hangar-7", now, &forger), push_as("hangar-7")).await;
    assert_eq!(
        (status, rule(&body)),
        (401, ("authorization".into(), "token".into()))
    );
    let (status, _) = send(token("ghost", now, &forger), push_as("ghost")).await;
    assert_eq!(status, 401);
    // The real token passes authentication; the junk op itself is quarantined.
    let (status, body) = send(token("hangar-7", now, &node), push_as("hangar-7")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "quarantined");
    // The binary body: broken zstd, zstd around garbage, an unknown coding.
    let binary = |body: Vec<u8>, coding: &'static str| {
        let client = client.clone();
        let url = format!("{}/v1/push", hub.url);
        let token = token_at("hangar-7", "node", now_s(), &node);
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("content-type", cairn_http::hub::BINARY_PUSH)
                .header("content-encoding", coding)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, body) = binary(b"not zstd".to_vec(), "zstd").await;
    assert_eq!((status, rule(&body)), (400, ("body".into(), "zstd".into())));
    let (status, body) = binary(zstd::bulk::compress(b"garbage", 1).unwrap(), "zstd").await;
    assert_eq!(
        (status, rule(&body)),
        (400, ("body".into(), "postcard".into()))
    );
    let (status, body) = binary(b"x".to_vec(), "gzip").await;
    assert_eq!(
        (status, rule(&body)),
        (415, ("content-encoding".into(), "coding".into()))
    );
    let response = client
        .get(format!("{}/v1/log/consistency?from=x&to=1", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let response = client
        .get(format!("{}/v1/log/consistency?from=0&to=99", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    for (query, expected) in [
        ("from=x", 400),
        ("limit=0", 400),
        ("colour=red", 400),
        ("from=0", 401),
    ] {
        let response = client
            .get(format!("{}/v1/pull?{query}", hub.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected, "pull?{query}");
    }
    let response = client
        .get(format!("{}/v1/nope", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let checkpoint = client
        .get(format!("{}/v1/log/checkpoint", hub.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status = json_out(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert!(
        checkpoint.starts_with(&format!("test.hub\n{}\n", status["log_size"])),
        "{checkpoint}"
    );
    assert_eq!(
        (node_leaves(&status), status["quarantined"].clone()),
        (0, serde_json::json!(1)),
        "only the authenticated junk op was kept, in quarantine"
    );
    hub.kill();
}

/// Polls `check` every 50 ms for at most `seconds`; true once it held.
async fn eventually(seconds: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_syncs_in_the_background_and_rides_out_a_hub_outage() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let edge_dir = work.path().join("edge");
    let key = edge_init(&edge_dir, "hangar-7");
    assert!(
        cairn(
            &hub_dir,
            &["hub", "enroll", "hangar-7", "--public-key", &key]
        )
        .status
        .success()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let hub_url = format!("http://{listen}");
    let hub = tokio::task::block_in_place(|| {
        Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
    });
    let edge = tokio::task::block_in_place(|| {
        Edge::start_with(
            &edge_dir,
            &[
                "edge",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--hub",
                &hub_url,
                "--sync-interval-ms",
                "100",
                "--breaker-open-ms",
                "300",
            ],
        )
    });
    let client = cairn_http::tls::builder().build().unwrap();
    let write = |n: usize| {
        let client = client.clone();
        let url = format!("{}/v1/records", edge.url);
        async move {
            let response = client
                .post(url)
                .json(&serde_json::json!({"collection": "maintenance_actions", "data": action(&format!("WO-{n}"))}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), 201);
        }
    };
    let status = || {
        let client = client.clone();
        let url = format!("{}/v1/status", edge.url);
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    for n in 0..20 {
        write(n).await;
    }
    assert!(
        eventually(15, async || status().await["pending_total"] == 0).await,
        "drained while the hub is up: {}",
        status().await
    );
    assert_eq!(status().await["sync"]["online"], true);

    // The hub goes down: writes still succeed, the edge notices it is offline.
    tokio::task::block_in_place(|| hub.kill());
    for n in 20..40 {
        write(n).await;
    }
    assert!(
        eventually(15, async || status().await["sync"]["online"] == false).await,
        "offline noticed: {}",
        status().await
    );
    assert_eq!(status().await["pending_total"], 20);

    // The hub returns on the same address: the backlog drains by itself.
    let hub = tokio::task::block_in_place(|| {
        Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
    });
    assert!(
        eventually(20, async || status().await["pending_total"] == 0).await,
        "drained after the outage: {}",
        status().await
    );
    let hub_status = json_out(&tokio::task::block_in_place(|| {
        cairn(&hub_dir, &["--json", "hub", "status"])
    }));
    assert_eq!(node_leaves(&hub_status), 40);
    assert_eq!(hub_status["quarantined"], 0);
    tokio::task::block_in_place(|| {
        edge.kill();
        hub.kill();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_enroll_with_one_time_tokens_and_then_sync_with_no_flags() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let token_for = |node: &str| {
        let output = cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "enroll",
                node,
                "--scope",
                "pharmacy=main-st",
            ],
        );
        json_out(&output)["token"].as_str().unwrap().to_string()
    };
    let token = token_for("till-z");
    let till = work.path().join("till-z");
    let output = cairn(
        &till,
        &[
            "--json",
            "edge",
            "init",
            "--node",
            "till-z",
            "--scope",
            "pharmacy=main-st",
            "--hub",
            &hub.url,
            "--token",
            &token,
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(json_out(&output)["hub"]["origin"], "test.hub");
    // The token is spent.
    let again = work.path().join("again");
    let output = cairn(
        &again,
        &[
            "--json", "edge", "init", "--node", "till-z", "--hub", &hub.url, "--token", &token,
        ],
    );
    assert_eq!(output.status.code(), Some(SYNC_INCOMPLETE));
    assert!(
        json_out(&output)["error"]["hub"]["message"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    // A token issued for another node.
    let other = token_for("till-y");
    let output = cairn(
        &work.path().join("thief"),
        &[
            "--json", "edge", "init", "--node", "thief", "--hub", &hub.url, "--token", &other,
        ],
    );
    assert_eq!(json_out(&output)["error"]["status"], 403);
    // Writes, then a sync with no flags: the enrolled hub, its key checked.
    let output = cairn(
        &till,
        &[
            "record",
            "add",
            "inventory",
            r#"{"ndc": "00002-1433-80", "quantity": 5}"#,
            "--key",
            "00002-1433-80",
        ],
    );
    assert!(output.status.success());
    let report = json_out(&cairn(&till, &["--json", "sync"]));
    assert_eq!(report["accepted"], 1, "{report}");
    // Bad input to the enrollment endpoint.
    let client = cairn_http::tls::builder().build().unwrap();
    for (body, status, field) in [
        (serde_json::json!({"node": "x"}), 422, "token"),
        (
            serde_json::json!({"node": "x", "token": "t", "public_key": "zz"}),
            422,
            "public_key",
        ),
        (
            serde_json::json!({"node": "x", "token": "nope", "public_key": "11".repeat(32)}),
            401,
            "token",
        ),
    ] {
        let response = client
            .post(format!("{}/v1/enroll", hub.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(
            answer["error"]["violations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["field"] == field),
            "{answer}"
        );
    }
    tokio::task::block_in_place(|| hub.kill());
}

#[test]
fn over_tls_edges_trust_only_the_pinned_hub_certificate() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    let init = json_out(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let pin = init["tls_sha256"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 64);
    let hub = Edge::start_with(
        &hub_dir,
        &["hub", "serve", "--listen", "127.0.0.1:0", "--tls"],
    );
    assert!(hub.url.starts_with("https://"), "{}", hub.url);
    let token_for = |node: &str| {
        let enrolled = json_out(&cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "enroll",
                node,
                "--scope",
                "pharmacy=main-st",
            ],
        ));
        assert_eq!(enrolled["tls_sha256"], pin.as_str(), "{enrolled}");
        enrolled["token"].as_str().unwrap().to_string()
    };
    let init_edge = |node: &str, pin: Option<&str>| {
        let mut args = vec![
            "--json",
            "edge",
            "init",
            "--node",
            node,
            "--scope",
            "pharmacy=main-st",
            "--hub",
            &hub.url,
        ];
        let token = token_for(node);
        args.extend(["--token", &token]);
        if let Some(pin) = pin {
            args.extend(["--hub-cert-sha256", pin]);
        }
        cairn(&work.path().join(node), &args)
    };

    // Pinned: enrollment, a write and a sync all run over TLS.
    let output = init_edge("till-a", Some(&pin));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let till = work.path().join("till-a");
    assert!(
        cairn(
            &till,
            &[
                "record",
                "add",
                "inventory",
                r#"{"ndc": "00002-1433-80", "quantity": 5}"#,
                "--key",
                "00002-1433-80",
            ],
        )
        .status
        .success()
    );
    let report = json_out(&cairn(&till, &["--json", "sync"]));
    assert_eq!(report["accepted"], 1, "{report}");

    // No pin for an https:// hub: refused up front, naming the option.
    let output = init_edge("till-b", None);
    assert_eq!(output.status.code(), Some(3));
    let error = json_out(&output);
    assert_eq!(
        error["error"]["violations"][0]["field"], "hub-cert-sha256",
        "{error}"
    );
    // Another certificate's pin: the handshake fails and nothing enrolls.
    let wrong = "00".repeat(32);
    let output = init_edge("till-c", Some(&wrong));
    assert_ne!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("unreachable"), "{text}");
    let sync = cairn(&till, &["--json", "sync", "--hub-cert-sha256", &wrong]);
    assert_eq!(sync.status.code(), Some(SYNC_INCOMPLETE));
    // A malformed pin names the field and the rule.
    let sync = cairn(&till, &["--json", "sync", "--hub-cert-sha256", "abc"]);
    assert_eq!(sync.status.code(), Some(3));
    assert_eq!(json_out(&sync)["error"]["violations"][0]["rule"], "format");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_status_takes_a_staff_token_the_hub_issues() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, node, hub) = hub_with_node(work.path());
    let issue = |role: &str| {
        cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "token",
                "--subject",
                "alice",
                "--role",
                role,
            ],
        )
    };
    let auditor = json_out(&issue("auditor"))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let node_token = token_at("hangar-7", "node", now_s(), &node);
    // A staff role signed by a node's key instead of the hub's.
    let forged = token_at("alice", "admin", now_s(), &node);
    let client = cairn_http::tls::builder().build().unwrap();
    let status = |token: Option<String>| {
        let request = client.get(format!("{}/v1/status", hub.url));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let code = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (code, body)
        }
    };
    let (code, body) = status(Some(auditor)).await;
    assert_eq!(code, 200, "{body}");
    // The one enrollment is the hub's own first op, logged like any other.
    assert_eq!(body["log_size"], 1, "{body}");
    assert_eq!(body["streams"]["hub:audit"][0], 1, "{body}");
    let audit = json_out(&cairn(&hub_dir, &["--json", "hub", "audit"]));
    assert_eq!(audit["ops"][0]["record"]["action"], "enroll", "{audit}");
    assert_eq!(audit["ops"][0]["record"]["node"], "hangar-7", "{audit}");
    let (code, body) = status(None).await;
    assert_eq!(
        (code, body["error"]["violations"][0]["rule"].as_str()),
        (401, Some("required"))
    );
    let (code, body) = status(Some(node_token)).await;
    assert_eq!(
        (code, body["error"]["violations"][0]["rule"].as_str()),
        (403, Some("role"))
    );
    let (code, _) = status(Some(forged)).await;
    assert_eq!(code, 401);
    // The hub issues no node tokens, and names the field and the rule.
    let refused = issue("node");
    assert_eq!(refused.status.code(), Some(3));
    assert_eq!(
        json_out(&refused)["error"]["violations"][0]["field"],
        "token"
    );
    let too_long = cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "token",
            "--subject",
            "alice",
            "--role",
            "admin",
            "--minutes",
            "60",
        ],
    );
    assert_eq!(too_long.status.code(), Some(3));
}

/// An equivocation holds the stream until an operator resolves it: over
/// HTTP with a staff token (operator or admin) or with `cairn hub resolve`.
/// The hub keeps its version, both diverging versions stay quarantined, the
/// act is an op of the hub's own stream, and the node's next ops that
/// extend the hub's head are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_resolves_an_equivocation_and_the_stream_moves_on() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hub_key, edge, backup) = edge_with_backup(work.path());
    add(&edge, 2);
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    let sync_now = |dir: &Path| tokio::task::block_in_place(|| sync(dir, &hub, &hub_key));
    assert_eq!(sync_now(&edge).0, 0);
    // The restored backup rewrites seq 4: the stream is held, and the
    // node's own next op waits behind it.
    add(&backup, 1);
    assert_eq!(sync_now(&backup).0, SYNC_INCOMPLETE);
    add(&edge, 1);
    let (code, report) = sync_now(&edge);
    assert_eq!(code, SYNC_INCOMPLETE, "{report}");

    let issue = |role: &str| {
        json_out(&cairn(
            &hub_dir,
            &[
                "--json",
                "hub",
                "token",
                "--subject",
                "olga",
                "--role",
                role,
            ],
        ))["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let client = cairn_http::tls::builder().build().unwrap();
    let resolve = |token: Option<String>, body: serde_json::Value| {
        let request = client.post(format!("{}/v1/resolve", hub.url)).json(&body);
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.unwrap();
            let code = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            (code, body)
        }
    };
    let held = serde_json::json!({"node": "hangar-7", "stream": "standard", "reason": "restored from an old backup; the hub's copy is the record"});
    let rule = |answer: &(u16, serde_json::Value)| {
        (
            answer.0,
            answer.1["error"]["violations"][0]["field"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            answer.1["error"]["violations"][0]["rule"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    // Who may not, and bad bodies: nothing changes.
    assert_eq!(
        rule(&resolve(None, held.clone()).await),
        (401, "authorization".into(), "required".into())
    );
    assert_eq!(
        rule(&resolve(Some(issue("auditor")), held.clone()).await),
        (403, "authorization".into(), "role".into())
    );
    let operator = issue("operator");
    for (body, expected) in [
        (
            serde_json::json!({"node": "hangar-7", "stream": "standard"}),
            (422, "reason", "required"),
        ),
        (
            serde_json::json!({"node": "hangar-7", "stream": "standard", "reason": " "}),
            (422, "reason", "length"),
        ),
        (
            serde_json::json!({"node": "hangar-7", "stream": "nope", "reason": "x"}),
            (404, "stream", "exists"),
        ),
        (
            serde_json::json!({"node": 7, "stream": "standard", "reason": "x"}),
            (422, "node", "required"),
        ),
        (
            serde_json::json!({"node": "hangar-7", "stream": "standard", "reason": "x", "seq": 4}),
            (422, "seq", "unknown_field"),
        ),
    ] {
        let (code, field, rule_name) = expected;
        assert_eq!(
            rule(&resolve(Some(operator.clone()), body.clone()).await),
            (code, field.to_string(), rule_name.to_string()),
            "{body}"
        );
    }
    let malformed = client
        .post(format!("{}/v1/resolve", hub.url))
        .bearer_auth(&operator)
        .header("content-type", "application/json")
        .body("{\"node\":")
        .send()
        .await
        .unwrap();
    let code = malformed.status().as_u16();
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(rule(&(code, body)), (400, "body".into(), "json".into()));
    let status = json_out(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(
        status["streams"]["hangar-7:standard"],
        serde_json::json!([5, true])
    );

    let (code, resolution) = resolve(Some(operator.clone()), held.clone()).await;
    assert_eq!(code, 200, "{resolution}");
    assert_eq!(resolution["kept_seq"], 5);
    assert_eq!(resolution["by"], "olga");
    assert!(
        resolution["quarantined"].as_u64().unwrap() >= 2,
        "{resolution}"
    );
    assert_eq!(
        rule(&resolve(Some(operator), held.clone()).await),
        (409, "stream".into(), "held".into())
    );
    let status = json_out(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(
        status["streams"]["hangar-7:standard"],
        serde_json::json!([5, false])
    );
    assert!(
        status["alerts"].to_string().contains("released by olga"),
        "{status}"
    );
    let audit = json_out(&cairn(&hub_dir, &["--json", "hub", "audit"]));
    let acts = audit["ops"].as_array().unwrap();
    let last = &acts.last().unwrap()["record"];
    assert_eq!(last["action"], "resolve", "{audit}");
    assert_eq!(last["kept_seq"], 5);

    // The node's waiting op extends the hub's head: accepted now.
    let (code, report) = sync_now(&edge);
    assert_eq!(
        (code, report["accepted"].clone()),
        (0, serde_json::json!(1)),
        "{report}"
    );

    // The backup still rewrites seq 4: held again, and resolved from the CLI.
    assert_eq!(sync_now(&backup).0, SYNC_INCOMPLETE);
    let output = cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "resolve",
            "hangar-7",
            "standard",
            "--reason",
            "the backup node is being re-initialized",
            "--by",
            "olga",
        ],
    );
    assert_eq!(
        json_out(&output)["kept_seq"],
        6,
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let output = cairn(
        &hub_dir,
        &[
            "--json", "hub", "resolve", "hangar-7", "standard", "--reason", "again",
        ],
    );
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(json_out(&output)["error"]["violations"][0]["rule"], "held");
    hub.kill();
}

/// A node keeps two pushes of a stream in flight; when the second reaches
/// the hub first, the hub holds it until the first is in and applies both
/// in seq order. A push whose predecessor never comes is refused after a
/// while, whole, as a 409 naming the seq to push from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_that_arrive_out_of_order_are_applied_in_seq_order() {
    use cairn_core::op::{Action, OpDraft};
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, node, hub) = hub_with_node(work.path());
    let mut head = cairn_core::chain::StreamHead::EMPTY;
    let ops: Vec<Vec<u8>> = (0..9)
        .map(|n| {
            head.append(OpDraft {
                node: "hangar-7".into(),
                stream: "standard".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: 1_700_000_000_000 + n,
                    counter: 0,
                },
                collection: "maintenance_actions".into(),
                action: Action::Append,
                key: String::new(),
                scope: Default::default(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload: format!("{{\"n\":{n}}}").into_bytes(),
            })
            .1
        })
        .collect();
    let body = |from: usize, to: usize| {
        use base64::Engine;
        let last = cairn_core::op::Op::decode(&ops[to - 1]).unwrap();
        let checkpoint = node.sign_checkpoint("standard", last.seq, last.op_hash);
        serde_json::json!({
            "node": "hangar-7",
            "stream": "standard",
            "ops": ops[from..to].iter().map(|op| base64::engine::general_purpose::STANDARD.encode(op)).collect::<Vec<_>>(),
            "checkpoint": {"seq": checkpoint.seq, "head": checkpoint.head.to_hex(), "signature": hex::encode(checkpoint.signature)},
        })
    };
    let token = token_at("hangar-7", "node", now_s(), &node);
    let client = cairn_http::tls::builder().build().unwrap();
    let push = |body: serde_json::Value| {
        let request = client
            .post(format!("{}/v1/push", hub.url))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let code = response.status().as_u16();
            let hub_ms = cairn_http::hub::hub_time_ms(response.headers());
            let answer = response.json::<serde_json::Value>().await.unwrap();
            (code, answer, hub_ms)
        }
    };
    // The second push leaves first; the first follows a moment later.
    let second = tokio::spawn(push(body(3, 6)));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (code, first, first_ms) = push(body(0, 3)).await;
    assert_eq!(code, 200, "{first}");
    let (code, second, second_ms) = second.await.unwrap();
    assert_eq!(code, 200, "{second}");
    // Each answer says how long the hub itself held the push
    // (Server-Timing): the second waited there for the first.
    assert!(first_ms.is_some(), "no Server-Timing on {first}");
    assert!(
        second_ms.is_some_and(|ms| ms >= 50),
        "the parked push's hub time is {second_ms:?}"
    );
    for answer in [&first, &second] {
        assert!(
            answer["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|result| result["status"] == "accepted"),
            "{answer}"
        );
    }
    assert_eq!(second["watermark"], 6);

    // Seqs 7 to 9 never pushed: a push of 8 and 9 waits, then is refused.
    let started = std::time::Instant::now();
    let (code, refused, _) = push(body(7, 9)).await;
    assert_eq!(code, 409, "{refused}");
    let violation = &refused["error"]["violations"][0];
    assert_eq!(violation["field"], "ops[0]");
    assert_eq!(violation["rule"], "contiguous");
    assert!(
        violation["message"]
            .as_str()
            .unwrap()
            .contains("push from seq 7"),
        "{refused}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let status = json_out(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert_eq!(status["streams"]["hangar-7:standard"][0], 6, "{status}");
    assert_eq!(status["quarantined"], 0, "nothing quarantined: {status}");
    hub.kill();
}

/// A node restored from an old backup, which wrote on and equivocated,
/// takes its own ops back from the hub once an operator resolved the
/// equivocation: its diverged write is set aside and appended again after
/// the hub's head, so nothing either copy wrote is lost; the hub accepts it
/// and every chain verifies.
#[test]
fn a_restored_node_takes_its_ops_back_and_loses_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (hub_dir, hub_key, edge, backup) = edge_with_backup(work.path());
    add(&edge, 2);
    let part = |dir: &Path, status: &str| {
        let output = cairn(
            dir,
            &[
                "--json",
                "record",
                "add",
                "parts",
                &serde_json::json!({"part_number": "PN-7", "serial": "SN-1", "status": status})
                    .to_string(),
                "--key",
                "SN-1",
            ],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    part(&edge, "serviceable");
    let hub = Edge::start_hub(&hub_dir);
    assert_eq!(sync(&edge, &hub, &hub_key).0, 0);
    // The machine dies; the node comes back from the backup and writes on,
    // the same part among others.
    part(&backup, "unserviceable");
    let output = cairn(
        &backup,
        &[
            "--json",
            "record",
            "add",
            "maintenance_actions",
            &action("WO-after-restore").to_string(),
        ],
    );
    assert!(output.status.success());
    let (code, _) = sync(&backup, &hub, &hub_key);
    assert_eq!(code, SYNC_INCOMPLETE, "an equivocation");
    let recover = |expected: i32| {
        let output = cairn(
            &backup,
            &[
                "--json",
                "edge",
                "recover",
                "--hub",
                &hub.url,
                "--hub-key",
                &hub_key,
                "--hub-origin",
                "test.hub",
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        json_out(&output)
    };
    // While the stream is held, the node is told to wait for an operator.
    let refused = recover(SYNC_INCOMPLETE);
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cairn hub resolve"),
        "{refused}"
    );
    assert!(
        cairn(
            &hub_dir,
            &[
                "hub",
                "resolve",
                "hangar-7",
                "standard",
                "--reason",
                "restored from backup"
            ]
        )
        .status
        .success()
    );
    // Not beside a running `edge serve`, whose writer holds the heads.
    let serving = Edge::start(&backup);
    let refused = recover(3);
    assert_eq!(
        refused["error"]["violations"][0]["rule"], "not_serving",
        "{refused}"
    );
    serving.kill();
    let recovered = recover(0);
    let stream = &recovered["streams"][0];
    assert_eq!(stream["hub_head"], 6, "{recovered}");
    assert_eq!(
        stream["taken_back"], 3,
        "seqs 4 to 6 come back: {recovered}"
    );
    assert_eq!(
        stream["reappended"],
        serde_json::json!(["SN-1", "hangar-7:standard:8"]),
        "{recovered}"
    );
    // The id the client got for the record written after the restore now
    // names the hub's record at that seq, and says where its own went
    // (issue 9, item 8).
    let got = json_out(&cairn(
        &backup,
        &[
            "--json",
            "record",
            "get",
            "maintenance_actions",
            "hangar-7:standard:5",
        ],
    ));
    assert_eq!(got["moved"][0]["was"], "hangar-7:standard:5", "{got}");
    assert_eq!(got["moved"][0]["now"], "hangar-7:standard:8", "{got}");
    let now = json_out(&cairn(
        &backup,
        &[
            "--json",
            "record",
            "get",
            "maintenance_actions",
            "hangar-7:standard:8",
        ],
    ));
    assert_eq!(now["data"]["work_order"], "WO-AFTER-RESTORE", "{now}");
    // Nothing is lost: the node holds all six ledger records and both edits
    // of the part, and the hub takes the two re-appended ops.
    let listed = json_out(&cairn(
        &backup,
        &["--json", "record", "list", "maintenance_actions"],
    ));
    let orders: Vec<String> = listed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["data"]["work_order"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orders.len(), 6, "{listed}");
    // Both copies' edits of the part are kept: concurrent, so a conflict.
    let got = json_out(&cairn(
        &backup,
        &["--json", "record", "get", "parts", "SN-1"],
    ));
    assert_eq!(
        got["conflicts"]["status"].as_array().map(Vec::len),
        Some(2),
        "{got}"
    );
    assert!(
        orders.contains(&"WO-AFTER-RESTORE".to_string()),
        "{orders:?}"
    );
    let (code, report) = sync(&backup, &hub, &hub_key);
    assert_eq!(
        (code, report["accepted"].clone()),
        (0, serde_json::json!(2)),
        "{report}"
    );
    assert_eq!(
        json_out(&cairn(&backup, &["--json", "verify"]))["intact"],
        true
    );
    assert_eq!(
        cairn(&hub_dir, &["--json", "hub", "verify"]).status.code(),
        Some(0)
    );
    // Done twice, it changes nothing.
    let again = recover(0);
    assert_eq!(
        again["streams"][0]["reappended"],
        serde_json::json!([]),
        "{again}"
    );
    // The endpoint's bad input, each named.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let answers = runtime.block_on(async {
        let client = cairn_http::tls::builder().build().unwrap();
        let mut answers = Vec::new();
        for query in [
            "?stream=standard",
            "",
            "?stream=standard&from=0",
            "?stream=Bad!",
            "?stream=standard&seq=1",
        ] {
            let response = client
                .get(format!("{}/v1/own{query}", hub.url))
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap();
            answers.push((
                code,
                body["error"]["violations"][0]["field"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                body["error"]["violations"][0]["rule"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ));
        }
        answers
    });
    let expected = [
        (401, "authorization", "required"),
        (400, "stream", "required"),
        (400, "from", "range"),
        (400, "stream", "format"),
        (400, "seq", "unknown_parameter"),
    ];
    for (answer, (code, field, rule)) in answers.iter().zip(expected) {
        assert_eq!(answer, &(code, field.to_string(), rule.to_string()));
    }
    hub.kill();
}

#[test]
fn issue_9_3_the_cli_replaces_a_key_only_when_told_and_voids_tokens() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let token = json_out(&cairn(&hub_dir, &["--json", "hub", "enroll", "n"]))["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!token.is_empty());
    let first =
        hex::encode(cairn_core::identity::NodeIdentity::from_seed("n", [1; 32]).public_key());
    let second =
        hex::encode(cairn_core::identity::NodeIdentity::from_seed("n", [2; 32]).public_key());
    let enroll = |key: &str, rekey: bool| {
        let mut args = vec!["--json", "hub", "enroll", "n", "--public-key", key];
        if rekey {
            args.push("--rekey");
        }
        cairn(&hub_dir, &args)
    };
    assert!(enroll(&first, false).status.success());
    let refused = enroll(&second, false);
    assert_eq!(refused.status.code(), Some(3));
    assert!(
        json_out(&refused).to_string().contains("--rekey"),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert_eq!(
        cairn(&hub_dir, &["hub", "enroll", "n"]).status.code(),
        Some(3),
        "no token for an enrolled node without --rekey"
    );
    assert!(enroll(&second, true).status.success());
    assert!(
        cairn(&hub_dir, &["hub", "enroll", "n", "--rekey"])
            .status
            .success()
    );
    let revoked = json_out(&cairn(&hub_dir, &["--json", "hub", "revoke-tokens", "n"]));
    assert_eq!(revoked["tokens_revoked"], 1, "{revoked}");
    let audit =
        String::from_utf8_lossy(&cairn(&hub_dir, &["--json", "hub", "audit"]).stdout).to_string();
    assert!(
        audit.contains("previous_key") && audit.contains("revoke_tokens"),
        "{audit}"
    );
}

#[test]
fn issue_9_23_an_enrolled_node_served_offline_does_not_sync() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let token = json_out(&cairn(
        &hub_dir,
        &["--json", "hub", "enroll", "n", "--scope", "site=x"],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let hub = Edge::start_hub(&hub_dir);
    let node = work.path().join("n");
    let init = cairn(
        &node,
        &[
            "edge", "init", "--node", "n", "--scope", "site=x", "--hub", &hub.url, "--token",
            &token,
        ],
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let edge = Edge::start_with(
        &node,
        &[
            "edge",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--offline",
            "--sync-interval-ms",
            "20",
        ],
    );
    add(&node, 2);
    std::thread::sleep(std::time::Duration::from_millis(1_000));
    let status = json_out(&cairn(&hub_dir, &["--json", "hub", "status"]));
    assert!(status["streams"].get("n:standard").is_none(), "{status}");
    let edge_status = json_out(&cairn(&node, &["--json", "status"]));
    assert_eq!(edge_status["pending_total"], 2, "{edge_status}");
    edge.kill();
}

#[test]
fn issue_9_17_a_newcomer_can_init_retry_enroll_later_and_find_the_key() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let token = json_out(&cairn(
        &hub_dir,
        &["--json", "hub", "enroll", "n1", "--scope", "site=x"],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let hub = Edge::start_hub(&hub_dir);
    // A wrong token: refused, and nothing is left to block the retry.
    let node = work.path().join("n1");
    let refused = cairn(
        &node,
        &[
            "edge", "init", "--node", "n1", "--hub", &hub.url, "--token", "0000",
        ],
    );
    assert_ne!(refused.status.code(), Some(0));
    assert!(!node.join("node.key").exists() && !node.join("cairn.db").exists());
    let init = cairn(
        &node,
        &[
            "--json", "edge", "init", "--node", "n1", "--scope", "site=x", "--hub", &hub.url,
            "--token", &token,
        ],
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stdout)
    );
    // A node made without a hub enrolls later, and its key can be shown.
    let later = work.path().join("later");
    let made = json_out(&cairn(
        &later,
        &["--json", "edge", "init", "--scope", "site=x"],
    ));
    let name = made["node"].as_str().unwrap().to_string();
    assert!(!name.is_empty(), "named after the host: {made}");
    let key = json_out(&cairn(&later, &["--json", "edge", "key"]));
    assert_eq!(key["public_key"], made["public_key"]);
    let token = json_out(&cairn(
        &hub_dir,
        &["--json", "hub", "enroll", &name, "--scope", "site=x"],
    ))["token"]
        .as_str()
        .unwrap()
        .to_string();
    let enrolled = cairn(
        &later,
        &[
            "--json", "edge", "enroll", "--hub", &hub.url, "--token", &token,
        ],
    );
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stdout)
    );
    add(&later, 1);
    assert_eq!(
        cairn(&later, &["sync"]).status.code(),
        Some(0),
        "no flags needed once enrolled"
    );
}
