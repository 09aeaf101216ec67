//! The writer thread and group commit.
//!
//! Callers validate their records on their own threads ([`WriterHandle::prepare`]),
//! then hand a job to the single writer thread. The writer takes every job
//! waiting (up to [`GROUP_OPS_MAX`] ops), applies each inside a savepoint so a
//! refused job leaves no trace, signs one checkpoint per stream it touched,
//! and commits once. Only then are the callers answered: an `Ok` means the
//! op, its checkpoint and the state it changed are on disk together.
//!
//! Over 800 lines: on the list of files to cut along their seams
//! (`LONG_TODAY` in `crates/cairn/tests/tidy.rs`, issue 10).

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

fn prepare_one(
    catalog: &Catalog,
    settings: &NodeSettings,
    index: usize,
    request: WriteRequest,
) -> Result<Prepared, WriteError> {
    let Some(collection) = catalog.collections.get(&request.collection) else {
        let known: Vec<&str> = catalog.collections.keys().map(String::as_str).collect();
        return Err(WriteError::invalid(
            index,
            Violation::new(
                "collection",
                "unknown",
                format!(
                    "{:?} is not defined by an active pack (known: {})",
                    request.collection,
                    known.join(", ")
                ),
            ),
        ));
    };
    let creating = collection.kind != CollectionKind::Entity;
    let mut validated = collection.validate(request.action, &request.data, creating);
    let mut violations = std::mem::take(&mut validated.violations);
    let keyed = collection.kind != CollectionKind::Ledger;
    let key = match (keyed, request.key) {
        (true, Some(key)) => {
            if let Err(message) = check_key(&key) {
                violations.push(Violation::new("key", "format", message));
            }
            key
        }
        (true, None) => {
            violations.push(Violation::new(
                "key",
                "required",
                format!("{} records are addressed by a key", collection.kind.name()),
            ));
            String::new()
        }
        (false, Some(_)) => {
            violations.push(Violation::new(
                "key",
                "not_allowed",
                "ledger records get their id from their op; they take no key",
            ));
            String::new()
        }
        (false, None) => String::new(),
    };
    let mut scope = request.scope;
    // An entity's labels may come from the record it updates or deletes,
    // which only the writer can read: those are checked there.
    let mut scope_missing = Vec::new();
    for label in &collection.scope {
        if !scope.contains_key(label)
            && let Some(value) = settings.default_scope.get(label)
        {
            scope.insert(label.clone(), value.clone());
        }
        if !scope.contains_key(label) && keyed {
            scope_missing.push(label.clone());
        } else if !scope.contains_key(label) {
            violations.push(Violation::new(
                "scope",
                "required",
                format!(
                    "{} records carry the scope label {label:?}",
                    collection.name
                ),
            ));
        }
    }
    for (name, value) in &scope {
        if let Err(message) = check_name(name).and_then(|()| check_scope_value(value)) {
            violations.push(Violation::new(
                "scope",
                "format",
                format!("label {name:?}: {message}"),
            ));
        }
    }
    if scope.len() > cairn_core::limits::SCOPE_LABELS_MAX {
        violations.push(Violation::new(
            "scope",
            "max_labels",
            format!("at most {} labels", cairn_core::limits::SCOPE_LABELS_MAX),
        ));
    }
    let is_correction = request.action == Action::Correct;
    match (is_correction, &request.corrects) {
        (true, None) => violations.push(Violation::new(
            "corrects",
            "required",
            "a correction names the record it corrects",
        )),
        (false, Some(_)) => violations.push(Violation::new(
            "corrects",
            "not_allowed",
            "only corrections name another record",
        )),
        _ => {}
    }
    let reason = request.reason.unwrap_or_default();
    match (is_correction, reason.trim().is_empty()) {
        (true, true) => violations.push(Violation::new(
            "reason",
            "required",
            "a correction says why it was made",
        )),
        (false, false) => violations.push(Violation::new(
            "reason",
            "not_allowed",
            "only corrections carry a reason",
        )),
        _ => {}
    }
    if reason.len() > cairn_core::limits::REASON_BYTES_MAX {
        violations.push(Violation::new(
            "reason",
            "max_bytes",
            format!("at most {} bytes", cairn_core::limits::REASON_BYTES_MAX),
        ));
    }
    if !violations.is_empty() {
        return Err(WriteError::Invalid { index, violations });
    }
    let payload = std::mem::take(&mut validated.payload);
    let stream = collection.route(&payload).to_string();
    let missing = if collection.kind == CollectionKind::Entity && request.action == Action::Put {
        collection.missing_required(&payload)
    } else {
        Vec::new()
    };
    // Entity set fields are rewritten by the writer against the stored state.
    let rewritten = collection.kind == CollectionKind::Entity
        && payload.keys().any(|name| {
            collection
                .fields
                .get(name)
                .is_some_and(|field| field.merge == cairn_core::merge::FieldRule::Set)
        });
    let payload = if rewritten {
        Payload::Rewrite(payload)
    } else {
        let bytes = canonical::to_canonical_bytes(&Value::Object(payload)).map_err(|error| {
            WriteError::invalid(
                index,
                Violation::new("data", "canonical", error.to_string()),
            )
        })?;
        check_payload_size(index, &bytes)?;
        let hash = canonical::payload_hash(&bytes);
        Payload::Encoded(bytes, hash)
    };
    Ok(Prepared {
        index,
        collection: collection.name.clone(),
        action: request.action,
        key,
        stream,
        scope,
        payload,
        missing,
        scope_missing,
        move_scope: request.move_scope,
        corrects: request.corrects,
        reason,
    })
}

