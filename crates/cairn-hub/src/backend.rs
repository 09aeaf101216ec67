//! The seam between the hub's logic and its storage.
//!
//! The pipeline (`crate::pipeline`) never sees SQL: it reads and writes the
//! hub's state through [`LogTx`], one transaction at a time, and a
//! [`HubBackend`] opens those transactions. SQLite implements it today
//! (`cairn_hub_sqlite::SqliteBackend`), [`crate::memory::MemoryBackend`]
//! implements it for tests (and can fail any call), and a PostgreSQL
//! backend shared by several hub processes can follow: nothing the pipeline
//! relies on lives in one process's memory.
//!
//! - **Leaf allocation**: the next leaf is [`LogTx::log_size`] read inside a
//!   write transaction, and [`HubBackend::write`] holds the log's append
//!   lock until that transaction ends; [`LogTx::append`] refuses a leaf that
//!   is taken. Two writers can neither take the same leaf nor leave a hole.
//! - **Stream heads** are rows read and updated inside the transaction.
//! - **The log signer** signs the size its own transaction committed
//!   ([`LogTx::put_log_note`] keeps the first note of a size).
//!
//! Every method returns [`StorageError`] on a fault of the storage, and the
//! pipeline passes it up unchanged: a fault is never a verdict.

use crate::StorageError;
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::op::Op;
use std::collections::BTreeMap;

/// A stream's identity in the backend.
pub type StreamId = i64;

/// What the hub holds of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRow {
    /// The backend's id of the stream.
    pub id: StreamId,
    /// The newest accepted op.
    pub head: StreamHead,
    /// True while an equivocation holds the stream.
    pub held: bool,
}

/// A leaf to append to the log.
#[derive(Clone, Copy, Debug)]
pub struct LeafRow<'a> {
    /// Its index: the log's size when it is appended.
    pub leaf: u64,
    /// The stream the op belongs to.
    pub stream_id: StreamId,
    /// The op, decoded.
    pub op: &'a Op,
    /// The op as the node encoded it.
    pub bytes: &'a [u8],
    /// When the hub accepted it, ms.
    pub received_ms: u64,
}

/// Material refused for integrity, kept (never dropped).
#[derive(Clone, Copy, Debug)]
pub struct QuarantineRow<'a> {
    /// The node it was pushed as.
    pub node: &'a str,
    /// The stream it was pushed to.
    pub stream: &'a str,
    /// The seq it claims, when its header decodes.
    pub seq: Option<u64>,
    /// SHA-256 of the material: each distinct item is kept once.
    pub material_hash: Hash,
    /// The material.
    pub bytes: &'a [u8],
    /// Why it was refused.
    pub reason: &'a str,
    /// When, hub time, ms.
    pub received_ms: u64,
}

/// An alert for operators.
#[derive(Clone, Copy, Debug)]
pub struct AlertRow<'a> {
    /// `equivocation`, `integrity`, `clock_skew`.
    pub kind: &'a str,
    /// The node concerned.
    pub node: &'a str,
    /// Its stream.
    pub stream: &'a str,
    /// What happened.
    pub message: &'a str,
    /// When, hub time, ms.
    pub created_ms: u64,
}

/// A signed log checkpoint to keep.
#[derive(Clone, Copy, Debug)]
pub struct NoteRow<'a> {
    /// The log size it signs.
    pub size: u64,
    /// The root at that size.
    pub root: Hash,
    /// The signed note.
    pub note: &'a str,
    /// When it was signed, hub time, ms.
    pub created_ms: u64,
}

/// A leaf as the read side sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedOp {
    /// Its index in the log.
    pub leaf: u64,
    /// Its stream.
    pub stream_id: StreamId,
    /// Its seq in the stream.
    pub seq: u64,
    /// The node that wrote it.
    pub node: String,
    /// Its scope labels as stored (`cairn_core::names::scope_text`).
    pub scope: String,
    /// The op as encoded.
    pub bytes: Vec<u8>,
    /// Its `op_hash` as the log stored it (the tree's leaf is made of it).
    pub op_hash: Hash,
    /// When the hub logged it, ms.
    pub received_ms: u64,
}

