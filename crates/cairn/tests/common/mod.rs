//! Helpers shared by the binary's tests: run `cairn`, start a real edge
//! process on 127.0.0.1 and talk HTTP to it.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the built `cairn` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

/// Runs `cairn --data DIR args...`. With `CAIRN_TEST_HUB=postgres`, a
/// `hub init` makes its hub on a fresh PostgreSQL database of the server
/// `CAIRN_PG_URL` names, so the same tests run the hub on PostgreSQL (every
/// later command finds the database through the hub's directory).
pub fn cairn(dir: &Path, args: &[&str]) -> Output {
    let database = hub_database(args);
    let mut command = Command::new(bin());
    command.arg("--data").arg(dir).args(args);
    if let Some(url) = &database {
        command.args(["--database", url]);
    }
    command.output().expect("cairn runs")
}

/// A fresh database for a `hub init` when the tests run hubs on PostgreSQL.
fn hub_database(args: &[&str]) -> Option<String> {
    let init = args.windows(2).any(|pair| pair == ["hub", "init"]);
    if !init || args.contains(&"--database") || !hubs_on_postgres() {
        return None;
    }
    Some(new_database())
}

/// True when `CAIRN_TEST_HUB=postgres`: hubs the tests make run on
/// PostgreSQL.
pub fn hubs_on_postgres() -> bool {
    std::env::var("CAIRN_TEST_HUB").is_ok_and(|hub| hub == "postgres")
}

/// True (said on stderr) when the tests run hubs on PostgreSQL and this
/// test works on the SQLite hub's file itself (copies it, edits it with
/// SQL, fills its disk): such a test has nothing to say about PostgreSQL.
pub fn sqlite_file_only(what: &str) -> bool {
    let skip = hubs_on_postgres();
    if skip {
        eprintln!("SQLite only ({what}): skipped with CAIRN_TEST_HUB=postgres");
    }
    skip
}

/// The PostgreSQL server tests may make databases on (`CAIRN_PG_URL`,
/// which `.ci/run` starts), or `None`, said on stderr, when there is none
/// outside CI; under CI (`CI` set) no server is a failure, not a skip.
pub fn postgres_server() -> Option<String> {
    match std::env::var("CAIRN_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CAIRN_PG_URL is not set: .ci/run starts a PostgreSQL server for these tests")
        }
        _ => {
            eprintln!("CAIRN_PG_URL is not set: the PostgreSQL hub tests are skipped");
            None
        }
    }
}

/// A fresh database on the server `CAIRN_PG_URL` names, its URL.
pub fn new_database() -> String {
    let server = std::env::var("CAIRN_PG_URL")
        .expect("CAIRN_PG_URL names the PostgreSQL server (.ci/run starts one)");
    cairn_hub_postgres::create_fresh_database(&server, "cairn_t").expect("a test database")
}

/// Adds `count` maintenance actions on the node in `dir`, work orders
/// `WO-{tag}-{n}` for `n` from `from` (distinct jobs, each its own record).
pub fn add_actions(dir: &Path, tag: &str, from: usize, count: usize) {
    for n in from..from + count {
        ok(&cairn(
            dir,
            &[
                "--json",
                "record",
                "add",
                "maintenance_actions",
                &action(&format!("WO-{tag}-{n}")).to_string(),
            ],
        ));
    }
}

