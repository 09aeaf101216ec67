//! Every command's arguments, as clap parses them.

use super::*;

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
    /// The rule packs: what each collection and field accepts.
    #[command(subcommand)]
    Pack(PackCommand),
    /// Write and read records.
    #[command(subcommand)]
    Record(RecordCommand),
    /// Queue depth per stream, oldest pending age, storage use and alerts.
    Status(StatusArgs),
    /// Re-verify every stream end to end; exit 4 at the first broken link.
    /// `cairn verify report FILE` checks a report's seal instead.
    Verify(VerifyArgs),
    /// A signed compliance report of the hub (on its data directory).
    Report(ReportArgs),
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
    /// The hub's review queue: rejections, quarantines, conflicts, missing
    /// follow-ups and missed deadlines (on the hub's data directory).
    #[command(subcommand)]
    Review(ReviewCommand),
    /// The artifacts (models, manuals) the hub published for this node.
    #[command(subcommand)]
    Artifact(ArtifactCommand),
}

/// `cairn verify [report FILE]`
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// What else to verify.
    #[command(subcommand)]
    pub what: Option<VerifyCommand>,
}

/// `cairn verify ...`
#[derive(Subcommand, Debug)]
pub enum VerifyCommand {
    /// Check a report's seal offline: its content hashes to the seal, the
    /// hub's signature verifies, and `FILE.sig` (if there) is the same seal.
    /// Exit 4 if any byte changed.
    Report {
        /// The report file.
        file: PathBuf,
        /// The hub's public key (hex) the seal must be made with.
        #[arg(long)]
        hub_key: Option<String>,
    },
}

/// `cairn report`
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// From this day (YYYY-MM-DD) or time (RFC 3339); the log's start if none.
    #[arg(long)]
    pub from: Option<String>,
    /// To this day (exclusive) or time; now if none.
    #[arg(long)]
    pub to: Option<String>,
    /// json, html or pdf.
    #[arg(long, default_value = "html")]
    pub format: String,
    /// Only records carrying these scope labels (label=value).
    #[arg(long)]
    pub scope: Vec<String>,
    /// Also export every record about this aircraft registration (14 CFR 91.417).
    #[arg(long)]
    pub aircraft: Option<String>,
    /// Where to write it (and its seal, FILE.sig).
    #[arg(long)]
    pub out: PathBuf,
}

/// `cairn artifact ...`
#[derive(Subcommand, Debug)]
pub enum ArtifactCommand {
    /// Each artifact: the version active, the one before it and the
    /// newest the hub published.
    List,
    /// One artifact: its manifests and the active file's path.
    Get {
        /// The artifact's name.
        name: String,
    },
    /// The path of the active version's file (for apps).
    Path {
        /// The artifact's name.
        name: String,
    },
    /// Return to the version before the active one.
    Rollback {
        /// The artifact's name.
        name: String,
    },
    /// Fetch the blobs of newly published versions now (resuming any cut
    /// fetch), verify them and make them active.
    Fetch(SyncArgs),
}

/// `cairn hub artifact ...`
#[derive(Subcommand, Debug)]
pub enum HubArtifactCommand {
    /// Publish FILE as a version of artifact NAME: its blob is stored by
    /// SHA-256 and a signed manifest op goes to the log, pulled by the
    /// nodes the scope covers.
    Publish {
        /// The artifact's name.
        name: String,
        /// The file (streamed, never read whole into memory).
        file: PathBuf,
        /// The version.
        #[arg(long)]
        version: String,
        /// Scope labels (label=value) a node must be granted to get it;
        /// none: every node.
        #[arg(long = "scope")]
        scope: Vec<String>,
        /// Chunk size in KiB (4 to 8192).
        #[arg(long, default_value_t = 256)]
        chunk_kib: u64,
    },
    /// Every version published, in order.
    List,
}

