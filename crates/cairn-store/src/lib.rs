//! The edge store: Cairn's ops and materialized state in one SQLite file.
//!
//! Every write is one op appended to a hash-chained stream of this node and
//! the materialized state it changes, both in the same SQLite transaction.
//! Writes from any number of callers funnel into one writer thread that
//! commits them in groups: one transaction, one fsync and one checkpoint
//! signature per stream per group. A caller's write is acknowledged only after
//! the group's commit returned, i.e. after the WAL was fsynced
//! (`synchronous=FULL`). FORMAT.md holds the crash argument.
//!
//! Reads use their own connections (WAL lets them run beside the writer).
#![deny(missing_docs)]

mod checkpointer;
mod error;
mod files;
pub mod hub;
mod read;
mod schema;
mod verify;
mod writer;

pub use error::{StoreError, WriteError};
pub use files::write_private as write_private_file;
pub use read::{EntityRecord, LedgerRecord, ListQuery, Record, Status, StreamStatus};
pub use verify::{VerifyFault, VerifyReport};
pub use writer::{WriteReceipt, WriteRequest};

use cairn_core::identity::NodeIdentity;
use cairn_core::pack::{Collection, RulePack};
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Bounds of the store, named in one place.
pub mod limits {
    /// Most ops committed in one group (one transaction, one fsync).
    pub const GROUP_OPS_MAX: usize = 4_096;
    /// Most write jobs waiting for the writer thread.
    pub const WRITE_QUEUE_MAX: usize = 16_384;
    /// Most records in one batch write.
    pub const BATCH_RECORDS_MAX: usize = 1_000;
    /// Most records one list query returns.
    pub const LIST_LIMIT_MAX: usize = 1_000;
    /// Read connections kept open.
    pub const READERS: usize = 4;
    /// How long a reader waits for a lock, in milliseconds.
    pub const BUSY_TIMEOUT_MS: u64 = 5_000;

    // A whole batch always fits in one group, so batches stay atomic.
    const _: () = assert!(BATCH_RECORDS_MAX <= GROUP_OPS_MAX);
    const _: () = assert!(GROUP_OPS_MAX <= WRITE_QUEUE_MAX);
    const _: () = assert!(READERS >= 1);
}

/// What `cairn edge init` decides.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The node's name.
    pub node: String,
    /// Rule packs to activate, by built-in name.
    pub packs: Vec<String>,
    /// Scope labels added to writes that do not name them.
    pub default_scope: BTreeMap<String, String>,
    /// Refuse writes once the database files exceed this many bytes (0: no quota).
    pub quota_bytes: u64,
}

/// The collections of every active pack, by name.
#[derive(Debug)]
pub struct Catalog {
    /// Active packs.
    pub packs: Vec<RulePack>,
    /// Their collections, by collection name.
    pub collections: BTreeMap<String, Collection>,
}

impl Catalog {
    fn new(packs: Vec<RulePack>) -> Result<Catalog, StoreError> {
        let mut collections = BTreeMap::new();
        for pack in &packs {
            for (name, collection) in &pack.collections {
                if let Some(previous) = collections.insert(name.clone(), collection.clone()) {
                    return Err(StoreError::Config(format!(
                        "collection {name} is defined by both pack {} and pack {}",
                        previous.pack, pack.name
                    )));
                }
            }
        }
        Ok(Catalog { packs, collections })
    }
}

/// Settings read from the store at open.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// The node's name.
    pub node: String,
    /// Its Ed25519 public key.
    pub public_key: [u8; 32],
    /// Scope labels added to writes that do not name them.
    pub default_scope: BTreeMap<String, String>,
    /// Database size at which writes are refused (0: none).
    pub quota_bytes: u64,
}

/// An open edge store.
pub struct EdgeStore {
    dir: PathBuf,
    settings: NodeSettings,
    catalog: Arc<Catalog>,
    writer: writer::WriterHandle,
    readers: Vec<Mutex<Connection>>,
    /// Writes sync state (acknowledged watermarks, the hub's checkpoint);
    /// kept apart from the op writer, which it never blocks for long.
    sync_conn: Mutex<Connection>,
    /// The node's key, for the short-lived tokens of the sync client.
    identity: NodeIdentity,
}