/// Refuses a payload whose encoding is over [`PAYLOAD_BYTES_MAX`].
fn check_payload_size(index: usize, bytes: &[u8]) -> Result<(), WriteError> {
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(WriteError::invalid(
            index,
            Violation::new(
                "data",
                "max_bytes",
                format!(
                    "record is {} bytes encoded, at most {PAYLOAD_BYTES_MAX}",
                    bytes.len()
                ),
            ),
        ));
    }
    Ok(())
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
    catalog: Arc<Catalog>,
    dir: PathBuf,
    clock: HybridClock,
    streams: HashMap<String, StreamSlot>,
    collections: CollectionIds,
    /// The heads last written to the heads file.
    recorded_heads: BTreeMap<String, (u64, Hash)>,
    /// Where the time of writes comes from.
    time: Arc<dyn cairn_core::clock::Clock>,
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
    catalog: Arc<Catalog>,
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
        for name in self.catalog.collections.keys() {
            self.collections.id(&self.conn, name)?;
        }
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
        let Writer {
            conn,
            identity,
            catalog,
            clock,
            streams,
            collections,
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
            if batch {
                tx.prepare_cached("SAVEPOINT job")?.execute([])?;
            }
            let mut receipts = Vec::with_capacity(job.items.len());
            let mut failure = None;
            for item in job.items.iter_mut() {
                let collection = &catalog.collections[&item.collection];
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
        tx.commit()?;
        Ok(())
    }
}

/// The stream slot for `name`, created (inside the transaction) if new.
fn stream_slot<'a>(
    conn: &Connection,
    node: &str,
    streams: &'a mut HashMap<String, StreamSlot>,
    name: &str,
) -> Result<&'a mut StreamSlot, StoreError> {
    if !streams.contains_key(name) {
        conn.execute(
            "INSERT INTO streams (node, stream, head_seq, head_hash) VALUES (?1, ?2, 0, ?3)",
            params![node, name, Hash::ZERO.0.as_slice()],
        )?;
        let id = conn.last_insert_rowid();
        streams.insert(
            name.to_string(),
            StreamSlot {
                id,
                head: StreamHead::EMPTY,
                dirty: false,
            },
        );
    }
    Ok(streams.get_mut(name).expect("inserted above"))
}

/// Looks up the entity's stored state.
fn load_state(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Option<EntityState>, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT state FROM entities WHERE collection = ?1 AND key = ?2")?
        .query_row(params![collection, key], |row| row.get(0))
        .optional()?;
    match bytes {
        None => Ok(None),
        Some(bytes) => {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Damaged(format!("state of {collection}/{key}: {e}")))?;
            EntityState::from_json(&value).map(Some).ok_or_else(|| {
                StoreError::Damaged(format!("state of {collection}/{key} has the wrong shape"))
            })
        }
    }
}