/// `cairn review ...`
#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// Review items by id.
    List {
        /// Only open items.
        #[arg(long)]
        open: bool,
        /// Only this kind: rejection, quarantine, conflict, missing_follow_up,
        /// missed_deadline.
        #[arg(long)]
        kind: Option<String>,
        /// Items after this id.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One item, with the logged op and any quarantined material side by
    /// side (sensitive fields redacted).
    Show {
        /// Its id.
        id: u64,
    },
    /// Close an item: an act of the hub's audit stream naming who and why.
    /// A conflict is closed by the value that stands (`--value`), which the
    /// hub writes for every replica to merge.
    Resolve {
        /// Its id.
        id: u64,
        /// accepted, corrected, dismissed or escalated.
        #[arg(long, required_unless_present = "value", conflicts_with = "value")]
        decision: Option<String>,
        /// For a conflict: the value that stands, as JSON (e.g. '"down"').
        #[arg(long)]
        value: Option<String>,
        /// Why (recorded with the act).
        #[arg(long)]
        note: String,
        /// Who decides (recorded with the act).
        #[arg(long)]
        by: String,
    },
}

/// `cairn hub registry ...`
#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Add or replace an entry (an authorized technician): an op of the
    /// hub's registry stream, which every node receives.
    Put {
        /// The config collection (e.g. authorized_technicians).
        collection: String,
        /// The entry's key (e.g. TECH-IA-4412).
        key: String,
        /// Its fields, a JSON object.
        #[arg(long)]
        fields: String,
        /// Who writes it (recorded in the audit stream).
        #[arg(long)]
        by: String,
    },
    /// Revoke an entry (records naming it are rejected from then on).
    Revoke {
        /// The config collection.
        collection: String,
        /// The entry's key.
        key: String,
        /// Who revokes it (recorded in the audit stream).
        #[arg(long)]
        by: String,
    },
}

