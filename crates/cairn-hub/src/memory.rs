//! A hub backend in memory, for tests: the same contract as SQLite's, and
//! a fault plan that fails the Nth call (a read, a write, a savepoint, the
//! commit) so tests can show a storage fault is never a verdict.
//!
//! A write transaction works on a copy of the committed state and swaps it
//! in at commit; dropping it drops the copy. Simple and obviously atomic;
//! the copy costs time in proportion to the state, which is fine for tests
//! (a few thousand leaves) and the reason this backend is for tests only.

use crate::StorageError;
use crate::backend::{
    Alert, AlertRow, EnrollToken, FleetReport, HubBackend, LeafRow, LogNote, LogTx, LoggedOp,
    NoteRow, OriginCheckpoint, QuarantineEntry, QuarantineRow, StreamId, StreamRow,
};
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

pub mod comply;

mod state;
pub use state::{Leaf, Quarantined, State};

/// Which call fails, and how many were made.
#[derive(Debug, Default)]
struct Faults {
    calls: u64,
    fail_at: Option<u64>,
    trace: Vec<&'static str>,
}

/// The in-memory backend.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    committed: Mutex<State>,
    /// Held by the write transaction: the log's append lock.
    writer: Mutex<()>,
    faults: Mutex<Faults>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Enrolls `node` with `public_key` and no scopes (outside any
    /// transaction, uncounted).
    pub fn enroll(&self, node: &str, public_key: [u8; 32]) {
        let mut state = lock(&self.committed);
        state.nodes.insert(node.into(), public_key);
        state.grants.entry(node.into()).or_default();
    }

    /// Grants `node` the scope labels `scopes` (uncounted).
    pub fn grant(&self, node: &str, scopes: BTreeMap<String, String>) {
        lock(&self.committed).grants.insert(node.into(), scopes);
    }

    /// Records that act `audit_seq` of `hub:audit` enrolled `node` with
    /// `public_key` (uncounted).
    pub fn record_enrollment(&self, node: &str, public_key: [u8; 32], audit_seq: u64) {
        lock(&self.committed)
            .node_keys
            .insert((node.into(), public_key), audit_seq);
    }

    /// The committed state.
    pub fn state(&self) -> State {
        lock(&self.committed).clone()
    }

    /// Makes the `n`th call from now (1-based, every call counted) fail
    /// with [`StorageError::Fault`]; `None` fails nothing.
    pub fn fail_call(&self, n: Option<u64>) {
        let mut faults = lock(&self.faults);
        faults.calls = 0;
        faults.trace.clear();
        faults.fail_at = n;
    }

    /// The calls made since the last [`MemoryBackend::fail_call`], by name.
    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.faults).trace.clone()
    }

    /// Counts a call; fails it when it is the planned one.
    fn call(&self, what: &'static str) -> Result<(), StorageError> {
        let mut faults = lock(&self.faults);
        faults.calls += 1;
        faults.trace.push(what);
        if faults.fail_at == Some(faults.calls) {
            return Err(StorageError::Fault(format!(
                "injected fault at call {} ({what})",
                faults.calls
            )));
        }
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread poisons nothing the next test relies on.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A transaction of [`MemoryBackend`].
pub struct MemoryTx<'a> {
    backend: &'a MemoryBackend,
    /// The append lock, for a write transaction.
    _writer: Option<MutexGuard<'a, ()>>,
    state: RefCell<State>,
    savepoints: RefCell<Vec<State>>,
}

impl MemoryTx<'_> {
    fn read<T>(
        &self,
        what: &'static str,
        read: impl FnOnce(&State) -> T,
    ) -> Result<T, StorageError> {
        self.backend.call(what)?;
        Ok(read(&self.state.borrow()))
    }

    fn write<T>(
        &self,
        what: &'static str,
        write: impl FnOnce(&mut State) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        self.backend.call(what)?;
        if self._writer.is_none() {
            return Err(StorageError::Internal(format!(
                "{what} in a read transaction"
            )));
        }
        write(&mut self.state.borrow_mut())
    }
}

impl HubBackend for MemoryBackend {
    type Tx<'a> = MemoryTx<'a>;