/// Every op of one entity, for a full merge.
pub(crate) fn entity_ops(
    conn: &Connection,
    collection: &str,
    key: &str,
) -> Result<Vec<MergeOp>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT op FROM ops WHERE coll = (SELECT id FROM collections WHERE name = ?1)
         AND record_key = ?2 AND record_key != ''",
    )?;
    let blobs = statement
        .query_map(params![collection, key], |row| row.get::<_, Vec<u8>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    blobs
        .iter()
        .map(|bytes| {
            let op = Op::decode(bytes).map_err(|fault| StoreError::Damaged(fault.to_string()))?;
            MergeOp::from_op(&op).ok_or_else(|| {
                StoreError::Damaged(format!("op {} is not an entity op", op.record_id()))
            })
        })
        .collect()
}

/// Turns a desired set (an array) into the add/remove change the merge takes.
fn set_change(current: Option<&Value>, desired: &Value) -> Value {
    let key = canonical::encode_unchecked;
    let current: BTreeMap<Vec<u8>, &Value> = current
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|element| (key(element), element))
        .collect();
    let desired: BTreeMap<Vec<u8>, &Value> = desired
        .as_array()
        .into_iter()
        .flatten()
        .map(|element| (key(element), element))
        .collect();
    let add: Vec<&Value> = desired
        .iter()
        .filter(|(k, _)| !current.contains_key(*k))
        .map(|(_, v)| *v)
        .collect();
    let remove: Vec<&Value> = current
        .iter()
        .filter(|(k, _)| !desired.contains_key(*k))
        .map(|(_, v)| *v)
        .collect();
    serde_json::json!({"add": add, "remove": remove})
}

/// What applying an op needs besides the op: the group's transaction and
/// the writer's state.
struct Applier<'a> {
    conn: &'a Connection,
    identity: &'a NodeIdentity,
    clock: &'a mut HybridClock,
    collections: &'a mut CollectionIds,
    now_ms: u64,
}

/// The scope labels of an entity or config write, against the record it
/// changes: labels the write does not give come from the record, and a
/// write that would give a live record other labels (moving it) is refused
/// unless it says so.
fn check_scope(
    conn: &Connection,
    collection: &Collection,
    item: &mut Prepared,
    exists: bool,
) -> Result<(), WriteError> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT scope FROM entities WHERE collection = ?1 AND key = ?2")
        .and_then(|mut statement| {
            statement
                .query_row(params![collection.name, item.key], |row| row.get(0))
                .optional()
        })
        .map_err(StoreError::from)?;
    let stored: BTreeMap<String, String> = stored
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter_map(|label| label.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let mut violations = Vec::new();
    for label in std::mem::take(&mut item.scope_missing) {
        match stored.get(&label) {
            Some(value) => {
                item.scope.insert(label, value.clone());
            }
            None => violations.push(Violation::new(
                "scope",
                "required",
                format!(
                    "{} records carry the scope label {label:?}",
                    collection.name
                ),
            )),
        }
    }
    if violations.is_empty() && exists && item.scope != stored && !item.move_scope {
        violations.push(Violation::new(
            "scope",
            "move",
            format!(
                "{} {:?} is in {}; this write gives it {}: say so to move it (--move, or \"move\": true)",
                collection.name,
                item.key,
                labels_text(&stored),
                labels_text(&item.scope)
            ),
        ));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(WriteError::Invalid {
            index: item.index,
            violations,
        })
    }
}

