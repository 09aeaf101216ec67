//! The writer thread and group commit.
//!
//! Callers validate their records on their own threads ([`WriterHandle::prepare`]),
//! then hand a job to the single writer thread. The writer takes every job
//! waiting (up to [`GROUP_OPS_MAX`] ops), applies each inside a savepoint so a
//! refused job leaves no trace, signs one checkpoint per stream it touched,
//! and commits once. Only then are the callers answered: an `Ok` means the
//! op, its checkpoint and the state it changed are on disk together.
//!
//! Its rooms: `prepare` (the caller's side), `apply` (an op in the
//! transaction), `pulled` (other nodes' ops, purges), `realign` (taking a
//! stream back from the hub).

mod apply;
mod keys;
mod prepare;
mod pulled;
mod realign;

pub(crate) use apply::entity_ops;
use apply::*;
use prepare::*;
use pulled::*;
use realign::*;

use crate::limits::{BATCH_RECORDS_MAX, GROUP_OPS_MAX, WRITE_QUEUE_MAX};
use crate::schema::{op_rowid, scope_text};
use crate::{Catalog, NodeSettings, StoreError, WriteError, files};
use cairn_core::canonical;
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::hlc::{Hlc, HybridClock};
use cairn_core::identity::NodeIdentity;
use cairn_core::limits::{CLOCK_DRIFT_MS_MAX_DEFAULT, PAYLOAD_BYTES_MAX};
use cairn_core::merge::{self, EntityState, MergeOp};
use cairn_core::names::{check_key, check_name, check_scope_value};
use cairn_core::op::{Action, Op, OpDraft, VersionVector};
use cairn_core::pack::{Collection, CollectionKind, Violation};
use cairn_sqlite::WalCheckpointer;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One record to write.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteRequest {
    /// Target collection.
    pub collection: String,
    /// `append` or `correct` for ledgers, `put` or `delete` for entities and config.
    pub action: Action,
    /// Entity or config key (none for ledgers).
    pub key: Option<String>,
    /// Scope labels; labels the collection needs default to the node's.
    pub scope: BTreeMap<String, String>,
    /// The record (ledger, config) or the field changes (entity).
    pub data: Value,
    /// For corrections: id of the record corrected.
    pub corrects: Option<String>,
    /// For corrections: why.
    pub reason: Option<String>,
    /// For entities and config: the write may give the record other scope
    /// labels than it has (moving it, e.g. to another building). Without
    /// it such a write is refused: a record never moves by accident.
    pub move_scope: bool,
}

/// What a durable write returns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WriteReceipt {
    /// Record id: `node:stream:seq` for ledgers, the key otherwise.
    pub id: String,
    /// Collection written.
    pub collection: String,
    /// Stream the op went into.
    pub stream: String,
    /// Its seq there.
    pub seq: u64,
    /// Its op hash, hex.
    pub op_hash: String,
}

/// A request that passed the checks that need no stored state.
///
/// Everything that needs no stored state is done here, on the caller's
/// thread, including dropping the parsed payload: freeing a JSON tree
/// allocated on another thread was a quarter of the writer's time.
struct Prepared {
    index: usize,
    collection: String,
    action: Action,
    key: String,
    /// The stream the collection's routes pick for this record.
    stream: String,
    scope: BTreeMap<String, String>,
    /// The payload, canonical bytes and hash; or, for entities with set
    /// fields, the parsed payload the writer rewrites against stored state.
    payload: Payload,
    /// Required fields absent from the payload: refused only when the
    /// write creates an entity, which only the writer knows.
    missing: Vec<Violation>,
    /// Scope labels the collection needs that neither the request nor the
    /// node's defaults gave: taken from the record the write changes.
    scope_missing: Vec<String>,
    /// The write may change an existing record's labels.
    move_scope: bool,
    corrects: Option<String>,
    reason: String,
    /// The record's idempotency key and window, when its collection has
    /// one and it carries every field of it: a duplicate this node can
    /// already see is refused here, as the hub would reject it.
    idempotency: Option<(Hash, u64)>,
    /// The pack and version it was validated under (`mro 1.1.0`), kept
    /// with the op.
    validated_under: String,
}

