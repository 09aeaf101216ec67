//! The command line: parsing, dispatch and exit codes.
//!
//! Over 800 lines: on the list of files to cut along their seams
//! (`LONG_TODAY` in `crates/cairn/tests/tidy.rs`, issue 10).

mod write;

use crate::exit;
use anyhow::Context;
use cairn_core::pack::Violation;
use cairn_edge::input;
use cairn_edge::{EdgeStore, InitOptions, ListQuery, Record, WriteError};
use cairn_tools::output;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;

/// Offline-first, tamper-evident sync for regulated field work.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    /// Data directory of the node.
    #[arg(
        long,
        global = true,
        default_value = "./cairn-data",
        env = "CAIRN_DATA"
    )]
    pub data: PathBuf,
    /// Print JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Set up and run an edge node.
    #[command(subcommand)]
    Edge(EdgeCommand),
    /// Write and read records.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Queue depth per stream, oldest pending age, storage use and alerts.
    Status(StatusArgs),
    /// Re-verify every stream end to end; exit 4 at the first broken link.
    Verify,
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the demo on the embedded SQLite default.
    Demo(cairn_tools::demo::DemoArgs),
    /// Run a hub: the verified, Merkle-logged collection point of the fleet.
    #[command(subcommand)]
    Hub(HubCommand),
    /// Push this node's unacknowledged ops to the hub now.
    Sync(SyncArgs),
}

