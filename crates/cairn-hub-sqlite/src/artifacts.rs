//! Artifact blobs beside the hub's store: `artifacts/blobs/SHA256` (the
//! bytes) and `artifacts/chunks/SHA256` (the chunks' SHA-256s, 32 bytes
//! each, in order), written once and never changed; content-addressed, so
//! a version published twice shares its blob. A blob is streamed from the
//! publisher's file a chunk at a time, never whole in memory.

use crate::HubStore;
use cairn_core::artifact::{self, Manifest};
use cairn_core::hash::Hash;
use cairn_sqlite::StoreError;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

fn artifacts_dir(dir: &Path) -> PathBuf {
    dir.join("artifacts")
}

impl HubStore {
    /// Where blob `sha256` is kept.
    pub fn blob_path(&self, sha256: &Hash) -> PathBuf {
        artifacts_dir(&self.dir).join("blobs").join(sha256.to_hex())
    }

    /// Blob `sha256`'s chunk hashes, as 32-byte runs.
    pub fn chunk_list(&self, sha256: &Hash) -> Result<Vec<u8>, StoreError> {
        let path = artifacts_dir(&self.dir)
            .join("chunks")
            .join(sha256.to_hex());
        std::fs::read(&path).map_err(|error| StoreError::io(&path, error))
    }

    /// Publishes `file` as version `version` of artifact `name` for the
    /// nodes `scope` covers: stores its blob and chunk list, then appends
    /// its manifest to the log. Returns the manifest and its seq.
    pub fn publish_artifact(
        &self,
        (name, version): (&str, &str),
        file: &Path,
        scope: &BTreeMap<String, String>,
        chunk_bytes: u64,
    ) -> Result<(Manifest, u64), StoreError> {
        let refuse = |why: String| StoreError::Config(why);
        cairn_core::names::check_key(name).map_err(|why| refuse(format!("name: key: {why}")))?;
        artifact::check_version(version).map_err(refuse)?;
        if !artifact::CHUNK_BYTES_RANGE.contains(&chunk_bytes) {
            return Err(refuse(format!(
                "chunk_bytes: range: from {} to {}",
                artifact::CHUNK_BYTES_RANGE.start(),
                artifact::CHUNK_BYTES_RANGE.end()
            )));
        }
        let digest = self.store_blob(file, chunk_bytes)?;
        let manifest = Manifest {
            name: name.into(),
            version: version.into(),
            size: digest.size,
            sha256: digest.sha256,
            chunk_bytes,
            chunks_sha256: artifact::chunks_hash(&digest.chunks),
            published_ms: 0,
        };
        let seq = self
            .hub
            .publish(&manifest, scope, "cli")
            .map_err(|error| match error {
                cairn_hub::artifacts::PublishError::Invalid(why) => refuse(why),
                cairn_hub::artifacts::PublishError::Store(fault) => StoreError::Storage(fault),
            })?;
        Ok((manifest, seq))
    }

    /// Copies `file` into the blob store a chunk at a time, hashing as it
    /// goes; the blob and its chunk list are renamed into place once whole
    /// and durable.
    fn store_blob(&self, file: &Path, chunk_bytes: u64) -> Result<artifact::Digest, StoreError> {
        let root = artifacts_dir(&self.dir);
        for sub in ["blobs", "chunks", "incoming"] {
            let path = root.join(sub);
            std::fs::create_dir_all(&path).map_err(|error| StoreError::io(&path, error))?;
        }
        let incoming = root
            .join("incoming")
            .join(hex::encode(cairn_sqlite::random_seed()?));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| StoreError::io(&path, error)
        };
        let mut source = std::fs::File::open(file).map_err(io(file))?;
        let mut copy = std::fs::File::create(&incoming).map_err(io(&incoming))?;
        let digested =
            artifact::digest_stream(&mut source, chunk_bytes, |chunk| copy.write_all(chunk));
        let digest = match digested.and_then(|digest| copy.sync_all().map(|()| digest)) {
            Ok(digest) => digest,
            Err(error) => {
                let _ = std::fs::remove_file(&incoming);
                return Err(StoreError::io(file, error));
            }
        };
        let list: Vec<u8> = digest.chunks.iter().flat_map(|chunk| chunk.0).collect();
        let chunks = root.join("chunks").join(digest.sha256.to_hex());
        let list_incoming = incoming.with_extension("chunks");
        let mut list_file = std::fs::File::create(&list_incoming).map_err(io(&list_incoming))?;
        list_file
            .write_all(&list)
            .and_then(|()| list_file.sync_all())
            .map_err(io(&list_incoming))?;
        std::fs::rename(&list_incoming, &chunks).map_err(io(&chunks))?;
        let blob = self.blob_path(&digest.sha256);
        std::fs::rename(&incoming, &blob).map_err(io(&blob))?;
        if let Ok(dir) = std::fs::File::open(root.join("blobs")) {
            let _ = dir.sync_all();
        }
        Ok(digest)
    }
}