/// A prepared record's payload.
enum Payload {
    /// Canonical bytes and their hash.
    Encoded(Vec<u8>, Hash),
    /// Set fields arrive as the desired set; the writer turns them into an
    /// add/remove change against what this node holds.
    Rewrite(Map<String, Value>),
}

/// A unit of work for the writer: applied all or nothing.
pub(crate) struct Job {
    items: Vec<Prepared>,
    /// Ops of other nodes pulled from the hub, already verified.
    pulled: Vec<(Op, Vec<u8>)>,
    /// Scope labels (`name=value`) no longer granted: pulled ops carrying
    /// them are purged and the entities they touched recomputed.
    purge: Vec<String>,
    /// This node's own ops of a stream, taken back from the hub after a
    /// restore from an old backup (see [`realign`]).
    realign: Option<Realign>,
    reply: oneshot::Sender<Result<Vec<WriteReceipt>, WriteError>>,
}

/// What the hub holds of one of this node's streams, verified against the
/// node's own key: ops in seq order from `acked_seq + 1` on, and the
/// checkpoints the node signed over them.
pub(crate) struct Realign {
    stream: String,
    ops: Vec<(Op, Vec<u8>)>,
    checkpoints: Vec<cairn_core::identity::Checkpoint>,
}

impl Realign {
    pub(crate) fn new(
        stream: &str,
        ops: Vec<(Op, Vec<u8>)>,
        checkpoints: Vec<cairn_core::identity::Checkpoint>,
    ) -> Realign {
        Realign {
            stream: stream.to_string(),
            ops,
            checkpoints,
        }
    }
}

/// The callers' side of the writer thread.
pub(crate) struct WriterHandle {
    sender: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Ends after the writer thread (whose connection holds its wake-up).
    checkpointer: Option<WalCheckpointer>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // Closing the channel ends the thread once queued jobs are done.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.checkpointer.take();
    }
}

type Reply = oneshot::Receiver<Result<Vec<WriteReceipt>, WriteError>>;

impl WriterHandle {
    /// Checks requests against the packs and shapes them into a job.
    pub(crate) fn prepare(
        &self,
        catalog: &Catalog,
        settings: &NodeSettings,
        requests: Vec<WriteRequest>,
    ) -> Result<(Job, Reply), WriteError> {
        if requests.is_empty() {
            return Err(WriteError::invalid(
                0,
                Violation::new(
                    "records",
                    "min_records",
                    "a batch holds at least one record",
                ),
            ));
        }
        if requests.len() > BATCH_RECORDS_MAX {
            return Err(WriteError::invalid(
                0,
                Violation::new(
                    "records",
                    "max_records",
                    format!(
                        "a batch holds at most {BATCH_RECORDS_MAX} records, got {}",
                        requests.len()
                    ),
                ),
            ));
        }
        let mut items = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            items.push(prepare_one(catalog, settings, index, request)?);
        }
        let (reply, receiver) = oneshot::channel();
        Ok((
            Job {
                items,
                pulled: Vec::new(),
                purge: Vec::new(),
                realign: None,
                reply,
            },
            receiver,
        ))
    }

    /// A job that stores verified ops of other nodes and merges them.
    pub(crate) fn prepare_pulled(&self, pulled: Vec<(Op, Vec<u8>)>) -> (Job, Reply) {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            items: Vec::new(),
            pulled,
            purge: Vec::new(),
            realign: None,
            reply,
        };
        (job, receiver)
    }

    /// A job that takes a stream's ops back from the hub (see [`realign`]).
    pub(crate) fn prepare_realign(&self, work: Realign) -> (Job, Reply) {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            items: Vec::new(),
            pulled: Vec::new(),
            purge: Vec::new(),
            realign: Some(work),
            reply,
        };
        (job, receiver)
    }

    /// A job that purges pulled ops carrying revoked scope labels.
    pub(crate) fn prepare_purge(&self, labels: Vec<String>) -> (Job, Reply) {
        let (reply, receiver) = oneshot::channel();
        let job = Job {
            items: Vec::new(),
            pulled: Vec::new(),
            purge: labels,
            realign: None,
            reply,
        };
        (job, receiver)
    }

    /// Queues a job and waits for its durable result.
    pub(crate) async fn submit(
        &self,
        (job, reply): (Job, Reply),
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        let sender = self.sender.as_ref().ok_or(WriteError::Closed)?;
        sender.send(job).await.map_err(|_| WriteError::Closed)?;
        reply.await.map_err(|_| WriteError::Closed)?
    }

    /// Queues a job and blocks the thread until its durable result.
    pub(crate) fn submit_blocking(
        &self,
        (job, reply): (Job, Reply),
    ) -> Result<Vec<WriteReceipt>, WriteError> {
        let sender = self.sender.as_ref().ok_or(WriteError::Closed)?;
        sender.blocking_send(job).map_err(|_| WriteError::Closed)?;
        reply.blocking_recv().map_err(|_| WriteError::Closed)?
    }
}