/// `cairn hub ...`
#[derive(Subcommand, Debug)]
pub enum HubCommand {
    /// Create the hub's identity and log.
    Init {
        /// The log's origin line, e.g. `cairn.example/hub-1`.
        #[arg(long)]
        origin: String,
        /// Names the hub's TLS certificate is made for, DNS names or IP
        /// addresses (default: localhost and 127.0.0.1).
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
    },
    /// Register a node's public key and the scopes it is granted.
    Enroll {
        /// The node's name.
        node: String,
        /// Its Ed25519 public key, 64 hex characters (`cairn edge init` prints
        /// it). Without it, a one-time token is printed for `cairn edge init --token`.
        #[arg(long)]
        public_key: Option<String>,
        /// How long a one-time token stays valid, hours.
        #[arg(long, default_value_t = 24)]
        valid_hours: u64,
        /// Granted scope labels, NAME=VALUE.
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// Replace the key of a node that is already enrolled (a lost or
        /// replaced device), or issue a token that may: recorded in the
        /// hub's audit stream with the key it replaces.
        #[arg(long)]
        rekey: bool,
    },
    /// Make every outstanding one-time enrollment token of a node void
    /// (any enrollment of the node does this too).
    RevokeTokens {
        /// The node.
        node: String,
    },
    /// Serve the hub's HTTP API.
    Serve {
        /// Address to listen on (port 0 picks a free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:7979")]
        listen: String,
        /// Serve HTTPS with the hub's certificate (tls.crt, tls.key); edges
        /// pin its fingerprint, which `cairn hub status` prints.
        #[arg(long)]
        tls: bool,
        /// How long a client may take to send a request's headers, or leave
        /// a body or an idle connection stalled, ms.
        #[arg(long, default_value_t = cairn_http::hub::HUB_LIMITS.read_timeout.as_millis() as u64)]
        read_timeout_ms: u64,
    },
    /// Log size and root, streams, quarantine and alerts.
    Status,
    /// Re-verify the whole log: every op's hashes, every stream's chain and
    /// head, every origin checkpoint and its enrolled key, every signed log
    /// checkpoint's root. Exit 4 with the faults when anything is off.
    Verify,
    /// The hub's own record of its administrative acts (enrollments,
    /// revocations): ops of node `hub`, stream `audit`, in its log.
    Audit,
    /// Issue a short-lived token for a person or tool (operator, auditor,
    /// admin), signed with the hub's key: `GET /v1/status` takes one.
    Token {
        /// Who it is for (a name: a-z, 0-9, '.', '_', '-').
        #[arg(long)]
        subject: String,
        /// operator, auditor or admin.
        #[arg(long)]
        role: String,
        /// How long it stays valid, minutes (at most 15).
        #[arg(long, default_value_t = 15)]
        minutes: u64,
    },
    /// Revoke a scope label from a node: it purges what it pulled under it at its next sync.
    Revoke {
        /// The node.
        node: String,
        /// The label to revoke, NAME=VALUE.
        #[arg(long = "scope")]
        scope: String,
    },
    /// Release a stream an equivocation held, keeping the hub's version
    /// (both diverging versions stay in the quarantine). Recorded as an act
    /// of the hub's own stream.
    Resolve {
        /// The node.
        node: String,
        /// Its held stream.
        stream: String,
        /// Why (recorded with the act).
        #[arg(long)]
        reason: String,
        /// Who decides (recorded with the act).
        #[arg(long, default_value = "cli")]
        by: String,
    },
    /// Verify and ingest an offline bundle exactly as pushes would be.
    Import {
        /// The bundle file.
        file: PathBuf,
    },
    /// Write the signed acknowledgements of a node to a file, for its way back.
    ExportAcks {
        /// The node.
        #[arg(long)]
        node: String,
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `cairn sync` options.
#[derive(Args, Debug)]
pub struct SyncArgs {
    /// The hub's base URL, e.g. http://127.0.0.1:7979 (default: the hub this
    /// node enrolled with).
    #[arg(long)]
    pub hub: Option<String>,
    /// Most ops per push (a batch always ends at a signed checkpoint).
    #[arg(long, default_value_t = 1000)]
    pub batch_ops: usize,
    /// How push bodies travel: auto (binary, postcard+zstd, when the hub offers it), json or binary.
    #[arg(long, default_value = "auto", value_parser = encoding)]
    pub encoding: cairn_sync::Encoding,
    /// The hub's public key (hex), to check its log checkpoints' signatures.
    #[arg(long, requires = "hub_origin")]
    pub hub_key: Option<String>,
    /// The hub's log origin (with --hub-key).
    #[arg(long)]
    pub hub_origin: Option<String>,
    /// SHA-256 fingerprint of an https:// hub's certificate (default: the
    /// one remembered at enrollment).
    #[arg(long)]
    pub hub_cert_sha256: Option<String>,
    /// Accept a hub whose log went back (restored from a backup): hold its
    /// log as it is now and push again the ops it lost.
    #[arg(long)]
    pub accept_log_rollback: bool,
}

/// `cairn edge ...`
#[derive(Subcommand, Debug)]
pub enum EdgeCommand {
    /// Create the node's identity, store and active rule packs.
    Init {
        /// The node's name (a-z, 0-9, '.', '_', '-'; default: this
        /// machine's host name, made into one).
        #[arg(long)]
        node: Option<String>,
        /// Rule packs to activate (default: mro, pharmacy, field_service).
        #[arg(long = "pack")]
        packs: Vec<String>,
        /// Default scope labels, NAME=VALUE (e.g. site=hangar-7).
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// Refuse writes once the store uses this many bytes (0: no quota).
        #[arg(long, default_value_t = 0)]
        quota_bytes: u64,
        /// Enroll with this hub right away (with --token).
        #[arg(long, requires = "token")]
        hub: Option<String>,
        /// The one-time token `cairn hub enroll` printed.
        #[arg(long, requires = "hub")]
        token: Option<String>,
        /// SHA-256 fingerprint of the hub's TLS certificate, for an https://
        /// hub (`cairn hub enroll` prints it); remembered with the hub.
        #[arg(long, requires = "hub")]
        hub_cert_sha256: Option<String>,
    },
    /// Serve the localhost HTTP API (and sync with a hub in the background).
    Serve {
        /// Address to listen on (port 0 picks a free port, printed at start).
        #[arg(long, default_value = "127.0.0.1:7878")]
        listen: String,
        /// The hub to sync with, e.g. http://127.0.0.1:7979 (default: the
        /// hub this node enrolled with; a node that never enrolled stays
        /// offline).
        #[arg(long, conflicts_with = "offline")]
        hub: Option<String>,
        /// Do not sync at all, even with the hub this node enrolled with.
        #[arg(long)]
        offline: bool,
        /// The hub's public key (hex), to check its log checkpoints.
        #[arg(long, requires = "hub_origin")]
        hub_key: Option<String>,
        /// The hub's log origin (with --hub-key).
        #[arg(long)]
        hub_origin: Option<String>,
        /// SHA-256 fingerprint of an https:// hub's certificate (default:
        /// the one remembered at enrollment).
        #[arg(long)]
        hub_cert_sha256: Option<String>,
        /// How often to look for new ops when idle, ms.
        #[arg(long, default_value_t = 500)]
        sync_interval_ms: u64,
        /// How long one request to the hub may take, ms.
        #[arg(long, default_value_t = 10_000)]
        sync_timeout_ms: u64,
        /// How push bodies travel: auto (binary, postcard+zstd, when the hub offers it), json or binary.
        #[arg(long, default_value = "auto", value_parser = encoding)]
        encoding: cairn_sync::Encoding,
        /// Consecutive failures that open the circuit breaker.
        #[arg(long, default_value_t = 3)]
        breaker_failures: u32,
        /// How long the breaker stays open before a probe, ms.
        #[arg(long, default_value_t = 5_000)]
        breaker_open_ms: u64,
        /// A push the hub says it spent longer than this with (its
        /// Server-Timing) halves the batch and sends one push at a time, ms.
        #[arg(long, default_value_t = cairn_core::link::LinkConfig::default().hub_busy_ms)]
        hub_busy_ms: u64,
        /// How long a client may take to send a request's headers, or leave
        /// a body or an idle connection stalled, ms.
        #[arg(long, default_value_t = cairn_http::edge::EDGE_LIMITS.read_timeout.as_millis() as u64)]
        read_timeout_ms: u64,
    },
    /// After a restore from an old backup (an equivocation an operator has
    /// resolved): take this node's own ops back from the hub, checked
    /// against its own key, set the diverged ones aside (kept in the store)
    /// and append them again after the hub's head; then sync as usual.
    Recover(SyncArgs),
    /// Print this node's name and public key (for `cairn hub enroll
    /// --public-key`).
    Key,
    /// Change the node's settings (with `edge serve` stopped).
    Config {
        /// Refuse writes once the store uses this many bytes (0: no quota).
        #[arg(long)]
        quota_bytes: Option<u64>,
    },
    /// Enroll this (already initialized) node at a hub with a one-time
    /// token from `cairn hub enroll`.
    Enroll {
        /// The hub's URL, e.g. https://hub.example:7979.
        #[arg(long)]
        hub: String,
        /// The one-time token `cairn hub enroll` printed.
        #[arg(long)]
        token: String,
        /// SHA-256 fingerprint of the hub's TLS certificate, for an https://
        /// hub (`cairn hub enroll` and `cairn hub status` print it).
        #[arg(long)]
        hub_cert_sha256: Option<String>,
    },
    /// Write every unacknowledged op to an offline bundle (for a USB stick).
    Export {
        /// The bundle file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Apply the hub's signed acknowledgements from a file.
    ImportAcks {
        /// The acknowledgement file.
        file: PathBuf,
        /// The hub's public key (hex).
        #[arg(long)]
        hub_key: String,
        /// The hub's log origin.
        #[arg(long)]
        hub_origin: String,
    },
}

/// `cairn record ...`
#[derive(Subcommand, Debug)]
pub enum RecordCommand {
    /// Add a record (ledger) or put an entity or config record.
    Add {
        /// Collection.
        collection: String,
        /// The record as JSON; `-` reads stdin, `@PATH` reads a file.
        record: OsString,
        /// Key of an entity or config record.
        #[arg(long)]
        key: Option<String>,
        /// Scope labels, NAME=VALUE (an entity's default to the ones it has).
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// Let an entity put change the record's scope labels (move it,
        /// e.g. to another building); refused without it.
        #[arg(long = "move")]
        move_scope: bool,
    },
    /// Show one record.
    Get {
        /// Collection.
        collection: String,
        /// Record id (ledger) or key.
        id: String,
    },
    /// List records of a collection.
    List {
        /// Collection.
        collection: String,
        /// Only records with these labels, NAME=VALUE.
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// Resume after this id or key (the `next` of an earlier list).
        #[arg(long)]
        after: Option<String>,
        /// Most records to show (default: all); the last line (or `next`)
        /// says where to resume when more exist.
        #[arg(long)]
        limit: Option<usize>,
        /// Include deleted entities.
        #[arg(long)]
        deleted: bool,
    },
    /// Correct a ledger record with a new record; the original never changes.
    Correct {
        /// Collection.
        collection: String,
        /// Id of the record corrected.
        id: String,
        /// The corrected record as JSON; `-` reads stdin, `@PATH` a file.
        record: OsString,
        /// Why the correction is made.
        #[arg(long)]
        reason: String,
        /// Scope labels, NAME=VALUE.
        #[arg(long = "scope")]
        scope: Vec<String>,
    },
    /// Delete an entity or config record (a tombstone op).
    Delete {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Scope labels, NAME=VALUE (default: the record's own).
        #[arg(long = "scope")]
        scope: Vec<String>,
    },
}

/// `cairn status` options.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Alert when the oldest pending op is older than this, seconds.
    #[arg(long, default_value_t = 120)]
    pub pending_alert_secs: u64,
    /// Alert when storage use passes this share of the quota, percent.
    #[arg(long, default_value_t = 80)]
    pub storage_alert_percent: u64,
}

/// `cairn bench ...`
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Durable writes through the library and the HTTP API, beside fsync and raw SQLite.
    Edge(cairn_tools::bench::EdgeBenchArgs),
    /// Push throughput to a hub process, many nodes reconnecting, and a long drain.
    Push(cairn_tools::bench::PushBenchArgs),
    /// Pushes over an emulated satellite link (1 Mbit/s, 600 ms RTT): link use, bytes per op.
    Link(cairn_tools::bench::LinkBenchArgs),
}

/// A failure with the exit code it maps to.
struct Failure {
    code: i32,
    json: Value,
    text: String,
}

impl Failure {
    pub(super) fn invalid(index: Option<usize>, violations: &[Violation]) -> Failure {
        let list: Vec<Value> = violations
            .iter()
            .map(|violation| {
                let mut entry = json!({"field": violation.field, "rule": violation.rule, "message": violation.message});
                if let Some(index) = index {
                    entry["index"] = json!(index);
                }
                entry
            })
            .collect();
        let lines: Vec<String> = violations
            .iter()
            .map(|violation| format!("  {violation}"))
            .collect();
        Failure {
            code: exit::INVALID,
            json: json!({"error": {"code": "invalid", "violations": list}}),
            text: format!("error: refused\n{}", lines.join("\n")),
        }
    }

    /// A write refused for breaking rules: nothing of it was stored.
    pub(super) fn refused_write(index: Option<usize>, violations: &[Violation]) -> Failure {
        let mut failure = Failure::invalid(index, violations);
        failure.text =
            failure
                .text
                .replacen("error: refused", "error: refused, nothing was stored", 1);
        failure
    }

    fn fault(error: anyhow::Error) -> Failure {
        Failure {
            code: exit::FAULT,
            json: json!({"error": {"code": "fault", "message": format!("{error:#}")}}),
            text: format!("error: {error:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::fault(error)
    }
}

impl From<WriteError> for Failure {
    fn from(error: WriteError) -> Failure {
        match error {
            WriteError::Invalid { violations, .. } => Failure::refused_write(None, &violations),
            WriteError::StorageFull(message) => Failure {
                code: exit::STORAGE_FULL,
                json: json!({"error": {"code": "storage_full", "message": message}}),
                text: format!("error: storage full, nothing was stored: {message}"),
            },
            other => Failure::fault(anyhow::anyhow!(other)),
        }
    }
}

impl From<cairn_edge::StoreError> for Failure {
    fn from(error: cairn_edge::StoreError) -> Failure {
        match error {
            cairn_edge::StoreError::UnknownCollection(name) => Failure::invalid(
                None,
                &[Violation::new(
                    "collection",
                    "unknown",
                    format!("{name:?} is not defined by an active pack"),
                )],
            ),
            other => Failure::fault(anyhow::anyhow!(other)),
        }
    }
}

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let json_output = cli.json;
    match dispatch(cli) {
        Ok(()) => exit::OK,
        Err(failure) => {
            if json_output {
                output::json(&failure.json);
            } else {
                eprintln!("{}", failure.text);
            }
            failure.code
        }
    }
}

fn open(cli: &Cli) -> Result<EdgeStore, Failure> {
    if !cli.data.join("node.key").exists() {
        return Err(Failure {
            code: exit::NOT_FOUND,
            json: json!({"error": {"code": "no_node", "message": format!("{} holds no Cairn node", cli.data.display())}}),
            text: format!(
                "error: {} holds no Cairn node: run `cairn --data {} edge init` (or name another with --data)",
                cli.data.display(),
                cli.data.display()
            ),
        });
    }
    EdgeStore::open(&cli.data)
        .with_context(|| format!("cannot open the node in {}", cli.data.display()))
        .map_err(Failure::from)
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Edge(EdgeCommand::Init {
            node,
            packs,
            scope,
            quota_bytes,
            hub,
            token,
            hub_cert_sha256,
        }) => {
            let pin = parse_pin(hub_cert_sha256)?;
            let default_scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            let packs = if packs.is_empty() {
                cairn_core::pack::BUILTIN_PACKS
                    .iter()
                    .map(|(name, _)| name.to_string())
                    .collect()
            } else {
                packs.clone()
            };
            let node = match node {
                Some(node) => node.clone(),
                None => host_node_name()?,
            };
            if let Some(hub) = hub {
                // A hub that cannot be trusted is refused before anything
                // is created.
                cairn_http::tls::client(hub, pin, None).map_err(pin_failure)?;
            }
            let options = InitOptions {
                node,
                packs: packs.clone(),
                default_scope,
                quota_bytes: *quota_bytes,
            };
            let existed = cli.data.exists();
            EdgeStore::init(&cli.data, &options).map_err(|error| match error {
                cairn_edge::StoreError::Config(message) => {
                    Failure::invalid(None, &[Violation::new("init", "config", message)])
                }
                other => Failure::fault(anyhow::anyhow!(other)),
            })?;
            let store = open(&cli)?;
            if let (Some(hub), Some(token)) = (hub, token) {
                let settings = store.settings();
                match enroll_at_hub(hub, &settings.node, &settings.public_key, token, pin) {
                    Ok(hub_info) => store.set_hub(&hub_info)?,
                    Err(mut failure) => {
                        // Nothing is left behind: the retry starts afresh.
                        drop(store);
                        remove_node(&cli.data, existed);
                        failure
                            .text
                            .push_str("\nnothing was kept: run `cairn edge init` again");
                        return Err(failure);
                    }
                }
                if !cli.json {
                    println!(
                        "enrolled at hub {}",
                        store
                            .hub()?
                            .map_or(String::new(), |hub| hub["origin"].to_string())
                    );
                }
            }
            let settings = store.settings();
            if cli.json {
                output::json(
                    &json!({"node": settings.node, "public_key": hex::encode(settings.public_key), "packs": packs, "data": cli.data, "hub": store.hub()?}),
                );
            } else {
                println!(
                    "initialized node {} in {}",
                    settings.node,
                    cli.data.display()
                );
                println!("public key {}", hex::encode(settings.public_key));
                println!("rule packs: {}", packs.join(", "));
            }
            Ok(())
        }
        Command::Edge(EdgeCommand::Config { quota_bytes }) => {
            let _not_serving = serve_lock(&cli.data)?;
            let store = open(&cli)?;
            if let Some(quota_bytes) = quota_bytes {
                store.set_quota_bytes(*quota_bytes)?;
            }
            let quota = quota_bytes.unwrap_or(store.settings().quota_bytes);
            if cli.json {
                output::json(&json!({"node": store.settings().node, "quota_bytes": quota}));
            } else {
                println!(
                    "quota {}",
                    if quota == 0 {
                        "none".to_string()
                    } else {
                        format!("{quota} bytes ({})", output::bytes(quota))
                    }
                );
            }
            Ok(())
        }
        Command::Edge(EdgeCommand::Enroll {
            hub,
            token,
            hub_cert_sha256,
        }) => {
            let pin = parse_pin(hub_cert_sha256)?;
            let store = open(&cli)?;
            let settings = store.settings();
            let hub_info = enroll_at_hub(hub, &settings.node, &settings.public_key, token, pin)?;
            store.set_hub(&hub_info)?;
            if cli.json {
                output::json(&json!({"node": settings.node, "hub": hub_info}));
            } else {
                println!(
                    "enrolled {} at hub {} ({hub}); a running `cairn edge serve` syncs with it once restarted",
                    settings.node, hub_info["origin"]
                );
            }
            Ok(())
        }
        Command::Edge(EdgeCommand::Recover(args)) => recover(&cli, args),
        Command::Edge(EdgeCommand::Key) => {
            let store = open(&cli)?;
            let settings = store.settings();
            let key = hex::encode(settings.public_key);
            if cli.json {
                output::json(&json!({"node": settings.node, "public_key": key}));
            } else {
                println!("node {}", settings.node);
                println!("public key {key}");
                println!(
                    "on the hub: cairn hub enroll {} --public-key {key} --scope NAME=VALUE",
                    settings.node
                );
            }
            Ok(())
        }
        Command::Edge(EdgeCommand::Export { out }) => {
            let store = open(&cli)?;
            let count = cairn_sync::bundle::export(&store, out)?;
            if cli.json {
                output::json(&json!({"ops": count, "bundle": out}));
            } else {
                println!("exported {count} unacknowledged ops to {}", out.display());
            }
            Ok(())
        }
        Command::Edge(EdgeCommand::ImportAcks {
            file,
            hub_key,
            hub_origin,
        }) => {
            let _not_serving = serve_lock(&cli.data)?;
            let store = open(&cli)?;
            let Some((origin, key)) =
                parse_hub_key(&Some(hub_key.clone()), &Some(hub_origin.clone()))?
            else {
                unreachable!("both given")
            };
            let applied = cairn_sync::bundle::import_acks(&store, file, &origin, &key).map_err(|error| Failure {
                code: exit::SYNC_INCOMPLETE,
                json: json!({"error": {"code": "acks_refused", "message": format!("{error:#}")}}),
                text: format!("error: acknowledgements refused: {error:#}"),
            })?;
            if cli.json {
                output::json(
                    &json!({"acknowledged": applied.iter().map(|(s, q)| json!({"stream": s, "seq": q})).collect::<Vec<_>>()}),
                );
            } else {
                for (stream, seq) in &applied {
                    println!("{stream}: acknowledged up to seq {seq}");
                }
            }
            Ok(())
        }
        Command::Edge(EdgeCommand::Serve {
            listen,
            hub,
            hub_key,
            hub_origin,
            hub_cert_sha256,
            sync_interval_ms,
            sync_timeout_ms,
            encoding,
            breaker_failures,
            breaker_open_ms,
            hub_busy_ms,
            read_timeout_ms,
            offline,
        }) => {
            let limits = cairn_http::server::ServeLimits {
                read_timeout: std::time::Duration::from_millis(*read_timeout_ms),
                ..cairn_http::edge::EDGE_LIMITS
            };
            let store = open(&cli)?;
            let resolved = if *offline {
                None
            } else {
                resolve_hub(&store, hub, hub_key, hub_origin)?
            };
            let pin = resolve_pin(&store, hub_cert_sha256)?;
            drop(store);
            if let Some((url, _)) = &resolved {
                // Refuse an unpinned https:// hub now, not in the background.
                cairn_http::tls::client(url, pin, None).map_err(pin_failure)?;
            }
            let sync = resolved.map(|(url, key)| cairn_sync::SyncSettings {
                hub_url: url,
                hub_key: key,
                hub_pin: pin,
                encoding: *encoding,
                interval_ms: (*sync_interval_ms).max(10),
                timeout_ms: (*sync_timeout_ms).max(100),
                link: cairn_core::link::LinkConfig {
                    failures_to_open: (*breaker_failures).max(1),
                    open_ms: *breaker_open_ms,
                    // A push taking 3/5 of the request timeout shrinks the batch.
                    slow_push_ms: (*sync_timeout_ms).max(100) * 3 / 5,
                    hub_busy_ms: *hub_busy_ms,
                    ..cairn_core::link::LinkConfig::default()
                },
            });
            serve(&cli, listen, limits, sync)
        }
        Command::Record(command) => record(&cli, command),
        Command::Status(args) => status(&cli, args),
        Command::Verify => verify(&cli),
        Command::Bench(BenchCommand::Push(args)) => {
            cairn_tools::bench::push(args, cli.json).map_err(Failure::from)
        }
        Command::Bench(BenchCommand::Link(args)) => {
            cairn_tools::bench::link(args, cli.json).map_err(Failure::from)
        }
        Command::Bench(BenchCommand::Edge(args)) => {
            cairn_tools::bench::edge(args, cli.json).map_err(Failure::from)
        }
        Command::Demo(args) => cairn_tools::demo::run(args, cli.json).map_err(Failure::from),
        Command::Hub(command) => hub(&cli, command),
        Command::Sync(args) => sync(&cli, args),
    }
}

/// Registers this node's key at a hub with a one-time token; returns what to remember of the hub.
fn enroll_at_hub(
    hub: &str,
    node: &str,
    public_key: &[u8; 32],
    token: &str,
    pin: Option<[u8; 32]>,
) -> Result<Value, Failure> {
    let url = hub.trim_end_matches('/').to_string();
    let client = cairn_http::tls::client(&url, pin, None).map_err(pin_failure)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let answer: anyhow::Result<(u16, Value)> = runtime.block_on(async {
        let response = client
            .post(format!("{url}/v1/enroll"))
            .json(&json!({"node": node, "public_key": hex::encode(public_key), "token": token}))
            .send()
            .await
            .context("the hub is unreachable")?;
        let status = response.status().as_u16();
        Ok((
            status,
            response
                .json()
                .await
                .context("the hub's answer is not JSON")?,
        ))
    });
    let (status, body) = answer.map_err(Failure::from)?;
    if status != 201 {
        return Err(Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "enrollment_refused", "status": status, "hub": body["error"]}}),
            text: format!(
                "error: the hub refused the enrollment ({status}): {}",
                body["error"]["message"].as_str().unwrap_or("")
            ),
        });
    }
    let mut hub = json!({"url": url, "origin": body["origin"], "public_key": body["public_key"]});
    if let Some(pin) = pin {
        hub["tls_sha256"] = json!(hex::encode(pin));
    }
    Ok(hub)
}

