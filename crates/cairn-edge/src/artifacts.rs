//! Artifacts on an edge: the manifests the hub published for this node's
//! scopes (ops of the hub's `artifacts` stream, pulled and verified like
//! any op), and the blobs fetched for them, in the node's directory:
//!
//! - `artifacts/blobs/SHA256`: verified blobs, named by their hash;
//! - `artifacts/partial/SHA256`: a blob being fetched, its verified chunks
//!   in order (a cut link resumes after the last whole one);
//! - `artifacts/state.json`: per name, the active version and the one
//!   before it (kept until a newer one verifies, for `rollback`), written
//!   to a new file and renamed into place.
//!
//! An app finds the active file with `cairn artifact path NAME` or `GET
//! /v1/artifacts/NAME`.

use crate::{EdgeStore, StoreError};
use cairn_core::artifact::{ARTIFACTS_COLLECTION, Manifest};
use cairn_core::names::HUB_NODE;
use cairn_core::op::Op;
use rusqlite::params;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What this node runs of one artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The version in use.
    pub active: Manifest,
    /// The version before it, kept for `rollback`.
    pub previous: Option<Manifest>,
    /// True after a rollback: `previous` is the version rolled back from,
    /// which is not installed again (only a newer one is).
    pub rolled_back: bool,
}

impl Installed {
    /// Whether `newest`, the hub's newest manifest of this artifact, is
    /// one to fetch and activate.
    pub fn wants(&self, newest: &Manifest) -> bool {
        newest.sha256 != self.active.sha256
            && !(self.rolled_back
                && self
                    .previous
                    .as_ref()
                    .is_some_and(|previous| previous.sha256 == newest.sha256))
    }
}

/// The artifacts of the node whose directory is `dir`.
pub struct Artifacts {
    root: PathBuf,
}

impl EdgeStore {
    /// The newest manifest of each artifact the hub published for this
    /// node, by name.
    pub fn artifact_manifests(&self) -> Result<BTreeMap<String, Manifest>, StoreError> {
        let bytes: Vec<Vec<u8>> = self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT o.op FROM ops o
                 JOIN collections c ON c.id = o.coll
                 JOIN streams s ON s.id = (o.id >> ?3)
                 WHERE c.name = ?1 AND s.node = ?2 ORDER BY o.id",
            )?;
            let rows = statement.query_map(
                params![ARTIFACTS_COLLECTION, HUB_NODE, crate::schema::SEQ_BITS],
                |row| row.get(0),
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        let mut newest = BTreeMap::new();
        for bytes in bytes {
            let damaged = |why: String| StoreError::Internal(format!("artifact manifest: {why}"));
            let op = Op::decode_logged(&bytes).map_err(|fault| damaged(fault.to_string()))?;
            let value: Value = serde_json::from_slice(&op.draft.payload)
                .map_err(|error| damaged(error.to_string()))?;
            let manifest = Manifest::from_json(&value).map_err(damaged)?;
            newest.insert(manifest.name.clone(), manifest);
        }
        Ok(newest)
    }

    /// Artifact `name` as this node holds it, as JSON: the active version
    /// and its file's path, the one before it, and the newest the hub
    /// published; `None` if the node has never heard of it.
    pub fn artifact_view(&self, name: &str) -> Result<Option<Value>, StoreError> {
        let artifacts = self.artifacts();
        let installed = artifacts.installed()?;
        let newest = self.artifact_manifests()?.remove(name);
        let entry = installed.get(name);
        if entry.is_none() && newest.is_none() {
            return Ok(None);
        }
        let manifest = |manifest: Option<&Manifest>| manifest.map(Manifest::to_json);
        Ok(Some(json!({
            "name": name,
            "active": manifest(entry.map(|entry| &entry.active)),
            "path": entry.map(|entry| artifacts.blob_path(&entry.active).display().to_string()),
            "previous": manifest(entry.and_then(|entry| entry.previous.as_ref())),
            "rolled_back": entry.is_some_and(|entry| entry.rolled_back),
            "newest": manifest(newest.as_ref()),
        })))
    }

    /// Every artifact this node holds or was offered, by name.
    pub fn artifact_views(&self) -> Result<Vec<Value>, StoreError> {
        let mut names: std::collections::BTreeSet<String> =
            self.artifacts().installed()?.into_keys().collect();
        names.extend(self.artifact_manifests()?.into_keys());
        let mut views = Vec::new();
        for name in names {
            views.extend(self.artifact_view(&name)?);
        }
        Ok(views)
    }

    /// This node's artifacts.
    pub fn artifacts(&self) -> Artifacts {
        Artifacts {
            root: self.dir().join("artifacts"),
        }
    }
}

impl Artifacts {
    /// Where verified blob `sha256` is.
    pub fn blob_path(&self, manifest: &Manifest) -> PathBuf {
        self.root.join("blobs").join(manifest.sha256.to_hex())
    }

