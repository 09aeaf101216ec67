//! Artifact manifests at the hub: each published version is a `put` of the
//! hub's `artifacts` stream (see `cairn_core::artifact`), scoped by the
//! labels the publisher chose, so edges learn of the versions their grants
//! cover by pulling like any op. The blobs themselves are files beside the
//! store (`cairn-hub-sqlite`), handed out only to a node that may see a
//! manifest naming them.

use crate::audit::{self, HubWrite};
use crate::backend::{HubBackend, LogTx};
use crate::{HUB_NODE, Hub, StorageError};
use cairn_core::artifact::{ARTIFACTS_COLLECTION, ARTIFACTS_STREAM, Manifest};
use cairn_core::hash::Hash;
use cairn_core::op::{Action, Op};
use std::collections::BTreeMap;

/// Why a version could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The manifest breaks a rule, or the version exists with other bytes.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed: nothing was published.
    #[error(transparent)]
    Store(#[from] StorageError),
}

/// A published version and who may see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// The manifest.
    pub manifest: Manifest,
    /// Its scope labels.
    pub scope: BTreeMap<String, String>,
    /// Its seq in the hub's `artifacts` stream.
    pub seq: u64,
}

impl<B: HubBackend> Hub<B> {
    /// Every version published, in order.
    pub fn published(&self) -> Result<Vec<Published>, StorageError> {
        published(&self.backend().read()?)
    }

    /// Appends `manifest` (its blob stored already) to the hub's `artifacts`
    /// stream with `scope`, and the act to its audit stream; returns its
    /// seq. The same version again with the same blob is answered with
    /// the seq it has; with another blob it is refused.
    pub fn publish(
        &self,
        manifest: &Manifest,
        scope: &BTreeMap<String, String>,
        by: &str,
    ) -> Result<u64, PublishError> {
        manifest.check().map_err(PublishError::Invalid)?;
        self.in_write(|tx, now| {
            for earlier in published(tx)? {
                let same = &earlier.manifest;
                if same.name == manifest.name && same.version == manifest.version {
                    if same.sha256 == manifest.sha256 && earlier.scope == *scope {
                        return Ok(earlier.seq);
                    }
                    return Err(PublishError::Invalid(format!(
                        "version: unique: {} {} is published already with other bytes or scope",
                        manifest.name, manifest.version
                    )));
                }
            }
            let mut manifest = manifest.clone();
            manifest.published_ms = now;
            let payload = cairn_core::canonical::to_canonical_bytes(&manifest.to_json())
                .map_err(|error| StorageError::Internal(error.to_string()))?;
            let seq = audit::append_own(
                tx,
                self.signer(),
                HubWrite {
                    stream: ARTIFACTS_STREAM,
                    collection: ARTIFACTS_COLLECTION,
                    action: Action::Put,
                    key: &manifest.name,
                    scope: scope.clone(),
                    payload,
                    base: Default::default(),
                },
                now,
            )?;
            let act = serde_json::json!({
                "action": "artifact.publish",
                "by": by,
                "name": manifest.name,
                "version": manifest.version,
                "sha256": manifest.sha256.to_hex(),
                "size": manifest.size,
                "scope": scope,
                "after": {"seq": seq},
            });
            audit::append_act(tx, self.signer(), &act, now)?;
            Ok(seq)
        })
    }

    /// The newest manifest naming blob `sha256` that `node` may see (its
    /// grants cover the manifest's scope), if any.
    pub fn artifact_for(
        &self,
        node: &str,
        sha256: &Hash,
    ) -> Result<Option<Manifest>, StorageError> {
        let tx = self.backend().read()?;
        let Some(grants) = tx.grants(node)? else {
            return Ok(None);
        };
        Ok(published(&tx)?
            .into_iter()
            .rev()
            .find(|published| {
                published.manifest.sha256 == *sha256
                    && crate::pull::grants_cover(&grants, &published.scope)
            })
            .map(|published| published.manifest))
    }
}

fn published(tx: &(impl LogTx + ?Sized)) -> Result<Vec<Published>, StorageError> {
    let Some(row) = tx.stream(HUB_NODE, ARTIFACTS_STREAM)? else {
        return Ok(Vec::new());
    };
    let mut all = Vec::new();
    for (seq, bytes) in tx.stream_ops(row.id, 1, row.head.seq)? {
        let damaged =
            |why: String| StorageError::Damaged(format!("artifact manifest {seq}: {why}"));
        let op = Op::decode_logged(&bytes).map_err(|fault| damaged(fault.to_string()))?;
        let value = serde_json::from_slice(&op.draft.payload)
            .map_err(|error| damaged(error.to_string()))?;
        let manifest = Manifest::from_json(&value).map_err(damaged)?;
        all.push(Published {
            manifest,
            scope: op.draft.scope,
            seq,
        });
    }
    Ok(all)
}