/// `cairn pack ...`
#[derive(Subcommand, Debug)]
pub enum PackCommand {
    /// The node's active rule packs.
    List,
    /// Every collection of a pack and every field's rules: type, format,
    /// allowed values, range, length, normalizer, merge rule, sensitivity.
    Show {
        /// An active pack of the node.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        name: Option<String>,
        /// A pack file, read and checked without a node (before activating it).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Replay the hub's history through a new pack version and report the
    /// records it would newly reject, per rule, with examples (changes
    /// nothing; on the hub's data directory).
    DryRun {
        /// The new pack version's TOML file.
        file: PathBuf,
    },
    /// Activate a new pack version at the hub after a dry run: refused when
    /// it would newly reject more than the pack's drift tolerance, unless
    /// forced. Refusal, forcing and activation are audit acts.
    Activate {
        /// The new pack version's TOML file.
        file: PathBuf,
        /// Activate even beyond the tolerance (an admin's decision).
        #[arg(long)]
        force: bool,
        /// Who decides (recorded in the audit stream).
        #[arg(long)]
        by: String,
    },
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
        /// A rule pack of your own the hub judges ops by, beside the
        /// built-in ones (one named like a built-in pack replaces it).
        #[arg(long = "pack-file")]
        pack_files: Vec<PathBuf>,
        /// Judge by every `*.toml` rule pack in this directory too.
        #[arg(long)]
        pack_dir: Option<PathBuf>,
        /// Keep the log in this empty PostgreSQL database
        /// (`postgres://user@host:port/db`) instead of SQLite in the hub's
        /// directory; the directory keeps the key and the URL, and several
        /// `hub serve` processes may share the database.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
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
        /// Register a client that cannot be changed, of this kind
        /// (pharmacy: seed 003's till; mro-sync: seed 000's hangar worker;
        /// mro-records: seed 001's pipeline worker, with --allow-from):
        /// the hub holds its key and signs its records; a bearer token is
        /// printed once.
        #[arg(long, conflicts_with_all = ["public_key", "rekey"])]
        legacy: Option<String>,
        /// For a legacy client that sends no credentials (mro-records):
        /// the source addresses it may call from, CIDR (repeatable; none
        /// by default).
        #[arg(long = "allow-from", requires = "legacy")]
        allow_from: Vec<String>,
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
        /// Do not run the compliance judge: ops stay VALIDATED until a hub
        /// that judges serves this store (for benchmarks that measure what
        /// judging costs).
        #[arg(long, hide = true)]
        without_judge: bool,
        /// A node that has not reported for this long shows offline, ms.
        #[arg(long, default_value_t = cairn_http::hub::observe::OFFLINE_AFTER_MS)]
        offline_after_ms: u64,
        /// Serve the hub whose log is in this PostgreSQL database (made by
        /// `hub init --database`; the directory holds its key): several
        /// processes may serve one database at once.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
    /// Move this hub (on SQLite) to an empty PostgreSQL database: every
    /// table in one transaction, the source unchanged; the new hub's
    /// directory (key, TLS, legacy clients, artifacts, the database URL) is
    /// made at --into. Exit 0 once both logs have the same size and root and
    /// the new one verifies. Stop the hub first.
    Migrate {
        /// The empty PostgreSQL database, `postgres://user@host:port/db`.
        #[arg(long, value_name = "URL")]
        database: String,
        /// The new hub's directory (must not exist or be empty).
        #[arg(long)]
        into: PathBuf,
    },
    /// Log size and root, streams, quarantine and alerts.
    Status,
    /// Re-verify the whole log: every op's hashes, every stream's chain and
    /// head, every origin checkpoint and its enrolled key, every signed log
    /// checkpoint's root. Exit 4 with the faults when anything is off.
    Verify,
    /// The hub's own record of its acts (enrollments, revocations, review
    /// resolutions, registry writes, pack activations): ops of node `hub`,
    /// stream `audit`, in its log.
    Audit {
        /// Only acts whose action starts with this (e.g. `review`, `pack`).
        #[arg(long)]
        action: Option<String>,
        /// Only acts by this person or tool (with --trail: or node).
        #[arg(long)]
        by: Option<String>,
        /// The whole trail by time: acts, every push attempt with its
        /// counts per verdict, and every compliance state transition.
        #[arg(long)]
        trail: bool,
        /// With --trail, only this kind: act, push or transition.
        #[arg(long, requires = "trail")]
        kind: Option<String>,
        /// With --trail, only entries from this time on (ms since the epoch).
        #[arg(long, requires = "trail", default_value_t = 0)]
        since_ms: u64,
    },
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
    /// The registries only the hub writes (authorized technicians).
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Artifacts (models, manuals) the hub publishes to its nodes.
    #[command(subcommand)]
    Artifact(HubArtifactCommand),
    /// Judge every logged op the rule packs have not judged yet, now (a
    /// serving hub does this behind its pushes).
    Judge,
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
        /// Built-in rule packs to activate (default: mro, pharmacy,
        /// field_service).
        #[arg(long = "pack")]
        packs: Vec<String>,
        /// A rule pack of your own to activate too: its TOML file
        /// (`cairn pack show --file F` shows what it declares).
        #[arg(long = "pack-file")]
        pack_files: Vec<PathBuf>,
        /// Activate every `*.toml` rule pack in this directory too.
        #[arg(long)]
        pack_dir: Option<PathBuf>,
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
    /// Resolve a conflict on a field of an entity from this node: writes the
    /// value that stands, having seen every side, so every replica converges
    /// on it once it syncs (the hub closes its review item, naming this node).
    Resolve {
        /// Collection.
        collection: String,
        /// The entity's key.
        key: String,
        /// The field in conflict.
        #[arg(long)]
        field: String,
        /// The value that stands, as JSON (e.g. '"operational"' or 3).
        #[arg(long)]
        value: String,
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
    /// The compliance judge over a long history, and a pack's dry run over it.
    Judge(cairn_tools::bench::JudgeBenchArgs),
    /// Pushes over an emulated satellite link (1 Mbit/s, 600 ms RTT): link use, bytes per op.
    Link(cairn_tools::bench::LinkBenchArgs),
}

/// `--encoding`: auto, json or binary.
pub(super) fn encoding(text: &str) -> Result<cairn_sync::Encoding, String> {
    text.parse()
}
