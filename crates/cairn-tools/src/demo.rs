//! `cairn demo`: a hub and three edge nodes as real processes on 127.0.0.1,
//! the network cut and restored, and every replica checked.
//!
//! A hangar (MRO), a pharmacy counter and a field technician each run
//! `cairn edge serve` syncing through a proxy to `cairn hub serve`. With the
//! network up they exchange a first record; the proxy then cuts the link and
//! all three write offline, including concurrent edits of the same equipment
//! and concurrent sales of the same stock; the link comes back, the demo
//! waits until every node has pushed everything and pulled what its scopes
//! grant, then verifies every chain, compares the replicas and prints a
//! summary. It exits 0 only if every check held.

use crate::output;
use crate::proxy::Proxy;
use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `cairn demo` options.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo's hub and nodes (created fresh; removed afterwards unless --keep).
    #[arg(long, default_value = "./cairn-demo")]
    pub dir: PathBuf,
    /// Keep the demo's directory (data and logs).
    #[arg(long)]
    pub keep: bool,
    /// Most seconds to wait for the replicas to converge.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// One node of the demo.
struct Node {
    name: &'static str,
    scope: &'static [(&'static str, &'static str)],
}

const NODES: [Node; 3] = [
    Node {
        name: "hangar-7",
        scope: &[("site", "hangar-7"), ("building", "B12")],
    },
    Node {
        name: "pharmacy-1",
        scope: &[("pharmacy", "main-st"), ("building", "B12")],
    },
    Node {
        name: "tech-1",
        scope: &[("pharmacy", "main-st"), ("building", "B12")],
    },
];

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs, json_output: bool) -> anyhow::Result<()> {
    ensure!(
        !args.dir.exists(),
        "{} exists; remove it or pass --dir",
        args.dir.display()
    );
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(demo(args, json_output));
    if !args.keep {
        let _ = std::fs::remove_dir_all(&args.dir);
    }
    result
}