/// This machine's host name as a node name: lower case, with anything
/// outside a-z, 0-9, '.', '_' and '-' made a '-'.
fn host_node_name() -> Result<String, Failure> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(cairn_core::limits::NAME_BYTES_MAX)
        .collect();
    if cairn_core::names::check_name(&name).is_err() {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "node",
                "required",
                format!(
                    "this machine's host name {host:?} is no node name: name the node with --node"
                ),
            )],
        ));
    }
    Ok(name)
}

/// Removes what `edge init` created when its enrollment failed.
fn remove_node(dir: &std::path::Path, existed: bool) {
    for name in [
        "node.key",
        "cairn.db",
        "cairn.db-wal",
        "cairn.db-shm",
        "heads",
        "heads.new",
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    if !existed {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A hub's URL, with its origin and key when known.
type HubTarget = (String, Option<HubKey>);

/// A `--hub-cert-sha256` value, checked.
fn parse_pin(text: &Option<String>) -> Result<Option<[u8; 32]>, Failure> {
    text.as_deref()
        .map(|text| {
            cairn_http::tls::parse_pin(text).map_err(|message| {
                Failure::invalid(
                    None,
                    &[Violation::new("hub-cert-sha256", "format", message)],
                )
            })
        })
        .transpose()
}

/// The pin of the hub's certificate: `--hub-cert-sha256`, else the one
/// remembered at enrollment.
fn resolve_pin(store: &EdgeStore, explicit: &Option<String>) -> Result<Option<[u8; 32]>, Failure> {
    if explicit.is_some() {
        return parse_pin(explicit);
    }
    let saved = store
        .hub()?
        .and_then(|hub| hub["tls_sha256"].as_str().map(str::to_string));
    parse_pin(&saved)
}

/// An HTTP client that could not be made: an https:// hub with no pin.
fn pin_failure(error: anyhow::Error) -> Failure {
    Failure::invalid(
        None,
        &[Violation::new(
            "hub-cert-sha256",
            "pinned",
            format!("{error:#}"),
        )],
    )
}

/// The hub to sync with: `--hub` (with `--hub-key`/`--hub-origin` if given),
/// else the hub this node enrolled with, whose key is then always checked.
fn resolve_hub(
    store: &EdgeStore,
    hub: &Option<String>,
    key: &Option<String>,
    origin: &Option<String>,
) -> Result<Option<HubTarget>, Failure> {
    if let Some(url) = hub {
        return Ok(Some((
            url.trim_end_matches('/').to_string(),
            parse_hub_key(key, origin)?,
        )));
    }
    let Some(saved) = store.hub()? else {
        return Ok(None);
    };
    let url = saved["url"].as_str().unwrap_or_default().to_string();
    let known = parse_hub_key(
        &saved["public_key"].as_str().map(str::to_string),
        &saved["origin"].as_str().map(str::to_string),
    )?;
    Ok(Some((url, known)))
}

fn open_hub(cli: &Cli) -> Result<cairn_hub_sqlite::HubStore, Failure> {
    cairn_hub_sqlite::HubStore::open(&cli.data)
        .with_context(|| format!("cannot open the hub in {}", cli.data.display()))
        .map_err(Failure::from)
}

fn hub(cli: &Cli, command: &HubCommand) -> Result<(), Failure> {
    match command {
        HubCommand::Init { origin, tls_names } => {
            cairn_hub_sqlite::HubStore::init(&cli.data, origin).map_err(|error| match error {
                cairn_edge::StoreError::Config(message) => {
                    Failure::invalid(None, &[Violation::new("init", "config", message)])
                }
                other => Failure::fault(anyhow::anyhow!(other)),
            })?;
            let hub = open_hub(cli)?;
            let names = if tls_names.is_empty() {
                vec!["localhost".to_string(), "127.0.0.1".to_string()]
            } else {
                tls_names.clone()
            };
            let pin = cairn_http::tls::ensure_certificate(&cli.data, &names)?;
            if cli.json {
                output::json(
                    &json!({"origin": hub.origin(), "public_key": hex::encode(hub.public_key()), "tls_sha256": hex::encode(pin)}),
                );
            } else {
                println!("initialized hub {} in {}", hub.origin(), cli.data.display());
                println!("public key {}", hex::encode(hub.public_key()));
                println!("TLS certificate sha256 {}", hex::encode(pin));
            }
            Ok(())
        }
        HubCommand::Enroll {
            node,
            public_key: None,
            scope,
            valid_hours,
            rekey,
        } => {
            let scopes = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            let hub = open_hub(cli)?;
            let token = hub
                .create_enrollment(node, &scopes, valid_hours.saturating_mul(3_600_000), *rekey)
                .map_err(|error| match error {
                    cairn_edge::StoreError::Config(message) => {
                        Failure::invalid(None, &[Violation::new("node", "enroll", message)])
                    }
                    other => Failure::fault(anyhow::anyhow!(other)),
                })?;
            let pin = cairn_http::tls::certificate_fingerprint(&cli.data)
                .ok()
                .map(hex::encode);
            if cli.json {
                output::json(
                    &json!({"node": node, "token": token, "valid_hours": valid_hours, "tls_sha256": pin}),
                );
            } else {
                println!("one-time token for {node} (valid {valid_hours} h): {token}");
                println!(
                    "on the node: cairn edge init --node {node} --hub <hub url> --token {token}"
                );
                if let Some(pin) = pin {
                    println!("  for an https:// hub add: --hub-cert-sha256 {pin}");
                }
            }
            Ok(())
        }
        HubCommand::Enroll {
            node,
            public_key: Some(public_key),
            scope,
            rekey,
            ..
        } => {
            let scopes = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            let key = parse_key(public_key, "public-key")?;
            let hub = open_hub(cli)?;
            let enrolled = if *rekey {
                hub.rekey(node, key, &scopes, "cli")
            } else {
                hub.enroll(node, key, &scopes)
            };
            enrolled.map_err(|error| match error {
                cairn_edge::StoreError::Config(message) => {
                    Failure::invalid(None, &[Violation::new("node", "enroll", message)])
                }
                other => Failure::fault(anyhow::anyhow!(other)),
            })?;
            if cli.json {
                output::json(&json!({"node": node, "scopes": scopes}));
            } else {
                println!("enrolled {node}");
            }
            Ok(())
        }
        HubCommand::RevokeTokens { node } => {
            let hub = open_hub(cli)?;
            let revoked = hub.revoke_tokens(node, "cli")?;
            if cli.json {
                output::json(&json!({"node": node, "tokens_revoked": revoked}));
            } else {
                println!("{revoked} outstanding enrollment tokens of {node} revoked");
            }
            Ok(())
        }
        HubCommand::Serve {
            listen,
            tls,
            read_timeout_ms,
        } => {
            let limits = cairn_http::server::ServeLimits {
                read_timeout: std::time::Duration::from_millis(*read_timeout_ms),
                ..cairn_http::hub::HUB_LIMITS
            };
            crate::init_tracing();
            let hub = std::sync::Arc::new(open_hub(cli)?);
            let tls = if *tls {
                // Hubs made before TLS existed get their certificate now.
                cairn_http::tls::ensure_certificate(
                    &cli.data,
                    &["localhost".to_string(), "127.0.0.1".to_string()],
                )?;
                Some(cairn_http::tls::server_config(&cli.data)?)
            } else {
                None
            };
            let scheme = if tls.is_some() { "https" } else { "http" };
            server_runtime()?.block_on(async move {
                let (listener, address) =
                    announce(listen, &format!("hub {}", hub.origin()), scheme, |_| Ok(())).await?;
                tracing::info!(origin = %hub.origin(), %address, "hub started");
                cairn_http::hub::run(listener, hub, tls, limits, shutdown_signal())
                    .await
                    .context("server failed")?;
                Ok::<(), anyhow::Error>(())
            })?;
            Ok(())
        }
        HubCommand::Revoke { node, scope } => {
            let labels = input::parse_scope_args(std::slice::from_ref(scope))
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            let (label, value) = labels.into_iter().next().expect("one label parsed");
            let hub = open_hub(cli)?;
            let revoked = hub
                .revoke(node, &label, &value)
                .map_err(|error| match error {
                    cairn_edge::StoreError::Config(message) => {
                        Failure::invalid(None, &[Violation::new("node", "enrolled", message)])
                    }
                    other => Failure::fault(anyhow::anyhow!(other)),
                })?;
            if !revoked {
                return Err(Failure::invalid(
                    None,
                    &[Violation::new(
                        "scope",
                        "granted",
                        format!("{node} is not granted {label}={value}"),
                    )],
                ));
            }
            if cli.json {
                output::json(&json!({"node": node, "revoked": format!("{label}={value}")}));
            } else {
                println!(
                    "revoked {label}={value} from {node}; it purges what it pulled under it at its next sync"
                );
            }
            Ok(())
        }
        HubCommand::Verify => {
            let hub = open_hub(cli)?;
            let report = hub
                .verify()
                .map_err(|error| Failure::fault(anyhow::anyhow!(error)))?;
            if !report.faults.is_empty() {
                let text = report
                    .faults
                    .iter()
                    .map(|fault| format!("TAMPERED: {fault}"))
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(Failure {
                    code: exit::TAMPERED,
                    json: json!({"intact": false, "report": report}),
                    text,
                });
            }
            if cli.json {
                output::json(&json!({"intact": true, "report": report}));
            } else {
                println!(
                    "intact: {} leaves, {} streams, {} origin checkpoints and {} signed log checkpoints verified",
                    report.leaves,
                    report.streams,
                    report.origin_checkpoints,
                    report.log_checkpoints
                );
            }
            Ok(())
        }
        HubCommand::Resolve {
            node,
            stream,
            reason,
            by,
        } => {
            let hub = open_hub(cli)?;
            let resolution =
                hub.resolve(node, stream, reason, by)
                    .map_err(|error| match error {
                        cairn_hub_sqlite::ResolveError::UnknownStream(_) => Failure::invalid(
                            None,
                            &[Violation::new("stream", "exists", error.to_string())],
                        ),
                        cairn_hub_sqlite::ResolveError::NotHeld(_) => Failure::invalid(
                            None,
                            &[Violation::new("stream", "held", error.to_string())],
                        ),
                        cairn_hub_sqlite::ResolveError::Reason(message) => {
                            Failure::invalid(None, &[Violation::new("reason", "length", message)])
                        }
                        other => Failure::fault(anyhow::anyhow!(other)),
                    })?;
            if cli.json {
                output::json(&json!(resolution));
            } else {
                println!(
                    "released {node}:{stream} at seq {}, the hub's version kept; {} quarantined items stay",
                    resolution.kept_seq, resolution.quarantined
                );
            }
            Ok(())
        }
        HubCommand::Import { file } => {
            let hub = open_hub(cli)?;
            let report = cairn_hub_sqlite::bundle::import(&hub, file).map_err(|error| Failure {
                code: exit::INVALID,
                json: json!({"error": {"code": "bundle_refused", "message": format!("{error:#}")}}),
                text: format!("error: bundle refused: {error:#}"),
            })?;
            if !cli.json {
                println!(
                    "{}: {} accepted, {} already held, {} quarantined",
                    report.node,
                    report.accepted,
                    report.duplicate,
                    report.quarantined.len()
                );
                for item in &report.quarantined {
                    println!("QUARANTINED: {item}");
                }
            }
            if report.quarantined.is_empty() {
                if cli.json {
                    output::json(&json!(report));
                }
                Ok(())
            } else {
                // One JSON document on stdout: the error, with the report.
                Err(Failure {
                    code: exit::SYNC_INCOMPLETE,
                    json: json!({"error": {"code": "quarantined", "message": "the bundle held ops the hub quarantined", "quarantined": report.quarantined}, "report": report}),
                    text: "error: the bundle held ops the hub quarantined".into(),
                })
            }
        }
        HubCommand::ExportAcks { node, out } => {
            let hub = open_hub(cli)?;
            cairn_hub_sqlite::bundle::export_acks(&hub, node, out)?;
            if cli.json {
                output::json(&json!({"node": node, "acks": out}));
            } else {
                println!("wrote the acknowledgements of {node} to {}", out.display());
            }
            Ok(())
        }
        HubCommand::Token {
            subject,
            role,
            minutes,
        } => {
            let minutes_max = cairn_core::token::TOKEN_LIFETIME_S_MAX / 60;
            if *minutes == 0 || *minutes > minutes_max {
                return Err(Failure::invalid(
                    None,
                    &[Violation::new(
                        "minutes",
                        "range",
                        format!("a staff token lasts 1 to {minutes_max} minutes"),
                    )],
                ));
            }
            let hub = open_hub(cli)?;
            let now_s = hub.clock().now_s();
            let token = hub
                .issue_token(subject, role, minutes.saturating_mul(60), now_s)
                .map_err(|error| match error {
                    cairn_edge::StoreError::Config(message) => {
                        Failure::invalid(None, &[Violation::new("token", "claims", message)])
                    }
                    other => Failure::fault(anyhow::anyhow!(other)),
                })?;
            if cli.json {
                output::json(
                    &json!({"token": token, "subject": subject, "role": role, "expires": now_s + minutes * 60}),
                );
            } else {
                println!("{token}");
            }
            Ok(())
        }
        HubCommand::Audit => {
            let ops = open_hub(cli)?.audit_ops()?;
            let mut records = Vec::new();
            for bytes in &ops {
                let op = cairn_core::op::Op::decode(bytes)
                    .map_err(|fault| Failure::fault(anyhow::anyhow!("audit op: {fault}")))?;
                let record: Value = serde_json::from_slice(&op.draft.payload)
                    .map_err(|error| Failure::fault(anyhow::anyhow!("audit op: {error}")))?;
                records.push(json!({"seq": op.seq, "written_ms": op.draft.hlc.wall_ms, "op_hash": op.op_hash.to_hex(), "record": record}));
            }
            if cli.json {
                output::json(&json!({"ops": records}));
            } else {
                let rows = records
                    .iter()
                    .map(|entry| {
                        let record = &entry["record"];
                        vec![
                            entry["seq"].to_string(),
                            output::cell(&record["action"]),
                            output::cell(&record["node"]),
                            record
                                .get("scopes")
                                .or_else(|| record.get("label"))
                                .map_or(String::new(), |detail| detail.to_string()),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["seq", "action", "node", "detail"], rows)
                );
            }
            Ok(())
        }
        HubCommand::Status => {
            let status = open_hub(cli)?.status()?;
            if cli.json {
                let mut value = json!(status);
                value["tls_sha256"] = json!(
                    cairn_http::tls::certificate_fingerprint(&cli.data)
                        .ok()
                        .map(hex::encode)
                );
                output::json(&value);
            } else {
                println!(
                    "hub {}: {} ops in the log, root {}",
                    status.origin, status.log_size, status.root
                );
                let rows = status
                    .streams
                    .iter()
                    .map(|(stream, (head, held))| {
                        vec![
                            stream.clone(),
                            head.to_string(),
                            if *held { "HELD".into() } else { "ok".into() },
                        ]
                    })
                    .collect();
                println!("{}", output::table(&["stream", "head", "state"], rows));
                println!(
                    "{} nodes enrolled, {} items quarantined",
                    status.nodes, status.quarantined
                );
                if !status.quarantine.is_empty() {
                    let rows = status
                        .quarantine
                        .iter()
                        .map(|item| {
                            vec![
                                format!("{}:{}", item.node, item.stream),
                                item.seq.map_or("?".into(), |seq| seq.to_string()),
                                item.reason.clone(),
                                item.material_hash[..16].to_string(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(&["stream", "seq", "reason", "material"], rows)
                    );
                }
                if let Ok(pin) = cairn_http::tls::certificate_fingerprint(&cli.data) {
                    println!("TLS certificate sha256 {}", hex::encode(pin));
                }
                for (node, clock) in &status.clocks {
                    if clock.clock_offset_ms.unsigned_abs()
                        > cairn_sync::clock::CLOCK_OFFSET_ALERT_MS
                    {
                        println!(
                            "clock of {node}: {} at its last push",
                            cairn_sync::clock::describe(-clock.clock_offset_ms)
                        );
                    }
                }
                for alert in &status.alerts {
                    println!("ALERT: {alert}");
                }
            }
            Ok(())
        }
    }
}

fn sync(cli: &Cli, args: &SyncArgs) -> Result<(), Failure> {
    let _not_serving = serve_lock(&cli.data)?;
    let store = open(cli)?;
    // A progress bar on a terminal (indicatif hides it elsewhere), never with --json.
    let pending = store.status(now_ms())?.pending_total;
    let progress = (!cli.json && pending > 0).then(|| {
        let bar = indicatif::ProgressBar::new(pending);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("pushing {bar:40} {pos}/{len} ops {elapsed}")
        {
            bar.set_style(style);
        }
        bar
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let (client, hub_url, hub_key) = connect(&store, args)?;
    let key = hub_key
        .as_ref()
        .map(|(origin, key)| (origin.as_str(), *key));
    let link = cairn_sync::HubLink {
        client: &client,
        url: &hub_url,
        key,
        clock: Default::default(),
    };
    let result = runtime.block_on(async {
        if args.accept_log_rollback {
            let audience = cairn_sync::hub_audience(&client, &hub_url, key).await?;
            for (stream, head) in
                cairn_sync::hub_log::accept_rollback(&store, &link, &audience).await?
            {
                tracing::warn!(%stream, head, "the hub lost ops it had acknowledged: pushing them again");
                if !cli.json {
                    eprintln!("{stream}: the hub holds up to seq {head}; pushing the rest again");
                }
            }
        }
        let pushed = cairn_sync::push_all(
            &store,
            &link,
            args.batch_ops.max(1),
            None,
            &Default::default(),
            args.encoding,
            progress.as_ref(),
        )
        .await?;
        let pulled = cairn_sync::pull_all(&store, &link).await?;
        anyhow::Ok((pushed, pulled))
    });
    if let Some(progress) = &progress {
        progress.finish_and_clear();
    }
    let (report, pulled) = result.map_err(|error| Failure {
        code: exit::SYNC_INCOMPLETE,
        json: json!({"error": {"code": "sync_incomplete", "message": format!("{error:#}")}}),
        text: format!("error: sync incomplete, nothing acknowledged was lost: {error:#}"),
    })?;
    if !report.quarantined.is_empty() {
        let lines: Vec<String> = report
            .quarantined
            .iter()
            .map(|item| format!("QUARANTINED: {item}"))
            .collect();
        return Err(Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "quarantined", "message": "the hub quarantined ops"}, "report": report}),
            text: format!(
                "error: the hub quarantined ops ({} accepted before that)\n{}",
                report.accepted,
                lines.join("\n")
            ),
        });
    }
    if cli.json {
        let mut value = json!(report);
        value["pulled"] = json!(pulled);
        output::json(&value);
    } else {
        println!(
            "pushed: {} accepted ({} receipts verified), {} already at the hub",
            report.accepted, report.receipts_verified, report.duplicate
        );
        if pulled.snapshot_ops > 0 {
            println!(
                "bootstrapped from the hub's signed snapshot: {} ops",
                pulled.snapshot_ops
            );
        }
        println!(
            "pulled: {} new ops of other nodes ({} receipts verified)",
            pulled.applied, pulled.receipts_verified
        );
    }
    Ok(())
}

/// A hub's log origin and public key.
type HubKey = (String, [u8; 32]);

/// The hub `args` name (or the one the node enrolled with), its key when
/// known, and a client that trusts only its pinned certificate.
fn connect(
    store: &EdgeStore,
    args: &SyncArgs,
) -> Result<(reqwest::Client, String, Option<HubKey>), Failure> {
    let Some((hub_url, hub_key)) = resolve_hub(store, &args.hub, &args.hub_key, &args.hub_origin)?
    else {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "hub",
                "required",
                "no --hub given and the node never enrolled with one",
            )],
        ));
    };
    let pin = resolve_pin(store, &args.hub_cert_sha256)?;
    let client = cairn_http::tls::client(&hub_url, pin, Some(std::time::Duration::from_secs(30)))
        .map_err(pin_failure)?;
    Ok((client, hub_url, hub_key))
}

/// `cairn edge recover`: takes this node's streams back from the hub.
fn recover(cli: &Cli, args: &SyncArgs) -> Result<(), Failure> {
    let _not_serving = serve_lock(&cli.data)?;
    let store = open(cli)?;
    let (client, hub_url, hub_key) = connect(&store, args)?;
    let link = cairn_sync::HubLink {
        client: &client,
        url: &hub_url,
        key: hub_key
            .as_ref()
            .map(|(origin, key)| (origin.as_str(), *key)),
        clock: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let report = runtime
        .block_on(cairn_sync::recover(&store, &link))
        .map_err(|error| Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "recovery_incomplete", "message": format!("{error:#}")}}),
            text: format!("error: recovery incomplete (each stream is taken back whole or not at all): {error:#}"),
        })?;
    if cli.json {
        output::json(&json!({"streams": report}));
    } else {
        for stream in &report {
            println!(
                "{}: the hub holds it up to seq {}; {} of this node's ops taken back, {} diverged ops appended again after them",
                stream.stream,
                stream.hub_head,
                stream.taken_back,
                stream.reappended.len()
            );
        }
    }
    Ok(())
}

