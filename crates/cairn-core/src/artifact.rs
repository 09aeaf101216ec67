//! Artifacts: versioned blobs (models, manuals) the hub publishes and edges
//! pull, content-addressed by SHA-256. A blob travels in fixed-size chunks,
//! each checked against its own SHA-256 as it arrives, so a cut link
//! resumes where it stopped and a chunk damaged in transit is refused and
//! fetched again; the whole blob is checked against the manifest before it
//! replaces the active version.
//!
//! The manifest is the payload of a `put` of the hub's `artifacts` stream
//! (collection [`ARTIFACTS_COLLECTION`], key = the artifact's name), signed
//! and logged like every op: an edge trusts a blob because the hub's log
//! proves the manifest that names its hash.

use crate::hash::Hash;
use serde_json::{Value, json};

/// The hub's stream of artifact manifests.
pub const ARTIFACTS_STREAM: &str = "artifacts";
/// Their collection.
pub const ARTIFACTS_COLLECTION: &str = "hub_artifacts";
/// Chunk size unless the publisher chooses another.
pub const CHUNK_BYTES_DEFAULT: u64 = 256 * 1024;
/// Smallest and largest chunk sizes.
pub const CHUNK_BYTES_RANGE: std::ops::RangeInclusive<u64> = 4096..=8 * 1024 * 1024;
/// Longest version text.
pub const VERSION_BYTES_MAX: usize = 64;

/// What the hub says about one version of an artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The artifact's name (a record key).
    pub name: String,
    /// Its version, as the publisher named it.
    pub version: String,
    /// Bytes in the blob.
    pub size: u64,
    /// SHA-256 of the blob.
    pub sha256: Hash,
    /// Bytes per chunk (the last may be shorter).
    pub chunk_bytes: u64,
    /// SHA-256 of the chunks' SHA-256s, concatenated in order.
    pub chunks_sha256: Hash,
    /// When the hub published it, ms.
    pub published_ms: u64,
}

impl Manifest {
    /// How many chunks the blob has.
    pub fn chunk_count(&self) -> u64 {
        self.size.div_ceil(self.chunk_bytes)
    }

    /// How long chunk `index` is.
    pub fn chunk_len(&self, index: u64) -> u64 {
        let start = index * self.chunk_bytes;
        self.chunk_bytes.min(self.size.saturating_sub(start))
    }

    /// The manifest as the op's payload.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "version": self.version,
            "size": self.size,
            "sha256": self.sha256.to_hex(),
            "chunk_bytes": self.chunk_bytes,
            "chunks_sha256": self.chunks_sha256.to_hex(),
            "published_ms": self.published_ms,
        })
    }

    /// Parses and checks a manifest: `field: rule` on the first fault.
    pub fn from_json(value: &Value) -> Result<Manifest, String> {
        let text = |name: &str| {
            value[name]
                .as_str()
                .map(String::from)
                .ok_or(format!("{name}: required: a string"))
        };
        let number = |name: &str| {
            value[name]
                .as_u64()
                .ok_or(format!("{name}: required: a whole number"))
        };
        let hash = |name: &str| {
            Hash::from_hex(&text(name)?).ok_or(format!("{name}: format: 64 hex digits"))
        };
        let manifest = Manifest {
            name: text("name")?,
            version: text("version")?,
            size: number("size")?,
            sha256: hash("sha256")?,
            chunk_bytes: number("chunk_bytes")?,
            chunks_sha256: hash("chunks_sha256")?,
            published_ms: number("published_ms")?,
        };
        manifest.check()?;
        Ok(manifest)
    }

    /// Checks what a manifest must hold: `field: rule: why` on the first fault.
    pub fn check(&self) -> Result<(), String> {
        crate::names::check_key(&self.name).map_err(|why| format!("name: key: {why}"))?;
        check_version(&self.version)?;
        if !CHUNK_BYTES_RANGE.contains(&self.chunk_bytes) {
            return Err(format!(
                "chunk_bytes: range: from {} to {}",
                CHUNK_BYTES_RANGE.start(),
                CHUNK_BYTES_RANGE.end()
            ));
        }
        Ok(())
    }
}