/// One stream of this node, as the writer tracks it.
#[derive(Clone, Copy)]
struct StreamSlot {
    id: i64,
    head: StreamHead,
    dirty: bool,
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    identity: NodeIdentity,
    settings: NodeSettings,
    /// Shared with the store: swapped when the hub distributes a pack.
    catalog: crate::SharedCatalog,
    dir: PathBuf,
    clock: HybridClock,
    streams: HashMap<String, StreamSlot>,
    collections: CollectionIds,
    /// The heads last written to the heads file.
    recorded_heads: BTreeMap<String, (u64, Hash)>,
    /// Where the time of writes comes from.
    time: Arc<dyn cairn_core::clock::Clock>,
    /// The idempotency keys of the last window.
    keys: keys::RecentKeys,
}

/// The integer ids that `ops.coll` holds for collection names.
///
/// An integer keeps the `(coll, record_key)` index cheap to insert into:
/// with the name there, comparing long equal prefixes of ledger ops (whose
/// key is empty) was the largest single cost of the writer thread.
#[derive(Default)]
struct CollectionIds(HashMap<String, i64>);

impl CollectionIds {
    /// The id of `name`, created (in the current transaction) when new.
    fn id(&mut self, conn: &Connection, name: &str) -> Result<i64, StoreError> {
        if let Some(&id) = self.0.get(name) {
            return Ok(id);
        }
        conn.prepare_cached("INSERT OR IGNORE INTO collections (name) VALUES (?1)")?
            .execute([name])?;
        let id = conn
            .prepare_cached("SELECT id FROM collections WHERE name = ?1")?
            .query_row([name], |row| row.get(0))?;
        self.0.insert(name.to_string(), id);
        Ok(id)
    }
}

/// Starts the writer thread.
pub(crate) fn spawn(
    time: Arc<dyn cairn_core::clock::Clock>,
    mut conn: Connection,
    identity: NodeIdentity,
    settings: NodeSettings,
    catalog: crate::SharedCatalog,
    dir: PathBuf,
) -> Result<WriterHandle, StoreError> {
    let checkpointer = WalCheckpointer::start(&files::db_path(&dir), &mut conn)?;
    let mut writer = Writer {
        conn,
        identity,
        settings,
        catalog,
        dir,
        clock: HybridClock::new(Hlc::default(), CLOCK_DRIFT_MS_MAX_DEFAULT),
        streams: HashMap::new(),
        collections: CollectionIds::default(),
        recorded_heads: Default::default(),
        time,
        keys: Default::default(),
    };
    writer.reload()?;
    writer.recorded_heads = writer.check_recorded_heads()?;
    let (sender, receiver) = mpsc::channel(WRITE_QUEUE_MAX);
    let thread = std::thread::Builder::new()
        .name("cairn-writer".into())
        .spawn(move || writer.run(receiver))
        .map_err(|error| {
            StoreError::Internal(format!("cannot start the writer thread: {error}"))
        })?;
    Ok(WriterHandle {
        sender: Some(sender),
        thread: Some(thread),
        checkpointer: Some(checkpointer),
    })
}

