//! The store the hub runs on: SQLite (the default, in the hub's directory)
//! or PostgreSQL (shared by several hub processes). [`StoreBackend`] is
//! either, and its transactions forward every call of the backend seam to
//! the one they wrap: the hub's logic, the HTTP layer and the CLI see one
//! type whichever database holds the hub.
//!
//! The forwarding below is one line per method of the seam: an enum rather
//! than a trait object because `HubBackend`'s transactions are a generic
//! associated type, which a trait object cannot name.

use crate::sqlite::{SqlTx, SqliteBackend};
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_hub::StorageError;
use cairn_hub::backend::{
    Alert, AlertRow, EnrollToken, FleetReport, HubBackend, LeafRow, LogNote, LogTx, LoggedOp,
    NoteRow, OriginCheckpoint, QuarantineEntry, QuarantineRow, StreamId, StreamRow,
};
use cairn_hub::comply::store::{
    Closure, ComplianceStore, PushAttempt, Review, ReviewFilter, ReviewRow, VerdictRow,
};
use cairn_hub::comply::{Awaited, Claim, Ledger, RegistryEntry};
use cairn_hub_postgres::{PgBackend, PgTx};
use std::collections::BTreeMap;

/// The database a hub runs on.
pub enum StoreBackend {
    /// `hub.db` in the hub's directory.
    Sqlite(SqliteBackend),
    /// A PostgreSQL database, shared by every hub process serving it.
    Postgres(PgBackend),
}

/// A transaction of either database.
pub enum StoreTx<'a> {
    /// On SQLite.
    Sqlite(SqlTx<'a>),
    /// On PostgreSQL.
    Postgres(PgTx<'a>),
}

impl HubBackend for StoreBackend {
    type Tx<'a> = StoreTx<'a>;

    fn write(&self) -> Result<StoreTx<'_>, StorageError> {
        match self {
            StoreBackend::Sqlite(backend) => backend.write().map(StoreTx::Sqlite),
            StoreBackend::Postgres(backend) => backend.write().map(StoreTx::Postgres),
        }
    }

    fn read(&self) -> Result<StoreTx<'_>, StorageError> {
        match self {
            StoreBackend::Sqlite(backend) => backend.read().map(StoreTx::Sqlite),
            StoreBackend::Postgres(backend) => backend.read().map(StoreTx::Postgres),
        }
    }

    fn write_beside_log(&self) -> Result<StoreTx<'_>, StorageError> {
        match self {
            StoreBackend::Sqlite(backend) => backend.write_beside_log().map(StoreTx::Sqlite),
            StoreBackend::Postgres(backend) => backend.write_beside_log().map(StoreTx::Postgres),
        }
    }
}

/// Calls the same method on whichever transaction `$tx` wraps.
macro_rules! forward {
    ($self:ident, $tx:ident => $call:expr) => {
        match $self {
            StoreTx::Sqlite($tx) => $call,
            StoreTx::Postgres($tx) => $call,
        }
    };
}

impl Ledger for StoreTx<'_> {
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError> {
        forward!(self, tx => tx.claim_of(key))
    }

    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_claim(key, claim))
    }

    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError> {
        forward!(self, tx => tx.registry_entry(collection, key))
    }

    fn put_registry_entry(
        &self,
        collection: &str,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_registry_entry(collection, key, entry))
    }

    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError> {
        forward!(self, tx => tx.await_follow_up(item))
    }

    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError> {
        forward!(self, tx => tx.awaited(key))
    }

    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError> {
        forward!(self, tx => tx.stop_waiting(leaf))
    }

    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError> {
        forward!(self, tx => tx.overdue(now_ms, limit))
    }

    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        forward!(self, tx => tx.entity_state(collection, key))
    }

    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_entity_state(collection, key, state))
    }

    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError> {
        forward!(self, tx => tx.add_entity_op(collection, key, leaf))
    }

    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError> {
        forward!(self, tx => tx.entity_ops(collection, key))
    }

    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError> {
        forward!(self, tx => tx.logged_op(leaf))
    }
}