/// Runs `cairn` with bytes on stdin.
pub fn cairn_stdin(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(bin())
        .arg("--data")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cairn runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Stdout parsed as JSON.
pub fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Initializes a node with all packs and default scopes.
pub fn init_node(dir: &Path, node: &str) {
    let output = cairn(
        dir,
        &[
            "edge",
            "init",
            "--node",
            node,
            "--scope",
            "site=hangar-7",
            "--scope",
            "pharmacy=main-st",
            "--scope",
            "building=B12",
        ],
    );
    assert!(
        output.status.success(),
        "init failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A valid maintenance action.
pub fn action(work_order: &str) -> Value {
    json!({
        "work_order": work_order,
        "aircraft_registration": "N123AB",
        "part_serial": "SN-1",
        "technician": "TECH-IA-4412",
        "performed_on": "2026-11-20",
        "certificate_expiry": "2027-11-20",
        "action": "inspection",
    })
}

/// A running `cairn edge serve` or `cairn hub serve` process.
pub struct Edge {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Edge {
    /// Starts the edge API on a free port and waits until it listens.
    pub fn start(dir: &Path) -> Edge {
        Edge::start_with(dir, &["edge", "serve", "--listen", "127.0.0.1:0"])
    }

    /// Starts a hub on a free port and waits until it listens.
    pub fn start_hub(dir: &Path) -> Edge {
        Edge::start_with(dir, &["hub", "serve", "--listen", "127.0.0.1:0"])
    }

    /// Starts `cairn --data DIR args...`, a server that prints its URL first.
    pub fn start_with(dir: &Path, args: &[&str]) -> Edge {
        let mut child = Command::new(bin())
            .arg("--data")
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("edge starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        let started = Instant::now();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "edge took too long to start"
        );
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://") || word.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Edge { child, url }
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stdout as JSON of a command that must succeed.
pub fn ok(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    json_out(output)
}

/// Initializes an edge node under `work` and enrolls its key at the hub in
/// `hub` with the same scope; returns the node's directory.
pub fn enrolled_node(work: &Path, hub: &Path, name: &str, scope: &str) -> PathBuf {
    let dir = work.join(name);
    let key = ok(&cairn(
        &dir,
        &["--json", "edge", "init", "--node", name, "--scope", scope],
    ))["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&cairn(
        hub,
        &[
            "--json",
            "hub",
            "enroll",
            name,
            "--public-key",
            &key,
            "--scope",
            scope,
        ],
    ));
    dir
}

/// A number from the environment variable `name`, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A seed from `name` (to replay a run), else from the clock; printed by the caller.
pub fn seed_from(name: &str) -> u64 {
    env_or(
        name,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    )
}

/// A small seeded generator (xorshift): `next(bound)` is in `0..bound`.
pub fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed | 1;
    move |bound| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound.max(1)
    }
}

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A five-minute token for the hub `test.hub`, issued at `iat`, as `sub`
/// with `role`, signed by `signer` (a node's own key, or a forger's).
pub fn token_at(
    sub: &str,
    role: &str,
    iat: u64,
    signer: &cairn_core::identity::NodeIdentity,
) -> String {
    let claims = cairn_core::token::Claims {
        sub: sub.into(),
        aud: "test.hub".into(),
        role: role.into(),
        iat,
        exp: iat + 300,
    };
    cairn_core::token::sign(&claims, signer)
}

/// POSTs a JSON push body to the hub at `hub_url` with a node's `token`;
/// returns the status and the JSON answer.
pub async fn post_push(
    client: &reqwest::Client,
    hub_url: &str,
    token: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client
        .post(format!("{hub_url}/v1/push"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json::<Value>().await.unwrap())
}

/// A port free on 127.0.0.1 now (for a server that must come back on it).
#[allow(dead_code)] // Not every test binary restarts a server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Registers TECH-IA-4412 (IA certificate until 2030, inspections and
/// repairs) in the registry of the hub at `hub_dir`, by `qm`.
pub fn register_technician(hub_dir: &Path) {
    let fields = json!({"name": "Dana Okafor", "certificate": "IA", "certificate_number": "IA-1",
        "certificate_expiry": "2030-06-30", "authorized_actions": ["inspection", "repair"]});
    ok(&cairn(
        hub_dir,
        &[
            "--json",
            "hub",
            "registry",
            "put",
            "authorized_technicians",
            "TECH-IA-4412",
            "--fields",
            &fields.to_string(),
            "--by",
            "qm",
        ],
    ));
}

/// Hub processes [`cluster`] starts.
pub const HUBS: usize = 3;

/// A hub on a fresh PostgreSQL database, served by [`HUBS`] processes; returns its
/// directory (shared by the processes: key, URL) and the processes.
pub fn cluster(work: &Path) -> (PathBuf, Vec<Edge>) {
    cluster_with(work, |_| ())
}

/// [`cluster`], with `before` run on the hub's directory before the
/// processes start (clients of the hub's directory are read at start).
pub fn cluster_with(work: &Path, before: impl FnOnce(&Path)) -> (PathBuf, Vec<Edge>) {
    let hub_dir = work.join("hub");
    let url = new_database();
    ok(&cairn(
        &hub_dir,
        &[
            "--json",
            "hub",
            "init",
            "--origin",
            "test.hub",
            "--database",
            &url,
        ],
    ));
    before(&hub_dir);
    let hubs = (0..HUBS)
        .map(|_| {
            Edge::start_with(
                &hub_dir,
                &[
                    "hub",
                    "serve",
                    "--listen",
                    "127.0.0.1:0",
                    "--database",
                    &url,
                ],
            )
        })
        .collect();
    (hub_dir, hubs)
}