    /// Where a blob being fetched is.
    pub fn partial_path(&self, manifest: &Manifest) -> PathBuf {
        self.root.join("partial").join(manifest.sha256.to_hex())
    }

    /// Makes the directories fetching needs.
    pub fn prepare(&self) -> Result<(), StoreError> {
        for sub in ["blobs", "partial"] {
            let path = self.root.join(sub);
            std::fs::create_dir_all(&path).map_err(|error| StoreError::io(&path, error))?;
        }
        Ok(())
    }

    /// What the node runs, by name.
    pub fn installed(&self) -> Result<BTreeMap<String, Installed>, StoreError> {
        let path = self.root.join("state.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(BTreeMap::new());
            }
            Err(error) => return Err(StoreError::io(&path, error)),
        };
        let damaged = |why: String| StoreError::Internal(format!("{}: {why}", path.display()));
        let value: Value =
            serde_json::from_str(&text).map_err(|error| damaged(error.to_string()))?;
        let mut installed = BTreeMap::new();
        for (name, entry) in value.as_object().into_iter().flatten() {
            let active = Manifest::from_json(&entry["active"]).map_err(damaged)?;
            let previous = match &entry["previous"] {
                Value::Null => None,
                previous => Some(Manifest::from_json(previous).map_err(damaged)?),
            };
            let rolled_back = entry["rolled_back"].as_bool().unwrap_or(false);
            installed.insert(
                name.clone(),
                Installed {
                    active,
                    previous,
                    rolled_back,
                },
            );
        }
        Ok(installed)
    }

    fn save(&self, installed: &BTreeMap<String, Installed>) -> Result<(), StoreError> {
        let value: serde_json::Map<String, Value> = installed
            .iter()
            .map(|(name, entry)| {
                let previous = entry.previous.as_ref().map(Manifest::to_json);
                let entry = json!({
                    "active": entry.active.to_json(),
                    "previous": previous,
                    "rolled_back": entry.rolled_back,
                });
                (name.clone(), entry)
            })
            .collect();
        let path = self.root.join("state.json");
        let next = self.root.join("state.json.next");
        let text = serde_json::to_string_pretty(&value)
            .map_err(|error| StoreError::Internal(error.to_string()))?;
        write_durably(&next, text.as_bytes())?;
        std::fs::rename(&next, &path).map_err(|error| StoreError::io(&path, error))?;
        sync_dir(&self.root);
        Ok(())
    }

    /// Makes `manifest` (its blob verified in place) the active version;
    /// the active one becomes the previous, and the blob of the one before
    /// that is removed.
    pub fn activate(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let mut installed = self.installed()?;
        let dropped = match installed.remove(&manifest.name) {
            Some(entry) if entry.active.sha256 == manifest.sha256 => {
                installed.insert(manifest.name.clone(), entry);
                return Ok(());
            }
            Some(entry) => {
                installed.insert(
                    manifest.name.clone(),
                    Installed {
                        active: manifest.clone(),
                        previous: Some(entry.active),
                        rolled_back: false,
                    },
                );
                entry.previous
            }
            None => {
                installed.insert(
                    manifest.name.clone(),
                    Installed {
                        active: manifest.clone(),
                        previous: None,
                        rolled_back: false,
                    },
                );
                None
            }
        };
        self.save(&installed)?;
        if let Some(dropped) = dropped
            && !installed.values().any(|entry| {
                entry.active.sha256 == dropped.sha256
                    || entry
                        .previous
                        .as_ref()
                        .is_some_and(|previous| previous.sha256 == dropped.sha256)
            })
        {
            let _ = std::fs::remove_file(self.blob_path(&dropped));
        }
        Ok(())
    }

    /// Returns artifact `name` to its previous version (which then stays
    /// active until the hub publishes a newer one than the one rolled back).
    pub fn rollback(&self, name: &str) -> Result<Installed, StoreError> {
        let mut installed = self.installed()?;
        let entry = installed.get_mut(name).ok_or_else(|| {
            StoreError::Config(format!("name: unknown: no artifact {name:?} is installed"))
        })?;
        let previous = entry.previous.take().ok_or_else(|| {
            StoreError::Config(format!(
                "name: previous: {name:?} has no earlier version to return to"
            ))
        })?;
        let rolled_back = std::mem::replace(&mut entry.active, previous);
        entry.previous = Some(rolled_back);
        entry.rolled_back = true;
        let entry = entry.clone();
        self.save(&installed)?;
        Ok(entry)
    }
}

/// Writes `bytes` to a new `path` and fsyncs it.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut file = std::fs::File::create(path).map_err(|error| StoreError::io(path, error))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|error| StoreError::io(path, error))
}

/// Makes renames in `dir` durable; failing only risks redoing a fetch.
pub fn sync_dir(dir: &Path) {
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}