/// A signed log checkpoint as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogNote {
    /// The log size it signs.
    pub size: u64,
    /// The root at that size, as stored beside the note.
    pub root: Hash,
    /// The signed note.
    pub note: String,
    /// When it was signed, hub time, ms.
    pub created_ms: u64,
}

/// What a node or a legacy client last showed of itself, kept for every hub
/// process sharing the store (not a record: the newest replaces it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetReport {
    /// The node or legacy client.
    pub name: String,
    /// `node` (a status report) or `legacy` (a legacy client's request).
    pub kind: String,
    /// The node's status as it sent it (JSON text); `null` for a request.
    pub status: String,
    /// When the hub received it, ms.
    pub received_ms: u64,
}

/// A checkpoint an origin node signed over a stream's accepted ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OriginCheckpoint {
    /// The node's Ed25519 signature.
    pub signature: [u8; 64],
    /// The key that made it.
    pub public_key: [u8; 32],
    /// `op_hash` of the op at the checkpoint's seq.
    pub head: Hash,
}

/// An origin checkpoint from its stored parts: `None` when one does not
/// decode or the log holds no op at its seq (`head` is that op's hash).
pub fn origin_checkpoint_of(
    signature: &[u8],
    public_key: &[u8],
    head: Option<&[u8]>,
) -> Option<OriginCheckpoint> {
    Some(OriginCheckpoint {
        signature: signature.try_into().ok()?,
        public_key: public_key.try_into().ok()?,
        head: Hash::from_slice(head?)?,
    })
}

/// A one-time enrollment token as stored (only its hash names it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollToken {
    /// The node it enrolls.
    pub node: String,
    /// The scopes it grants.
    pub scopes: BTreeMap<String, String>,
    /// When it stops being accepted, ms.
    pub expires_ms: u64,
    /// When it was redeemed.
    pub used_ms: Option<u64>,
    /// True when it may replace an enrolled node's key.
    pub rekey: bool,
    /// When it was voided (an enrollment of its node, or an admin).
    pub revoked_ms: Option<u64>,
}

/// An alert as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// `equivocation`, `integrity`, `clock_skew`, `resolved`.
    pub kind: String,
    /// The node concerned.
    pub node: String,
    /// Its stream.
    pub stream: String,
    /// What happened.
    pub message: String,
}

/// A quarantined item as listed (the material stays stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineEntry {
    /// The node it was pushed as.
    pub node: String,
    /// The stream it was pushed to.
    pub stream: String,
    /// The seq it claims, when its header decodes.
    pub seq: Option<u64>,
    /// SHA-256 of the material.
    pub material_hash: Hash,
    /// Why it was quarantined.
    pub reason: String,
    /// When, hub time, ms.
    pub received_ms: u64,
}