/// Labels as `name=value, name=value` for messages.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "no scope".into();
    }
    labels
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn apply_item(
    applier: &mut Applier<'_>,
    streams: &mut HashMap<String, StreamSlot>,
    collection: &Collection,
    item: &mut Prepared,
) -> Result<WriteReceipt, WriteError> {
    let (conn, identity, now_ms) = (applier.conn, applier.identity, applier.now_ms);
    let clock = &mut *applier.clock;
    let collections = &mut *applier.collections;
    let index = item.index;
    let mut ref_hash = None;
    let mut base = VersionVector::default();
    let mut state = None;
    let (payload_bytes, payload_hash) = match collection.kind {
        CollectionKind::Ledger => {
            if let Some(target) = &item.corrects {
                ref_hash = Some(correction_target(conn, collection, target).map_err(
                    |message| {
                        WriteError::invalid(index, Violation::new("corrects", "exists", message))
                    },
                )??);
            }
            match std::mem::replace(&mut item.payload, Payload::Rewrite(Map::new())) {
                Payload::Encoded(bytes, hash) => (bytes, hash),
                Payload::Rewrite(_) => unreachable!("only entity payloads are rewritten"),
            }
        }
        CollectionKind::Entity | CollectionKind::Config => {
            state = load_state(conn, &collection.name, &item.key)?;
            let exists = state.as_ref().is_some_and(|state| !state.deleted);
            check_scope(conn, collection, item, exists)?;
            if item.action == Action::Delete && !exists {
                return Err(WriteError::invalid(
                    index,
                    Violation::new(
                        "key",
                        "exists",
                        format!(
                            "{} has no live record {:?} to delete",
                            collection.name, item.key
                        ),
                    ),
                ));
            }
            if !exists && !item.missing.is_empty() {
                return Err(WriteError::Invalid {
                    index,
                    violations: std::mem::take(&mut item.missing),
                });
            }
            base = state
                .as_ref()
                .map(|state| state.vv.clone())
                .unwrap_or_default();
            match std::mem::replace(&mut item.payload, Payload::Rewrite(Map::new())) {
                Payload::Encoded(bytes, hash) => (bytes, hash),
                Payload::Rewrite(mut payload) => {
                    // Set fields arrive as the desired set and become the
                    // add/remove change against what this node holds now.
                    for (name, value) in payload.iter_mut() {
                        if collection
                            .fields
                            .get(name)
                            .is_some_and(|field| field.merge == cairn_core::merge::FieldRule::Set)
                        {
                            let current = state
                                .as_ref()
                                .filter(|state| !state.deleted)
                                .and_then(|state| state.fields.get(name));
                            *value = set_change(current, value);
                        }
                    }
                    let bytes = canonical::encode_unchecked(&Value::Object(payload));
                    check_payload_size(index, &bytes)?;
                    let hash = canonical::payload_hash(&bytes);
                    (bytes, hash)
                }
            }
        }
    };
    let stream = std::mem::take(&mut item.stream);
    let draft = OpDraft {
        node: identity.node.clone(),
        stream: stream.clone(),
        hlc: clock.send(now_ms),
        collection: collection.name.clone(),
        action: item.action,
        key: item.key.clone(),
        scope: std::mem::take(&mut item.scope),
        base,
        ref_hash,
        reason: std::mem::take(&mut item.reason),
        payload: payload_bytes,
    };
    if let Err(error) = draft.check_header() {
        return Err(WriteError::invalid(
            index,
            Violation::new(error.field, "format", error.message),
        ));
    }
    let slot = stream_slot(conn, &identity.node, streams, &stream)?;
    let (op, bytes) = slot.head.append_prehashed(draft, payload_hash);
    slot.dirty = true;
    let scope = scope_text(&op.draft.scope);
    let coll = collections.id(conn, &collection.name)?;
    conn.prepare_cached(
        "INSERT INTO ops (id, op_hash, op, coll, action, record_key, scope, ref_id, written_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .map_err(StoreError::from)?
    .execute(params![
        op_rowid(slot.id, op.seq),
        op.op_hash.0.as_slice(),
        bytes,
        coll,
        op.draft.action.code(),
        op.draft.key,
        scope,
        item.corrects,
        now_ms as i64,
    ])
    .map_err(StoreError::from)?;
    if let Some(schema) = collection.merge_schema() {
        let merge_op = MergeOp::from_op(&op).expect("entity ops carry an object payload");
        let next = match merge::apply(&schema, state.as_ref(), &merge_op) {
            Some(next) => next,
            // A local write saw the whole local state, so this is a bug; recover by recomputing.
            None => merge::materialize(&schema, &entity_ops(conn, &collection.name, &item.key)?)
                .ok_or_else(|| StoreError::Internal("an entity with ops has no state".into()))?,
        };
        conn.prepare_cached(
            "INSERT INTO entities (collection, key, scope, deleted, conflicted, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (collection, key) DO UPDATE SET scope = ?3, deleted = ?4, conflicted = ?5, state = ?6",
        )
        .map_err(StoreError::from)?
        .execute(params![
            collection.name,
            item.key,
            scope,
            next.deleted,
            !next.conflicts.is_empty(),
            next.to_canonical_bytes()
        ])
        .map_err(StoreError::from)?;
    }
    let id = match collection.kind {
        CollectionKind::Ledger => op.record_id(),
        CollectionKind::Entity | CollectionKind::Config => item.key.clone(),
    };
    Ok(WriteReceipt {
        id,
        collection: collection.name.clone(),
        stream,
        seq: op.seq,
        op_hash: op.op_hash.to_hex(),
    })
}

/// Deletes pulled ops that carry any of `labels` (`name=value`) and
/// recomputes the entities they touched; this node's own ops are never
/// touched. Returns one receipt per entity recomputed or removed.
fn purge_pulled(
    conn: &Connection,
    catalog: &Catalog,
    labels: &[String],
) -> Result<Vec<WriteReceipt>, StoreError> {
    let mut touched = BTreeMap::new();
    for label in labels {
        let needle = format!(",{label},");
        let rows: Vec<(String, String)> = conn
            .prepare_cached(
                "SELECT DISTINCT c.name, o.record_key FROM ops o JOIN streams s ON s.id = (o.id >> 40)
                 JOIN collections c ON c.id = o.coll
                 WHERE s.foreign_ = 1 AND instr(o.scope, ?1) > 0 AND o.record_key != ''",
            )?
            .query_map([&needle], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        touched.extend(rows.into_iter().map(|key| (key, ())));
        conn.prepare_cached(
            "DELETE FROM ops WHERE id IN (SELECT o.id FROM ops o JOIN streams s ON s.id = (o.id >> 40)
             WHERE s.foreign_ = 1 AND instr(o.scope, ?1) > 0)",
        )?
        .execute([&needle])?;
    }
    let mut receipts = Vec::new();
    for ((collection, key), ()) in touched {
        recompute_entity(conn, catalog, &collection, &key, None)?;
        receipts.push(WriteReceipt {
            id: key,
            collection,
            stream: String::new(),
            seq: 0,
            op_hash: String::new(),
        });
    }
    Ok(receipts)
}

/// Recomputes an entity from the ops left of it: updated, created (with
/// `scope`, when given and the entity is new) or removed when none is left.
fn recompute_entity(
    conn: &Connection,
    catalog: &Catalog,
    collection: &str,
    key: &str,
    scope: Option<&str>,
) -> Result<(), StoreError> {
    let ops = entity_ops(conn, collection, key)?;
    let schema = catalog
        .collections
        .get(collection)
        .and_then(Collection::merge_schema);
    match schema.and_then(|schema| merge::materialize(&schema, &ops)) {
        Some(state) => {
            let (deleted, conflicted, bytes) = (
                state.deleted,
                !state.conflicts.is_empty(),
                state.to_canonical_bytes(),
            );
            match scope {
                Some(scope) => conn.execute(
                    "INSERT INTO entities (collection, key, scope, deleted, conflicted, state) VALUES (?1, ?2, ?6, ?3, ?4, ?5)
                     ON CONFLICT (collection, key) DO UPDATE SET deleted = ?3, conflicted = ?4, state = ?5",
                    params![collection, key, deleted, conflicted, bytes, scope],
                )?,
                None => conn.execute(
                    "UPDATE entities SET deleted = ?3, conflicted = ?4, state = ?5 WHERE collection = ?1 AND key = ?2",
                    params![collection, key, deleted, conflicted, bytes],
                )?,
            };
        }
        None => {
            conn.execute(
                "DELETE FROM entities WHERE collection = ?1 AND key = ?2",
                params![collection, key],
            )?;
        }
    }
    Ok(())
}

/// Takes one of this node's streams back from the hub after the node was
/// restored from an old backup and wrote on: the hub holds the node's own
/// ops up to its head `h`, the node's stream diverges from seq `k`.
///
/// Nothing is lost. The node's diverged ops `k..` are kept in `displaced`,
/// replaced by the hub's `k..=h` (its own ops, signed with its own key,
/// with the checkpoints it signed then), and appended again after `h` as
/// new ops: same drafts (clock, payload, and base version vectors, so an
/// edit that never saw the hub's ops stays concurrent with them), their
/// references to each other renumbered. Entities they touch are recomputed.
fn realign(
    applier: &mut Applier<'_>,
    streams: &mut HashMap<String, StreamSlot>,
    catalog: &Catalog,
    work: Realign,
) -> Result<Vec<WriteReceipt>, StoreError> {
    let (conn, identity, now_ms) = (applier.conn, applier.identity, applier.now_ms);
    let node = identity.node.clone();
    let Some(slot) = streams.get(&work.stream) else {
        return Err(StoreError::Config(format!(
            "this node has no stream {:?}",
            work.stream
        )));
    };
    let (stream_id, local_head) = (slot.id, slot.head);
    let own_hash = |seq: u64| -> Result<Option<Hash>, StoreError> {
        let hash: Option<Vec<u8>> = conn
            .prepare_cached("SELECT op_hash FROM ops WHERE id = ?1")?
            .query_row([op_rowid(stream_id, seq)], |row| row.get(0))
            .optional()?;
        Ok(hash.and_then(|hash| Hash::from_slice(&hash)))
    };
    // Where the node and the hub part: the first of the hub's ops the node
    // does not hold as it is.
    let mut diverge = None;
    for (op, _) in &work.ops {
        if own_hash(op.seq)? != Some(op.op_hash) {
            diverge = Some(op.seq);
            break;
        }
    }
    let Some(from) = diverge else {
        return Ok(Vec::new());
    };
    let hub_head = work.ops.last().map_or(0, |(op, _)| op.seq);
    // The diverged ops, kept aside for good.
    let displaced: Vec<(u64, Vec<u8>)> = conn
        .prepare_cached("SELECT id, op FROM ops WHERE id >= ?1 AND id <= ?2 ORDER BY id")?
        .query_map(
            params![
                op_rowid(stream_id, from),
                op_rowid(stream_id, local_head.seq.max(from))
            ],
            |row| {
                Ok((
                    (row.get::<_, i64>(0)? & ((1 << 40) - 1)) as u64,
                    row.get(1)?,
                ))
            },
        )?
        .collect::<Result<_, _>>()?;
    let mut touched = std::collections::BTreeSet::new();
    let mut old_ops = Vec::with_capacity(displaced.len());
    for (seq, bytes) in &displaced {
        let op = Op::decode(bytes)
            .map_err(|fault| StoreError::Damaged(format!("{} seq {seq}: {fault}", work.stream)))?;
        conn.prepare_cached(
            "INSERT INTO displaced (stream, seq, op_hash, op, displaced_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![work.stream, *seq as i64, op.op_hash.0.as_slice(), bytes, now_ms as i64])?;
        if !op.draft.key.is_empty() {
            touched.insert((
                op.draft.collection.clone(),
                op.draft.key.clone(),
                scope_text(&op.draft.scope),
            ));
        }
        old_ops.push(op);
    }
    conn.prepare_cached("DELETE FROM ops WHERE id >= ?1 AND id <= ?2")?
        .execute(params![
            op_rowid(stream_id, from),
            op_rowid(stream_id, (1 << 40) - 1)
        ])?;
    conn.prepare_cached("DELETE FROM checkpoints WHERE stream_id = ?1 AND seq >= ?2")?
        .execute(params![stream_id, from as i64])?;
    // The hub's ops from the parting seq on: this node's own, come back.
    let mut head = StreamHead::EMPTY;
    for (op, bytes) in &work.ops {
        if op.seq < from {
            head = StreamHead {
                seq: op.seq,
                hash: op.op_hash,
            };
            continue;
        }
        insert_own(applier, op, bytes, stream_id)?;
        // Written before the restore, perhaps later than anything the
        // backup's clock saw: the clock must not fall behind them.
        let _ = applier.clock.receive(op.draft.hlc, now_ms);
        if !op.draft.key.is_empty() {
            touched.insert((
                op.draft.collection.clone(),
                op.draft.key.clone(),
                scope_text(&op.draft.scope),
            ));
        }
        head = StreamHead {
            seq: op.seq,
            hash: op.op_hash,
        };
    }
    if head.seq == 0 && from > 1 {
        let hash = own_hash(from - 1)?.ok_or_else(|| {
            StoreError::Damaged(format!("{} seq {} is missing", work.stream, from - 1))
        })?;
        head = StreamHead {
            seq: from - 1,
            hash,
        };
    }
    for checkpoint in work
        .checkpoints
        .iter()
        .filter(|c| c.seq >= from && c.seq <= hub_head)
    {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO checkpoints (stream_id, seq, head, signature) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            stream_id,
            checkpoint.seq as i64,
            checkpoint.head.0.as_slice(),
            checkpoint.signature.as_slice()
        ])?;
    }
    // The diverged ops again, after the hub's head: same drafts, renumbered.
    let own_key = cairn_core::op::stream_key(&node, &work.stream);
    let mut renumbered: HashMap<u64, u64> = HashMap::new();
    let mut rehashed: HashMap<Hash, Hash> = HashMap::new();
    let mut receipts = Vec::new();
    for old in old_ops {
        let mut draft = old.draft.clone();
        if let Some(seen) = draft.base.0.get_mut(&own_key)
            && let Some(new) = renumbered.get(seen)
        {
            *seen = *new;
        }
        if let Some(target) = draft.ref_hash
            && let Some(new) = rehashed.get(&target)
        {
            draft.ref_hash = Some(*new);
        }
        let (op, bytes) = head.append(draft);
        renumbered.insert(old.seq, op.seq);
        rehashed.insert(old.op_hash, op.op_hash);
        insert_own(applier, &op, &bytes, stream_id)?;
        // Where it went: the id it had keeps saying so (`read::get`).
        conn.prepare_cached(
            "UPDATE displaced SET new_seq = ?1 WHERE stream = ?2 AND seq = ?3 AND op_hash = ?4",
        )?
        .execute(params![
            op.seq as i64,
            work.stream,
            old.seq as i64,
            old.op_hash.0.as_slice()
        ])?;
        receipts.push(WriteReceipt {
            id: if op.draft.key.is_empty() {
                op.record_id()
            } else {
                op.draft.key.clone()
            },
            collection: op.draft.collection.clone(),
            stream: work.stream.clone(),
            seq: op.seq,
            op_hash: op.op_hash.to_hex(),
        });
    }
    for (collection, key, scope) in touched {
        recompute_entity(conn, catalog, &collection, &key, Some(&scope))?;
    }
    conn.prepare_cached(
        "UPDATE streams SET head_seq = ?1, head_hash = ?2, acked_seq = ?3 WHERE id = ?4",
    )?
    .execute(params![
        head.seq as i64,
        head.hash.0.as_slice(),
        hub_head as i64,
        stream_id
    ])?;
    let slot = streams.get_mut(&work.stream).expect("looked up above");
    slot.head = head;
    // Re-appended ops need a checkpoint of their own (signed at commit).
    slot.dirty = !receipts.is_empty();
    Ok(receipts)
}

