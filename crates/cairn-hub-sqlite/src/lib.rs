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
use cairn_hub::Hub;
use cairn_hub::backend::{HubBackend, LogTx};
use cairn_hub::signer::LogSigner;
use cairn_hub::tree::{self, TreeReader};
use cairn_sqlite::{StoreError, WalCheckpointer};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the hub schema, kept in `meta`.
const HUB_SCHEMA_VERSION: &str = "3";

pub use cairn_hub::pull::{
    CHAIN_SPAN_MAX, PULL_OPS_MAX, PULL_SCAN_MAX, SNAPSHOT_OPS_MAX, SNAPSHOT_SCAN_MAX, Snapshot,
    SnapshotQuery,
};
pub use cairn_hub::{AUDIT_COLLECTION, AUDIT_STREAM, HUB_NODE};
pub use cairn_proto::{ChainSegment, OwnOps, PullPage, PulledOp};

/// Roles whose tokens the hub signs itself (people and tools, not nodes).
pub const STAFF_ROLES: [&str; 3] = ["operator", "auditor", "admin"];

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

    /// Ops visible to `node` from leaf `from` on (`cairn_hub::pull`).
    pub fn pull(&self, node: &str, from: u64, limit: usize) -> Result<PullPage, PushError> {
        self.hub.pull(node, from, limit)
    }

    /// One page of a snapshot for `node` (`cairn_hub::pull`).
    pub fn snapshot(&self, node: &str, query: &SnapshotQuery) -> Result<Snapshot, PushError> {
        self.hub.snapshot(node, query)
    }

    /// A node's own ops of `stream` from seq `from` on (`cairn_hub::pull`).
    pub fn own_ops(
        &self,
        node: &str,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<OwnOps, StoreError> {
        Ok(self.hub.own_ops(node, stream, from, limit)?)
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
