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

pub use cairn_sqlite::clock;
pub mod artifacts;
mod error;
mod files;
pub mod input;
mod read;
mod schema;
mod states;
mod verify;
mod writer;

pub use cairn_sqlite::write_private as write_private_file;
pub use error::{StoreError, WriteError};
pub use read::{
    AlertThresholds, EntityRecord, LedgerRecord, ListQuery, Record, Status, StreamStatus,
};
pub use states::{HubState, Learned};
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
    pub use cairn_sqlite::BUSY_TIMEOUT_MS;

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
    /// More rule packs to activate: TOML sources (files a site wrote or
    /// received), checked like the built-in ones and stored with them.
    pub custom_packs: Vec<String>,
    /// Scope labels added to writes that do not name them.
    pub default_scope: BTreeMap<String, String>,
    /// Refuse writes once the database files exceed this many bytes (0: no quota).
    pub quota_bytes: u64,
}

/// The catalog as the store and its writer share it.
pub(crate) type SharedCatalog = Arc<std::sync::RwLock<Arc<Catalog>>>;

/// The catalog active now.
pub(crate) fn current(catalog: &SharedCatalog) -> Arc<Catalog> {
    catalog
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
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
    pub(crate) fn new(packs: Vec<RulePack>) -> Result<Catalog, StoreError> {
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
    /// The active packs; the writer swaps in a new one when the hub
    /// distributes a pack version (`writer::pulled::adopt_pack`).
    catalog: SharedCatalog,
    writer: writer::WriterHandle,
    readers: Vec<Mutex<Connection>>,
    /// Writes sync state (acknowledged watermarks, the hub's checkpoint);
    /// kept apart from the op writer, which it never blocks for long.
    sync_conn: Mutex<Connection>,
    /// The node's key, for the short-lived tokens of the sync client.
    identity: NodeIdentity,
    /// The time (which records have expired is read by it).
    clock: Arc<dyn cairn_core::clock::Clock>,
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

/// The packs `options` asks for, each with the source it was read from:
/// built-in names first, then custom sources, each checked.
fn init_packs(options: &InitOptions) -> Result<Vec<(RulePack, String)>, StoreError> {
    let mut packs = Vec::new();
    for name in &options.packs {
        let (_, source) = cairn_core::pack::BUILTIN_PACKS
            .iter()
            .find(|(pack, _)| pack == name)
            .ok_or_else(|| {
                let known: Vec<&str> = cairn_core::pack::BUILTIN_PACKS
                    .iter()
                    .map(|(name, _)| *name)
                    .collect();
                StoreError::Config(format!(
                    "unknown rule pack {name:?} (built in: {}; a pack of your own is loaded from its file)",
                    known.join(", ")
                ))
            })?;
        let pack =
            RulePack::from_toml(source).map_err(|error| StoreError::Config(error.to_string()))?;
        packs.push((pack, source.to_string()));
    }
    for source in &options.custom_packs {
        let pack =
            RulePack::from_toml(source).map_err(|error| StoreError::Config(error.to_string()))?;
        if let Some((other, _)) = packs.iter().find(|(other, _)| other.name == pack.name) {
            return Err(StoreError::Config(format!(
                "rule pack {:?} is given twice (versions {} and {})",
                pack.name, other.version, pack.version
            )));
        }
        packs.push((pack, source.clone()));
    }
    Ok(packs)
}

impl EdgeStore {
    /// Creates the identity, the database and the active rule packs in `dir`.
    pub fn init(dir: &Path, options: &InitOptions) -> Result<(), StoreError> {
        cairn_core::names::check_name(&options.node).map_err(|message| {
            StoreError::Config(format!("node name {:?}: {message}", options.node))
        })?;
        let packs = init_packs(options)?;
        Catalog::new(packs.iter().map(|(pack, _)| pack.clone()).collect())?;
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
        schema::create(&mut conn, &identity, options, &packs)?;
        Ok(())
    }

    /// Opens an initialized store and starts its writer thread.
    pub fn open(dir: &Path) -> Result<EdgeStore, StoreError> {
        EdgeStore::open_with_clock(dir, clock::system())
    }

    /// [`EdgeStore::open`] with the time taken from `clock` (the HLC of
    /// writes, their written time): tests move it by hand.
    pub fn open_with_clock(
        dir: &Path,
        clock: std::sync::Arc<dyn cairn_core::clock::Clock>,
    ) -> Result<EdgeStore, StoreError> {
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
        // Stores made before `displaced` and `alerts` existed get them
        // (schema 2 otherwise).
        conn.execute_batch(schema::DISPLACED_DDL)?;
        conn.execute_batch(states::STATES_DDL)?;
        schema::add_displaced_new_seq(&conn)?;
        schema::add_ops_pack(&conn)?;
        conn.execute_batch(schema::ALERTS_DDL)?;
        let catalog: SharedCatalog = Arc::new(std::sync::RwLock::new(Arc::new(Catalog::new(
            schema::load_packs(&conn)?,
        )?)));
        let mut readers = Vec::new();
        for _ in 0..limits::READERS {
            readers.push(Mutex::new(schema::open(&db_path)?));
        }
        let writer = writer::spawn(
            clock.clone(),
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
            clock,
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
    pub fn catalog(&self) -> Arc<Catalog> {
        current(&self.catalog)
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
            .prepare(&self.catalog(), &self.settings, requests)?;
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
            .prepare(&self.catalog(), &self.settings, requests)?;
        self.writer.submit(job).await
    }

    /// Stores ops of other nodes that the caller verified (pulled from the
    /// hub with receipts) and merges them; returns those that were new.
    pub async fn apply_pulled_async(
        &self,
        ops: Vec<(cairn_core::op::Op, Vec<u8>)>,
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        self.writer.submit(self.writer.prepare_pulled(ops)).await
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
        Ok(self
            .meta("grants")?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Saves the scopes the hub granted.
    pub fn set_grants(&self, grants: &BTreeMap<String, String>) -> Result<(), StoreError> {
        let text = serde_json::to_string(grants)
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        self.set_meta("grants", &text)
    }

    /// The cursor of the last pull (the first log leaf not yet scanned).
    pub fn pull_cursor(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta("pull_cursor")?
            .and_then(|value| value.parse().ok())
            .unwrap_or(0))
    }

    /// Saves the pull cursor (after the ops before it are durable).
    pub fn set_pull_cursor(&self, cursor: u64) -> Result<(), StoreError> {
        self.set_meta("pull_cursor", &cursor.to_string())
    }

    /// Sets the storage quota (0: none); it holds from the next time the
    /// store is opened (`cairn edge config --quota-bytes`, with `edge
    /// serve` stopped).
    pub fn set_quota_bytes(&self, quota_bytes: u64) -> Result<(), StoreError> {
        self.set_meta("quota_bytes", &quota_bytes.to_string())
    }

    /// The newest log checkpoint of the hub this node verified (a signed
    /// note): every later one must be consistent with it.
    pub fn log_checkpoint(&self) -> Result<Option<String>, StoreError> {
        self.meta("log_checkpoint")
    }

    /// Saves the newest log checkpoint, once the caller checked that it
    /// extends the one held.
    pub fn set_log_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.set_meta("log_checkpoint", note)
    }

    /// Raises an alert that `cairn status` and `GET /v1/status` show until
    /// it is cleared: the same kind and message again only count again.
    pub fn raise_alert(&self, kind: &str, message: &str, now_ms: u64) -> Result<(), StoreError> {
        self.with_sync_conn(|conn| {
            conn.execute(
                "INSERT INTO alerts (kind, message, first_ms, last_ms, count) VALUES (?1, ?2, ?3, ?3, 1)
                 ON CONFLICT (kind, message) DO UPDATE SET last_ms = ?3, count = count + 1",
                rusqlite::params![kind, message, now_ms as i64],
            )?;
            Ok(())
        })
    }

    /// Clears the alerts of `kind` (the condition is over, or a person
    /// accepted it); returns how many there were.
    pub fn clear_alerts(&self, kind: &str) -> Result<u64, StoreError> {
        self.with_sync_conn(|conn| {
            Ok(conn.execute("DELETE FROM alerts WHERE kind = ?1", [kind])? as u64)
        })
    }

    /// Lowers the acknowledged seq of `stream` to `seq` when it is above it:
    /// a hub restored from a backup lost ops it had acknowledged, and the
    /// node pushes them again.
    pub fn unacknowledge(&self, stream: &str, seq: u64) -> Result<(), StoreError> {
        self.with_sync_conn(|conn| {
            conn.execute(
                "UPDATE streams SET acked_seq = min(acked_seq, ?3) WHERE node = ?1 AND stream = ?2",
                rusqlite::params![self.settings.node, stream, seq as i64],
            )?;
            Ok(())
        })
    }

    /// A value of the `meta` table.
    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            Ok(rusqlite::OptionalExtension::optional(conn.query_row(
                "SELECT value FROM meta WHERE key = ?1",
                [key],
                |row| row.get(0),
            ))?)
        })
    }

    /// Sets a value of the `meta` table.
    fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.with_sync_conn(|conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
                [key, value],
            )?;
            Ok(())
        })
    }

    /// Runs `f` on the connection that writes sync state.
    fn with_sync_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self
            .sync_conn
            .lock()
            .map_err(|_| StoreError::Internal("sync lock poisoned".into()))?;
        f(&conn)
    }

    /// One record by id (ledger: `node:stream:seq`; entity and config: key).
    /// A record of this node's own carries its state at the hub.
    pub fn get(&self, collection: &str, id: &str) -> Result<Option<Record>, StoreError> {
        let collection = self.collection(collection)?;
        self.read(|conn| {
            let mut record = read::get(conn, &collection, id, self.clock.now_ms())?;
            if let Some(Record::Ledger(ledger)) = &mut record {
                ledger.retain_until = collection
                    .rules
                    .retention_years
                    .map(|years| cairn_core::dates::years_after(ledger.hlc_ms, years));
            }
            if let Some(Record::Ledger(ledger)) = &mut record
                && let Some((node, stream, seq)) = read::parse_record_id(&ledger.id)
                && node == self.settings.node
            {
                ledger.hub = Some(states::state_of(conn, node, stream, seq)?);
            }
            Ok(record)
        })
    }

    /// Stores what the hub's rule packs made of this node's `stream`:
    /// judged up to `judged_seq`, with `verdicts` on the ops not persisted.
    /// Returns how many verdicts were new.
    pub fn learn_states(
        &self,
        stream: &str,
        judged_seq: u64,
        verdicts: &[Learned],
    ) -> Result<u64, StoreError> {
        self.with_sync_conn(|conn| states::record(conn, stream, judged_seq, verdicts))
    }

    /// How far the hub has judged this node's `stream`, as last learned.
    pub fn judged_seq(&self, stream: &str) -> Result<u64, StoreError> {
        self.read(|conn| states::judged_seq(conn, stream))
    }

    /// The state at the hub of this node's op `seq` of `stream`.
    pub fn hub_state(&self, stream: &str, seq: u64) -> Result<HubState, StoreError> {
        self.read(|conn| states::state_of(conn, &self.settings.node, stream, seq))
    }

    /// Records of a collection, filtered by scope, in write order.
    pub fn list(&self, query: &ListQuery) -> Result<Vec<Record>, StoreError> {
        let collection = self.collection(&query.collection)?;
        self.read(|conn| read::list(conn, &collection, query, self.clock.now_ms()))
    }

    /// Queue depth, ages, storage use and alerts, at the default thresholds.
    pub fn status(&self, now_ms: u64) -> Result<Status, StoreError> {
        self.status_with(now_ms, &AlertThresholds::default())
    }

    /// [`EdgeStore::status`] with alerts at `thresholds`.
    pub fn status_with(
        &self,
        now_ms: u64,
        thresholds: &AlertThresholds,
    ) -> Result<Status, StoreError> {
        let storage_bytes = files::storage_bytes(&self.dir);
        self.read(|conn| {
            let node = &self.settings.node;
            let mut status = read::status(conn, &self.settings, now_ms, storage_bytes, thresholds)?;
            status.states = states::counts(conn, node)?;
            if let Some(rejected) = status.states.get("rejected") {
                status.alerts.insert(
                    0,
                    format!(
                        "rejected: the hub's rule packs rejected {rejected} of this node's records (cairn record get shows why; correct them with cairn record correct)"
                    ),
                );
            }
            let late = states::deadline_alerts(conn, node, &self.catalog().collections, now_ms)?;
            status.alerts.splice(0..0, late);
            Ok(status)
        })
    }

    /// Re-verifies every stream end to end and every materialized state.
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let identity_key = self.settings.public_key;
        let node = &self.settings.node;
        let recorded: verify::RecordedHeads = [
            ("the heads file", files::heads_path(&self.dir)),
            (
                "the heads file kept at a start",
                files::cut_heads_path(&self.dir),
            ),
        ]
        .into_iter()
        .filter_map(|(witness, path)| Some((witness, files::read_heads(&path, node)?)))
        .collect();
        self.read(|conn| verify::verify(conn, node, identity_key, &self.catalog(), &recorded))
    }

    /// This node's streams, critical first, then by name.
    pub fn streams(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| read::own_streams(conn, &self.settings.node))
    }

    /// This node's streams in the order a push round takes them (critical
    /// lane first, then each lane's evidence, config and tracks streams).
    /// On a `constrained` link, a stream whose next op is an update of a
    /// collection that expires, older than its expiry, goes after every
    /// other: stale tracks never hold back fresh records.
    pub fn streams_to_push(
        &self,
        now_ms: u64,
        constrained: bool,
    ) -> Result<Vec<String>, StoreError> {
        let streams = self.streams()?;
        if !constrained {
            return Ok(streams);
        }
        let catalog = self.catalog();
        let mut stale = Vec::new();
        let mut fresh = Vec::new();
        for stream in streams {
            let expired =
                match self.pending_batch(&stream, 1)? {
                    Some(batch) => match batch
                        .ops
                        .first()
                        .map(|bytes| cairn_core::op::Op::decode_logged(bytes))
                    {
                        Some(Ok(op)) => catalog.collections.get(&op.draft.collection).is_some_and(
                            |collection| collection.sync.expired(op.draft.hlc.wall_ms, now_ms),
                        ),
                        _ => false,
                    },
                    None => false,
                };
            if expired {
                stale.push(stream)
            } else {
                fresh.push(stream)
            }
        }
        fresh.extend(stale);
        Ok(fresh)
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
        self.set_meta("hub", &hub.to_string())
    }

    /// The hub this node enrolled with, if any.
    pub fn hub(&self) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .meta("hub")?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// Saves the sync client's state (online, breaker, last sync) for `cairn status`.
    pub fn set_sync_state(&self, state: &serde_json::Value) -> Result<(), StoreError> {
        self.set_meta("sync_state", &state.to_string())
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
        self.with_sync_conn(|conn| read::acknowledge(conn, &self.settings.node, stream, seq))
    }

    fn collection(&self, name: &str) -> Result<Collection, StoreError> {
        self.catalog()
            .collections
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::UnknownCollection(name.to_string()))
    }
}