/// Inserts one of this node's own ops (not written here: taken back from
/// the hub, or re-appended) into its stream's rows.
fn insert_own(
    applier: &mut Applier<'_>,
    op: &Op,
    bytes: &[u8],
    stream_id: i64,
) -> Result<(), StoreError> {
    let conn = applier.conn;
    // A correction's reference, as the record id the listing joins on.
    let ref_id = match op.draft.ref_hash {
        None => None,
        Some(target) => conn
            .query_row(
                "SELECT s.node || ':' || s.stream || ':' || (o.id & 1099511627775) FROM ops o
                 JOIN streams s ON s.id = (o.id >> 40) WHERE o.op_hash = ?1",
                [target.0.as_slice()],
                |row| row.get::<_, String>(0),
            )
            .optional()?,
    };
    conn.prepare_cached(
        "INSERT INTO ops (id, op_hash, op, coll, action, record_key, scope, ref_id, written_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        op_rowid(stream_id, op.seq),
        op.op_hash.0.as_slice(),
        bytes,
        applier.collections.id(conn, &op.draft.collection)?,
        op.draft.action.code(),
        op.draft.key,
        scope_text(&op.draft.scope),
        ref_id,
        applier.now_ms as i64,
    ])?;
    Ok(())
}

/// Stores one verified op of another node (unless already held), advances
/// the clock past it and merges it into the entity it changes.
fn apply_pulled(
    applier: &mut Applier<'_>,
    catalog: &Catalog,
    op: &Op,
    bytes: Vec<u8>,
) -> Result<Option<WriteReceipt>, StoreError> {
    let (conn, identity, now_ms) = (applier.conn, applier.identity, applier.now_ms);
    let clock = &mut *applier.clock;
    let collections = &mut *applier.collections;
    if op.draft.node == identity.node {
        // Our own ops come from our own chain, never back from the hub.
        return Ok(None);
    }
    let stream_id: Option<i64> = conn
        .prepare_cached("SELECT id FROM streams WHERE node = ?1 AND stream = ?2")?
        .query_row(params![op.draft.node, op.draft.stream], |row| row.get(0))
        .optional()?;
    let stream_id = match stream_id {
        Some(id) => id,
        None => {
            conn.execute(
                "INSERT INTO streams (node, stream, head_seq, head_hash, foreign_) VALUES (?1, ?2, 0, ?3, 1)",
                params![op.draft.node, op.draft.stream, Hash::ZERO.0.as_slice()],
            )?;
            conn.last_insert_rowid()
        }
    };
    let inserted = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO ops (id, op_hash, op, coll, action, record_key, scope, ref_id, written_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            op_rowid(stream_id, op.seq),
            op.op_hash.0.as_slice(),
            bytes,
            collections.id(conn, &op.draft.collection)?,
            op.draft.action.code(),
            op.draft.key,
            scope_text(&op.draft.scope),
            Option::<String>::None,
            now_ms as i64,
        ])?;
    if inserted == 0 {
        return Ok(None);
    }
    conn.prepare_cached("UPDATE streams SET head_seq = max(head_seq, ?1) WHERE id = ?2")?
        .execute(params![op.seq as i64, stream_id])?;
    // A clock days ahead is reported by the hub; here it only must not drag ours.
    let _ = clock.receive(op.draft.hlc, now_ms);
    if let Some(schema) = catalog
        .collections
        .get(&op.draft.collection)
        .and_then(Collection::merge_schema)
        && let Some(merge_op) = MergeOp::from_op(op)
    {
        let state = load_state(conn, &op.draft.collection, &op.draft.key)?;
        let next = match merge::apply(&schema, state.as_ref(), &merge_op) {
            Some(next) => next,
            None => merge::materialize(
                &schema,
                &entity_ops(conn, &op.draft.collection, &op.draft.key)?,
            )
            .ok_or_else(|| StoreError::Internal("an entity with ops has no state".into()))?,
        };
        conn.prepare_cached(
            "INSERT INTO entities (collection, key, scope, deleted, conflicted, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (collection, key) DO UPDATE SET scope = ?3, deleted = ?4, conflicted = ?5, state = ?6",
        )?
        .execute(params![
            op.draft.collection,
            op.draft.key,
            scope_text(&op.draft.scope),
            next.deleted,
            !next.conflicts.is_empty(),
            next.to_canonical_bytes()
        ])?;
    }
    Ok(Some(WriteReceipt {
        id: if op.draft.key.is_empty() {
            op.record_id()
        } else {
            op.draft.key.clone()
        },
        collection: op.draft.collection.clone(),
        stream: op.stream_key(),
        seq: op.seq,
        op_hash: op.op_hash.to_hex(),
    }))
}

/// The op hash of the ledger record `id` in `collection`, or why it cannot be corrected.
fn correction_target(
    conn: &Connection,
    collection: &Collection,
    id: &str,
) -> Result<Result<Hash, WriteError>, String> {
    let Some((node, stream, seq)) = crate::read::parse_record_id(id) else {
        return Err(format!("{id:?} is not a record id (node:stream:seq)"));
    };
    let row: Option<(Vec<u8>, String, i64)> = conn
        .query_row(
            "SELECT o.op_hash, c.name, o.action FROM ops o JOIN streams s ON o.id = (s.id << 40) | ?3
             JOIN collections c ON c.id = o.coll
             WHERE s.node = ?1 AND s.stream = ?2",
            params![node, stream, seq as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(|error| error.to_string())?;
    match row {
        None => Err(format!("no record {id} in {}", collection.name)),
        Some((_, other, _)) if other != collection.name => Err(format!(
            "record {id} belongs to {other}, not {}",
            collection.name
        )),
        Some((hash, _, _)) => Ok(Hash::from_slice(&hash)
            .ok_or_else(|| WriteError::Store(StoreError::Damaged(format!("op hash of {id}"))))),
    }
}