/// An Ed25519 public key given as 64 hex characters in option `field`.
fn parse_key(text: &str, field: &str) -> Result<[u8; 32], Failure> {
    hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| {
            Failure::invalid(
                None,
                &[Violation::new(field, "format", "must be 64 hex characters")],
            )
        })
}

fn parse_hub_key(
    key: &Option<String>,
    origin: &Option<String>,
) -> Result<Option<(String, [u8; 32])>, Failure> {
    match (key, origin) {
        (Some(key), Some(origin)) => Ok(Some((origin.clone(), parse_key(key, "hub-key")?))),
        _ => Ok(None),
    }
}

/// The file `cairn edge serve` holds an exclusive lock on while it runs:
/// commands that rewrite a stream under it (`cairn edge recover`) refuse to
/// run beside it, since its writer keeps stream heads in memory.
const SERVE_LOCK: &str = "serve.lock";

/// Takes the serving lock of the store in `dir`, or says who holds it.
fn serve_lock(dir: &std::path::Path) -> Result<std::fs::File, Failure> {
    write::try_serve_lock(dir)?.ok_or_else(|| {
        Failure::invalid(
            None,
            &[Violation::new(
                "data",
                "not_serving",
                format!(
                    "`cairn edge serve` is running on {}: it writes this store and syncs it in the background (`cairn status` shows how it goes); stop it first",
                    dir.display()
                ),
            )],
        )
    })
}

