//! A hub over one backend: the pipeline, the signer and the clock, wired.

use crate::admin::{self, AdminError, EnrollError, Resolution, ResolveError};
use crate::backend::{HubBackend, LogTx};
use crate::comply::Packs;
use crate::pipeline::{self, PushRequest};
use crate::pull::{self, Snapshot, SnapshotQuery};
use crate::signer::LogSigner;
use crate::tree::{self, TreeReader};
use crate::{PushError, StorageError};
use cairn_core::clock::Clock;
use cairn_core::hash::Hash;
use cairn_proto::{OwnOps, PullPage, PushResponse};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The hub's logic over a backend `B`. It holds the signing key and reads
/// the clock; the backend holds only data.
pub struct Hub<B> {
    backend: B,
    signer: LogSigner,
    clock: Arc<dyn Clock>,
    /// The rule packs the judge goes by; a pack activation swaps them.
    packs: RwLock<Arc<Packs>>,
}

impl<B: HubBackend> Hub<B> {
    /// A hub storing in `backend`, signing with `signer`, at `clock`'s
    /// time, judging by the built-in rule packs.
    pub fn new(backend: B, signer: LogSigner, clock: Arc<dyn Clock>) -> Hub<B> {
        Hub {
            backend,
            signer,
            clock,
            packs: RwLock::new(Arc::new(Packs::builtin())),
        }
    }

    /// The hub judging by `packs` instead.
    pub fn with_packs(self, packs: Packs) -> Hub<B> {
        self.set_packs(packs);
        self
    }