/// One transaction of the hub's store, as the pipeline sees it. Dropping
/// it without [`LogTx::commit`] rolls it back.
///
/// Methods take `&self` so that a tree reader and the pipeline can share
/// one transaction; implementations keep their own interior mutability.
pub trait LogTx: crate::comply::ComplianceStore {
    /// The key `node` is enrolled with, if it is.
    fn node_key(&self, node: &str) -> Result<Option<[u8; 32]>, StorageError>;
    /// The stream's row, once an op of it was accepted.
    fn stream(&self, node: &str, stream: &str) -> Result<Option<StreamRow>, StorageError>;
    /// Adds the row of a stream whose first op is accepted (head seq 0).
    fn create_stream(&self, node: &str, stream: &str) -> Result<StreamId, StorageError>;
    /// Moves a stream's head, holds or releases it.
    fn set_stream(&self, id: StreamId, head: StreamHead, held: bool) -> Result<(), StorageError>;
    /// The leaf and `op_hash` of the op the log holds at `seq` of a stream.
    fn logged(&self, id: StreamId, seq: u64) -> Result<Option<(u64, Hash)>, StorageError>;
    /// Leaves in the log (the next leaf's index).
    fn log_size(&self) -> Result<u64, StorageError>;
    /// Appends a leaf; refuses one whose index is taken.
    fn append(&self, leaf: &LeafRow<'_>) -> Result<(), StorageError>;
    /// The `op_hash` of the leaves `[begin, end)` that exist, in order.
    fn leaf_hashes(&self, begin: u64, end: u64) -> Result<Vec<Hash>, StorageError>;
    /// A stored tree node (`crate::tree` says which levels are stored).
    fn tree_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StorageError>;
    /// Stores a tree node.
    fn put_tree_node(&self, level: u32, index: u64, hash: Hash) -> Result<(), StorageError>;
    /// Keeps quarantined material; `false` when the same item was kept before.
    fn quarantine(&self, item: &QuarantineRow<'_>) -> Result<bool, StorageError>;
    /// Raises an alert.
    fn alert(&self, alert: &AlertRow<'_>) -> Result<(), StorageError>;
    /// The node's clock offset at its last push, ms, if it sent one.
    fn clock_offset(&self, node: &str) -> Result<Option<i64>, StorageError>;
    /// Records when the node pushed and its clock offset.
    fn set_clock(&self, node: &str, pushed_ms: u64, offset_ms: i64) -> Result<(), StorageError>;
    /// Keeps the origin's checkpoint over a stream's accepted ops.
    fn keep_origin_checkpoint(
        &self,
        id: StreamId,
        checkpoint: &Checkpoint,
        public_key: &[u8; 32],
    ) -> Result<(), StorageError>;
    /// The signed log checkpoint kept for `size`.
    fn log_note(&self, size: u64) -> Result<Option<String>, StorageError>;
    /// Keeps a signed log checkpoint (the first one of a size stays).
    fn put_log_note(&self, note: &NoteRow<'_>) -> Result<(), StorageError>;
    /// The signed log checkpoints of sizes below `below`, newest first, at
    /// most `limit`.
    fn log_notes(&self, below: u64, limit: usize) -> Result<Vec<LogNote>, StorageError>;
    /// The scope labels `node` is granted (`None` when it is not enrolled).
    fn grants(&self, node: &str) -> Result<Option<BTreeMap<String, String>>, StorageError>;
    /// The leaves `[from, to)`, at most `limit` of them, in leaf order.
    fn leaves(&self, from: u64, to: u64, limit: usize) -> Result<Vec<LoggedOp>, StorageError>;
    /// A stream's logged ops with seqs in `[from, to]`, in seq order.
    fn stream_ops(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError>;
    /// The node and name of a stream.
    fn stream_name(&self, id: StreamId) -> Result<Option<(String, String)>, StorageError>;
    /// The seq of the first origin checkpoint of the stream at or above `seq`.
    fn checkpoint_covering(&self, id: StreamId, seq: u64) -> Result<Option<u64>, StorageError>;
    /// The origin checkpoint kept at `seq` of a stream.
    fn origin_checkpoint(
        &self,
        id: StreamId,
        seq: u64,
    ) -> Result<Option<OriginCheckpoint>, StorageError>;
    /// Every origin checkpoint kept for a stream, by seq: `None` for one
    /// that does not decode or names a seq the log does not hold.
    fn origin_checkpoints_of(
        &self,
        id: StreamId,
    ) -> Result<Vec<(u64, Option<OriginCheckpoint>)>, StorageError>;
    /// The seq of the `hub:audit` act that enrolled `node` with `public_key`.
    fn enrollment_act(
        &self,
        node: &str,
        public_key: &[u8; 32],
    ) -> Result<Option<u64>, StorageError>;
    /// Enrolls `node` (or updates its key and scopes), first enrolled at `now_ms`.
    fn put_node(
        &self,
        node: &str,
        public_key: &[u8; 32],
        scopes: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<(), StorageError>;
    /// Replaces an enrolled node's granted scopes.
    fn set_grants(&self, node: &str, scopes: &BTreeMap<String, String>)
    -> Result<(), StorageError>;
    /// Records that act `audit_seq` of `hub:audit` enrolled `node` with
    /// `public_key`.
    fn keep_node_key(
        &self,
        node: &str,
        public_key: &[u8; 32],
        audit_seq: u64,
    ) -> Result<(), StorageError>;
    /// Voids every token of `node` neither used nor voided; how many.
    fn void_tokens(&self, node: &str, now_ms: u64) -> Result<u64, StorageError>;
    /// Stores a one-time token under its hash.
    fn put_token(&self, token_hash: &Hash, token: &EnrollToken) -> Result<(), StorageError>;
    /// The token stored under `token_hash`.
    fn token(&self, token_hash: &Hash) -> Result<Option<EnrollToken>, StorageError>;
    /// Marks a token used.
    fn use_token(&self, token_hash: &Hash, now_ms: u64) -> Result<(), StorageError>;
    /// Items the quarantine keeps for `node:stream`.
    fn quarantined_count(&self, node: &str, stream: &str) -> Result<u64, StorageError>;
    /// Every stream of `node` that has an accepted op, by name.
    fn streams_of(&self, node: &str) -> Result<Vec<(String, StreamRow)>, StorageError>;
    /// Enrolled nodes.
    fn node_count(&self) -> Result<u64, StorageError>;
    /// Items in the quarantine.
    fn quarantine_count(&self) -> Result<u64, StorageError>;
    /// Every stream with an accepted op: node, stream, row; by node, stream.
    fn streams(&self) -> Result<Vec<(String, String, StreamRow)>, StorageError>;
    /// Every alert, oldest first.
    fn alerts(&self) -> Result<Vec<Alert>, StorageError>;
    /// Per node that sent its clock: when it last pushed and its offset, ms.
    fn clocks(&self) -> Result<Vec<(String, u64, i64)>, StorageError>;
    /// The newest `limit` items of the quarantine, newest first.
    fn recent_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StorageError>;
    /// The quarantined material of `node`'s `stream` with hash `hash`.
    fn quarantined_material(
        &self,
        node: &str,
        stream: &str,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, StorageError>;
    /// Keeps a fleet report unless a newer one of the same name and kind is
    /// kept already.
    fn put_fleet_report(&self, report: &FleetReport) -> Result<(), StorageError>;
    /// Every fleet report kept, by name and kind.
    fn fleet_reports(&self) -> Result<Vec<FleetReport>, StorageError>;
    /// Opens a savepoint: one push of a group.
    fn savepoint(&self) -> Result<(), StorageError>;
    /// Keeps what was done since the savepoint.
    fn release_savepoint(&self) -> Result<(), StorageError>;
    /// Undoes what was done since the savepoint, and ends it.
    fn rollback_savepoint(&self) -> Result<(), StorageError>;
    /// Makes the transaction durable.
    fn commit(self) -> Result<(), StorageError>
    where
        Self: Sized;
}

/// Opens transactions on the hub's store.
pub trait HubBackend: Send + Sync {
    /// A transaction of this backend.
    type Tx<'a>: LogTx
    where
        Self: 'a;

    /// A write transaction. It holds the log's append lock until it
    /// commits or is dropped, so the leaves it allocates are its own.
    fn write(&self) -> Result<Self::Tx<'_>, StorageError>;

    /// A read transaction: one consistent view of the last commit, which
    /// never waits for a writer.
    fn read(&self) -> Result<Self::Tx<'_>, StorageError>;

    /// A write transaction for what is not the log (fleet reports): on a
    /// backend whose `write` orders appends across processes, it need not
    /// wait for that order. It appends nothing.
    fn write_beside_log(&self) -> Result<Self::Tx<'_>, StorageError> {
        self.write()
    }
}