fn serve(
    cli: &Cli,
    listen: &str,
    limits: cairn_http::server::ServeLimits,
    sync: Option<cairn_sync::SyncSettings>,
) -> Result<(), Failure> {
    crate::init_tracing();
    let store = std::sync::Arc::new(open(cli)?);
    // Held until the process ends.
    let _serving = serve_lock(&cli.data)?;
    server_runtime()?.block_on(async move {
        let (listener, address) = announce(
            listen,
            &format!("edge {}", store.settings().node),
            "http",
            |url| {
                // Before the URL is printed: whoever waits for it may write.
                write::announce(&cli.data, url).map(drop)
            },
        )
        .await?;
        tracing::info!(node = %store.settings().node, %address, "edge API started");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let syncing =
            sync.map(|settings| tokio::spawn(cairn_sync::run(store.clone(), settings, stopped)));
        cairn_http::edge::run(listener, store, limits, shutdown_signal())
            .await
            .context("server failed")?;
        let _ = stop.send(true);
        if let Some(syncing) = syncing {
            let _ = syncing.await;
        }
        tracing::info!("edge API stopped");
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// The runtime of a long-running server.
fn server_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?)
}

/// Binds `listen` and prints `cairn WHO listening on http://ADDRESS` as the
/// first line of stdout (tests and the demo read the URL from it).
/// Binds `listen`, runs `ready` with the URL (before anyone is told), then
/// prints the URL as the first line on stdout.
async fn announce(
    listen: &str,
    who: &str,
    scheme: &str,
    ready: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().context("no local address")?;
    ready(&format!("{scheme}://{address}"))?;
    println!("cairn {who} listening on {scheme}://{address}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok((listener, address))
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Reads a record argument: inline JSON, `-` for stdin or `@PATH`.
fn read_record(argument: &OsString) -> Result<Value, Failure> {
    let bytes: Vec<u8> = if argument == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(input::BODY_BYTES_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        bytes
    } else if let Some(path) = argument.to_str().and_then(|text| text.strip_prefix('@')) {
        let metadata = std::fs::metadata(path).with_context(|| format!("cannot read {path}"))?;
        if metadata.len() > input::BODY_BYTES_MAX as u64 {
            return Err(Failure::invalid(
                None,
                &[Violation::new(
                    "record",
                    "max_bytes",
                    format!(
                        "{path} is {} bytes, at most {}",
                        metadata.len(),
                        input::BODY_BYTES_MAX
                    ),
                )],
            ));
        }
        std::fs::read(path).with_context(|| format!("cannot read {path}"))?
    } else {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            argument.as_bytes().to_vec()
        }
        #[cfg(not(unix))]
        argument.to_string_lossy().into_owned().into_bytes()
    };
    input::parse_json(&bytes, "record").map_err(|violation| Failure::invalid(None, &[violation]))
}

fn print_receipt(cli: &Cli, receipt: &cairn_edge::WriteReceipt) {
    if cli.json {
        output::json(&json!(receipt));
    } else {
        println!(
            "stored {} in {} ({} #{}, op {})",
            receipt.id,
            receipt.collection,
            receipt.stream,
            receipt.seq,
            &receipt.op_hash[..16]
        );
    }
}

fn record(cli: &Cli, command: &RecordCommand) -> Result<(), Failure> {
    match command {
        RecordCommand::Add {
            collection,
            record,
            key,
            scope,
            move_scope,
        } => {
            let data = read_record(record)?;
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            write::write(
                cli,
                json!({"collection": collection, "key": key, "scope": scope, "data": data, "move": move_scope}),
            )
        }
        RecordCommand::Correct {
            collection,
            id,
            record,
            reason,
            scope,
        } => {
            let data = read_record(record)?;
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            write::write(
                cli,
                json!({"collection": collection, "action": "correct", "scope": scope, "data": data, "corrects": id, "reason": reason}),
            )
        }
        RecordCommand::Delete {
            collection,
            key,
            scope,
        } => {
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            write::write(
                cli,
                json!({"collection": collection, "action": "delete", "key": key, "scope": scope}),
            )
        }
        RecordCommand::Get { collection, id } => {
            let store = open(cli)?;
            match store.get(collection, id)? {
                Some(record) => {
                    if cli.json {
                        output::json(&json!(record));
                    } else {
                        print_record(&record);
                    }
                    Ok(())
                }
                None => Err(Failure {
                    code: exit::NOT_FOUND,
                    json: json!({"error": {"code": "not_found", "message": format!("no record {id:?} in {collection}")}}),
                    text: format!("error: no record {id:?} in {collection}"),
                }),
            }
        }
        RecordCommand::List {
            collection,
            scope,
            after,
            limit,
            deleted,
        } => {
            let scope = input::parse_scope_args(scope)
                .map_err(|violation| Failure::invalid(None, &[violation]))?;
            if limit.is_some_and(|limit| limit == 0) {
                return Err(Failure::invalid(
                    None,
                    &[Violation::new("limit", "range", "must be 1 or more")],
                ));
            }
            let store = open(cli)?;
            let kind = store
                .catalog()
                .collections
                .get(collection)
                .map(|collection| collection.kind);
            if let Some(after) = after {
                input::check_cursor(kind, after)
                    .map_err(|violation| Failure::invalid(None, &[violation]))?;
            }
            let (records, next) = list_pages(&store, collection, scope, after, *limit, *deleted)?;
            if cli.json {
                output::json(&json!({"records": records, "next": next}));
            } else {
                print_list(&records);
                if let Some(next) = next {
                    println!("more records follow: --after {next}");
                }
            }
            Ok(())
        }
    }
}

/// Lists up to `limit` records (every one without a limit), page by page,
/// with the cursor of the next when more exist.
fn list_pages(
    store: &EdgeStore,
    collection: &str,
    scope: std::collections::BTreeMap<String, String>,
    after: &Option<String>,
    limit: Option<usize>,
    deleted: bool,
) -> Result<(Vec<Record>, Option<String>), Failure> {
    let wanted = limit.unwrap_or(usize::MAX);
    let mut records = Vec::new();
    let mut cursor = after.clone();
    loop {
        // One more than asked for, to know whether more exist.
        let page_limit = (wanted - records.len())
            .saturating_add(1)
            .min(cairn_edge::limits::LIST_LIMIT_MAX);
        let page = store.list(&ListQuery {
            collection: collection.to_string(),
            scope: scope.clone(),
            after: cursor.clone(),
            limit: page_limit,
            include_deleted: deleted,
        })?;
        let full = page.len() == page_limit;
        records.extend(page);
        if records.len() > wanted {
            records.truncate(wanted);
            return Ok((records.clone(), records.last().map(record_cursor)));
        }
        if !full {
            return Ok((records, None));
        }
        cursor = records.last().map(record_cursor);
    }
}

/// The cursor that resumes a list after `record`.
fn record_cursor(record: &Record) -> String {
    match record {
        Record::Ledger(record) => record.id.clone(),
        Record::Entity(record) => record.key.clone(),
    }
}

fn print_record(record: &Record) {
    match record {
        Record::Ledger(record) => {
            println!(
                "{} ({} {}, op {})",
                record.id,
                record.collection,
                record.action,
                &record.op_hash[..16]
            );
            if let Some(corrects) = &record.corrects {
                println!(
                    "corrects {corrects}: {}",
                    record.reason.as_deref().unwrap_or("")
                );
            }
            let rows = record
                .data
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| vec![k.clone(), output::cell(v)])
                .collect();
            println!("{}", output::table(&["field", "value"], rows));
            for id in &record.corrected_by {
                println!("corrected by {id}");
            }
            for moved in &record.moved {
                println!(
                    "the record this node wrote as {} (op {}) before taking its stream back from the hub is now {}",
                    moved.was,
                    &moved.op_hash[..16],
                    moved.now
                );
            }
        }
        Record::Entity(record) => {
            let state = if record.deleted { " (deleted)" } else { "" };
            println!("{} {}{state}", record.collection, record.key);
            let rows = record
                .fields
                .iter()
                .map(|(k, v)| vec![k.clone(), output::cell(v)])
                .collect();
            println!("{}", output::table(&["field", "value"], rows));
            if let Some(conflicts) = record.conflicts.as_object().filter(|c| !c.is_empty()) {
                for (field, candidates) in conflicts {
                    println!("conflict on {field}: {candidates}");
                }
            }
        }
    }
}

fn print_list(records: &[Record]) {
    // Every field, whole, as `name: value` lines in the cell: a table
    // wraps them at the terminal's width instead of cutting a value.
    fn fields<'a>(data: impl IntoIterator<Item = (&'a String, &'a Value)>) -> String {
        data.into_iter()
            .map(|(name, value)| format!("{name}: {}", output::cell(value)))
            .collect::<Vec<_>>()
            .join("\n")
    }
    let rows = records
        .iter()
        .map(|record| match record {
            Record::Ledger(record) => {
                let data = record.data.as_object().map(fields).unwrap_or_default();
                vec![record.id.clone(), record.action.to_string(), data]
            }
            Record::Entity(record) => {
                let action = if record.deleted { "deleted" } else { "live" };
                vec![
                    record.key.clone(),
                    action.to_string(),
                    fields(&record.fields),
                ]
            }
        })
        .collect();
    println!("{}", output::table(&["id", "state", "data"], rows));
}