    fn write(&self) -> Result<MemoryTx<'_>, StorageError> {
        let writer = lock(&self.writer);
        self.call("begin write")?;
        Ok(MemoryTx {
            backend: self,
            _writer: Some(writer),
            state: RefCell::new(self.state()),
            savepoints: RefCell::default(),
        })
    }

    fn read(&self) -> Result<MemoryTx<'_>, StorageError> {
        self.call("begin read")?;
        Ok(MemoryTx {
            backend: self,
            _writer: None,
            state: RefCell::new(self.state()),
            savepoints: RefCell::default(),
        })
    }
}

fn stream_index(state: &State, id: StreamId) -> Result<usize, StorageError> {
    usize::try_from(id - 1)
        .ok()
        .filter(|index| *index < state.streams.len())
        .ok_or_else(|| StorageError::Internal(format!("no stream with id {id}")))
}

impl LogTx for MemoryTx<'_> {
    fn node_key(&self, node: &str) -> Result<Option<[u8; 32]>, StorageError> {
        self.read("node_key", |state| state.nodes.get(node).copied())
    }

    fn stream(&self, node: &str, stream: &str) -> Result<Option<StreamRow>, StorageError> {
        self.read("stream", |state| {
            state
                .streams
                .iter()
                .find(|(n, s, _)| n == node && s == stream)
                .map(|(_, _, row)| *row)
        })
    }

    fn create_stream(&self, node: &str, stream: &str) -> Result<StreamId, StorageError> {
        self.write("create_stream", |state| {
            if state
                .streams
                .iter()
                .any(|(n, s, _)| n == node && s == stream)
            {
                return Err(StorageError::Fault(format!(
                    "stream {node}:{stream} exists"
                )));
            }
            let id = state.streams.len() as StreamId + 1;
            let row = StreamRow {
                id,
                head: StreamHead {
                    seq: 0,
                    hash: Hash::ZERO,
                },
                held: false,
            };
            state.streams.push((node.into(), stream.into(), row));
            Ok(id)
        })
    }

    fn set_stream(&self, id: StreamId, head: StreamHead, held: bool) -> Result<(), StorageError> {
        self.write("set_stream", |state| {
            let index = stream_index(state, id)?;
            state.streams[index].2.head = head;
            state.streams[index].2.held = held;
            Ok(())
        })
    }

    fn logged(&self, id: StreamId, seq: u64) -> Result<Option<(u64, Hash)>, StorageError> {
        self.read("logged", |state| {
            state
                .log
                .iter()
                .enumerate()
                .find(|(_, leaf)| leaf.stream_id == id && leaf.seq == seq)
                .map(|(index, leaf)| (index as u64, leaf.op_hash))
        })
    }

    fn log_size(&self) -> Result<u64, StorageError> {
        self.read("log_size", |state| state.log.len() as u64)
    }

    fn append(&self, row: &LeafRow<'_>) -> Result<(), StorageError> {
        self.write("append", |state| {
            if row.leaf != state.log.len() as u64 {
                return Err(StorageError::Fault(format!(
                    "leaf {} is not the next leaf ({})",
                    row.leaf,
                    state.log.len()
                )));
            }
            let taken = state
                .log
                .iter()
                .any(|leaf| leaf.stream_id == row.stream_id && leaf.seq == row.op.seq);
            if taken {
                return Err(StorageError::Fault(format!(
                    "seq {} of stream {} is logged",
                    row.op.seq, row.stream_id
                )));
            }
            state.log.push(Leaf {
                stream_id: row.stream_id,
                seq: row.op.seq,
                op_hash: row.op.op_hash,
                node: row.op.draft.node.clone(),
                scope: cairn_core::names::scope_text(&row.op.draft.scope),
                bytes: row.bytes.to_vec(),
                received_ms: row.received_ms,
            });
            Ok(())
        })
    }

    fn leaf_hashes(&self, begin: u64, end: u64) -> Result<Vec<Hash>, StorageError> {
        self.read("leaf_hashes", |state| {
            let end = (end as usize).min(state.log.len());
            let begin = (begin as usize).min(end);
            state.log[begin..end]
                .iter()
                .map(|leaf| leaf.op_hash)
                .collect()
        })
    }

    fn tree_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StorageError> {
        self.read("tree_node", |state| {
            state.tree.get(&(level, index)).copied()
        })
    }

    fn put_tree_node(&self, level: u32, index: u64, hash: Hash) -> Result<(), StorageError> {
        self.write("put_tree_node", |state| {
            match state.tree.insert((level, index), hash) {
                Some(_) => Err(StorageError::Fault(format!(
                    "tree node {level}/{index} exists"
                ))),
                None => Ok(()),
            }
        })
    }

    fn quarantine(&self, item: &QuarantineRow<'_>) -> Result<bool, StorageError> {
        self.write("quarantine", |state| {
            let key = (
                item.node.to_string(),
                item.stream.to_string(),
                item.material_hash,
            );
            if state.quarantine.contains_key(&key) {
                return Ok(false);
            }
            let order = state.quarantine.len() as u64;
            state.quarantine.insert(
                key,
                Quarantined {
                    seq: item.seq,
                    bytes: item.bytes.to_vec(),
                    reason: item.reason.to_string(),
                    received_ms: item.received_ms,
                    order,
                },
            );
            Ok(true)
        })
    }

    fn alert(&self, alert: &AlertRow<'_>) -> Result<(), StorageError> {
        self.write("alert", |state| {
            state.alerts.push((
                alert.kind.into(),
                alert.node.into(),
                alert.stream.into(),
                alert.message.into(),
            ));
            Ok(())
        })
    }

    fn clock_offset(&self, node: &str) -> Result<Option<i64>, StorageError> {
        self.read("clock_offset", |state| {
            state.clocks.get(node).map(|clock| clock.1)
        })
    }

    fn set_clock(&self, node: &str, pushed_ms: u64, offset_ms: i64) -> Result<(), StorageError> {
        self.write("set_clock", |state| {
            state.clocks.insert(node.into(), (pushed_ms, offset_ms));
            Ok(())
        })
    }

    fn keep_origin_checkpoint(
        &self,
        id: StreamId,
        checkpoint: &Checkpoint,
        public_key: &[u8; 32],
    ) -> Result<(), StorageError> {
        self.write("keep_origin_checkpoint", |state| {
            state
                .origin_checkpoints
                .insert((id, checkpoint.seq), (checkpoint.signature, *public_key));
            Ok(())
        })
    }

    fn log_note(&self, size: u64) -> Result<Option<String>, StorageError> {
        self.read("log_note", |state| {
            state.notes.get(&size).map(|kept| kept.note.clone())
        })
    }

    fn put_log_note(&self, note: &NoteRow<'_>) -> Result<(), StorageError> {
        self.write("put_log_note", |state| {
            state.notes.entry(note.size).or_insert_with(|| LogNote {
                size: note.size,
                root: note.root,
                note: note.note.to_string(),
                created_ms: note.created_ms,
            });
            Ok(())
        })
    }

    fn log_notes(&self, below: u64, limit: usize) -> Result<Vec<LogNote>, StorageError> {
        self.read("log_notes", |state| {
            state
                .notes
                .range(..below)
                .rev()
                .take(limit)
                .map(|(_, note)| note.clone())
                .collect()
        })
    }

    fn grants(&self, node: &str) -> Result<Option<BTreeMap<String, String>>, StorageError> {
        self.read("grants", |state| state.grants.get(node).cloned())
    }

    fn leaves(&self, from: u64, to: u64, limit: usize) -> Result<Vec<LoggedOp>, StorageError> {
        self.read("leaves", |state| {
            let to = (to as usize).min(state.log.len());
            let from = (from as usize).min(to);
            state.log[from..to]
                .iter()
                .take(limit)
                .enumerate()
                .map(|(offset, leaf)| LoggedOp {
                    leaf: (from + offset) as u64,
                    stream_id: leaf.stream_id,
                    seq: leaf.seq,
                    node: leaf.node.clone(),
                    scope: leaf.scope.clone(),
                    bytes: leaf.bytes.clone(),
                    op_hash: leaf.op_hash,
                    received_ms: leaf.received_ms,
                })
                .collect()
        })
    }

    fn stream_ops(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        self.read("stream_ops", |state| {
            let mut ops: Vec<(u64, Vec<u8>)> = state
                .log
                .iter()
                .filter(|leaf| leaf.stream_id == id && (from..=to).contains(&leaf.seq))
                .map(|leaf| (leaf.seq, leaf.bytes.clone()))
                .collect();
            ops.sort_by_key(|(seq, _)| *seq);
            ops
        })
    }

    fn stream_name(&self, id: StreamId) -> Result<Option<(String, String)>, StorageError> {
        self.read("stream_name", |state| {
            let index = usize::try_from(id - 1).ok()?;
            state
                .streams
                .get(index)
                .map(|(node, stream, _)| (node.clone(), stream.clone()))
        })
    }

    fn checkpoint_covering(&self, id: StreamId, seq: u64) -> Result<Option<u64>, StorageError> {
        self.read("checkpoint_covering", |state| {
            state
                .origin_checkpoints
                .range((id, seq)..=(id, u64::MAX))
                .next()
                .map(|((_, seq), _)| *seq)
        })
    }

    fn put_fleet_report(&self, report: &FleetReport) -> Result<(), StorageError> {
        self.write("put_fleet_report", |state| {
            let id = (report.name.clone(), report.kind.clone());
            let newer = state
                .fleet
                .get(&id)
                .is_none_or(|kept| kept.received_ms < report.received_ms);
            if newer {
                state.fleet.insert(id, report.clone());
            }
            Ok(())
        })
    }

    fn fleet_reports(&self) -> Result<Vec<FleetReport>, StorageError> {
        self.read("fleet_reports", |state| {
            state.fleet.values().cloned().collect()
        })
    }

    fn origin_checkpoints_of(
        &self,
        id: StreamId,
    ) -> Result<Vec<(u64, Option<OriginCheckpoint>)>, StorageError> {
        self.read("origin_checkpoints_of", |state| {
            state
                .origin_checkpoints
                .range((id, 0)..=(id, u64::MAX))
                .map(|(&(_, seq), &(signature, public_key))| {
                    let head = state
                        .log
                        .iter()
                        .find(|leaf| leaf.stream_id == id && leaf.seq == seq)
                        .map(|leaf| leaf.op_hash);
                    let checkpoint = head.map(|head| OriginCheckpoint {
                        signature,
                        public_key,
                        head,
                    });
                    (seq, checkpoint)
                })
                .collect()
        })
    }

    fn origin_checkpoint(
        &self,
        id: StreamId,
        seq: u64,
    ) -> Result<Option<OriginCheckpoint>, StorageError> {
        self.read("origin_checkpoint", |state| {
            let (signature, public_key) = *state.origin_checkpoints.get(&(id, seq))?;
            let head = state
                .log
                .iter()
                .find(|leaf| leaf.stream_id == id && leaf.seq == seq)?
                .op_hash;
            Some(OriginCheckpoint {
                signature,
                public_key,
                head,
            })
        })
    }

    fn enrollment_act(
        &self,
        node: &str,
        public_key: &[u8; 32],
    ) -> Result<Option<u64>, StorageError> {
        self.read("enrollment_act", |state| {
            state
                .node_keys
                .get(&(node.to_string(), *public_key))
                .copied()
        })
    }

    fn put_node(
        &self,
        node: &str,
        public_key: &[u8; 32],
        scopes: &BTreeMap<String, String>,
        _now_ms: u64,
    ) -> Result<(), StorageError> {
        self.write("put_node", |state| {
            state.nodes.insert(node.into(), *public_key);
            state.grants.insert(node.into(), scopes.clone());
            Ok(())
        })
    }

    fn set_grants(
        &self,
        node: &str,
        scopes: &BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        self.write("set_grants", |state| {
            state.grants.insert(node.into(), scopes.clone());
            Ok(())
        })
    }

    fn keep_node_key(
        &self,
        node: &str,
        public_key: &[u8; 32],
        audit_seq: u64,
    ) -> Result<(), StorageError> {
        self.write("keep_node_key", |state| {
            state
                .node_keys
                .insert((node.into(), *public_key), audit_seq);
            Ok(())
        })
    }

    fn void_tokens(&self, node: &str, now_ms: u64) -> Result<u64, StorageError> {
        self.write("void_tokens", |state| {
            let mut voided = 0;
            for token in state.tokens.values_mut() {
                if token.node == node && token.used_ms.is_none() && token.revoked_ms.is_none() {
                    token.revoked_ms = Some(now_ms);
                    voided += 1;
                }
            }
            Ok(voided)
        })
    }

    fn put_token(&self, token_hash: &Hash, token: &EnrollToken) -> Result<(), StorageError> {
        self.write("put_token", |state| {
            match state.tokens.insert(*token_hash, token.clone()) {
                Some(_) => Err(StorageError::Fault("token exists".into())),
                None => Ok(()),
            }
        })
    }

    fn token(&self, token_hash: &Hash) -> Result<Option<EnrollToken>, StorageError> {
        self.read("token", |state| state.tokens.get(token_hash).cloned())
    }

    fn use_token(&self, token_hash: &Hash, now_ms: u64) -> Result<(), StorageError> {
        self.write("use_token", |state| {
            if let Some(token) = state.tokens.get_mut(token_hash) {
                token.used_ms = Some(now_ms);
            }
            Ok(())
        })
    }

    fn quarantined_count(&self, node: &str, stream: &str) -> Result<u64, StorageError> {
        self.read("quarantined_count", |state| {
            state
                .quarantine
                .keys()
                .filter(|(n, s, _)| n == node && s == stream)
                .count() as u64
        })
    }

    fn streams_of(&self, node: &str) -> Result<Vec<(String, StreamRow)>, StorageError> {
        self.read("streams_of", |state| {
            let mut streams: Vec<(String, StreamRow)> = state
                .streams
                .iter()
                .filter(|(n, _, _)| n == node)
                .map(|(_, stream, row)| (stream.clone(), *row))
                .collect();
            streams.sort_by(|a, b| a.0.cmp(&b.0));
            streams
        })
    }

    fn node_count(&self) -> Result<u64, StorageError> {
        self.read("node_count", |state| state.nodes.len() as u64)
    }

    fn quarantine_count(&self) -> Result<u64, StorageError> {
        self.read("quarantine_count", |state| state.quarantine.len() as u64)
    }

    fn streams(&self) -> Result<Vec<(String, String, StreamRow)>, StorageError> {
        self.read("streams", |state| {
            let mut streams = state.streams.clone();
            streams.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            streams
        })
    }

    fn alerts(&self) -> Result<Vec<Alert>, StorageError> {
        self.read("alerts", |state| {
            state
                .alerts
                .iter()
                .map(|(kind, node, stream, message)| Alert {
                    kind: kind.clone(),
                    node: node.clone(),
                    stream: stream.clone(),
                    message: message.clone(),
                })
                .collect()
        })
    }

    fn clocks(&self) -> Result<Vec<(String, u64, i64)>, StorageError> {
        self.read("clocks", |state| {
            state
                .clocks
                .iter()
                .map(|(node, (pushed_ms, offset))| (node.clone(), *pushed_ms, *offset))
                .collect()
        })
    }

    fn quarantined_material(
        &self,
        node: &str,
        stream: &str,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.read("quarantined_material", |state| {
            state
                .quarantine
                .get(&(node.to_string(), stream.to_string(), *hash))
                .map(|item| item.bytes.clone())
        })
    }

    fn recent_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StorageError> {
        self.read("recent_quarantine", |state| {
            let mut items: Vec<(&(String, String, Hash), &Quarantined)> =
                state.quarantine.iter().collect();
            items.sort_by_key(|(_, item)| std::cmp::Reverse(item.order));
            items
                .into_iter()
                .take(limit)
                .map(|((node, stream, hash), item)| QuarantineEntry {
                    node: node.clone(),
                    stream: stream.clone(),
                    seq: item.seq,
                    material_hash: *hash,
                    reason: item.reason.clone(),
                    received_ms: item.received_ms,
                })
                .collect()
        })
    }

    fn savepoint(&self) -> Result<(), StorageError> {
        self.write("savepoint", |state| {
            self.savepoints.borrow_mut().push(state.clone());
            Ok(())
        })
    }

    fn release_savepoint(&self) -> Result<(), StorageError> {
        self.write("release_savepoint", |_| {
            self.savepoints
                .borrow_mut()
                .pop()
                .map(drop)
                .ok_or_else(|| StorageError::Internal("no savepoint to release".into()))
        })
    }

    fn rollback_savepoint(&self) -> Result<(), StorageError> {
        self.write("rollback_savepoint", |state| {
            *state = self
                .savepoints
                .borrow_mut()
                .pop()
                .ok_or_else(|| StorageError::Internal("no savepoint to roll back to".into()))?;
            Ok(())
        })
    }

    fn commit(self) -> Result<(), StorageError> {
        self.backend.call("commit")?;
        if self._writer.is_some() {
            *lock(&self.backend.committed) = self.state.into_inner();
        }
        Ok(())
    }
}