/// Ops of one stream ready to push, ending at a signed checkpoint.
#[derive(Clone, Debug)]
pub struct PendingBatch {
    /// Stream name.
    pub stream: String,
    /// Encoded ops, in seq order.
    pub ops: Vec<Vec<u8>>,
    /// The node's checkpoint of the last op.
    pub checkpoint: cairn_core::identity::Checkpoint,
}

impl EdgeStore {
    /// Creates the identity, the database and the active rule packs in `dir`.
    pub fn init(dir: &Path, options: &InitOptions) -> Result<(), StoreError> {
        cairn_core::names::check_name(&options.node).map_err(|message| {
            StoreError::Config(format!("node name {:?}: {message}", options.node))
        })?;
        let mut packs = Vec::new();
        for name in &options.packs {
            let pack = RulePack::builtin(name).ok_or_else(|| {
                let known: Vec<&str> = cairn_core::pack::BUILTIN_PACKS
                    .iter()
                    .map(|(name, _)| *name)
                    .collect();
                StoreError::Config(format!(
                    "unknown rule pack {name:?} (built in: {})",
                    known.join(", ")
                ))
            })?;
            packs.push(pack);
        }
        Catalog::new(packs)?;
        std::fs::create_dir_all(dir).map_err(|error| StoreError::io(dir, error))?;
        let key_path = files::key_path(dir);
        if key_path.exists() || files::db_path(dir).exists() {
            return Err(StoreError::Config(format!(
                "{} already holds a Cairn node",
                dir.display()
            )));
        }
        let identity = NodeIdentity::from_seed(&options.node, files::random_seed()?);
        files::write_private(&key_path, identity.to_key_file().as_bytes())?;
        let mut conn = schema::open(&files::db_path(dir))?;
        schema::create(&mut conn, &identity, options)?;
        Ok(())
    }

