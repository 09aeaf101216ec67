//! The peer figure of `cairn bench push`: PouchDB replicating the same
//! records into pouchdb-server, measured in the same run (SPEC section 9).
//!
//! The benchmark installs `pouchdb-server` and `pouchdb` from npm into a
//! cache directory (once), starts pouchdb-server on its default LevelDOWN
//! storage in the scratch directory, loads the records into an in-memory
//! PouchDB in a Node.js process and times `PouchDB.replicate` into the
//! server, once per batch size. The replication goes through Cairn's TCP
//! proxy, which counts the bytes on the wire.

use anyhow::{Context, bail};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// npm packages the peer needs, pinned by major version.
const PACKAGES: [&str; 3] = ["pouchdb-server@4", "pouchdb@9", "pouchdb-adapter-memory@9"];

/// The Node.js side: load the records, replicate them, print the timing.
const SCRIPT: &str = r#"// Written by `cairn bench push`: replicates records into pouchdb-server.
const PouchDB = require('pouchdb');
PouchDB.plugin(require('pouchdb-adapter-memory'));
const fs = require('fs');
const [, , remote, recordsFile, batchSize] = process.argv;
(async () => {
  const docs = fs.readFileSync(recordsFile, 'utf8').trim().split('\n')
    .map((line, n) => Object.assign({ _id: 'r' + String(n).padStart(9, '0') }, JSON.parse(line)));
  const local = new PouchDB('local', { adapter: 'memory' });
  for (let i = 0; i < docs.length; i += 1000) await local.bulkDocs(docs.slice(i, i + 1000));
  const started = process.hrtime.bigint();
  const result = await PouchDB.replicate(local, remote, { batch_size: Number(batchSize) });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(JSON.stringify({ docs: result.docs_written, seconds, ok: result.ok }));
})().catch((error) => { console.error(String(error)); process.exit(1); });
"#;

/// One replication run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeerRun {
    /// PouchDB's `batch_size`.
    pub batch_size: usize,
    /// Documents written to the server.
    pub docs: u64,
    /// Seconds `replicate` took.
    pub seconds: f64,
    /// Documents per second.
    pub docs_per_sec: f64,
    /// Bytes on the wire per document, both directions.
    pub bytes_per_doc: f64,
}

/// Where the npm packages live: `$CAIRN_POUCHDB_DIR`, else
/// `~/.cache/cairn-pouchdb`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CAIRN_POUCHDB_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/cairn-pouchdb")
}

/// Installs the packages into `dir` unless they are there.
fn install(dir: &Path) -> anyhow::Result<()> {
    if dir
        .join("node_modules/pouchdb-server/package.json")
        .exists()
        && dir
            .join("node_modules/pouchdb-adapter-memory/package.json")
            .exists()
    {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    eprintln!(
        "bench: installing {} with npm into {}",
        PACKAGES.join(" "),
        dir.display()
    );
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .args(PACKAGES)
        .current_dir(dir)
        .output()
        .context("npm is not installed (the PouchDB peer needs Node.js and npm)")?;
    if !output.status.success() {
        bail!(
            "npm install failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// A running pouchdb-server, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts pouchdb-server with its data in `data` and waits until it answers.
async fn start_server(modules: &Path, data: &Path) -> anyhow::Result<Server> {
    std::fs::create_dir_all(data)?;
    let port = free_port()?;
    let child = Command::new("node")
        .arg(modules.join("node_modules/pouchdb-server/bin/pouchdb-server"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "-n"])
        .arg("--dir")
        .arg(data)
        .arg("--config")
        .arg(data.join("config.json"))
        .current_dir(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start pouchdb-server")?;
    let server = Server { child, port };
    let client = cairn_http::tls::builder().build()?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/")).send().await
            && response.status().is_success()
        {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("pouchdb-server did not answer within 30 s")
}

/// Replicates `records` (JSON, one per line) into a fresh pouchdb-server,
/// once per batch size; `scratch` holds the server's data.
pub async fn measure(
    records: &[Value],
    batch_sizes: &[usize],
    scratch: &Path,
) -> anyhow::Result<Vec<PeerRun>> {
    let modules = cache_dir();
    install(&modules)?;
    let script = modules.join("cairn-replicate.js");
    std::fs::write(&script, SCRIPT)?;
    std::fs::create_dir_all(scratch)?;
    let records_file = scratch.join("records.jsonl");
    let mut lines = String::new();
    for record in records {
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(&records_file, lines)?;
    let server = start_server(&modules, &scratch.join("pouchdb")).await?;
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], server.port));
    let proxy = crate::proxy::Proxy::start(target).await?;
    let mut runs = Vec::new();
    for &batch_size in batch_sizes {
        eprintln!(
            "bench: PouchDB replicating {} records into pouchdb-server, batch_size {batch_size}",
            records.len()
        );
        let before = proxy.bytes();
        let remote = format!("http://{}/bench-{batch_size}", proxy.addr);
        let mut command = Command::new("node");
        command
            .arg(&script)
            .arg(&remote)
            .arg(&records_file)
            .arg(batch_size.to_string());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await?
            .context("cannot run node")?;
        if !output.status.success() {
            bail!(
                "PouchDB replication failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let answer: Value = serde_json::from_slice(&output.stdout)
            .context("the replication script printed no result")?;
        let docs = answer["docs"].as_u64().unwrap_or(0);
        let seconds = answer["seconds"].as_f64().unwrap_or(0.0).max(1e-9);
        anyhow::ensure!(
            docs == records.len() as u64,
            "PouchDB wrote {docs} of {} records",
            records.len()
        );
        runs.push(PeerRun {
            batch_size,
            docs,
            seconds,
            docs_per_sec: docs as f64 / seconds,
            bytes_per_doc: (proxy.bytes() - before) as f64 / docs.max(1) as f64,
        });
    }
    drop(server);
    Ok(runs)
}