    /// The rule packs it judges by now.
    pub fn packs(&self) -> Arc<Packs> {
        self.packs
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Judges by `packs` from now on.
    pub fn set_packs(&self, packs: Packs) {
        *self
            .packs
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(packs);
    }

    /// Its storage.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Its signer.
    pub fn signer(&self) -> &LogSigner {
        &self.signer
    }

    /// Its clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Verifies and persists one push (see [`Hub::push_group`]).
    pub fn push(&self, request: PushRequest) -> Result<PushResponse, PushError> {
        self.push_group(vec![request])
            .pop()
            .expect("one answer per request")
    }

    /// Verifies and persists pushes that arrived together in one
    /// transaction: one fsync and one signed log checkpoint for the group.
    /// A storage fault fails every push of the group and commits nothing.
    pub fn push_group(
        &self,
        mut requests: Vec<PushRequest>,
    ) -> Vec<Result<PushResponse, PushError>> {
        let count = requests.len();
        let now = self.clock.now_ms();
        let outcome = self.backend.write().and_then(|tx| {
            let answers = pipeline::push_group(&tx, &self.signer, &mut requests, now)?;
            tx.commit()?;
            Ok(answers)
        });
        match outcome {
            Ok(answers) => answers,
            Err(fault) => (0..count)
                .map(|_| Err(PushError::Store(fault.clone())))
                .collect(),
        }
    }

    /// The signed log checkpoint of the log as it is now.
    pub fn checkpoint(&self) -> Result<String, StorageError> {
        let tx = self.backend.read()?;
        let size = tx.log_size()?;
        self.signer.checkpoint_at(&tx, size)
    }

    /// A pull page for `node` from leaf `from` (see [`pull::pull_page`]).
    pub fn pull(&self, node: &str, from: u64, limit: usize) -> Result<PullPage, PushError> {
        pull::pull_page(&self.backend.read()?, &self.signer, node, from, limit)
    }

    /// A snapshot page for `node` (see [`pull::snapshot_page`]).
    pub fn snapshot(&self, node: &str, query: &SnapshotQuery) -> Result<Snapshot, PushError> {
        pull::snapshot_page(&self.backend.read()?, &self.signer, node, query)
    }

    /// A node's own ops back (see [`pull::own_ops`]).
    pub fn own_ops(
        &self,
        node: &str,
        stream: &str,
        from: u64,
        limit: usize,
    ) -> Result<OwnOps, StorageError> {
        pull::own_ops(&self.backend.read()?, node, stream, from, limit)
    }

    /// Runs `act` in one write transaction at the clock's time, and commits
    /// it only when it succeeds.
    pub(crate) fn in_write<T, E: From<StorageError>>(
        &self,
        act: impl FnOnce(&dyn LogTx, u64) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self.backend.write()?;
        let value = act(&tx, self.clock.now_ms())?;
        tx.commit()?;
        Ok(value)
    }

    /// Enrolls a node (see [`admin::enroll`]).
    pub fn enroll(
        &self,
        node: &str,
        public_key: [u8; 32],
        scopes: &BTreeMap<String, String>,
        rekey: bool,
        by: &str,
    ) -> Result<(), AdminError> {
        self.in_write(|tx, now| {
            admin::enroll(tx, &self.signer, now, node, public_key, scopes, rekey, by)
        })
    }

    /// Voids a node's outstanding tokens (see [`admin::revoke_tokens`]).
    pub fn revoke_tokens(&self, node: &str, by: &str) -> Result<u64, StorageError> {
        self.in_write(|tx, now| admin::revoke_tokens(tx, &self.signer, now, node, by))
    }

    /// Revokes a scope label (see [`admin::revoke_scope`]).
    pub fn revoke_scope(&self, node: &str, label: &str, value: &str) -> Result<bool, AdminError> {
        self.in_write(|tx, now| admin::revoke_scope(tx, &self.signer, now, node, label, value))
    }

    /// Releases a held stream (see [`admin::resolve`]).
    pub fn resolve(
        &self,
        node: &str,
        stream: &str,
        reason: &str,
        by: &str,
    ) -> Result<Resolution, ResolveError> {
        self.in_write(|tx, now| admin::resolve(tx, &self.signer, now, (node, stream), reason, by))
    }

    /// Stores a one-time token valid for `valid_ms` (see
    /// [`admin::create_enrollment`]); `token` comes from the caller's
    /// randomness.
    pub fn create_enrollment(
        &self,
        token: &str,
        node: &str,
        scopes: &BTreeMap<String, String>,
        valid_ms: u64,
        rekey: bool,
    ) -> Result<(), AdminError> {
        self.in_write(|tx, now| {
            admin::create_enrollment(tx, token, node, scopes, now + valid_ms, rekey)
        })
    }

    /// Redeems a one-time token (see [`admin::redeem_enrollment`]).
    pub fn redeem_enrollment(
        &self,
        node: &str,
        public_key: [u8; 32],
        token: &str,
    ) -> Result<(), EnrollError> {
        self.in_write(|tx, now| {
            admin::redeem_enrollment(tx, &self.signer, now, (node, public_key), token)
        })
    }

    /// The hub's head of every stream of `node` that has an accepted op:
    /// stream to (seq, op hash).
    pub fn stream_heads(&self, node: &str) -> Result<BTreeMap<String, (u64, Hash)>, StorageError> {
        let streams = self.backend.read()?.streams_of(node)?;
        Ok(streams
            .into_iter()
            .filter(|(_, row)| row.head.seq > 0)
            .map(|(stream, row)| (stream, (row.head.seq, row.head.hash)))
            .collect())
    }

    /// The ops of the hub's own stream of administrative acts, in seq order.
    pub fn audit_ops(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        let tx = self.backend.read()?;
        let Some(row) = tx.stream(crate::HUB_NODE, crate::AUDIT_STREAM)? else {
            return Ok(Vec::new());
        };
        let ops = tx.stream_ops(row.id, 1, row.head.seq)?;
        Ok(ops.into_iter().map(|(_, bytes)| bytes).collect())
    }

    /// The hub's figures as they are now (see [`crate::status::status`]).
    pub fn status(&self) -> Result<crate::status::HubStatus, StorageError> {
        crate::status::status(&self.backend.read()?, self.signer.origin(), &self.packs())
    }

    /// The log's size and root as they are now.
    pub fn root(&self) -> Result<(u64, cairn_core::hash::Hash), StorageError> {
        let tx = self.backend.read()?;
        let size = tx.log_size()?;
        Ok((size, tree::root(&TreeReader::new(&tx), size)?))
    }
}