fn cairn(exe: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<Value> {
    let output = Command::new(exe)
        .arg("--data")
        .arg(dir)
        .arg("--json")
        .args(args)
        .output()?;
    ensure!(
        output.status.success(),
        "cairn {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout).unwrap_or(Value::Null))
}

/// The hub's status once its judge has judged every logged op (at most
/// 20 s after the replicas converged).
async fn judged_status(exe: &Path, hub_dir: &Path) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    loop {
        let status = cairn(exe, hub_dir, &["hub", "status"])?;
        if status["states"].get("validated").is_none() {
            return Ok(status);
        }
        ensure!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the hub's judge did not catch up: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Starts a server process and returns it with the URL it printed.
fn start(exe: &Path, dir: &Path, args: &[&str], log: &Path) -> anyhow::Result<(Running, String)> {
    let mut child = Command::new(exe)
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .with_context(|| format!("no URL in {line:?}"))?
        .to_string();
    Ok((Running(child), url))
}

async fn wait_until(
    seconds: u64,
    what: &str,
    mut check: impl AsyncFnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        if check().await? {
            return Ok(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out after {seconds} s waiting until {what}")
}

async fn demo(args: &DemoArgs, json_output: bool) -> anyhow::Result<()> {
    let say = |line: String| {
        if !json_output {
            println!("{line}");
        }
    };
    let exe = std::env::current_exe().context("cannot find the cairn binary")?;
    let hub_dir = args.dir.join("hub");
    let hub_init = cairn(
        &exe,
        &hub_dir,
        &["hub", "init", "--origin", "cairn.demo/hub"],
    )?;
    let hub_key = hub_init["public_key"]
        .as_str()
        .context("hub key")?
        .to_string();
    // The hangar's technician is in the registry only the hub writes, so
    // the hub's rule packs accept the hangar's records.
    let technician = json!({
        "name": "Dana Okafor", "certificate": "IA", "certificate_number": "IA-3309121",
        "certificate_expiry": "2030-06-30", "authorized_actions": ["inspection", "repair"],
    });
    cairn(
        &exe,
        &hub_dir,
        &[
            "hub",
            "registry",
            "put",
            "authorized_technicians",
            "TECH-IA-4412",
            "--fields",
            &technician.to_string(),
            "--by",
            "demo",
        ],
    )?;
    for node in &NODES {
        let dir = args.dir.join(node.name);
        let mut init = vec!["edge", "init", "--node", node.name];
        let labels: Vec<String> = node.scope.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for label in &labels {
            init.extend(["--scope", label.as_str()]);
        }
        let key = cairn(&exe, &dir, &init)?["public_key"]
            .as_str()
            .context("node key")?
            .to_string();
        let mut enroll = vec!["hub", "enroll", node.name, "--public-key", key.as_str()];
        for label in &labels {
            enroll.extend(["--scope", label.as_str()]);
        }
        cairn(&exe, &hub_dir, &enroll)?;
    }
    let (_hub, hub_url) = start(
        &exe,
        &hub_dir,
        &["hub", "serve", "--listen", "127.0.0.1:0"],
        &args.dir.join("hub.log"),
    )?;
    let hub_addr: std::net::SocketAddr = hub_url.trim_start_matches("http://").parse()?;
    let proxy = Proxy::start(hub_addr).await?;
    let via = format!("http://{}", proxy.addr);
    say(format!(
        "hub cairn.demo/hub on {hub_url}; edges reach it through a cuttable link at {via}"
    ));
    let mut edges = Vec::new();
    for node in &NODES {
        let (process, url) = start(
            &exe,
            &args.dir.join(node.name),
            &[
                "edge",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--hub",
                &via,
                "--hub-key",
                &hub_key,
                "--hub-origin",
                "cairn.demo/hub",
                "--sync-interval-ms",
                "200",
                "--breaker-open-ms",
                "1000",
            ],
            &args.dir.join(format!("{}.log", node.name)),
        )?;
        say(format!("edge {} on {url}", node.name));
        edges.push((node.name, process, url));
    }
    let url_of = |name: &str| {
        edges
            .iter()
            .find(|(node, _, _)| *node == name)
            .map(|(_, _, url)| url.clone())
            .expect("a demo node")
    };
    let client = cairn_http::tls::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let write = async |node: &str, body: Value| -> anyhow::Result<()> {
        let response = client
            .post(format!("{}/v1/records", url_of(node)))
            .json(&body)
            .send()
            .await?;
        ensure!(
            response.status().as_u16() == 201,
            "{node}: write refused: {}",
            response.text().await?
        );
        Ok(())
    };
    let get = async |node: &str, path: &str| -> anyhow::Result<Value> {
        Ok(client
            .get(format!("{}{path}", url_of(node)))
            .send()
            .await?
            .json()
            .await?)
    };

    // Online: the first records travel.
    write("hangar-7", json!({"collection": "equipment", "key": "ahu-3", "data": {"building_id": "B12", "name": "Air handler 3", "status": "operational"}})).await?;
    write("pharmacy-1", json!({"collection": "inventory", "key": "00002-1433-80", "data": {"ndc": "00002-1433-80", "quantity": 100, "description": "insulin pens"}})).await?;
    let took = wait_until(
        args.timeout_secs,
        "the technician has the equipment and the stock",
        async || {
            let equipment = get("tech-1", "/v1/records/equipment/ahu-3").await?;
            let stock = get("tech-1", "/v1/records/inventory/00002-1433-80").await?;
            Ok(equipment["fields"]["name"].is_string() && stock["fields"]["quantity"] == 100)
        },
    )
    .await?;
    say(format!(
        "online: the technician received the equipment and the stock in {} ms",
        took.as_millis()
    ));

    // The network goes away; everyone keeps working.
    proxy.cut();
    say("network cut".into());
    for n in 0..5 {
        write("hangar-7", json!({"collection": "maintenance_actions", "data": {
            "work_order": format!("WO-2026-{n}"), "aircraft_registration": "N123AB", "part_serial": format!("SN-{n:04}"),
            "technician": "TECH-IA-4412", "performed_on": "2026-11-20", "certificate_expiry": "2027-11-20", "action": "inspection"}}))
        .await?;
    }
    write(
        "hangar-7",
        json!({"collection": "equipment", "key": "ahu-3", "data": {"status": "down"}}),
    )
    .await?;
    write(
        "tech-1",
        json!({"collection": "equipment", "key": "ahu-3", "data": {"status": "maintenance",
        "location_x": 12.5, "location_y": 3.0, "location_z": 0.0, "location_confidence": 0.9}}),
    )
    .await?;
    write(
        "pharmacy-1",
        json!({"collection": "inventory", "key": "00002-1433-80", "data": {"quantity": -3}}),
    )
    .await?;
    write(
        "tech-1",
        json!({"collection": "inventory", "key": "00002-1433-80", "data": {"quantity": -2}}),
    )
    .await?;
    write("pharmacy-1", json!({"collection": "dispensing", "data": {"ndc": "0002-1433-80", "quantity": 3, "dea_schedule": "II",
        "prescription_id": "RX-1001", "pharmacist_npi": "1234567893", "dispensed_at": "2026-11-22T10:15:00Z"}})).await?;
    wait_until(
        args.timeout_secs,
        "every node notices it is offline",
        async || {
            for node in &NODES {
                if get(node.name, "/v1/status").await?["sync"]["online"] != false {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    let mut pending_offline = Vec::new();
    for node in &NODES {
        pending_offline.push(
            get(node.name, "/v1/status").await?["pending_total"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    say(format!(
        "offline writes accepted: pending ops hangar-7 {}, pharmacy-1 {}, tech-1 {}",
        pending_offline[0], pending_offline[1], pending_offline[2]
    ));

    // The network returns; the replicas converge by themselves.
    proxy.restore();
    say("network restored".into());
    let took = wait_until(
        args.timeout_secs,
        "every node has synced and the replicas agree",
        async || {
            for node in &NODES {
                if get(node.name, "/v1/status").await?["pending_total"] != 0 {
                    return Ok(false);
                }
            }
            let (a, b) = (
                get("hangar-7", "/v1/records/equipment/ahu-3").await?,
                get("tech-1", "/v1/records/equipment/ahu-3").await?,
            );
            let (c, d) = (
                get("pharmacy-1", "/v1/records/inventory/00002-1433-80").await?,
                get("tech-1", "/v1/records/inventory/00002-1433-80").await?,
            );
            Ok(a["version"] == b["version"]
                && a["version"].as_object().is_some_and(|v| v.len() == 2)
                && c["version"] == d["version"]
                && c["fields"]["quantity"] == 95)
        },
    )
    .await?;
    say(format!(
        "converged {} ms after the network returned",
        took.as_millis()
    ));

    // Check every replica and the hub.
    let equipment: Vec<Value> = [
        get("hangar-7", "/v1/records/equipment/ahu-3").await?,
        get("tech-1", "/v1/records/equipment/ahu-3").await?,
    ]
    .into();
    let stock: Vec<Value> = [
        get("pharmacy-1", "/v1/records/inventory/00002-1433-80").await?,
        get("tech-1", "/v1/records/inventory/00002-1433-80").await?,
    ]
    .into();
    ensure!(
        equipment[0]["fields"] == equipment[1]["fields"]
            && equipment[0]["conflicts"] == equipment[1]["conflicts"],
        "equipment differs between replicas"
    );
    ensure!(
        equipment[0]["conflicts"]["status"]
            .as_array()
            .is_some_and(|c| c.len() == 2),
        "the concurrent status edits left no conflict record"
    );
    ensure!(
        stock[0]["fields"] == stock[1]["fields"],
        "stock differs between replicas"
    );
    let hangar_stock = client
        .get(format!(
            "{}/v1/records/inventory/00002-1433-80",
            url_of("hangar-7")
        ))
        .send()
        .await?
        .status();
    ensure!(
        hangar_stock.as_u16() == 404,
        "the hangar is not granted the pharmacy's scope but holds its stock"
    );
    let mut verified = Vec::new();
    for node in &NODES {
        let report = cairn(&exe, &args.dir.join(node.name), &["verify"])?;
        ensure!(
            report["intact"] == true,
            "{}: verification failed",
            node.name
        );
        verified.push(report["streams"].as_array().map_or(0, Vec::len));
    }
    let hub_status = judged_status(&exe, &hub_dir).await?;
    ensure!(
        hub_status["quarantined"] == 0,
        "the hub quarantined ops: {hub_status}"
    );
    ensure!(
        hub_status["states"].get("rejected").is_none(),
        "the hub's rule packs rejected ops: {hub_status}"
    );
    // The auditor's check of the hub's whole log (exits non-zero on a fault).
    let hub_verified = cairn(&exe, &hub_dir, &["hub", "verify"])?;

    if json_output {
        output::json(&json!({
            "ok": true,
            "hub": {"log_size": hub_status["log_size"], "root": hub_status["root"], "quarantined": hub_status["quarantined"], "verify": hub_verified["report"]},
            "equipment": equipment[0]["fields"], "equipment_conflicts": equipment[0]["conflicts"],
            "stock": stock[0]["fields"],
        }));
        return Ok(());
    }
    let mut rows = Vec::new();
    for (index, node) in NODES.iter().enumerate() {
        let status = get(node.name, "/v1/status").await?;
        rows.push(vec![
            node.name.to_string(),
            pending_offline[index].to_string(),
            status["pending_total"].to_string(),
            output::cell(&status["sync"]["breaker"]),
            format!("{} streams intact", verified[index]),
        ]);
    }
    println!(
        "{}",
        output::table(
            &[
                "node",
                "pending while offline",
                "pending now",
                "breaker",
                "verify"
            ],
            rows
        )
    );
    println!(
        "equipment ahu-3 on hangar-7 and tech-1: status {} (concurrent edits kept as a conflict record: {}), location from the most confident fix x={}",
        equipment[0]["fields"]["status"],
        equipment[0]["conflicts"]["status"]
            .as_array()
            .map_or(0, Vec::len),
        equipment[0]["fields"]["location_x"]
    );
    println!(
        "stock 00002-1433-80 on pharmacy-1 and tech-1: 100 - 3 - 2 = {}",
        stock[0]["fields"]["quantity"]
    );
    println!(
        "hub log: {} ops ({} of them the hub's own acts), root {}, nothing quarantined",
        hub_status["log_size"],
        hub_status["streams"]["hub:audit"][0].as_u64().unwrap_or(0),
        output::cell(&hub_status["root"])
    );
    println!(
        "compliance: {} ops persisted by the rule packs, none rejected; open review items: {}",
        hub_status["states"]["persisted"], hub_status["reviews_open"]
    );
    println!(
        "hub verify: {} leaves, {} streams, {} origin checkpoints and {} signed log checkpoints intact",
        hub_verified["report"]["leaves"],
        hub_verified["report"]["streams"],
        hub_verified["report"]["origin_checkpoints"],
        hub_verified["report"]["log_checkpoints"]
    );
    println!("demo OK");
    Ok(())
}
