//! The hub on SQLite: the backend of the hub's logic (`sqlite`:
//! [`SqliteBackend`], every read and write of `cairn_hub::backend::LogTx`
//! in SQL), the hub store that opens it with the hub's key and clock
//! ([`HubStore`], the schema, status), offline bundles (`bundle`), and
//! `hub verify` (`verify`), which re-derives the database itself.
//!
//! A push goes through `cairn_hub::Hub::push_group`: verified by
//! `cairn_core::push`, persisted in one transaction (accepted ops become
//! log leaves with their tree nodes, refused material goes to the
//! quarantine, never away, an equivocation holds its stream and raises an
//! alert), one signed log checkpoint per group, one range receipt per push.
#![deny(missing_docs)]

pub mod artifacts;
pub mod bundle;
mod comply;
mod fleet;
pub mod history;
pub mod legacy;
pub mod migrate;
pub mod reports;
mod sqlite;
mod store_backend;

pub use cairn_hub::verify::{FAULTS_MAX, HubVerifyReport};
pub use sqlite::{SqlTx, SqliteBackend};
pub use store_backend::{StoreBackend, StoreTx};

use cairn_core::hash::Hash;
use cairn_core::identity::NodeIdentity;
use cairn_core::merkle;
use cairn_core::pack::RulePack;
use cairn_hub::Hub;
use cairn_hub::backend::{HubBackend, LogTx};
use cairn_hub::comply::Packs;
use cairn_hub::signer::LogSigner;
use cairn_hub::tree::TreeReader;
use cairn_sqlite::{StoreError, WalCheckpointer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the hub schema, kept in `meta`.
const HUB_SCHEMA_VERSION: &str = "4";

pub use cairn_hub::pull::{
    CHAIN_SPAN_MAX, PULL_OPS_MAX, PULL_SCAN_MAX, SNAPSHOT_OPS_MAX, SNAPSHOT_SCAN_MAX, Snapshot,
    SnapshotQuery,
};
pub use cairn_hub::{AUDIT_COLLECTION, AUDIT_STREAM, HUB_NODE};
pub use cairn_proto::{ChainSegment, OwnOps, PullPage, PulledOp};

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

/// What nodes and legacy clients last showed of themselves, for every hub
/// process (created on open when missing: hubs made before it lack it).
const FLEET_DDL: &str = "
CREATE TABLE IF NOT EXISTS fleet_reports (
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (name, kind)
) STRICT;
";

pub use cairn_hub::{PUSH_OPS_MAX, PushError, PushRequest};
pub use cairn_proto::{OpResult, OpStatus, PushResponse, RangeReceipt};

pub use cairn_hub::admin::{EnrollError, Resolution, ResolveError, STAFF_ROLES};

pub use cairn_hub::status::{HubStatus, NodeClock, QuarantineItem, STATUS_QUARANTINE_MAX};

/// An open hub store: the hub's logic over its database (SQLite in the
/// hub's directory, or PostgreSQL: [`StoreBackend`]), with the hub's key
/// and the files its directory keeps.
pub struct HubStore {
    hub: Hub<StoreBackend>,
    /// The hub's directory (its key, database or database URL, TLS, legacy
    /// clients and artifact blobs).
    dir: PathBuf,
    /// Declared after `hub`, so it is dropped after it: its thread ends
    /// once the connection (which holds its wake-up) is closed. SQLite only.
    _checkpointer: Option<WalCheckpointer>,
}

/// The file in a hub's directory naming the PostgreSQL database it runs on.
fn database_url_path(dir: &Path) -> PathBuf {
    dir.join("database")
}

/// The PostgreSQL database `dir`'s hub runs on, if it runs on one.
pub fn database_url(dir: &Path) -> Result<Option<String>, StoreError> {
    let path = database_url_path(dir);
    match std::fs::read_to_string(&path) {
        Ok(url) => Ok(Some(url.trim().to_string())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StoreError::io(&path, error)),
    }
}

fn hub_key_path(dir: &Path) -> PathBuf {
    dir.join("hub.key")
}

fn hub_db_path(dir: &Path) -> PathBuf {
    dir.join("hub.db")
}

impl HubStore {
    /// Creates the hub's identity and database in `dir`; `origin` names the
    /// log. It judges by the built-in rule packs.
    pub fn init(dir: &Path, origin: &str) -> Result<(), StoreError> {
        HubStore::init_with(dir, origin, &[])
    }

    /// [`HubStore::init`], judging also by the packs of `custom_packs`
    /// (TOML sources, each checked; one of a built-in pack's name replaces
    /// it).
    pub fn init_with(dir: &Path, origin: &str, custom_packs: &[String]) -> Result<(), StoreError> {
        let sources = pack_sources(custom_packs)?;
        let identity = new_hub(dir, origin)?;
        cairn_sqlite::write_private(&hub_key_path(dir), identity.to_key_file().as_bytes())?;
        let mut conn = cairn_sqlite::open(&hub_db_path(dir))?;
        let tx = conn.transaction()?;
        tx.execute_batch(HUB_DDL)?;
        tx.execute_batch(comply::COMPLIANCE_DDL)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('origin', ?1), ('schema_version', ?2)",
            [origin, HUB_SCHEMA_VERSION],
        )?;
        store_packs(&tx, &sources)?;
        tx.commit()?;
        drop(conn);
        publish_custom_packs(dir, sources)
    }

    /// Creates a hub whose log lives in the empty PostgreSQL database at
    /// `url`: the hub's key and the database's URL in `dir`, the tables
    /// and the packs in the database. Several hub processes then serve it
    /// (each from a copy of `dir`, or a directory they share).
    pub fn init_postgres(
        dir: &Path,
        origin: &str,
        custom_packs: &[String],
        url: &str,
    ) -> Result<(), StoreError> {
        let sources = pack_sources(custom_packs)?;
        let identity = new_hub(dir, origin)?;
        let packs: Vec<(String, String, String, String)> = sources
            .iter()
            .map(|(pack, source)| {
                let hash = pack.source_hash.to_hex();
                (
                    pack.name.clone(),
                    pack.version.clone(),
                    source.clone(),
                    hash,
                )
            })
            .collect();
        let now_ms = cairn_sqlite::clock::now_ms();
        // The key first: a database whose hub has no key could never sign.
        cairn_sqlite::write_private(&hub_key_path(dir), identity.to_key_file().as_bytes())?;
        let created =
            cairn_hub_postgres::create_schema(url, origin, &identity.public_key(), &packs, now_ms);
        if let Err(error) = created {
            let _ = std::fs::remove_file(hub_key_path(dir));
            return Err(StoreError::Config(error.to_string()));
        }
        cairn_sqlite::write_private(&database_url_path(dir), url.as_bytes())?;
        publish_custom_packs(dir, sources)
    }

    /// Opens an initialized hub.
    pub fn open(dir: &Path) -> Result<HubStore, StoreError> {
        HubStore::open_with_clock(dir, cairn_sqlite::clock::system())
    }

    /// Opens `dir`'s hub on the PostgreSQL database at `url` (several hub
    /// processes serve one database; each names it).
    pub fn open_postgres(dir: &Path, url: &str) -> Result<HubStore, StoreError> {
        HubStore::open_postgres_with_clock(dir, url, cairn_sqlite::clock::system())
    }

    /// [`HubStore::open_postgres`] with the time taken from `clock`.
    pub fn open_postgres_with_clock(
        dir: &Path,
        url: &str,
        clock: std::sync::Arc<dyn cairn_core::clock::Clock>,
    ) -> Result<HubStore, StoreError> {
        let identity = read_identity(dir)?;
        let backend = cairn_hub_postgres::PgBackend::connect(url)?;
        let (origin, key) = cairn_hub_postgres::hub_meta(&backend)?;
        if key != hex::encode(identity.public_key()) {
            return Err(StoreError::Config(format!(
                "the database at {url} holds another hub's log (its key is {key})"
            )));
        }
        HubStore::over(
            dir,
            StoreBackend::Postgres(backend),
            (identity, origin),
            clock,
            None,
        )
    }

    /// [`HubStore::open`] with the time taken from `clock` (tokens' expiry,
    /// receipt times, alerts, its own acts): tests move it by hand.
    pub fn open_with_clock(
        dir: &Path,
        clock: std::sync::Arc<dyn cairn_core::clock::Clock>,
    ) -> Result<HubStore, StoreError> {
        if let Some(url) = database_url(dir)? {
            return HubStore::open_postgres_with_clock(dir, &url, clock);
        }
        let identity = read_identity(dir)?;
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
        if version == "3" {
            migrate_from_3(&mut conn)?;
        } else if version != HUB_SCHEMA_VERSION {
            return Err(StoreError::Config(format!(
                "{} holds hub schema {version}, this build reads {HUB_SCHEMA_VERSION}",
                dir.display()
            )));
        }
        let origin: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'origin'", [], |row| {
                row.get(0)
            })?;
        conn.execute_batch(FLEET_DDL)?;
        // The WAL is folded into the database beside the pushes, not inside
        // the commit of whichever push crosses the threshold.
        let checkpointer = WalCheckpointer::start(&hub_db_path(dir), &mut conn)?;
        let reader = cairn_sqlite::open(&hub_db_path(dir))?;
        reader.pragma_update(None, "query_only", true)?;
        HubStore::over(
            dir,
            StoreBackend::Sqlite(SqliteBackend::new(conn, reader)),
            (identity, origin),
            clock,
            Some(checkpointer),
        )
    }

    /// The hub over `backend`, judging by the packs it stores.
    fn over(
        dir: &Path,
        backend: StoreBackend,
        (identity, origin): (NodeIdentity, String),
        clock: std::sync::Arc<dyn cairn_core::clock::Clock>,
        checkpointer: Option<WalCheckpointer>,
    ) -> Result<HubStore, StoreError> {
        let hub = Hub::new(backend, LogSigner::new(identity, origin), clock);
        let stored = cairn_hub::comply::acts::stored_packs(&hub.backend().read()?)?;
        Ok(HubStore {
            dir: dir.to_path_buf(),
            hub: match stored {
                Some(packs) => hub.with_packs(packs),
                None => hub,
            },
            _checkpointer: checkpointer,
        })
    }

    /// The hub's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers a client that cannot be changed (`legacy::LegacyKind`):
    /// a node whose key the hub holds, enrolled with `scopes` like any node
    /// (an act of the audit stream). Returns its bearer token, shown once.
    pub fn enroll_legacy(
        &self,
        name: &str,
        kind: legacy::LegacyKind,
        scopes: &BTreeMap<String, String>,
        allow_from: &[String],
    ) -> Result<String, StoreError> {
        let (client, token) = legacy::create(&self.dir, name, kind, scopes, allow_from)?;
        let by = format!("legacy:{}", kind.name());
        if let Err(error) =
            admin_result(
                self.hub
                    .enroll(name, client.identity.public_key(), scopes, false, &by),
            )
        {
            let _ = std::fs::remove_file(self.dir.join("legacy").join(format!("{name}.json")));
            return Err(error);
        }
        Ok(token)
    }

    /// The hub itself: compliance (judging, reviews, packs) goes through it.
    pub fn hub(&self) -> &Hub<StoreBackend> {
        &self.hub
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

    /// The read-only connection, inside a read transaction: every statement
    /// run through it sees the same commit, so a pull that reads the log's
    /// size and then its leaves never meets a push that committed in
    /// between (which it once reported as damage).
    fn read(&self) -> Result<StoreTx<'_>, StoreError> {
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
        admin_result(self.hub.enroll(node, public_key, scopes, false, "cli"))
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
        admin_result(self.hub.enroll(node, public_key, scopes, true, by))
    }

    /// Makes every outstanding one-time token of `node` void; returns how
    /// many there were. Recorded in `hub:audit` when there were any.
    pub fn revoke_tokens(&self, node: &str, by: &str) -> Result<u64, StoreError> {
        Ok(self.hub.revoke_tokens(node, by)?)
    }

    /// The ops of the hub's own stream of administrative acts, in seq order.
    pub fn audit_ops(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.hub.audit_ops()?)
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
        Ok(self.hub.stream_heads(node)?)
    }

    /// Signs `message` with the hub's key (acknowledgement files carry it).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.identity().sign(message)
    }

    /// A token for a person or tool (role `operator`, `auditor` or
    /// `admin`), signed with the hub's own key (`cairn_hub::admin`).
    pub fn issue_token(
        &self,
        subject: &str,
        role: &str,
        lifetime_s: u64,
        now_s: u64,
    ) -> Result<String, StoreError> {
        admin_result(cairn_hub::admin::issue_token(
            self.hub.signer(),
            subject,
            role,
            lifetime_s,
            now_s,
        ))
    }

    /// Revokes a scope label from a node; returns whether it was granted.
    pub fn revoke(&self, node: &str, label: &str, value: &str) -> Result<bool, StoreError> {
        admin_result(self.hub.revoke_scope(node, label, value))
    }

    /// Releases a stream an equivocation held, keeping the hub's version
    /// (`cairn_hub::admin::resolve`).
    pub fn resolve(
        &self,
        node: &str,
        stream: &str,
        reason: &str,
        by: &str,
    ) -> Result<Resolution, ResolveError> {
        self.hub.resolve(node, stream, reason, by)
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
        let token = hex::encode(cairn_sqlite::random_seed()?);
        admin_result(
            self.hub
                .create_enrollment(&token, node, scopes, valid_ms, rekey),
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
        self.hub.redeem_enrollment(node, public_key, token)
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

    /// Verifies the whole log (`cairn_hub::verify`): faults are in the
    /// report; an error means the store could not be read.
    pub fn verify(&self) -> Result<HubVerifyReport, StoreError> {
        let tx = self.read()?;
        Ok(cairn_hub::verify::verify_log(
            &tx,
            self.origin(),
            &self.public_key(),
        )?)
    }

    /// Log size, streams, quarantine and alerts (`cairn_hub::status`).
    pub fn status(&self) -> Result<HubStatus, StoreError> {
        Ok(self.hub.status()?)
    }
}

/// A new hub's identity, once `origin` is checked (one line of 1 to 256
/// bytes: it names the log) and `dir` is made and holds no hub yet.
fn new_hub(dir: &Path, origin: &str) -> Result<NodeIdentity, StoreError> {
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
    Ok(NodeIdentity::from_seed("hub", cairn_sqlite::random_seed()?))
}

/// The hub's identity from its key file in `dir`.
fn read_identity(dir: &Path) -> Result<NodeIdentity, StoreError> {
    let key_text = std::fs::read_to_string(hub_key_path(dir))
        .map_err(|error| StoreError::io(&hub_key_path(dir), error))?;
    NodeIdentity::from_key_file(&key_text).map_err(|error| StoreError::Config(error.to_string()))
}

/// Packs other than the built-in versions go to the edges through the
/// log, so they judge by the same versions as the hub.
fn publish_custom_packs(dir: &Path, sources: Vec<(RulePack, String)>) -> Result<(), StoreError> {
    let builtin: Vec<&str> = cairn_core::pack::BUILTIN_PACKS
        .iter()
        .map(|(_, source)| *source)
        .collect();
    let custom: Vec<(RulePack, String)> = sources
        .into_iter()
        .filter(|(_, source)| !builtin.contains(&source.as_str()))
        .collect();
    if !custom.is_empty() {
        HubStore::open(dir)?
            .hub()
            .publish_packs(&custom)
            .map_err(|error| StoreError::Config(error.to_string()))?;
    }
    Ok(())
}

/// An administrative act's outcome as the store's error: a refusal is a
/// refusal (`Config`), a fault a fault.
fn admin_result<T>(result: Result<T, cairn_hub::admin::AdminError>) -> Result<T, StoreError> {
    result.map_err(|error| match error {
        cairn_hub::admin::AdminError::Refused(message) => StoreError::Config(message),
        cairn_hub::admin::AdminError::Store(fault) => StoreError::Storage(fault),
        other => StoreError::Internal(other.to_string()),
    })
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

/// The built-in packs' sources with `custom` ones added (one named like a
/// built-in pack replaces it), each checked and each collection defined once.
fn pack_sources(custom: &[String]) -> Result<Vec<(RulePack, String)>, StoreError> {
    let mut sources: BTreeMap<String, (RulePack, String)> = BTreeMap::new();
    let builtin = cairn_core::pack::BUILTIN_PACKS
        .iter()
        .map(|(_, source)| source.to_string());
    for source in builtin.chain(custom.iter().cloned()) {
        let pack =
            RulePack::from_toml(&source).map_err(|error| StoreError::Config(error.to_string()))?;
        sources.insert(pack.name.clone(), (pack, source));
    }
    let packs: Vec<RulePack> = sources.values().map(|(pack, _)| pack.clone()).collect();
    Packs::new(packs).map_err(StoreError::Config)?;
    Ok(sources.into_values().collect())
}

fn store_packs(
    tx: &rusqlite::Transaction<'_>,
    sources: &[(RulePack, String)],
) -> Result<(), StoreError> {
    let now_ms = cairn_sqlite::clock::now_ms() as i64;
    for (pack, source) in sources {
        tx.execute(
            "INSERT INTO packs (name, version, source, source_hash, activated_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![pack.name, pack.version, source, pack.source_hash.to_hex(), now_ms],
        )?;
    }
    Ok(())
}

/// Schema 3 to 4: the compliance tables, judging by the built-in packs
/// from now on. The judge starts at leaf 0, so the history logged before
/// is judged too.
fn migrate_from_3(conn: &mut rusqlite::Connection) -> Result<(), StoreError> {
    let sources = pack_sources(&[])?;
    let tx = conn.transaction()?;
    tx.execute_batch(comply::COMPLIANCE_DDL)?;
    store_packs(&tx, &sources)?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [HUB_SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

impl cairn_hub::comply::worker::Judging for HubStore {
    fn judge_pending(
        &self,
        limit: usize,
    ) -> Result<cairn_hub::comply::run::Pass, cairn_hub::StorageError> {
        self.hub.judge_pending(limit)
    }
}
