//! The hub's log signer: the one holder of the hub's key, signing the
//! log's checkpoints (C2SP signed notes) at the sizes transactions commit.

use crate::StorageError;
use crate::backend::{LogTx, NoteRow};
use crate::tree::{self, TreeReader};
use cairn_core::hash::Hash;
use cairn_core::identity::NodeIdentity;
use cairn_core::note::{self, LogCheckpoint};

/// Signs the log's checkpoints under the hub's key and origin.
pub struct LogSigner {
    identity: NodeIdentity,
    origin: String,
}

impl LogSigner {
    /// A signer for the log named `origin`.
    pub fn new(identity: NodeIdentity, origin: String) -> LogSigner {
        LogSigner { identity, origin }
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The hub's identity (its own stream's checkpoints, snapshot manifests,
    /// staff tokens).
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// The signed note over the log at `size` with `root`.
    pub fn sign(&self, size: u64, root: Hash) -> String {
        let checkpoint = LogCheckpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        note::sign(&checkpoint, &self.origin, &self.identity)
    }

    /// Signs the log at `size` inside `tx` and keeps the note; returns it.
    pub fn sign_log(
        &self,
        tx: &dyn LogTx,
        reader: &TreeReader<'_>,
        size: u64,
        now_ms: u64,
    ) -> Result<String, StorageError> {
        let root = tree::root(reader, size)?;
        let signed = self.sign(size, root);
        tx.put_log_note(&NoteRow {
            size,
            root,
            note: &signed,
            created_ms: now_ms,
        })?;
        Ok(signed)
    }

    /// The signed checkpoint at `size`: the one kept, or one signed now (the
    /// log was never signed at that size, or its notes were lost).
    pub fn checkpoint_at(&self, tx: &dyn LogTx, size: u64) -> Result<String, StorageError> {
        if let Some(note) = tx.log_note(size)? {
            return Ok(note);
        }
        let reader = TreeReader::new(tx);
        Ok(self.sign(size, tree::root(&reader, size)?))
    }
}
