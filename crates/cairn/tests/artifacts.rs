//! Artifacts (issue 12): the hub publishes versioned blobs, edges whose
//! scopes the manifest covers fetch them in chunks verified one by one,
//! resume after a cut instead of starting over, refuse a chunk damaged in
//! transit and fetch it again, verify the whole blob before it replaces
//! the active version, and roll back. A 2 GiB blob streams through with the
//! fetching edge's memory under 60 MB.

mod common;

use cairn_tools::proxy::{Fault, Proxy};
use common::{Edge, cairn, enrolled_node, ok};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `size` bytes that do not repeat within a chunk, from `seed`.
fn blob(path: &Path, size: usize, seed: u64) {
    use std::io::Write;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state = seed | 1;
    let mut written = 0;
    let mut block = vec![0u8; 1 << 20];
    while written < size {
        for word in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
        }
        let take = block.len().min(size - written);
        file.write_all(&block[..take]).unwrap();
        written += take;
    }
    file.flush().unwrap();
}

fn publish(
    hub_dir: &Path,
    name: &str,
    file: &Path,
    version: &str,
    scope: &str,
    chunk_kib: &str,
) -> Value {
    ok(&cairn(
        hub_dir,
        &[
            "--json",
            "hub",
            "artifact",
            "publish",
            name,
            file.to_str().unwrap(),
            "--version",
            version,
            "--scope",
            scope,
            "--chunk-kib",
            chunk_kib,
        ],
    ))
}