impl ComplianceStore for StoreTx<'_> {
    fn judged_through(&self) -> Result<u64, StorageError> {
        forward!(self, tx => tx.judged_through())
    }

    fn set_judged_through(&self, leaf: u64) -> Result<(), StorageError> {
        forward!(self, tx => tx.set_judged_through(leaf))
    }

    fn record_verdict(&self, row: &VerdictRow) -> Result<(), StorageError> {
        forward!(self, tx => tx.record_verdict(row))
    }

    fn verdict_at(&self, leaf: u64) -> Result<Option<VerdictRow>, StorageError> {
        forward!(self, tx => tx.verdict_at(leaf))
    }

    fn state_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        forward!(self, tx => tx.state_counts())
    }

    fn unpersisted_leaves(&self) -> Result<Vec<u64>, StorageError> {
        forward!(self, tx => tx.unpersisted_leaves())
    }

    fn stream_verdicts(
        &self,
        stream_id: StreamId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, VerdictRow)>, StorageError> {
        forward!(self, tx => tx.stream_verdicts(stream_id, after_seq, limit))
    }

    fn judged_seq(&self, stream_id: StreamId) -> Result<u64, StorageError> {
        forward!(self, tx => tx.judged_seq(stream_id))
    }

    fn raise_review(&self, row: &ReviewRow) -> Result<Option<u64>, StorageError> {
        forward!(self, tx => tx.raise_review(row))
    }

    fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>, StorageError> {
        forward!(self, tx => tx.reviews(filter))
    }

    fn review(&self, id: u64) -> Result<Option<Review>, StorageError> {
        forward!(self, tx => tx.review(id))
    }

    fn close_review(&self, id: u64, closure: &Closure) -> Result<bool, StorageError> {
        forward!(self, tx => tx.close_review(id, closure))
    }

    fn open_reviews_of(&self, kind: &str, leaf: u64) -> Result<Vec<u64>, StorageError> {
        forward!(self, tx => tx.open_reviews_of(kind, leaf))
    }

    fn open_review_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        forward!(self, tx => tx.open_review_counts())
    }

    fn record_push(&self, attempt: &PushAttempt) -> Result<(), StorageError> {
        forward!(self, tx => tx.record_push(attempt))
    }

    fn push_attempts(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PushAttempt)>, StorageError> {
        forward!(self, tx => tx.push_attempts(after_id, limit))
    }

    fn verdicts_from(&self, from: u64, limit: usize) -> Result<Vec<VerdictRow>, StorageError> {
        forward!(self, tx => tx.verdicts_from(from, limit))
    }

    fn changed_entities(
        &self,
        collection: &str,
        from_leaf: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>, StorageError> {
        forward!(self, tx => tx.changed_entities(collection, from_leaf, limit))
    }

    fn pack_sources(&self) -> Result<Vec<String>, StorageError> {
        forward!(self, tx => tx.pack_sources())
    }

    fn put_pack(
        &self,
        pack: &cairn_core::pack::RulePack,
        source: &str,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_pack(pack, source, at_ms))
    }
}