use cairn_edge::clock::now_ms;

fn status(cli: &Cli, args: &StatusArgs) -> Result<(), Failure> {
    let store = open(cli)?;
    let thresholds = cairn_edge::AlertThresholds {
        pending_age_ms: args.pending_alert_secs.saturating_mul(1000),
        storage_percent: args.storage_alert_percent,
    };
    let status = store.status_with(now_ms(), &thresholds)?;
    let alerts = status.alerts.clone();
    if cli.json {
        output::json(&json!(status));
        return Ok(());
    }
    println!("node {}", status.node);
    let rows = status
        .streams
        .iter()
        .map(|stream| {
            vec![
                stream.stream.clone(),
                stream.head_seq.to_string(),
                stream.acked_seq.to_string(),
                stream.pending.to_string(),
                stream
                    .oldest_pending_age_ms
                    .map_or("-".into(), output::duration_ms),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(
            &["stream", "head", "acked", "pending", "oldest pending"],
            rows
        )
    );
    let quota = if status.quota_bytes > 0 {
        format!(" of {}", output::bytes(status.quota_bytes))
    } else {
        String::new()
    };
    println!(
        "storage {}{quota}; open conflicts {}",
        output::bytes(status.storage_bytes),
        status.conflicts
    );
    print_sync_state(status.sync.as_ref());
    for alert in &alerts {
        println!("ALERT: {alert}");
    }
    Ok(())
}

/// The background sync's last state, as `edge serve` saved it.
fn print_sync_state(sync: Option<&Value>) {
    let Some(sync) = sync else {
        println!("sync: never ran here (`cairn edge serve --hub`, or `cairn sync`)");
        return;
    };
    let online = if sync["online"] == true {
        "online"
    } else {
        "offline"
    };
    let last_sync = sync["last_sync_ms"]
        .as_u64()
        .map_or("never".to_string(), |at| {
            format!("{} ago", output::duration_ms(now_ms().saturating_sub(at)))
        });
    println!(
        "sync with {}: {online}, breaker {}, last sync {last_sync}",
        sync["hub"].as_str().unwrap_or("?"),
        sync["breaker"].as_str().unwrap_or("?")
    );
    if let Some(offset) = sync["clock_offset_ms"].as_i64() {
        println!("clock: {}", cairn_sync::clock::describe(offset));
    }
    if let Some(error) = sync["last_error"].as_str() {
        println!("last error: {error}");
    }
}

fn verify(cli: &Cli) -> Result<(), Failure> {
    let store = open(cli)?;
    let report = store.verify()?;
    let streams: Vec<Value> = report.streams.iter().map(|stream| json!(stream)).collect();
    match &report.fault {
        None => {
            if cli.json {
                output::json(&json!({"intact": true, "streams": streams, "states": report.states}));
            } else {
                let rows = report
                    .streams
                    .iter()
                    .map(|stream| {
                        vec![
                            stream.stream.clone(),
                            stream.ops.to_string(),
                            stream.checkpoints.to_string(),
                        ]
                    })
                    .collect();
                println!("{}", output::table(&["stream", "ops", "checkpoints"], rows));
                println!(
                    "intact: every chain, checkpoint and materialized state ({} states) verified",
                    report.states
                );
            }
            Ok(())
        }
        Some(fault) => Err(Failure {
            code: exit::TAMPERED,
            json: json!({"intact": false, "streams": streams, "fault": {"seq": fault.seq(), "message": fault.to_string()}}),
            text: format!("TAMPERED: {fault}"),
        }),
    }
}

/// `--encoding`: auto, json or binary.
fn encoding(text: &str) -> Result<cairn_sync::Encoding, String> {
    text.parse()
}