/// Starts `cairn artifact fetch --hub URL --json` on `node`.
fn start_fetch(node: &Path, hub: &str) -> Child {
    Command::new(common::bin())
        .arg("--data")
        .arg(node)
        .args(["--json", "artifact", "fetch", "--hub", hub])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until the proxy carried `bytes`, or the fetch ended.
fn wait_for_bytes(proxy: &Proxy, bytes: u64, fetch: &mut Child) {
    let started = Instant::now();
    while proxy.bytes() < bytes {
        assert!(
            fetch.try_wait().unwrap().is_none(),
            "the fetch ended before {bytes} bytes"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the link stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_crosses_a_cut_shaped_link_verified_and_rolls_back() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hub_dir = dir.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let site = enrolled_node(dir, &hub_dir, "site-1", "building=B1");
    let listen = format!("127.0.0.1:{}", common::free_port());
    let direct = format!("http://{listen}");
    let _hub = tokio::task::block_in_place(|| {
        Edge::start_with(&hub_dir, &["hub", "serve", "--listen", &listen])
    });

    // Version 1 and a model for another building; the node gets only its own.
    let (v1, v2, other) = (
        dir.join("v1.bin"),
        dir.join("v2.bin"),
        dir.join("other.bin"),
    );
    blob(&v1, 200_000, 1);
    blob(&v2, 2 << 20, 2);
    blob(&other, 10_000, 3);
    publish(&hub_dir, "vision-model", &v1, "1.0.0", "building=B1", "64");
    publish(&hub_dir, "floor-plan", &other, "1", "building=B2", "64");
    let first = tokio::task::block_in_place(|| {
        ok(&cairn(
            &site,
            &["--json", "artifact", "fetch", "--hub", &direct],
        ))
    });
    assert_eq!(first["fetched"][0]["activated"], true, "{first}");
    let listed = ok(&cairn(&site, &["--json", "artifact", "list"]));
    let names: Vec<&str> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vision-model"], "scopes choose what a node gets");
    let path = ok(&cairn(
        &site,
        &["--json", "artifact", "path", "vision-model"],
    ));
    let active = path["path"].as_str().unwrap().to_string();
    assert_eq!(std::fs::read(&active).unwrap(), std::fs::read(&v1).unwrap());

    refusals(&hub_dir, &site, &direct, (&v1, &other)).await;

    // Version 2 over a 1 Mbit/s, 600 ms link, cut twice mid-file.
    publish(&hub_dir, "vision-model", &v2, "2.0.0", "building=B1", "64");
    let proxy = Proxy::start(listen.parse().unwrap()).await.unwrap();
    proxy.set_fault(Fault::Shape {
        bytes_per_sec: 125_000,
        one_way_ms: 300,
    });
    let via = format!("http://{}", proxy.addr);
    for cut_at in [600_000, 1_300_000] {
        let mut fetch = start_fetch(&site, &via);
        tokio::task::block_in_place(|| wait_for_bytes(&proxy, cut_at, &mut fetch));
        proxy.cut();
        let status = tokio::task::block_in_place(|| fetch.wait().unwrap());
        assert!(
            !status.success(),
            "a cut fetch fails, keeping what it verified"
        );
        proxy.restore();
    }
    let carried_before = proxy.bytes();
    let started = Instant::now();
    let mut fetch = start_fetch(&site, &via);
    // Something on the link damages a chunk of this last attempt.
    tokio::task::block_in_place(|| wait_for_bytes(&proxy, carried_before + 30_000, &mut fetch));
    proxy.corrupt_next_body(1_000);
    let output = tokio::task::block_in_place(|| fetch.wait_with_output().unwrap());
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let last: Value = serde_json::from_slice(&output.stdout).unwrap();
    let fetched = &last["fetched"][0];
    let size = 2u64 << 20;
    let (resumed, received) = (
        fetched["resumed_from"].as_u64().unwrap(),
        fetched["bytes_received"].as_u64().unwrap(),
    );
    assert_eq!(fetched["activated"], true, "{last}");
    assert!(
        resumed >= 1_000_000,
        "the fetch resumed, it did not restart: {last}"
    );
    assert_eq!(
        fetched["chunks_refused"], 1,
        "the damaged chunk was refused: {last}"
    );
    assert_eq!(
        received,
        size - resumed + 65_536,
        "the rest, and the damaged chunk again: {last}"
    );
    let resent = proxy.bytes().saturating_sub(size);
    eprintln!(
        "artifact over the shaped link: {size} bytes; last attempt {received} bytes in {elapsed:.1} s = {:.0} % of 1 Mbit/s; resumed at {resumed}; link carried {} bytes in all ({resent} beyond the blob, requests and headers included)",
        received as f64 / elapsed / 125_000.0 * 100.0,
        proxy.bytes()
    );
    let active = ok(&cairn(
        &site,
        &["--json", "artifact", "get", "vision-model"],
    ));
    assert_eq!(active["active"]["version"], "2.0.0");
    assert_eq!(active["previous"]["version"], "1.0.0");
    let path = active["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), std::fs::read(&v2).unwrap());

    // Rollback returns to version 1, which stays until a newer one.
    let back = ok(&cairn(
        &site,
        &["--json", "artifact", "rollback", "vision-model"],
    ));
    assert_eq!(back["active"]["version"], "1.0.0", "{back}");
    let path = back["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), std::fs::read(&v1).unwrap());
    let again = tokio::task::block_in_place(|| {
        ok(&cairn(
            &site,
            &["--json", "artifact", "fetch", "--hub", &direct],
        ))
    });
    assert_eq!(
        again["fetched"],
        serde_json::json!([]),
        "a rolled-back version is not fetched again"
    );
}

/// What the hub and the CLI refuse, naming field and rule: a blob the
/// node's grants do not cover, a chunk past the end, no token, a malformed
/// hash; a version published again with other bytes, a bad version.
async fn refusals(hub_dir: &Path, site: &Path, hub: &str, (v1, other): (&Path, &Path)) {
    let sha = |path: &Path| cairn_core::hash::Hash::of(&std::fs::read(path).unwrap()).to_hex();
    let key = std::fs::read_to_string(site.join("node.key")).unwrap();
    let node = cairn_core::identity::NodeIdentity::from_key_file(&key).unwrap();
    let token = common::token_at("site-1", "node", common::now_s(), &node);
    let client = cairn_http::tls::client(hub, None, None).unwrap();
    let cases = [
        (
            format!("/v1/artifacts/{}/chunks", sha(other)),
            Some(&token),
            404,
            ("sha256", "unknown"),
        ),
        (
            format!("/v1/artifacts/{}/chunks/999", sha(v1)),
            Some(&token),
            400,
            ("index", "range"),
        ),
        (
            format!("/v1/artifacts/{}/chunks", sha(v1)),
            None,
            401,
            ("authorization", "required"),
        ),
        (
            "/v1/artifacts/beef/chunks".to_string(),
            Some(&token),
            400,
            ("sha256", "format"),
        ),
    ];
    for (path, token, status, (field, rule)) in cases {
        let mut request = client.get(format!("{hub}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        let violation = &answer["error"]["violations"][0];
        assert_eq!(
            (got, violation["field"].as_str(), violation["rule"].as_str()),
            (status, Some(field), Some(rule)),
            "{path}: {answer}"
        );
    }
    for (version, file, field, rule) in [
        ("1.0.0", other, "version", "unique"),
        ("two words", v1, "version", "format"),
    ] {
        let output = tokio::task::block_in_place(|| {
            cairn(
                hub_dir,
                &[
                    "--json",
                    "hub",
                    "artifact",
                    "publish",
                    "vision-model",
                    file.to_str().unwrap(),
                    "--version",
                    version,
                ],
            )
        });
        assert!(!output.status.success());
        let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
        let violation = &answer["error"]["violations"][0];
        assert_eq!(
            (violation["field"].as_str(), violation["rule"].as_str()),
            (Some(field), Some(rule)),
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_artifact_streams_with_the_edge_under_60_mb() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hub_dir = dir.join("hub");
    ok(&cairn(
        &hub_dir,
        &["--json", "hub", "init", "--origin", "test.hub"],
    ));
    let site = enrolled_node(dir, &hub_dir, "site-1", "building=B1");
    let file = dir.join("big.bin");
    tokio::task::block_in_place(|| blob(&file, 2 << 30, 7));
    tokio::task::block_in_place(|| {
        publish(&hub_dir, "map-tiles", &file, "1", "building=B1", "1024")
    });
    let hub = tokio::task::block_in_place(|| Edge::start_hub(&hub_dir));
    std::fs::remove_file(&file).unwrap();
    let started = Instant::now();
    let fetched = tokio::task::block_in_place(|| {
        ok(&cairn(
            &site,
            &["--json", "artifact", "fetch", "--hub", &hub.url],
        ))
    });
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(fetched["fetched"][0]["activated"], true, "{fetched}");
    let rss = fetched["peak_rss_bytes"].as_u64().unwrap();
    eprintln!(
        "2 GiB artifact over loopback: {seconds:.1} s, edge peak RSS {} MB",
        rss >> 20
    );
    assert!(rss < 60 << 20, "the edge held {rss} bytes at its peak");
    let path = ok(&cairn(&site, &["--json", "artifact", "path", "map-tiles"]));
    let size = std::fs::metadata(path["path"].as_str().unwrap())
        .unwrap()
        .len();
    assert_eq!(size, 2 << 30);
}