    /// Opens an initialized store and starts its writer thread.
    pub fn open(dir: &Path) -> Result<EdgeStore, StoreError> {
        let key_text = std::fs::read_to_string(files::key_path(dir))
            .map_err(|error| StoreError::io(&files::key_path(dir), error))?;
        let identity = NodeIdentity::from_key_file(&key_text)
            .map_err(|error| StoreError::Config(error.to_string()))?;
        let token_identity = NodeIdentity::from_key_file(&key_text)
            .map_err(|error| StoreError::Config(error.to_string()))?;
        let db_path = files::db_path(dir);
        if !db_path.exists() {
            return Err(StoreError::Config(format!(
                "{} holds no database; run `cairn edge init` first",
                dir.display()
            )));
        }
        let conn = schema::open(&db_path)?;
        let settings = schema::load_settings(&conn, &identity)?;
        // Stores made before `displaced` existed get it (schema 2 otherwise).
        conn.execute_batch(schema::DISPLACED_DDL)?;
        let catalog = Arc::new(Catalog::new(schema::load_packs(&conn)?)?);
        let mut readers = Vec::new();
        for _ in 0..limits::READERS {
            readers.push(Mutex::new(schema::open(&db_path)?));
        }
        let writer = writer::spawn(
            conn,
            identity,
            settings.clone(),
            catalog.clone(),
            dir.to_path_buf(),
        )?;
        let sync_conn = Mutex::new(schema::open(&db_path)?);
        Ok(EdgeStore {
            dir: dir.to_path_buf(),
            settings,
            catalog,
            writer,
            readers,
            sync_conn,
            identity: token_identity,
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's settings.
    pub fn settings(&self) -> &NodeSettings {
        &self.settings
    }

    /// Active packs and their collections.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Runs `f` with a read connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for reader in &self.readers {
            if let Ok(conn) = reader.try_lock() {
                return f(&conn);
            }
        }
        let conn = self.readers[0]
            .lock()
            .map_err(|_| StoreError::Internal("reader lock poisoned".into()))?;
        f(&conn)
    }

    /// Writes one record and waits until it is durable.
    pub fn write(&self, request: WriteRequest) -> Result<WriteReceipt, WriteError> {
        let mut receipts = self.write_batch(vec![request])?;
        Ok(receipts.remove(0))
    }

    /// Writes records atomically (all or none) and waits until they are durable.
    pub fn write_batch(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        let job = self
            .writer
            .prepare(&self.catalog, &self.settings, requests)?;
        self.writer.submit_blocking(job)
    }

    /// Async form of [`EdgeStore::write`], for servers.
    pub async fn write_async(&self, request: WriteRequest) -> Result<WriteReceipt, WriteError> {
        let mut receipts = self.write_batch_async(vec![request]).await?;
        Ok(receipts.remove(0))
    }

    /// Async form of [`EdgeStore::write_batch`].
    pub async fn write_batch_async(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        let job = self
            .writer
            .prepare(&self.catalog, &self.settings, requests)?;
        self.writer.submit(job).await
    }

    /// Stores ops of other nodes that the caller verified (pulled from the
    /// hub with receipts) and merges them; returns those that were new.
    pub async fn apply_pulled_async(
        &self,
        ops: Vec<(cairn_core::op::Op, Vec<u8>)>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        self.writer.submit(self.writer.prepare_foreign(ops)).await
    }

    /// Takes `stream` back from the hub after this node was restored from an
    /// old backup: `ops` are the hub's copies of the node's own ops from its
    /// acknowledged seq on, in seq order, and `checkpoints` the node's own
    /// signatures over them, both already verified by the caller against
    /// this node's key. Returns the node's diverged ops as re-appended after
    /// the hub's head (empty when nothing diverged); the originals are kept
    /// in `displaced`.
    pub async fn realign_async(
        &self,
        stream: &str,
        ops: Vec<(cairn_core::op::Op, Vec<u8>)>,
        checkpoints: Vec<cairn_core::identity::Checkpoint>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        self.writer
            .submit(
                self.writer
                    .prepare_realign(writer::Realign::new(stream, ops, checkpoints)),
            )
            .await
    }

    /// The highest seq of this node's `stream` the hub acknowledged.
    pub fn acked_seq(&self, stream: &str) -> Result<u64, StoreError> {
        use rusqlite::OptionalExtension;
        self.read(|conn| {
            let acked: Option<i64> = conn
                .query_row(
                    "SELECT acked_seq FROM streams WHERE node = ?1 AND stream = ?2",
                    rusqlite::params![self.settings.node, stream],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(acked.unwrap_or(0) as u64)
        })
    }

    /// [`EdgeStore::realign_async`], waiting on this thread.
    pub fn realign(
        &self,
        stream: &str,
        ops: Vec<(cairn_core::op::Op, Vec<u8>)>,
        checkpoints: Vec<cairn_core::identity::Checkpoint>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        self.writer
            .submit_blocking(self.writer.prepare_realign(writer::Realign::new(
                stream,
                ops,
                checkpoints,
            )))
    }

    /// This node's ops set aside by [`EdgeStore::realign_async`]: (stream,
    /// seq they had, encoded op), oldest first.
    pub fn displaced(&self) -> Result<Vec<(String, u64, Vec<u8>)>, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT stream, seq, op FROM displaced ORDER BY id")?
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get::<_, i64>(1)? as u64, row.get(2)?))
                })?
                .collect::<Result<_, _>>()?)
        })
    }

    /// Purges pulled ops carrying revoked scope labels (`name=value`) and
    /// recomputes what they touched; returns the records recomputed or removed.
    pub async fn purge_revoked_async(
        &self,
        labels: Vec<String>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        self.writer.submit(self.writer.prepare_purge(labels)).await
    }

    /// The scopes the hub granted at the last pull, if any pull happened.
    pub fn grants(&self) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        self.read(|conn| {
            let text: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT value FROM meta WHERE key = 'grants'",
                [],
                |row| row.get(0),
            ))?;
            Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
        })
    }

    /// Saves the scopes the hub granted.
    pub fn set_grants(&self, grants: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let conn = self
            .sync_conn
            .lock()
            .map_err(|_| StoreError::Internal("sync lock poisoned".into()))?;
        let text = serde_json::to_string(grants)
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        conn.execute("INSERT INTO meta (key, value) VALUES ('grants', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1", [text])?;
        Ok(())
    }

    /// The cursor of the last pull (the first log leaf not yet scanned).
    pub fn pull_cursor(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let value: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT value FROM meta WHERE key = 'pull_cursor'",
                [],
                |row| row.get(0),
            ))?;
            Ok(value.and_then(|value| value.parse().ok()).unwrap_or(0))
        })
    }

    /// Saves the pull cursor (after the ops before it are durable).
    pub fn set_pull_cursor(&self, cursor: u64) -> Result<(), StoreError> {
        let conn = self
            .sync_conn
            .lock()
            .map_err(|_| StoreError::Internal("sync lock poisoned".into()))?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('pull_cursor', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
            [cursor.to_string()],
        )?;
        Ok(())
    }

    /// One record by id (ledger: `node:stream:seq`; entity and config: key).
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let collection = self.collection(collection)?;
        self.read(|conn| read::get(conn, collection, id))
    }

    /// Records of a collection, filtered by scope, in write order.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Record>, StoreError> {
        let collection = self.collection(&query.collection)?;
        self.read(|conn| read::list(conn, collection, query))
    }

    /// Queue depth, ages and storage use.
    pub fn status(&self, now_ms: u64) -> Result<Status, StoreError> {
        let storage_bytes = files::storage_bytes(&self.dir);
        self.read(|conn| read::status(conn, &self.settings, now_ms, storage_bytes))
    }

    /// Re-verifies every stream end to end and every materialized state.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let identity_key = self.settings.public_key;
        self.read(|conn| verify::verify(conn, &self.settings.node, identity_key, &self.catalog))
    }

    /// This node's streams, critical first, then by name.
    pub fn streams(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| read::own_streams(conn, &self.settings.node))
    }

    /// The next unacknowledged ops of `stream`, ending at a checkpoint: as
    /// many as fit in `ops_max` (at least one whole group).
    pub fn pending_batch(
        &self,
        stream: &str,
        ops_max: usize,
    ) -> Result<Option<PendingBatch>, StoreError> {
        self.read(|conn| read::pending_batch(conn, &self.settings.node, stream, None, ops_max))
    }

    /// Like [`EdgeStore::pending_batch`], but starting after `after_seq` when
    /// given (to walk every unacknowledged op without acknowledging any).
    pub fn pending_batch_after(
        &self,
        stream: &str,
        after_seq: Option<u64>,
        ops_max: usize,
    ) -> Result<Option<PendingBatch>, StoreError> {
        self.read(|conn| read::pending_batch(conn, &self.settings.node, stream, after_seq, ops_max))
    }

    /// A token for the hub `audience`, valid for five minutes from `now_s`.
    pub fn sign_token(&self, audience: &str, now_s: u64) -> String {
        let claims = cairn_core::token::Claims {
            sub: self.settings.node.clone(),
            aud: audience.to_string(),
            role: "node".into(),
            iat: now_s,
            exp: now_s + 300,
        };
        cairn_core::token::sign(&claims, &self.identity)
    }

    /// Remembers the hub this node enrolled with (`{"url", "origin", "public_key"}`).
    pub fn set_hub(&self, hub: &serde_json::Value) -> Result<(), StoreError> {
        let conn = self
            .sync_conn
            .lock()
            .map_err(|_| StoreError::Internal("sync lock poisoned".into()))?;
        conn.execute("INSERT INTO meta (key, value) VALUES ('hub', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1", [hub.to_string()])?;
        Ok(())
    }

    /// The hub this node enrolled with, if any.
    pub fn hub(&self) -> Result<Option<serde_json::Value>, StoreError> {
        self.read(|conn| {
            let text: Option<String> = rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT value FROM meta WHERE key = 'hub'",
                [],
                |row| row.get(0),
            ))?;
            Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
        })
    }

    /// Saves the sync client's state (online, breaker, last sync) for `cairn status`.
    pub fn set_sync_state(&self, state: &serde_json::Value) -> Result<(), StoreError> {
        let conn = self
            .sync_conn
            .lock()
            .map_err(|_| StoreError::Internal("sync lock poisoned".into()))?;
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('sync_state', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
            [state.to_string()],
        )?;
        Ok(())
    }

    /// The hash of this node's op `seq` of `stream`, if it exists.
    pub fn own_op_hash(
        &self,
        stream: &str,
        seq: u64,
    ) -> Result<Option<cairn_core::hash::Hash>, StoreError> {
        self.read(|conn| read::own_op_hash(conn, &self.settings.node, stream, seq))
    }

    /// Records that the hub holds `stream` up to `seq`.
    pub fn acknowledge(&self, stream: &str, seq: u64) -> Result<(), StoreError> {
        let conn = self
            .sync_conn
            .lock()
            .map_err(|_| StoreError::Internal("sync lock poisoned".into()))?;
        read::acknowledge(&conn, &self.settings.node, stream, seq)
    }

    fn collection(&self, name: &str) -> Result<&Collection, StoreError> {
        self.catalog
            .collections
            .get(name)
            .ok_or_else(|| StoreError::UnknownCollection(name.to_string()))
    }
}
