//! Hostile clients against real servers on 127.0.0.1 (issue 9, item 4):
//! slow headers, partial bodies that stop arriving, unauthenticated bodies
//! pushed at the hub. Servers must keep their memory bounded and close
//! such connections; a hub reads no body for a caller it does not know.

mod common;

use common::{Edge, init_node};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Resident memory of a process, bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// What a hostile connection saw.
#[derive(Debug, Default)]
struct Outcome {
    /// The status line the server answered, if any.
    status: Option<String>,
    /// When the server closed the connection, from the start.
    closed_after: Option<Duration>,
}

/// Opens a connection, sends `head`, then `body_bytes` of body in 64 KiB
/// writes (stopping quietly when the server stops reading), then waits up
/// to `wait` for the server's answer and its closing of the connection.
async fn hostile(address: String, head: String, body_bytes: usize, wait: Duration) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let Ok(mut stream) = tokio::net::TcpStream::connect(&address).await else {
        return outcome;
    };
    if stream.write_all(head.as_bytes()).await.is_err() {
        outcome.closed_after = Some(started.elapsed());
        return outcome;
    }
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0;
    while sent < body_bytes {
        let write = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&chunk));
        match write.await {
            Ok(Ok(())) => sent += chunk.len(),
            _ => break,
        }
    }
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                outcome.closed_after = Some(started.elapsed());
                break;
            }
            Ok(Ok(read)) => answer.extend_from_slice(&buffer[..read]),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&answer);
    outcome.status = text.lines().next().map(str::to_string);
    outcome
}

fn push_head(content_length: usize, token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |token| {
        format!("authorization: Bearer {token}\r\n")
    });
    format!(
        "POST /v1/push HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: {content_length}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_9_4_the_hub_reads_no_stranger_s_body_and_times_out_slow_clients() {
    let work = tempfile::tempdir().unwrap();
    let hub_dir = work.path().join("hub");
    assert!(
        common::cairn(&hub_dir, &["hub", "init", "--origin", "test.hub"])
            .status
            .success()
    );
    let node = cairn_core::identity::NodeIdentity::from_seed("hangar-7", [3; 32]);
    let key = hex::encode(node.public_key());
    assert!(
        common::cairn(
            &hub_dir,
            &["hub", "enroll", "hangar-7", "--public-key", &key]
        )
        .status
        .success()
    );
    let hub = tokio::task::block_in_place(|| {
        Edge::start_with(
            &hub_dir,
            &[
                "hub",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--read-timeout-ms",
                "1500",
            ],
        )
    });
    let pid = hub.child.id();
    let address = address(&hub.url);
    let before = rss_bytes(pid);

    // 200 strangers each start a 7 MB push and send 1 MB of it.
    let strangers: Vec<_> = (0..200)
        .map(|_| {
            tokio::spawn(hostile(
                address.clone(),
                push_head(7_000_000, None),
                1024 * 1024,
                Duration::from_secs(10),
            ))
        })
        .collect();
    let mut peak = before;
    let mut outcomes = Vec::new();
    for stranger in strangers {
        peak = peak.max(rss_bytes(pid));
        outcomes.push(stranger.await.unwrap());
    }
    let answered_401 = outcomes
        .iter()
        .filter(|outcome| {
            outcome
                .status
                .as_deref()
                .is_some_and(|line| line.contains(" 401 "))
        })
        .count();
    let closed = outcomes
        .iter()
        .filter(|outcome| outcome.closed_after.is_some())
        .count();
    let after = rss_bytes(pid);
    println!(
        "hub RSS before {} MB, peak {} MB, after {} MB; {answered_401}/200 answered 401, {closed}/200 closed",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert_eq!(closed, 200, "every stranger's connection is closed");
    assert!(answered_401 >= 190, "{answered_401} of 200 saw the 401");
    assert!(
        peak < before + 64 * 1024 * 1024,
        "strangers' bodies are never held: {} MB to {} MB",
        before >> 20,
        peak >> 20
    );

    // Slow headers, and an enrolled node's body that stops arriving: both
    // are closed after the read timeout (the body with a 408).
    let token = common::token_at("hangar-7", "node", common::now_s(), &node);
    let slow_head = tokio::spawn(hostile(
        address.clone(),
        "POST /v1/push HTTP/1.1\r\nhost: x\r\n".into(),
        0,
        Duration::from_secs(10),
    ));
    let stalled = tokio::spawn(hostile(
        address.clone(),
        push_head(7_000_000, Some(&token)),
        256 * 1024,
        Duration::from_secs(10),
    ));
    let (slow_head, stalled) = (slow_head.await.unwrap(), stalled.await.unwrap());
    println!("slow header: {slow_head:?}; stalled body: {stalled:?}");
    let closed_in = |outcome: &Outcome| {
        outcome
            .closed_after
            .is_some_and(|after| after < Duration::from_secs(6))
    };
    assert!(closed_in(&slow_head), "{slow_head:?}");
    assert!(closed_in(&stalled), "{stalled:?}");
    assert!(
        stalled
            .status
            .as_deref()
            .is_some_and(|line| line.contains(" 408 ")),
        "{stalled:?}"
    );
    // The hub still answers.
    let health = cairn_http::tls::builder()
        .build()
        .unwrap()
        .get(format!("{}/v1/health", hub.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_9_4_the_edge_holds_a_bounded_budget_of_partial_bodies() {
    let dir = tempfile::tempdir().unwrap();
    init_node(dir.path(), "hangar-7");
    let edge = tokio::task::block_in_place(|| {
        Edge::start_with(
            dir.path(),
            &[
                "edge",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--read-timeout-ms",
                "1500",
            ],
        )
    });
    let pid = edge.child.id();
    let address = address(&edge.url);
    let before = rss_bytes(pid);
    let head = "POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 7000000\r\n\r\n";
    let clients: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(hostile(
                address.clone(),
                head.to_string(),
                2 * 1024 * 1024,
                Duration::from_secs(15),
            ))
        })
        .collect();
    let mut peak = before;
    let mut outcomes = Vec::new();
    for client in clients {
        peak = peak.max(rss_bytes(pid));
        outcomes.push(client.await.unwrap());
    }
    let after = rss_bytes(pid);
    let statuses: std::collections::BTreeMap<String, usize> =
        outcomes
            .iter()
            .fold(Default::default(), |mut counts, outcome| {
                let status = outcome
                    .status
                    .as_deref()
                    .and_then(|line| line.split_whitespace().nth(1))
                    .unwrap_or("none")
                    .to_string();
                *counts.entry(status).or_default() += 1;
                counts
            });
    println!(
        "edge RSS before {} MB, peak {} MB, after {} MB; answers {statuses:?}",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(
        outcomes
            .iter()
            .all(|outcome| outcome.closed_after.is_some()),
        "every stalled connection is closed: {statuses:?}"
    );
    assert!(
        peak < before + 128 * 1024 * 1024,
        "partial bodies held within the budget: {} MB to {} MB",
        before >> 20,
        peak >> 20
    );
    assert_eq!(
        statuses.get("408").copied().unwrap_or(0) + statuses.get("503").copied().unwrap_or(0),
        100,
        "{statuses:?}"
    );
    // The edge still takes writes, and stored none of the above.
    let client = cairn_http::tls::builder().build().unwrap();
    let response = client
        .post(format!("{}/v1/records", edge.url))
        .json(&serde_json::json!({"collection": "maintenance_actions", "data": common::action("WO-1")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let status: serde_json::Value = client
        .get(format!("{}/v1/status", edge.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["pending_total"], 1);
}
