//! The hub on SQLite: the backend of the hub's pipeline (`sqlite`:
//! [`SqliteBackend`], the pipeline's reads and writes in SQL) and the hub
//! store around it: enrolled nodes and one-time tokens, scoped pull pages
//! with their chain proofs, snapshots, a node's own ops back, status, and
//! `hub verify` (`verify`).
//!
//! A push goes through `cairn_hub::Hub::push_group`: verified by
//! `cairn_core::push`, persisted in one transaction (accepted ops become
//! log leaves with their tree nodes, refused material goes to the
//! quarantine, never away, an equivocation holds its stream and raises an
//! alert), one signed log checkpoint per group, one range receipt per push.
//!
//! Over 800 lines: on the list of files to cut along their seams
//! (`LONG_TODAY` in `crates/cairn/tests/tidy.rs`, issue 10).
#![deny(missing_docs)]

pub mod bundle;
mod sqlite;
mod verify;

pub use sqlite::{SqlTx, SqliteBackend};
pub use verify::{FAULTS_MAX, HubVerifyReport};

use cairn_core::hash::Hash;
use cairn_core::identity::NodeIdentity;
use cairn_core::merkle;
use cairn_core::snapshot::{SnapshotDigest, SnapshotManifest};
use cairn_hub::Hub;
use cairn_hub::backend::{HubBackend, LogTx};
use cairn_hub::signer::LogSigner;
use cairn_hub::tree::{self, TreeReader};
use cairn_sqlite::{StoreError, WalCheckpointer};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most ops in one pull page.
pub const PULL_OPS_MAX: usize = 1_000;
/// Most log entries one pull request scans (so a node with narrow scopes
/// cannot make one request walk the whole log).
pub const PULL_SCAN_MAX: usize = 20_000;

/// Most seqs one page's chain proofs may span (the ops and the headers
/// between them and their checkpoints). Every accepted op is at most
/// [`PUSH_OPS_MAX`] − 1 seqs below a checkpoint, so a page always fits at
/// least one op.
pub const CHAIN_SPAN_MAX: usize = 16_384;
/// Version of the hub schema, kept in `meta`.
const HUB_SCHEMA_VERSION: &str = "3";

pub use cairn_hub::{AUDIT_COLLECTION, AUDIT_STREAM, HUB_NODE};
pub use cairn_proto::{ChainSegment, OwnOps, PullPage, PulledOp};

/// Roles whose tokens the hub signs itself (people and tools, not nodes).
pub const STAFF_ROLES: [&str; 3] = ["operator", "auditor", "admin"];

/// Most ops in one snapshot page: a node holds one page at a time, so this
/// bounds its memory while it catches up.
pub const SNAPSHOT_OPS_MAX: usize = 2_000;
/// Most log leaves one snapshot scans.
pub const SNAPSHOT_SCAN_MAX: usize = 1_000_000;

/// A snapshot for one node: its signed manifest and the encoded ops.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The manifest as a signed note.
    pub manifest: String,
    /// The ops, in log order.
    pub ops: Vec<Vec<u8>>,
    /// The origins' checkpoints and the headers that link the ops (and
    /// `enrollments`) to them.
    pub chains: Vec<ChainSegment>,
    /// The `hub:audit` ops that enrolled the keys that signed `chains`.
    pub enrollments: Vec<Vec<u8>>,
    /// True when leaves below the page's bound remain after `next`.
    pub more: bool,
}

/// Which part of the log a snapshot page covers.
#[derive(Clone, Debug, Default)]
pub struct SnapshotQuery {
    /// The first leaf to scan.
    pub from: u64,
    /// The first leaf not to scan (default: the log's size).
    pub to: Option<u64>,
    /// Only ops carrying one of these labels (`name=value`); empty: every
    /// op the node may see.
    pub labels: std::collections::BTreeSet<String>,
}

impl SnapshotQuery {
    /// The labels as a manifest states them.
    pub fn labels_text(&self) -> String {
        if self.labels.is_empty() {
            "*".to_string()
        } else {
            self.labels.iter().cloned().collect::<Vec<_>>().join(",")
        }
    }
}

/// The chain proofs of a page or snapshot, planned op by op as the log is
/// scanned: each op needs the seqs from itself up to the first checkpoint
/// its origin signed at or above it.
#[derive(Default)]
struct ChainPlan {
    streams: BTreeMap<i64, StreamPlan>,
    /// Seqs spanned so far, over every stream.
    span: usize,
}

#[derive(Default)]
struct StreamPlan {
    /// Seqs of the ops carried in full.
    carried: std::collections::BTreeSet<u64>,
    /// Checkpoint seqs used.
    checkpoints: std::collections::BTreeSet<u64>,
    /// Highest seq spanned so far (ops come in increasing seq per stream).
    spanned_to: u64,
    /// Spans `[from, to]`, ascending and disjoint.
    spans: Vec<(u64, u64)>,
}

impl ChainPlan {
    /// The checkpoint that covers op `seq` of `stream_id` and how many seqs
    /// it adds to the span.
    fn cost(
        &self,
        conn: &Connection,
        stream_id: i64,
        seq: u64,
    ) -> Result<(u64, usize), StoreError> {
        let plan = self.streams.get(&stream_id);
        let cached = plan
            .and_then(|plan| plan.checkpoints.last().copied())
            .filter(|&checkpoint| checkpoint >= seq);
        let checkpoint = match cached {
            Some(checkpoint) => checkpoint,
            None => conn
                .prepare_cached(
                    "SELECT seq FROM origin_checkpoints WHERE stream_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
                )?
                .query_row(params![stream_id, seq as i64], |row| row.get::<_, i64>(0))
                .optional()?
                .ok_or_else(|| {
                    StoreError::Damaged(format!(
                        "no origin checkpoint covers seq {seq} of stream {stream_id}"
                    ))
                })? as u64,
        };
        let from = plan.map_or(seq, |plan| seq.max(plan.spanned_to + 1));
        Ok((checkpoint, (checkpoint + 1).saturating_sub(from) as usize))
    }

    fn add(&mut self, stream_id: i64, seq: u64, checkpoint: u64, added: usize) {
        let plan = self.streams.entry(stream_id).or_default();
        plan.carried.insert(seq);
        plan.checkpoints.insert(checkpoint);
        match plan.spans.last_mut() {
            Some(last) if seq <= last.1 + 1 => last.1 = last.1.max(checkpoint),
            _ => plan.spans.push((seq, checkpoint)),
        }
        plan.spanned_to = plan.spanned_to.max(checkpoint);
        self.span += added;
    }

