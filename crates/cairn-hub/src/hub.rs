//! A hub over one backend: the pipeline, the signer and the clock, wired.

use crate::backend::{HubBackend, LogTx};
use crate::pipeline::{self, PushRequest};
use crate::pull::{self, Snapshot, SnapshotQuery};
use crate::signer::LogSigner;
use crate::tree::{self, TreeReader};
use crate::{PushError, StorageError};
use cairn_core::clock::Clock;
use cairn_proto::{OwnOps, PullPage, PushResponse};
use std::sync::Arc;

/// The hub's logic over a backend `B`. It holds the signing key and reads
/// the clock; the backend holds only data.
pub struct Hub<B> {
    backend: B,
    signer: LogSigner,
    clock: Arc<dyn Clock>,
}

impl<B: HubBackend> Hub<B> {
    /// A hub storing in `backend`, signing with `signer`, at `clock`'s time.
    pub fn new(backend: B, signer: LogSigner, clock: Arc<dyn Clock>) -> Hub<B> {
        Hub {
            backend,
            signer,
            clock,
        }
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

    /// The log's size and root as they are now.
    pub fn root(&self) -> Result<(u64, cairn_core::hash::Hash), StorageError> {
        let tx = self.backend.read()?;
        let size = tx.log_size()?;
        Ok((size, tree::root(&TreeReader::new(&tx), size)?))
    }
}