impl LogTx for StoreTx<'_> {
    fn node_key(&self, node: &str) -> Result<Option<[u8; 32]>, StorageError> {
        forward!(self, tx => tx.node_key(node))
    }

    fn keep_origin_checkpoint(
        &self,
        id: StreamId,
        checkpoint: &Checkpoint,
        public_key: &[u8; 32],
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.keep_origin_checkpoint(id, checkpoint, public_key))
    }

    fn enrollment_act(
        &self,
        node: &str,
        public_key: &[u8; 32],
    ) -> Result<Option<u64>, StorageError> {
        forward!(self, tx => tx.enrollment_act(node, public_key))
    }

    fn put_node(
        &self,
        node: &str,
        public_key: &[u8; 32],
        scopes: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_node(node, public_key, scopes, now_ms))
    }

    fn keep_node_key(
        &self,
        node: &str,
        public_key: &[u8; 32],
        audit_seq: u64,
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.keep_node_key(node, public_key, audit_seq))
    }

    fn stream(&self, node: &str, stream: &str) -> Result<Option<StreamRow>, StorageError> {
        forward!(self, tx => tx.stream(node, stream))
    }

    fn create_stream(&self, node: &str, stream: &str) -> Result<StreamId, StorageError> {
        forward!(self, tx => tx.create_stream(node, stream))
    }

    fn set_stream(&self, id: StreamId, head: StreamHead, held: bool) -> Result<(), StorageError> {
        forward!(self, tx => tx.set_stream(id, head, held))
    }

    fn logged(&self, id: StreamId, seq: u64) -> Result<Option<(u64, Hash)>, StorageError> {
        forward!(self, tx => tx.logged(id, seq))
    }

    fn log_size(&self) -> Result<u64, StorageError> {
        forward!(self, tx => tx.log_size())
    }

    fn append(&self, leaf: &LeafRow<'_>) -> Result<(), StorageError> {
        forward!(self, tx => tx.append(leaf))
    }

    fn leaf_hashes(&self, begin: u64, end: u64) -> Result<Vec<Hash>, StorageError> {
        forward!(self, tx => tx.leaf_hashes(begin, end))
    }

    fn tree_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StorageError> {
        forward!(self, tx => tx.tree_node(level, index))
    }

    fn put_tree_node(&self, level: u32, index: u64, hash: Hash) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_tree_node(level, index, hash))
    }

    fn quarantine(&self, item: &QuarantineRow<'_>) -> Result<bool, StorageError> {
        forward!(self, tx => tx.quarantine(item))
    }

    fn alert(&self, alert: &AlertRow<'_>) -> Result<(), StorageError> {
        forward!(self, tx => tx.alert(alert))
    }

    fn clock_offset(&self, node: &str) -> Result<Option<i64>, StorageError> {
        forward!(self, tx => tx.clock_offset(node))
    }

    fn set_clock(&self, node: &str, pushed_ms: u64, offset_ms: i64) -> Result<(), StorageError> {
        forward!(self, tx => tx.set_clock(node, pushed_ms, offset_ms))
    }

    fn log_note(&self, size: u64) -> Result<Option<String>, StorageError> {
        forward!(self, tx => tx.log_note(size))
    }

    fn put_log_note(&self, note: &NoteRow<'_>) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_log_note(note))
    }

    fn log_notes(&self, below: u64, limit: usize) -> Result<Vec<LogNote>, StorageError> {
        forward!(self, tx => tx.log_notes(below, limit))
    }

    fn grants(&self, node: &str) -> Result<Option<BTreeMap<String, String>>, StorageError> {
        forward!(self, tx => tx.grants(node))
    }

    fn leaves(&self, from: u64, to: u64, limit: usize) -> Result<Vec<LoggedOp>, StorageError> {
        forward!(self, tx => tx.leaves(from, to, limit))
    }

    fn stream_ops(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        forward!(self, tx => tx.stream_ops(id, from, to))
    }

    fn stream_name(&self, id: StreamId) -> Result<Option<(String, String)>, StorageError> {
        forward!(self, tx => tx.stream_name(id))
    }

    fn checkpoint_covering(&self, id: StreamId, seq: u64) -> Result<Option<u64>, StorageError> {
        forward!(self, tx => tx.checkpoint_covering(id, seq))
    }

    fn origin_checkpoint(
        &self,
        id: StreamId,
        seq: u64,
    ) -> Result<Option<OriginCheckpoint>, StorageError> {
        forward!(self, tx => tx.origin_checkpoint(id, seq))
    }

    fn origin_checkpoints_of(
        &self,
        id: StreamId,
    ) -> Result<Vec<(u64, Option<OriginCheckpoint>)>, StorageError> {
        forward!(self, tx => tx.origin_checkpoints_of(id))
    }

    fn set_grants(
        &self,
        node: &str,
        scopes: &BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        forward!(self, tx => tx.set_grants(node, scopes))
    }

    fn void_tokens(&self, node: &str, now_ms: u64) -> Result<u64, StorageError> {
        forward!(self, tx => tx.void_tokens(node, now_ms))
    }

    fn put_token(&self, token_hash: &Hash, token: &EnrollToken) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_token(token_hash, token))
    }

    fn token(&self, token_hash: &Hash) -> Result<Option<EnrollToken>, StorageError> {
        forward!(self, tx => tx.token(token_hash))
    }

    fn use_token(&self, token_hash: &Hash, now_ms: u64) -> Result<(), StorageError> {
        forward!(self, tx => tx.use_token(token_hash, now_ms))
    }

    fn quarantined_count(&self, node: &str, stream: &str) -> Result<u64, StorageError> {
        forward!(self, tx => tx.quarantined_count(node, stream))
    }

    fn streams_of(&self, node: &str) -> Result<Vec<(String, StreamRow)>, StorageError> {
        forward!(self, tx => tx.streams_of(node))
    }

    fn node_count(&self) -> Result<u64, StorageError> {
        forward!(self, tx => tx.node_count())
    }

    fn quarantine_count(&self) -> Result<u64, StorageError> {
        forward!(self, tx => tx.quarantine_count())
    }

    fn streams(&self) -> Result<Vec<(String, String, StreamRow)>, StorageError> {
        forward!(self, tx => tx.streams())
    }

    fn alerts(&self) -> Result<Vec<Alert>, StorageError> {
        forward!(self, tx => tx.alerts())
    }

    fn clocks(&self) -> Result<Vec<(String, u64, i64)>, StorageError> {
        forward!(self, tx => tx.clocks())
    }

    fn recent_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StorageError> {
        forward!(self, tx => tx.recent_quarantine(limit))
    }

    fn quarantined_material(
        &self,
        node: &str,
        stream: &str,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        forward!(self, tx => tx.quarantined_material(node, stream, hash))
    }

    fn put_fleet_report(&self, report: &FleetReport) -> Result<(), StorageError> {
        forward!(self, tx => tx.put_fleet_report(report))
    }

    fn fleet_reports(&self) -> Result<Vec<FleetReport>, StorageError> {
        forward!(self, tx => tx.fleet_reports())
    }

    fn savepoint(&self) -> Result<(), StorageError> {
        forward!(self, tx => tx.savepoint())
    }

    fn release_savepoint(&self) -> Result<(), StorageError> {
        forward!(self, tx => tx.release_savepoint())
    }

    fn rollback_savepoint(&self) -> Result<(), StorageError> {
        forward!(self, tx => tx.rollback_savepoint())
    }

    fn commit(self) -> Result<(), StorageError> {
        match self {
            StoreTx::Sqlite(tx) => tx.commit(),
            StoreTx::Postgres(tx) => tx.commit(),
        }
    }
}