fn is_disk_full(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(code, _) if code.code == rusqlite::ErrorCode::DiskFull)
}

impl Writer {
    /// Reads stream heads and the newest HLC back from the database.
    fn reload(&mut self) -> Result<(), StoreError> {
        self.streams.clear();
        // Ids of the active packs' collections exist before any job runs,
        // so none is created inside a job's savepoint (a rolled-back id
        // would stay cached). Others (pulled ops) are created as they come.
        self.collections = CollectionIds::default();
        let catalog = crate::current(&self.catalog);
        for name in catalog.collections.keys() {
            self.collections.id(&self.conn, name)?;
        }
        self.keys = keys::RecentKeys::load(&self.conn, &catalog, self.time.now_ms())?;
        let mut statement = self
            .conn
            .prepare("SELECT id, stream, head_seq, head_hash FROM streams WHERE node = ?1")?;
        let rows = statement
            .query_map([&self.settings.node], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(statement);
        let mut newest = Hlc::default();
        for (id, stream, seq, hash) in rows {
            let hash = Hash::from_slice(&hash)
                .ok_or_else(|| StoreError::Damaged(format!("head hash of stream {stream}")))?;
            let head = StreamHead {
                seq: seq as u64,
                hash,
            };
            if head.seq > 0 {
                let bytes: Option<Vec<u8>> = self
                    .conn
                    .query_row(
                        "SELECT op FROM ops WHERE id = ?1",
                        [op_rowid(id, head.seq)],
                        |row| row.get(0),
                    )
                    .optional()?;
                // A damaged or missing head op must not stop the node from
                // opening (nor `cairn verify` from reporting it); the clock
                // then resumes from the other streams and physical time.
                if let Some(op) = bytes.and_then(|bytes| Op::decode(&bytes).ok()) {
                    newest = newest.max(op.draft.hlc);
                }
            }
            self.streams.insert(
                stream,
                StreamSlot {
                    id,
                    head,
                    dirty: false,
                },
            );
        }
        self.clock = HybridClock::new(newest, CLOCK_DRIFT_MS_MAX_DEFAULT);
        Ok(())
    }

    /// Reads the heads file at start. When the database no longer reaches
    /// a head it records (a tail was cut off, or rewritten), the file is
    /// kept as `heads.cut` for `cairn verify` to report, and the writer
    /// starts a new one: writing on must not erase the evidence.
    fn check_recorded_heads(&self) -> Result<BTreeMap<String, (u64, Hash)>, StoreError> {
        let path = files::heads_path(&self.dir);
        let Some(recorded) = files::read_heads(&path, &self.settings.node) else {
            return Ok(BTreeMap::new());
        };
        for (stream, (seq, hash)) in &recorded {
            let reached = match self.streams.get(stream) {
                Some(slot) if slot.head.seq >= *seq => self
                    .conn
                    .query_row(
                        "SELECT op_hash FROM ops WHERE id = ?1",
                        [op_rowid(slot.id, *seq)],
                        |row| row.get::<_, Vec<u8>>(0),
                    )
                    .optional()?
                    .is_some_and(|stored| stored == hash.0),
                _ => false,
            };
            if !reached {
                let cut = files::cut_heads_path(&self.dir);
                std::fs::rename(&path, &cut).map_err(|error| StoreError::io(&cut, error))?;
                return Ok(BTreeMap::new());
            }
        }
        Ok(recorded)
    }

    /// Records this node's stream heads outside the database when they
    /// moved (`files::write_heads`), so that `cairn verify` can tell a
    /// tail cut off the database.
    fn record_heads(&mut self) {
        let heads: BTreeMap<String, (u64, Hash)> = self
            .streams
            .iter()
            .filter(|(_, slot)| slot.head.seq > 0)
            .map(|(stream, slot)| (stream.clone(), (slot.head.seq, slot.head.hash)))
            .collect();
        if heads == self.recorded_heads {
            return;
        }
        match files::write_heads(&self.dir, &self.settings.node, &heads) {
            Ok(()) => self.recorded_heads = heads,
            // The database commit stands; only the cross-check is behind.
            Err(error) => tracing::warn!(
                %error,
                "cannot record the stream heads outside the database (the commit stands)"
            ),
        }
    }

    fn run(mut self, mut receiver: mpsc::Receiver<Job>) {
        while let Some(first) = receiver.blocking_recv() {
            let mut jobs = vec![first];
            let mut ops = jobs[0].items.len();
            while ops < GROUP_OPS_MAX {
                match receiver.try_recv() {
                    Ok(job) => {
                        ops += job.items.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            self.commit_group(jobs);
        }
    }

    /// Applies a group of jobs in one transaction and answers each.
    fn commit_group(&mut self, mut jobs: Vec<Job>) {
        if self.settings.quota_bytes > 0 {
            let used = files::storage_bytes(&self.dir);
            if used >= self.settings.quota_bytes {
                for job in jobs {
                    let _ = job.reply.send(Err(WriteError::StorageFull(format!(
                        "the store uses {used} bytes, its quota is {} bytes: raise the quota with `cairn edge config --quota-bytes N` (with `edge serve` stopped)",
                        self.settings.quota_bytes
                    ))));
                }
                return;
            }
        }
        let mut outcomes = Vec::with_capacity(jobs.len());
        let result = self.apply_group(&mut jobs, &mut outcomes);
        match result {
            Ok(()) => {
                self.record_heads();
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
            }
            Err(error) => {
                // Nothing of the group was committed: reset in-memory heads.
                let message = error.to_string();
                let full = matches!(&error, StoreError::Sqlite(e) if is_disk_full(e));
                if let Err(reload) = self.reload() {
                    tracing::error!(
                        error = %reload,
                        "cannot reload stream heads after a failed commit"
                    );
                }
                for job in jobs {
                    let failure = if full {
                        WriteError::StorageFull(format!("the disk is full: {message}"))
                    } else {
                        WriteError::Store(StoreError::Internal(format!(
                            "commit failed, nothing was written: {message}"
                        )))
                    };
                    let _ = job.reply.send(Err(failure));
                }
            }
        }
    }

    fn apply_group(
        &mut self,
        jobs: &mut [Job],
        outcomes: &mut Vec<Result<Vec<WriteReceipt>, WriteError>>,
    ) -> Result<(), StoreError> {
        let now_ms = self.time.now_ms();
        let catalog = &*crate::current(&self.catalog);
        let Writer {
            conn,
            identity,
            clock,
            streams,
            collections,
            keys,
            ..
        } = self;
        // IMMEDIATE: take the write lock up front. A deferred transaction that
        // reads first and then writes fails at once (SQLITE_BUSY_SNAPSHOT,
        // no busy wait) if the sync connection committed in between.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut applier = Applier {
            conn: &tx,
            identity,
            clock,
            collections,
            now_ms,
            packs_changed: false,
            keys,
            claimed: Vec::new(),
        };
        for job in jobs.iter_mut() {
            if let Some(work) = job.realign.take() {
                let receipts = realign(&mut applier, streams, catalog, work)?;
                outcomes.push(Ok(receipts));
                continue;
            }
            if !job.purge.is_empty() {
                let purged = purge_pulled(&tx, catalog, &job.purge)?;
                outcomes.push(Ok(purged));
                continue;
            }
            if !job.pulled.is_empty() {
                let mut receipts = Vec::with_capacity(job.pulled.len());
                for (op, bytes) in job.pulled.drain(..) {
                    if let Some(receipt) = apply_pulled(&mut applier, catalog, &op, bytes)? {
                        receipts.push(receipt);
                    }
                }
                outcomes.push(Ok(receipts));
                continue;
            }
            // `apply_item` refuses a record before it writes anything, so a
            // one-record job needs no savepoint and no copy of the stream
            // heads: only a batch can fail after some of its records wrote.
            let batch = job.items.len() > 1;
            let saved = batch.then(|| streams.clone());
            applier.claimed.clear();
            if batch {
                tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            }
            let mut receipts = Vec::with_capacity(job.items.len());
            let mut failure = None;
            for item in job.items.iter_mut() {
                // Prepared under the catalog of a moment ago: a pack the
                // hub replaced since may have dropped the collection.
                let Some(collection) = catalog.collections.get(&item.collection) else {
                    failure = Some(WriteError::Store(StoreError::UnknownCollection(
                        item.collection.clone(),
                    )));
                    break;
                };
                match apply_item(&mut applier, streams, collection, item) {
                    Ok(receipt) => receipts.push(receipt),
                    Err(error) => {
                        failure = Some(error);
                        break;
                    }
                }
            }
            match failure {
                None => {
                    if batch {
                        tx.prepare_cached("RELEASE job")?.execute([])?;
                    }
                    outcomes.push(Ok(receipts));
                }
                Some(error) => {
                    if batch {
                        tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
                        tx.prepare_cached("RELEASE job")?.execute([])?;
                    }
                    if let Some(saved) = saved {
                        *streams = saved;
                    }
                    // The job's idempotency claims went with its savepoint.
                    for (key, before) in applier.claimed.drain(..).rev() {
                        applier.keys.undo(key, before);
                    }
                    match error {
                        // A storage fault fails the whole group; the caller reloads.
                        WriteError::Store(fault) => return Err(fault),
                        refusal => outcomes.push(Err(refusal)),
                    }
                }
            }
        }
        for (name, slot) in streams.iter_mut().filter(|(_, slot)| slot.dirty) {
            let checkpoint = identity.sign_checkpoint(name, slot.head.seq, slot.head.hash);
            tx.prepare_cached(
                "INSERT INTO checkpoints (stream_id, seq, head, signature) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                slot.id,
                slot.head.seq as i64,
                slot.head.hash.0.as_slice(),
                checkpoint.signature.as_slice()
            ])?;
            tx.prepare_cached("UPDATE streams SET head_seq = ?1, head_hash = ?2 WHERE id = ?3")?
                .execute(params![
                    slot.head.seq as i64,
                    slot.head.hash.0.as_slice(),
                    slot.id
                ])?;
            slot.dirty = false;
        }
        let packs_changed = applier.packs_changed;
        tx.commit()?;
        if packs_changed {
            self.reload_catalog()?;
        }
        Ok(())
    }

    /// Swaps in the catalog of the packs now stored (a pack version the
    /// hub distributed): writes from now on are judged by it.
    fn reload_catalog(&mut self) -> Result<(), StoreError> {
        let catalog = Arc::new(Catalog::new(crate::schema::load_packs(&self.conn)?)?);
        for name in catalog.collections.keys() {
            self.collections.id(&self.conn, name)?;
        }
        // A new version may declare other keys or windows.
        self.keys = keys::RecentKeys::load(&self.conn, &catalog, self.time.now_ms())?;
        *self
            .catalog
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = catalog;
        tracing::info!(
            compliance_boundary = "rule_pack",
            "adopted a rule pack version the hub distributed"
        );
        Ok(())
    }
}