/// Checks a version text: 1 to [`VERSION_BYTES_MAX`] printable ASCII bytes.
pub fn check_version(version: &str) -> Result<(), String> {
    if version.is_empty()
        || version.len() > VERSION_BYTES_MAX
        || !version.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(format!(
            "version: format: 1 to {VERSION_BYTES_MAX} printable ASCII characters, no spaces"
        ));
    }
    Ok(())
}

/// SHA-256 over the chunks' SHA-256s, in order: what a manifest's
/// `chunks_sha256` must be for a list of chunk hashes.
pub fn chunks_hash(chunks: &[Hash]) -> Hash {
    let mut all = Vec::with_capacity(chunks.len() * 32);
    for chunk in chunks {
        all.extend_from_slice(&chunk.0);
    }
    Hash::of(&all)
}

/// What [`digest_stream`] learns of a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Bytes read.
    pub size: u64,
    /// SHA-256 of them all.
    pub sha256: Hash,
    /// SHA-256 of each chunk, in order.
    pub chunks: Vec<Hash>,
}

/// Reads `reader` to its end one chunk at a time (a blob is never whole in
/// memory), handing each chunk to `each` as it goes.
pub fn digest_stream(
    reader: &mut impl std::io::Read,
    chunk_bytes: u64,
    mut each: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> std::io::Result<Digest> {
    use sha2::Digest as _;
    let mut whole = sha2::Sha256::new();
    let mut buffer = vec![0u8; chunk_bytes as usize];
    let (mut size, mut chunks) = (0u64, Vec::new());
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if filled == 0 {
            break;
        }
        let chunk = &buffer[..filled];
        whole.update(chunk);
        chunks.push(Hash::of(chunk));
        each(chunk)?;
        size += filled as u64;
        if filled < buffer.len() {
            break;
        }
    }
    Ok(Digest {
        size,
        sha256: Hash(whole.finalize().into()),
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            name: "vision-model".into(),
            version: "2.1.0".into(),
            size: 1_000_000,
            sha256: Hash::of(b"blob"),
            chunk_bytes: CHUNK_BYTES_DEFAULT,
            chunks_sha256: chunks_hash(&[Hash::of(b"a"), Hash::of(b"b")]),
            published_ms: 1_764_489_600_000,
        }
    }

    #[test]
    fn a_manifest_round_trips_and_counts_its_chunks() {
        let manifest = manifest();
        assert_eq!(
            Manifest::from_json(&manifest.to_json()),
            Ok(manifest.clone())
        );
        assert_eq!(manifest.chunk_count(), 4);
        assert_eq!(manifest.chunk_len(3), 1_000_000 - 3 * CHUNK_BYTES_DEFAULT);
    }

    #[test]
    fn a_stream_is_digested_chunk_by_chunk() {
        let bytes: Vec<u8> = (0..10_000u32).map(|n| n as u8).collect();
        let mut copied = Vec::new();
        let digest = digest_stream(&mut bytes.as_slice(), 4096, |chunk| {
            copied.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
        assert_eq!(copied, bytes);
        assert_eq!((digest.size, digest.sha256), (10_000, Hash::of(&bytes)));
        let expected: Vec<Hash> = bytes.chunks(4096).map(Hash::of).collect();
        assert_eq!(digest.chunks, expected);
    }

    #[test]
    fn a_bad_manifest_names_the_field_and_rule() {
        let mut value = manifest().to_json();
        value["sha256"] = json!("zz");
        assert_eq!(
            Manifest::from_json(&value),
            Err("sha256: format: 64 hex digits".into())
        );
        let mut bad = manifest();
        bad.version = "two words".into();
        assert!(bad.check().unwrap_err().starts_with("version: format"));
        bad = manifest();
        bad.chunk_bytes = 10;
        assert!(bad.check().unwrap_err().starts_with("chunk_bytes: range"));
    }
}