    /// Adds the `hub:audit` acts that enrolled the keys of the planned
    /// checkpoints, and returns them encoded: the receiver checks each key
    /// against the act, and the act against the hub's own key.
    fn add_enrollments(&mut self, conn: &Connection) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut wanted = std::collections::BTreeSet::new();
        for (&stream_id, plan) in &self.streams {
            for &checkpoint in &plan.checkpoints {
                let (node, public_key): (String, Vec<u8>) = conn
                    .prepare_cached(
                        "SELECT s.node, c.public_key FROM origin_checkpoints c
                         JOIN streams s ON s.id = c.stream_id
                         WHERE c.stream_id = ?1 AND c.seq = ?2",
                    )?
                    .query_row(params![stream_id, checkpoint as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                if node == HUB_NODE {
                    continue;
                }
                let seq: i64 = conn
                    .prepare_cached(
                        "SELECT audit_seq FROM node_keys WHERE node = ?1 AND public_key = ?2",
                    )?
                    .query_row(params![node, public_key], |row| row.get(0))
                    .optional()?
                    .ok_or_else(|| {
                        StoreError::Damaged(format!("no enrollment of {node}'s signing key"))
                    })?;
                wanted.insert(seq as u64);
            }
        }
        let mut ops = Vec::with_capacity(wanted.len());
        for seq in wanted {
            let (stream_id, bytes): (i64, Vec<u8>) = conn
                .prepare_cached(
                    "SELECT l.stream_id, l.op FROM log l JOIN streams s ON s.id = l.stream_id
                     WHERE s.node = ?1 AND s.stream = ?2 AND l.seq = ?3",
                )?
                .query_row(params![HUB_NODE, AUDIT_STREAM, seq as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            let (checkpoint, span) = self.cost(conn, stream_id, seq)?;
            self.add(stream_id, seq, checkpoint, span);
            ops.push(bytes);
        }
        Ok(ops)
    }

    /// Reads the checkpoints and the headers of the seqs not carried.
    fn finish(self, conn: &Connection) -> Result<Vec<ChainSegment>, StoreError> {
        use base64::Engine;
        let mut segments = Vec::new();
        for (stream_id, plan) in self.streams {
            let (node, stream): (String, String) = conn.query_row(
                "SELECT node, stream FROM streams WHERE id = ?1",
                [stream_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let mut headers: BTreeMap<u64, Vec<String>> = BTreeMap::new();
            let mut statement = conn.prepare_cached(
                "SELECT seq, op FROM log WHERE stream_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
            )?;
            for &(from, to) in &plan.spans {
                let mut rows = statement.query(params![stream_id, from as i64, to as i64])?;
                while let Some(row) = rows.next()? {
                    let seq = row.get::<_, i64>(0)? as u64;
                    if plan.carried.contains(&seq) {
                        continue;
                    }
                    let bytes: Vec<u8> = row.get(1)?;
                    let header = cairn_core::op::Op::header_bytes(&bytes).map_err(|fault| {
                        StoreError::Damaged(format!("{node}:{stream} seq {seq}: {fault}"))
                    })?;
                    // Each header goes with the first checkpoint at or above it.
                    let checkpoint = plan.checkpoints.range(seq..).next().copied().unwrap_or(to);
                    headers
                        .entry(checkpoint)
                        .or_default()
                        .push(base64::engine::general_purpose::STANDARD.encode(header));
                }
            }
            for checkpoint in plan.checkpoints {
                let (signature, public_key, head): (Vec<u8>, Vec<u8>, Vec<u8>) = conn
                    .prepare_cached(
                        "SELECT c.signature, c.public_key, l.op_hash FROM origin_checkpoints c
                         JOIN log l ON l.stream_id = c.stream_id AND l.seq = c.seq
                         WHERE c.stream_id = ?1 AND c.seq = ?2",
                    )?
                    .query_row(params![stream_id, checkpoint as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?;
                segments.push(ChainSegment {
                    node: node.clone(),
                    stream: stream.clone(),
                    seq: checkpoint,
                    head: hex::encode(head),
                    signature: hex::encode(signature),
                    public_key: hex::encode(public_key),
                    headers: headers.remove(&checkpoint).unwrap_or_default(),
                });
            }
        }
        Ok(segments)
    }
}

/// The scope labels `node` is granted.
fn granted_scopes(conn: &Connection, node: &str) -> Result<BTreeMap<String, String>, PushError> {
    let grants: Option<String> = conn
        .query_row("SELECT scopes FROM nodes WHERE node = ?1", [node], |row| {
            row.get(0)
        })
        .optional()
        .map_err(StoreError::from)?;
    let grants = grants.ok_or_else(|| PushError::UnknownNode(node.to_string()))?;
    Ok(serde_json::from_str(&grants)
        .map_err(|error| StoreError::Damaged(format!("scopes of {node}: {error}")))?)
}

/// Whether `node` may see an op of `origin` with `scope` (`,name=value,…,`):
/// never its own, and only when it holds every label.
fn visible(node: &str, grants: &BTreeMap<String, String>, origin: &str, scope: &str) -> bool {
    origin != node
        && scope
            .split(',')
            .filter_map(|label| label.split_once('='))
            .all(|(name, value)| grants.get(name).is_some_and(|granted| granted == value))
}

const HUB_DDL: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE nodes (
    node        TEXT PRIMARY KEY,
    public_key  BLOB NOT NULL,
    scopes      TEXT NOT NULL,
    enrolled_ms INTEGER NOT NULL,
    pushed_ms   INTEGER,
    clock_offset_ms INTEGER
) STRICT;
CREATE TABLE streams (
    id        INTEGER PRIMARY KEY,
    node      TEXT NOT NULL,
    stream    TEXT NOT NULL,
    head_seq  INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    held      INTEGER NOT NULL DEFAULT 0,
    UNIQUE (node, stream)
) STRICT;
CREATE TABLE log (
    leaf        INTEGER PRIMARY KEY,
    stream_id   INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    op_hash     BLOB NOT NULL,
    op          BLOB NOT NULL,
    node        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (stream_id, seq)
) STRICT;
CREATE TABLE tree (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE node_keys (
    node       TEXT NOT NULL,
    public_key BLOB NOT NULL,
    audit_seq  INTEGER NOT NULL,
    PRIMARY KEY (node, public_key)
) STRICT, WITHOUT ROWID;
CREATE TABLE origin_checkpoints (
    stream_id  INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    signature  BLOB NOT NULL,
    public_key BLOB NOT NULL,
    PRIMARY KEY (stream_id, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE log_checkpoints (
    size       INTEGER PRIMARY KEY,
    root       BLOB NOT NULL,
    note       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    node        TEXT NOT NULL,
    stream      TEXT NOT NULL,
    seq         INTEGER,
    material_hash BLOB NOT NULL,
    op          BLOB NOT NULL,
    reason      TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    UNIQUE (node, stream, material_hash)
) STRICT;
CREATE TABLE enrollments (
    token_hash BLOB PRIMARY KEY,
    node       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used_ms    INTEGER,
    rekey      INTEGER NOT NULL DEFAULT 0,
    revoked_ms INTEGER
) STRICT;
CREATE TABLE alerts (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    node       TEXT NOT NULL,
    stream     TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) STRICT;
";

pub use cairn_hub::{PUSH_OPS_MAX, PushError, PushRequest};
pub use cairn_proto::{OpResult, OpStatus, PushResponse, RangeReceipt};

/// An operator's decision on an equivocation (see [`HubStore::resolve`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolution {
    /// The node.
    pub node: String,
    /// Its stream.
    pub stream: String,
    /// The head the hub keeps.
    pub kept_seq: u64,
    /// Its hash, hex.
    pub kept_hash: String,
    /// Quarantined items of the stream, all kept.
    pub quarantined: u64,
    /// Why.
    pub reason: String,
    /// Who decided (a staff token's subject, or `cli`).
    pub by: String,
}

/// Why a resolution was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The hub holds no such stream.
    #[error("the hub holds no stream {0}")]
    UnknownStream(String),
    /// The stream is not held.
    #[error("stream {0} is not held: there is nothing to resolve")]
    NotHeld(String),
    /// The reason is missing or too long.
    #[error("reason {0}")]
    Reason(String),
    /// A storage fault.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The token is unknown, used or expired.
    #[error("{0}")]
    Token(&'static str),
    /// The token was issued for another node.
    #[error("the token was issued for node {0:?}")]
    Node(String),
    /// The public key is not an Ed25519 key.
    #[error("public key is not a valid Ed25519 key")]
    Key,
    /// A storage fault.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Figures for `cairn hub status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HubStatus {
    /// Log origin.
    pub origin: String,
    /// Leaves in the log.
    pub log_size: u64,
    /// Root hash, hex.
    pub root: String,
    /// Enrolled nodes.
    pub nodes: u64,
    /// Streams: `node:stream` to (head seq, held).
    pub streams: BTreeMap<String, (u64, bool)>,
    /// Quarantined items.
    pub quarantined: u64,
    /// Alerts raised.
    pub alerts: Vec<String>,
    /// Per node that pushed: when it last did, and its clock minus the
    /// hub's at that push, ms.
    pub clocks: BTreeMap<String, NodeClock>,
    /// The newest quarantined items (at most [`STATUS_QUARANTINE_MAX`]).
    pub quarantine: Vec<QuarantineItem>,
}

/// Most quarantined items `status` lists.
pub const STATUS_QUARANTINE_MAX: usize = 100;

/// One item of the quarantine, as `status` lists it (the material itself
/// stays in the hub's database).
#[derive(Clone, Debug, serde::Serialize)]
pub struct QuarantineItem {
    /// The node it was pushed as.
    pub node: String,
    /// The stream it was pushed to.
    pub stream: String,
    /// The seq it claims, when its header decodes.
    pub seq: Option<u64>,
    /// SHA-256 of the material, hex.
    pub material_hash: String,
    /// Why it was quarantined.
    pub reason: String,
    /// When, hub time, ms.
    pub received_ms: u64,
}

/// What the hub saw of a node's clock at its last push.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeClock {
    /// When the node last pushed, hub time, ms.
    pub pushed_ms: u64,
    /// The node's clock minus the hub's, ms.
    pub clock_offset_ms: i64,
}

/// An open hub store: the hub's logic over its SQLite backend, and the
/// hub's own SQL (enrollment, pulls, snapshots, status) not yet behind the
/// backend trait.
pub struct HubStore {
    hub: Hub<SqliteBackend>,
    /// Declared after `hub`, so it is dropped after it: its thread ends
    /// once the connection (which holds its wake-up) is closed.
    _checkpointer: WalCheckpointer,
}

fn hub_key_path(dir: &Path) -> PathBuf {
    dir.join("hub.key")
}

fn hub_db_path(dir: &Path) -> PathBuf {
    dir.join("hub.db")
}

impl HubStore {
    /// Creates the hub's identity and database in `dir`; `origin` names the log.
    pub fn init(dir: &Path, origin: &str) -> Result<(), StoreError> {
        if origin.is_empty() || origin.contains('\n') || origin.len() > 256 {
            return Err(StoreError::Config(
                "origin must be one line of 1 to 256 bytes".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|error| StoreError::io(dir, error))?;
        if hub_key_path(dir).exists() || hub_db_path(dir).exists() {
            return Err(StoreError::Config(format!(
                "{} already holds a Cairn hub",
                dir.display()
            )));
        }
        let identity = NodeIdentity::from_seed("hub", cairn_sqlite::random_seed()?);
        cairn_sqlite::write_private(&hub_key_path(dir), identity.to_key_file().as_bytes())?;
        let mut conn = cairn_sqlite::open(&hub_db_path(dir))?;
        let tx = conn.transaction()?;
        tx.execute_batch(HUB_DDL)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('origin', ?1), ('schema_version', ?2)",
            [origin, HUB_SCHEMA_VERSION],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Opens an initialized hub.
    pub fn open(dir: &Path) -> Result<HubStore, StoreError> {
        HubStore::open_with_clock(dir, cairn_sqlite::clock::system())
    }

    /// [`HubStore::open`] with the time taken from `clock` (tokens' expiry,
    /// receipt times, alerts, its own acts): tests move it by hand.
    pub fn open_with_clock(
        dir: &Path,
        clock: std::sync::Arc<dyn cairn_core::clock::Clock>,
    ) -> Result<HubStore, StoreError> {
        let key_text = std::fs::read_to_string(hub_key_path(dir))
            .map_err(|error| StoreError::io(&hub_key_path(dir), error))?;
        let identity = NodeIdentity::from_key_file(&key_text)
            .map_err(|error| StoreError::Config(error.to_string()))?;
        if !hub_db_path(dir).exists() {
            return Err(StoreError::Config(format!(
                "{} holds no hub; run `cairn hub init` first",
                dir.display()
            )));
        }
        let mut conn = cairn_sqlite::open(&hub_db_path(dir))?;
        let version: String = conn.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )?;
        if version != HUB_SCHEMA_VERSION {
            return Err(StoreError::Config(format!(
                "{} holds hub schema {version}, this build reads {HUB_SCHEMA_VERSION}",
                dir.display()
            )));
        }
        let origin: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'origin'", [], |row| {
                row.get(0)
            })?;
        // The WAL is folded into the database beside the pushes, not inside
        // the commit of whichever push crosses the threshold.
        let checkpointer = WalCheckpointer::start(&hub_db_path(dir), &mut conn)?;
        let reader = cairn_sqlite::open(&hub_db_path(dir))?;
        reader.pragma_update(None, "query_only", true)?;
        Ok(HubStore {
            hub: Hub::new(
                SqliteBackend::new(conn, reader),
                LogSigner::new(identity, origin),
                clock,
            ),
            _checkpointer: checkpointer,
        })
    }

    /// The hub's clock (tokens are judged by it).
    pub fn clock(&self) -> &dyn cairn_core::clock::Clock {
        self.hub.clock()
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        self.hub.signer().origin()
    }

    /// The hub's public key (checks its log checkpoints).
    pub fn public_key(&self) -> [u8; 32] {
        self.identity().public_key()
    }

    fn identity(&self) -> &NodeIdentity {
        self.hub.signer().identity()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.hub.backend().lock()
    }

    /// The read-only connection, inside a read transaction: every statement
    /// run through it sees the same commit, so a pull that reads the log's
    /// size and then its leaves never meets a push that committed in
    /// between (which it once reported as damage).
    fn read(&self) -> Result<SqlTx<'_>, StoreError> {
        Ok(self.hub.backend().read()?)
    }

    /// Registers a node with its public key and granted scopes, or grants
    /// an enrolled node new scopes under the same key. A different key for
    /// an enrolled node is refused: re-keying is [`HubStore::rekey`].
    pub fn enroll(
        &self,
        node: &str,
        public_key: [u8; 32],
        scopes: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.register(node, public_key, scopes, false, "cli")
    }

    /// Replaces an enrolled node's key (a lost or stolen device): an
    /// explicit act, recorded in `hub:audit` with the key it replaces and
    /// who did it. Ops the old key signed stay provable with it.
    pub fn rekey(
        &self,
        node: &str,
        public_key: [u8; 32],
        scopes: &BTreeMap<String, String>,
        by: &str,
    ) -> Result<(), StoreError> {
        self.register(node, public_key, scopes, true, by)
    }

    fn register(
        &self,
        node: &str,
        public_key: [u8; 32],
        scopes: &BTreeMap<String, String>,
        rekey: bool,
        by: &str,
    ) -> Result<(), StoreError> {
        check_node_name(node)?;
        if ed25519_dalek_check(&public_key).is_err() {
            return Err(StoreError::Config(
                "public key is not a valid Ed25519 key".into(),
            ));
        }
        let scopes_text = serde_json::to_string(scopes)
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let previous = enrolled_key(&tx, node)?;
        let rekeyed = previous.filter(|previous| *previous != public_key);
        if let Some(previous) = rekeyed
            && !rekey
        {
            return Err(StoreError::Config(format!(
                "node {node:?} is already enrolled with key {}; replacing its key is an explicit act: pass --rekey",
                hex::encode(previous)
            )));
        }
        let act = EnrollAct {
            node,
            public_key,
            scopes: &scopes_text,
            previous: rekeyed,
            by,
        };
        self.register_in(&tx, &act)?;
        tx.commit()?;
        Ok(())
    }

    /// Writes an enrollment inside `tx`: the node's row, the act in
    /// `hub:audit`, the key's record, and the end of every token still
    /// outstanding for the node (any enrollment makes them void).
    fn register_in(&self, tx: &Connection, act: &EnrollAct<'_>) -> Result<(), StoreError> {
        let now = self.clock().now_ms();
        tx.execute(
            "INSERT INTO nodes (node, public_key, scopes, enrolled_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (node) DO UPDATE SET public_key = ?2, scopes = ?3",
            params![act.node, act.public_key.as_slice(), act.scopes, now as i64],
        )?;
        let revoked = tx.execute(
            "UPDATE enrollments SET revoked_ms = ?1
             WHERE node = ?2 AND used_ms IS NULL AND revoked_ms IS NULL",
            params![now as i64, act.node],
        )?;
        let granted: serde_json::Value = serde_json::from_str(act.scopes)
            .map_err(|error| StoreError::Damaged(format!("scopes of {}: {error}", act.node)))?;
        let mut record = serde_json::json!({
            "action": "enroll",
            "node": act.node,
            "public_key": hex::encode(act.public_key),
            "scopes": granted,
            "by": act.by,
        });
        if let Some(previous) = act.previous {
            record["rekey"] = true.into();
            record["previous_key"] = hex::encode(previous).into();
        }
        if revoked > 0 {
            record["tokens_revoked"] = revoked.into();
        }
        let seq = self.audit(tx, record)?;
        keep_node_key(tx, act.node, &act.public_key, seq)
    }

    /// Makes every outstanding one-time token of `node` void; returns how
    /// many there were. Recorded in `hub:audit` when there were any.
    pub fn revoke_tokens(&self, node: &str, by: &str) -> Result<u64, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        let revoked = tx.execute(
            "UPDATE enrollments SET revoked_ms = ?1
             WHERE node = ?2 AND used_ms IS NULL AND revoked_ms IS NULL",
            params![self.clock().now_ms() as i64, node],
        )?;
        if revoked > 0 {
            self.audit(
                &tx,
                serde_json::json!({"action": "revoke_tokens", "node": node, "count": revoked, "by": by}),
            )?;
        }
        tx.commit()?;
        Ok(revoked as u64)
    }

    /// The ops of the hub's own stream of administrative acts, in seq order.
    pub fn audit_ops(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.read()?;
        let conn = tx.conn();
        let mut statement = conn.prepare(
            "SELECT l.op FROM log l JOIN streams s ON s.id = l.stream_id
             WHERE s.node = ?1 AND s.stream = ?2 ORDER BY l.seq",
        )?;
        let ops = statement
            .query_map(params![HUB_NODE, AUDIT_STREAM], |row| row.get(0))?
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok(ops)
    }

    /// Appends an administrative act to the hub's own signed stream
    /// (`hub:audit`), as a leaf of the log, inside the caller's transaction:
    /// enrollments and revocations become as tamper-evident as the nodes'
    /// records. The ops carry the scope `hub=audit`, which nodes are not
    /// granted, so they are not handed out by pulls.
    ///
    /// Returns the act's seq in `hub:audit`.
    fn audit(&self, tx: &Connection, record: serde_json::Value) -> Result<u64, StoreError> {
        let now = self.clock().now_ms();
        Ok(cairn_hub::audit::append_act(
            &SqlTx::within(tx),
            self.hub.signer(),
            &record,
            now,
        )?)
    }

    /// Ops visible to `node` from leaf `from` on: in its granted scopes and
    /// not its own. An op is visible when every scope label it carries is
    /// granted to the node (an op without labels is visible to all).
    pub fn pull(&self, node: &str, from: u64, limit: usize) -> Result<PullPage, PushError> {
        let tx = self.read()?;
        let grants = granted_scopes(tx.conn(), node)?;
        Ok(self.pull_page(&tx, node, grants, from, limit)?)
    }

    fn pull_page(
        &self,
        tx: &SqlTx<'_>,
        node: &str,
        grants: BTreeMap<String, String>,
        from: u64,
        limit: usize,
    ) -> Result<PullPage, StoreError> {
        use base64::Engine;
        let conn = tx.conn();
        let size = tx.log_size()?;
        let note = self.checkpoint_at(tx, size)?;
        let mut statement = conn.prepare_cached(
            "SELECT leaf, op, node, scope, stream_id, seq FROM log WHERE leaf >= ?1 ORDER BY leaf LIMIT ?2",
        )?;
        let mut rows = statement.query(params![from as i64, PULL_SCAN_MAX as i64])?;
        let (mut ops, mut next, mut origins) =
            (Vec::new(), from, std::collections::BTreeSet::new());
        let mut chains = ChainPlan::default();
        let reader = TreeReader::new(tx);
        while let Some(row) = rows.next()? {
            let leaf = row.get::<_, i64>(0)? as u64;
            let origin: String = row.get(2)?;
            if !visible(node, &grants, &origin, &row.get::<_, String>(3)?) {
                next = leaf + 1;
                continue;
            }
            let (stream_id, seq) = (row.get::<_, i64>(4)?, row.get::<_, i64>(5)? as u64);
            let (checkpoint, span) = chains.cost(conn, stream_id, seq)?;
            if !ops.is_empty() && chains.span + span > CHAIN_SPAN_MAX {
                break; // This op starts the next page.
            }
            chains.add(stream_id, seq, checkpoint, span);
            next = leaf + 1;
            let bytes: Vec<u8> = row.get(1)?;
            // The log only holds verified ops; a stored op that no longer
            // decodes is damage, reported rather than handed out.
            cairn_core::op::Op::decode(&bytes)
                .map_err(|fault| StoreError::Damaged(format!("log leaf {leaf}: {fault}")))?;
            let proof = merkle::inclusion_proof(&reader, leaf, size)
                .ok_or_else(|| reader.missing(format!("no proof for leaf {leaf}")))?;
            ops.push(PulledOp {
                leaf,
                op: base64::engine::general_purpose::STANDARD.encode(&bytes),
                proof: proof.iter().map(Hash::to_hex).collect(),
            });
            origins.insert(origin);
            if ops.len() >= limit.clamp(1, PULL_OPS_MAX) {
                break;
            }
        }
        drop(rows);
        let mut nodes = BTreeMap::new();
        for origin in origins {
            let key: Vec<u8> = conn.query_row(
                "SELECT public_key FROM nodes WHERE node = ?1",
                [&origin],
                |row| row.get(0),
            )?;
            nodes.insert(origin, hex::encode(key));
        }
        let enrollments = chains
            .add_enrollments(conn)?
            .iter()
            .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
            .collect();
        Ok(PullPage {
            ops,
            next,
            more: next < size,
            checkpoint: note,
            nodes,
            chains: chains.finish(conn)?,
            enrollments,
            grants,
        })
    }

    /// One page of a snapshot for `node` (`cairn_core::snapshot`): the ops
    /// it may see in the leaves from `query.from` on (below `query.to`,
    /// when given, and carrying one of `query.labels`, when given), up to
    /// [`SNAPSHOT_OPS_MAX`] ops or [`SNAPSHOT_SCAN_MAX`] leaves, under a
    /// signed manifest: how a node catches up without an inclusion proof
    /// per op, one bounded page at a time.
    pub fn snapshot(&self, node: &str, query: &SnapshotQuery) -> Result<Snapshot, PushError> {
        let tx = self.read()?;
        let grants = granted_scopes(tx.conn(), node)?;
        Ok(self.snapshot_page(&tx, node, grants, query)?)
    }

    fn snapshot_page(
        &self,
        tx: &SqlTx<'_>,
        node: &str,
        grants: BTreeMap<String, String>,
        query: &SnapshotQuery,
    ) -> Result<Snapshot, StoreError> {
        let conn = tx.conn();
        let size = tx.log_size()?;
        let to = query.to.map_or(size, |to| to.min(size));
        let wanted = |scope: &str| {
            query.labels.is_empty()
                || query
                    .labels
                    .iter()
                    .any(|label| scope.contains(&format!(",{label},")))
        };
        let mut statement = conn.prepare_cached(
            "SELECT leaf, op, node, scope, stream_id, seq FROM log WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf LIMIT ?3",
        )?;
        let mut rows = statement.query(params![
            query.from as i64,
            to as i64,
            SNAPSHOT_SCAN_MAX as i64
        ])?;
        let (mut ops, mut next) = (Vec::new(), query.from);
        let mut digest = SnapshotDigest::default();
        let mut chains = ChainPlan::default();
        while let Some(row) = rows.next()? {
            let leaf = row.get::<_, i64>(0)? as u64;
            let scope: String = row.get(3)?;
            if !visible(node, &grants, &row.get::<_, String>(2)?, &scope) || !wanted(&scope) {
                next = leaf + 1;
                continue;
            }
            let (stream_id, seq) = (row.get::<_, i64>(4)?, row.get::<_, i64>(5)? as u64);
            let (checkpoint, span) = chains.cost(conn, stream_id, seq)?;
            if !ops.is_empty() && chains.span + span > SNAPSHOT_OPS_MAX + CHAIN_SPAN_MAX {
                break; // The next page starts with this op.
            }
            chains.add(stream_id, seq, checkpoint, span);
            next = leaf + 1;
            let bytes: Vec<u8> = row.get(1)?;
            let op = cairn_core::op::Op::decode(&bytes)
                .map_err(|fault| StoreError::Damaged(format!("log leaf {leaf}: {fault}")))?;
            digest.push(&op.op_hash);
            ops.push(bytes);
            if ops.len() >= SNAPSHOT_OPS_MAX {
                break;
            }
        }
        drop(rows);
        drop(statement);
        let enrollments = chains.add_enrollments(conn)?;
        let chains = chains.finish(conn)?;
        let (count, digest) = digest.finish();
        let manifest = SnapshotManifest {
            origin: self.origin().to_string(),
            node: node.to_string(),
            from: query.from,
            next,
            labels: query.labels_text(),
            ops: count,
            digest,
        };
        Ok(Snapshot {
            manifest: manifest.sign(self.identity()),
            ops,
            chains,
            enrollments,
            more: next < to,
        })
    }

    /// A node's own ops of `stream` from seq `from` on (at most `limit`),
    /// with the checkpoints it signed over them: how a node restored from
    /// an old backup takes back what the hub holds of its history.
    pub fn own_ops(
        &self,
        node: &str,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<OwnOps, StoreError> {
        use base64::Engine;
        let tx = self.read()?;
        let conn = tx.conn();
        let row: Option<(i64, i64, bool)> = conn
            .query_row(
                "SELECT id, head_seq, held FROM streams WHERE node = ?1 AND stream = ?2",
                params![node, stream],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let Some((stream_id, head, held)) = row else {
            return Ok(OwnOps {
                ops: Vec::new(),
                chains: Vec::new(),
                head: 0,
                held: false,
            });
        };
        let rows: Vec<(u64, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT seq, op FROM log WHERE stream_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3",
            )?
            .query_map(
                params![stream_id, from as i64, limit.clamp(1, PUSH_OPS_MAX) as i64],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get(1)?)),
            )?
            .collect::<Result<_, _>>()?;
        let mut chains = ChainPlan::default();
        for (seq, _) in &rows {
            let (checkpoint, span) = chains.cost(conn, stream_id, *seq)?;
            chains.add(stream_id, *seq, checkpoint, span);
        }
        Ok(OwnOps {
            ops: rows
                .iter()
                .map(|(_, bytes)| base64::engine::general_purpose::STANDARD.encode(bytes))
                .collect(),
            chains: chains.finish(conn)?,
            head: head as u64,
            held,
        })
    }

    /// The hub's head seq of a stream and whether it is held (`None` for a
    /// stream it has never seen).
    pub fn stream_head(&self, node: &str, stream: &str) -> Result<Option<(u64, bool)>, StoreError> {
        let stream = self.read()?.stream(node, stream)?;
        Ok(stream.map(|row| (row.head.seq, row.held)))
    }

    /// The hub's head of every stream of `node`: stream to (seq, op hash).
    pub fn stream_heads(&self, node: &str) -> Result<BTreeMap<String, (u64, Hash)>, StoreError> {
        let tx = self.read()?;
        let conn = tx.conn();
        let mut statement = conn.prepare(
            "SELECT stream, head_seq, head_hash FROM streams WHERE node = ?1 ORDER BY stream",
        )?;
        let rows = statement
            .query_map([node], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter(|(_, seq, _)| *seq > 0)
            .map(|(stream, seq, hash)| {
                (
                    stream,
                    (seq as u64, Hash::from_slice(&hash).unwrap_or(Hash::ZERO)),
                )
            })
            .collect())
    }

    /// Signs `message` with the hub's key (acknowledgement files carry it).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.identity().sign(message)
    }

    /// A token for a person or tool (role `operator`, `auditor` or
    /// `admin`), signed with the hub's own key: whoever holds the hub's
    /// data directory vouches for it. Nodes sign their own tokens instead.
    pub fn issue_token(
        &self,
        subject: &str,
        role: &str,
        lifetime_s: u64,
        now_s: u64,
    ) -> Result<String, StoreError> {
        if !STAFF_ROLES.contains(&role) {
            return Err(StoreError::Config(format!(
                "role {role:?}: the hub issues tokens for {} (nodes sign their own)",
                STAFF_ROLES.join(", ")
            )));
        }
        cairn_core::names::check_name(subject)
            .map_err(|message| StoreError::Config(format!("subject {subject:?}: {message}")))?;
        let lifetime_max = cairn_core::token::TOKEN_LIFETIME_S_MAX;
        if lifetime_s == 0 || lifetime_s > lifetime_max {
            return Err(StoreError::Config(format!(
                "lifetime: 1 to {lifetime_max} seconds"
            )));
        }
        let claims = cairn_core::token::Claims {
            sub: subject.to_string(),
            aud: self.origin().to_string(),
            role: role.to_string(),
            iat: now_s,
            exp: now_s + lifetime_s,
        };
        Ok(cairn_core::token::sign(&claims, self.identity()))
    }

    /// Revokes a scope label from a node; returns whether it was granted.
    pub fn revoke(&self, node: &str, label: &str, value: &str) -> Result<bool, StoreError> {
        let conn = self.lock()?;
        let scopes: Option<String> = conn
            .query_row("SELECT scopes FROM nodes WHERE node = ?1", [node], |row| {
                row.get(0)
            })
            .optional()?;
        let Some(scopes) = scopes else {
            return Err(StoreError::Config(format!("node {node:?} is not enrolled")));
        };
        let mut grants: BTreeMap<String, String> = serde_json::from_str(&scopes)
            .map_err(|error| StoreError::Damaged(format!("scopes of {node}: {error}")))?;
        if grants.get(label).map(String::as_str) != Some(value) {
            return Ok(false);
        }
        grants.remove(label);
        let scopes = serde_json::to_string(&grants)
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        let mut conn = conn;
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE nodes SET scopes = ?1 WHERE node = ?2",
            params![scopes, node],
        )?;
        self.audit(
            &tx,
            serde_json::json!({"action": "revoke", "node": node, "label": format!("{label}={value}")}),
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Releases a stream an equivocation held, keeping the hub's version:
    /// its head stays where it is, both diverging versions stay in the
    /// quarantine, and pushes that extend the head are accepted again (a
    /// push that still rewrites a held seq holds the stream anew). The act,
    /// with who decided and why, is an op of the hub's own stream.
    pub fn resolve(
        &self,
        node: &str,
        stream: &str,
        reason: &str,
        by: &str,
    ) -> Result<Resolution, ResolveError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.len() > cairn_core::limits::REASON_BYTES_MAX {
            return Err(ResolveError::Reason(format!(
                "must be 1 to {} bytes of text",
                cairn_core::limits::REASON_BYTES_MAX
            )));
        }
        let mut conn = self.lock()?;
        let tx = conn.transaction().map_err(StoreError::from)?;
        let row: Option<(i64, i64, Vec<u8>, bool)> = tx
            .query_row(
                "SELECT id, head_seq, head_hash, held FROM streams WHERE node = ?1 AND stream = ?2",
                params![node, stream],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        let Some((stream_id, head_seq, head_hash, held)) = row else {
            return Err(ResolveError::UnknownStream(format!("{node}:{stream}")));
        };
        if !held {
            return Err(ResolveError::NotHeld(format!("{node}:{stream}")));
        }
        let quarantined: i64 = tx
            .query_row(
                "SELECT count(*) FROM quarantine WHERE node = ?1 AND stream = ?2",
                params![node, stream],
                |row| row.get(0),
            )
            .map_err(StoreError::from)?;
        let resolution = Resolution {
            node: node.to_string(),
            stream: stream.to_string(),
            kept_seq: head_seq as u64,
            kept_hash: hex::encode(&head_hash),
            quarantined: quarantined as u64,
            reason: reason.to_string(),
            by: by.to_string(),
        };
        self.audit(
            &tx,
            serde_json::json!({
                "action": "resolve",
                "node": node,
                "stream": stream,
                "decision": "keep the hub's version",
                "kept_seq": resolution.kept_seq,
                "kept_hash": resolution.kept_hash,
                "quarantined": resolution.quarantined,
                "reason": reason,
                "by": by,
            }),
        )?;
        tx.execute("UPDATE streams SET held = 0 WHERE id = ?1", [stream_id])
            .map_err(StoreError::from)?;
        tx.execute(
            "INSERT INTO alerts (kind, node, stream, message, created_ms) VALUES ('resolved', ?1, ?2, ?3, ?4)",
            params![
                node,
                stream,
                format!("released by {by}, keeping seq {head_seq} as held: {reason}"),
                self.clock().now_ms() as i64
            ],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(resolution)
    }

    /// The enrolled public key of `node`.
    pub fn node_key(&self, node: &str) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.read()?.node_key(node)?)
    }

    /// Creates a one-time enrollment token for `node` with its scopes, valid
    /// for `valid_ms`; only its hash is stored. Returns the token. For a
    /// node already enrolled it is refused unless `rekey`: redeeming it
    /// then replaces the node's key, as [`HubStore::rekey`] does.
    pub fn create_enrollment(
        &self,
        node: &str,
        scopes: &BTreeMap<String, String>,
        valid_ms: u64,
        rekey: bool,
    ) -> Result<String, StoreError> {
        check_node_name(node)?;
        let token = hex::encode(cairn_sqlite::random_seed()?);
        let scopes = serde_json::to_string(scopes)
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        let conn = self.lock()?;
        if !rekey && enrolled_key(&conn, node)?.is_some() {
            return Err(StoreError::Config(format!(
                "node {node:?} is already enrolled; a token would replace its key: pass --rekey to issue one"
            )));
        }
        conn.execute(
            "INSERT INTO enrollments (token_hash, node, scopes, expires_ms, rekey) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![Hash::of(token.as_bytes()).0.as_slice(), node, scopes, (self.clock().now_ms() + valid_ms) as i64, rekey],
        )?;
        Ok(token)
    }

    /// Redeems a one-time token: registers `public_key` for the token's node.
    pub fn redeem_enrollment(
        &self,
        node: &str,
        public_key: [u8; 32],
        token: &str,
    ) -> Result<(), EnrollError> {
        if ed25519_dalek_check(&public_key).is_err() {
            return Err(EnrollError::Key);
        }
        let token_hash = Hash::of(token.as_bytes());
        let mut conn = self.lock()?;
        let tx = conn.transaction().map_err(StoreError::from)?;
        let row = tx
            .query_row(
                "SELECT node, scopes, expires_ms, used_ms, rekey, revoked_ms FROM enrollments WHERE token_hash = ?1",
                [token_hash.0.as_slice()],
                |row| {
                    Ok(TokenRow {
                        node: row.get(0)?,
                        scopes: row.get(1)?,
                        expires_ms: row.get(2)?,
                        used_ms: row.get(3)?,
                        rekey: row.get(4)?,
                        revoked_ms: row.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(StoreError::from)?;
        let Some(TokenRow {
            node: token_node,
            scopes,
            expires_ms,
            used_ms,
            rekey,
            revoked_ms,
        }) = row
        else {
            return Err(EnrollError::Token("unknown token"));
        };
        if used_ms.is_some() {
            return Err(EnrollError::Token("token already used"));
        }
        if revoked_ms.is_some() {
            return Err(EnrollError::Token(
                "token revoked (the node was enrolled since, or an admin revoked it)",
            ));
        }
        if (expires_ms as u64) < self.clock().now_ms() {
            return Err(EnrollError::Token("token expired"));
        }
        if token_node != node {
            return Err(EnrollError::Node(token_node));
        }
        let previous = enrolled_key(&tx, node)?;
        let rekeyed = previous.filter(|previous| *previous != public_key);
        if previous.is_some() && !rekey {
            return Err(EnrollError::Token(
                "the node is already enrolled and this token may not replace its key",
            ));
        }
        tx.execute(
            "UPDATE enrollments SET used_ms = ?1 WHERE token_hash = ?2",
            params![self.clock().now_ms() as i64, token_hash.0.as_slice()],
        )
        .map_err(StoreError::from)?;
        let act = EnrollAct {
            node,
            public_key,
            scopes: &scopes,
            previous: rekeyed,
            by: "one-time token",
        };
        self.register_in(&tx, &act)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Verifies and applies a push (see [`HubStore::push_group`]).
    pub fn push(&self, request: PushRequest) -> Result<PushResponse, PushError> {
        self.hub.push(request)
    }

    /// Verifies and persists a pushed batch (`cairn_hub::pipeline`): pushes
    /// that arrive together share one transaction, one fsync and one signed
    /// log checkpoint, each with its own range receipt.
    pub fn push_group(&self, requests: Vec<PushRequest>) -> Vec<Result<PushResponse, PushError>> {
        self.hub.push_group(requests)
    }

    /// The signed log checkpoint of the log as it is now.
    pub fn checkpoint(&self) -> Result<String, StoreError> {
        Ok(self.hub.checkpoint()?)
    }

    /// The signed checkpoint at `size` read through `tx`.
    fn checkpoint_at(&self, tx: &SqlTx<'_>, size: u64) -> Result<String, StoreError> {
        Ok(self.hub.signer().checkpoint_at(tx, size)?)
    }

    /// Consistency proof between two log sizes, hex.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let tx = self.read()?;
        let size = tx.log_size()? as i64;
        if new_size > size as u64 {
            return Ok(None);
        }
        let reader = TreeReader::new(&tx);
        match merkle::consistency_proof(&reader, old_size, new_size) {
            Some(proof) => Ok(Some(proof.iter().map(Hash::to_hex).collect())),
            // Sizes out of order, unless a read failed on the way.
            None => match reader.take_fault() {
                Some(fault) => Err(fault.into()),
                None => Ok(None),
            },
        }
    }

    /// Log size, streams, quarantine and alerts.
    pub fn status(&self) -> Result<HubStatus, StoreError> {
        let tx = self.read()?;
        let conn = tx.conn();
        let log_size = tx.log_size()? as i64;
        let root = tree::root(&TreeReader::new(&tx), log_size as u64)?;
        let nodes: i64 = conn.query_row("SELECT count(*) FROM nodes", [], |row| row.get(0))?;
        let quarantined: i64 =
            conn.query_row("SELECT count(*) FROM quarantine", [], |row| row.get(0))?;
        let streams = conn
            .prepare("SELECT node, stream, head_seq, held FROM streams ORDER BY node, stream")?
            .query_map([], |row| {
                Ok((
                    format!("{}:{}", row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                    (row.get::<_, i64>(2)? as u64, row.get::<_, bool>(3)?),
                ))
            })?
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let alerts = conn
            .prepare("SELECT kind, node, stream, message FROM alerts ORDER BY id")?
            .query_map([], |row| {
                Ok(format!(
                    "{} {}:{}: {}",
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let clocks = conn
            .prepare(
                "SELECT node, pushed_ms, clock_offset_ms FROM nodes
                 WHERE clock_offset_ms IS NOT NULL ORDER BY node",
            )?
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    NodeClock {
                        pushed_ms: row.get::<_, i64>(1)? as u64,
                        clock_offset_ms: row.get(2)?,
                    },
                ))
            })?
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        let quarantine = conn
            .prepare(
                "SELECT node, stream, seq, material_hash, reason, received_ms FROM quarantine
                 ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([STATUS_QUARANTINE_MAX as i64], |row| {
                Ok(QuarantineItem {
                    node: row.get(0)?,
                    stream: row.get(1)?,
                    seq: row.get::<_, Option<i64>>(2)?.map(|seq| seq as u64),
                    material_hash: hex::encode(row.get::<_, Vec<u8>>(3)?),
                    reason: row.get(4)?,
                    received_ms: row.get::<_, i64>(5)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HubStatus {
            quarantine,
            clocks,
            origin: self.origin().to_string(),
            log_size: log_size as u64,
            root: root.to_hex(),
            nodes: nodes as u64,
            streams,
            quarantined: quarantined as u64,
            alerts,
        })
    }
}

/// Checks that 32 bytes are a usable Ed25519 public key.
fn ed25519_dalek_check(public_key: &[u8; 32]) -> Result<(), ()> {
    // A signature check against a key that is not a curve point fails with
    // `BadKey`; any other outcome means the key itself decoded.
    match cairn_core::identity::verify_signature(public_key, b"", &[0; 64]) {
        Err(cairn_core::identity::SignatureError::BadKey) => Err(()),
        _ => Ok(()),
    }
}

/// A one-time enrollment token as stored.
struct TokenRow {
    node: String,
    scopes: String,
    expires_ms: i64,
    used_ms: Option<i64>,
    rekey: bool,
    revoked_ms: Option<i64>,
}

/// An enrollment about to be written (`HubStore::register_in`).
struct EnrollAct<'a> {
    node: &'a str,
    public_key: [u8; 32],
    /// Granted scopes, as stored (a JSON object).
    scopes: &'a str,
    /// The key this enrollment replaces, when it re-keys the node.
    previous: Option<[u8; 32]>,
    /// Who enrolled it.
    by: &'a str,
}

/// Refuses names that are not node names, and the hub's own.
fn check_node_name(node: &str) -> Result<(), StoreError> {
    cairn_core::names::check_name(node)
        .map_err(|message| StoreError::Config(format!("node {node:?}: {message}")))?;
    if node == HUB_NODE {
        return Err(StoreError::Config(format!(
            "node {node:?}: the name is the hub's own"
        )));
    }
    Ok(())
}

/// The key `node` is enrolled with, if it is.
fn enrolled_key(conn: &Connection, node: &str) -> Result<Option<[u8; 32]>, StoreError> {
    let key: Option<Vec<u8>> = conn
        .query_row(
            "SELECT public_key FROM nodes WHERE node = ?1",
            [node],
            |row| row.get(0),
        )
        .optional()?;
    key.map(|key| {
        key.try_into()
            .map_err(|_| StoreError::Damaged(format!("enrolled key of {node}")))
    })
    .transpose()
}

/// Remembers which act of `hub:audit` enrolled `node` with `public_key`:
/// pulls hand that op out beside every checkpoint the key signed, so that
/// nodes only trust keys the hub logged.
fn keep_node_key(
    tx: &Connection,
    node: &str,
    public_key: &[u8; 32],
    audit_seq: u64,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO node_keys (node, public_key, audit_seq) VALUES (?1, ?2, ?3)
         ON CONFLICT (node, public_key) DO UPDATE SET audit_seq = ?3",
        params![node, public_key.as_slice(), audit_seq as i64],
    )?;
    Ok(())
}

/// The hub's writer thread applies groups to the store
/// (`cairn_hub::group::PushQueue`).
impl cairn_hub::group::Writer for HubStore {
    fn push_group(&self, requests: Vec<PushRequest>) -> Vec<Result<PushResponse, PushError>> {
        self.hub.push_group(requests)
    }

    fn stream_head(
        &self,
        node: &str,
        stream: &str,
    ) -> Result<Option<(u64, bool)>, cairn_hub::StorageError> {
        Ok(HubStore::stream_head(self, node, stream)?)
    }
}
