//! Fetching artifact blobs from the hub for the manifests this node pulled
//! (`cairn_edge::artifacts`): chunk by chunk, each checked against its
//! SHA-256 from the manifest's chunk list before it is written, so a chunk
//! damaged in transit is refused and fetched again, and a cut link resumes
//! after the last whole chunk (the partial file and a count of its
//! verified chunks survive the cut). The whole blob is checked against the
//! manifest before it becomes the active version; the version before stays
//! until then. Only one chunk is ever in memory.

use crate::HubLink;
use crate::hub::hub_audience;
use anyhow::{Context, bail};
use cairn_core::artifact::{self, Manifest};
use cairn_core::hash::Hash;
use cairn_edge::EdgeStore;
use cairn_edge::artifacts::Artifacts;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Times a chunk that fails its hash is fetched again before the fetch
/// gives up (a link that damages every copy is not a link to trust).
const CHUNK_ATTEMPTS: u32 = 4;
/// Chunk requests in flight at once: enough to keep a 600 ms satellite
/// link busy (85 % of it with 64 KiB chunks, against 76 % with 4)...
const CHUNKS_IN_FLIGHT: usize = 8;
/// ...within this many bytes, so large chunks never hold much memory.
const IN_FLIGHT_BYTES: u64 = 8 * 1024 * 1024;
/// Chunks between two syncs of the partial file and its count.
const SYNC_EVERY_CHUNKS: u64 = 32;

/// What a fetch did for one artifact.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fetched {
    /// The artifact.
    pub name: String,
    /// The version fetched.
    pub version: String,
    /// Its size.
    pub size: u64,
    /// Where the fetch started (bytes verified by earlier attempts).
    pub resumed_from: u64,
    /// Chunk bytes received this time, refused ones included.
    pub bytes_received: u64,
    /// Chunks refused for a wrong hash (and fetched again).
    pub chunks_refused: u64,
    /// True once the version is verified whole and active.
    pub activated: bool,
}

/// Fetches the blob of every artifact whose newest manifest is not the
/// active version, at most `budget_bytes` of chunks in all (`None`: no
/// bound; what is left waits for the next call). An error leaves every
/// verified chunk in place for the next attempt.
pub async fn fetch_artifacts(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    budget_bytes: Option<u64>,
) -> anyhow::Result<Vec<Fetched>> {
    let artifacts = store.artifacts();
    let installed = artifacts.installed()?;
    let wanted: Vec<Manifest> = store
        .artifact_manifests()?
        .into_values()
        .filter(|newest| {
            installed
                .get(&newest.name)
                .is_none_or(|entry| entry.wants(newest))
        })
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    artifacts.prepare()?;
    let audience = hub_audience(hub.client, hub.url, hub.key).await?;
    let mut left = budget_bytes.unwrap_or(u64::MAX);
    let mut done = Vec::new();
    for manifest in wanted {
        if left == 0 {
            break;
        }
        let mut fetch = Fetch::open(&artifacts, &manifest)?;
        let result = fetch.run(store, hub, &audience, &mut left).await;
        fetch.keep()?;
        result?;
        if fetch.next == manifest.chunk_count() {
            fetch.finish(&artifacts)?;
        }
        done.push(fetch.report);
    }
    Ok(done)
}

/// One blob being fetched.
struct Fetch {
    manifest: Manifest,
    chunks: Vec<Hash>,
    file: std::fs::File,
    partial: PathBuf,
    /// The next chunk to fetch: every one before it is verified.
    next: u64,
    /// Chunks written since the last sync.
    unsynced: u64,
    report: Fetched,
}

impl Fetch {
    /// Opens (or resumes) the partial file of `manifest`'s blob.
    fn open(artifacts: &Artifacts, manifest: &Manifest) -> anyhow::Result<Fetch> {
        let partial = artifacts.partial_path(manifest);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&partial)
            .with_context(|| format!("cannot open {}", partial.display()))?;
        let verified = std::fs::read_to_string(count_path(&partial))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .min(manifest.chunk_count());
        let length = file.metadata()?.len();
        // Chunks past the count were written but not synced: fetched again.
        let next = verified.min(length / manifest.chunk_bytes);
        file.set_len(next * manifest.chunk_bytes)?;
        Ok(Fetch {
            manifest: manifest.clone(),
            chunks: Vec::new(),
            file,
            partial,
            next,
            unsynced: 0,
            report: Fetched {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
                size: manifest.size,
                resumed_from: next * manifest.chunk_bytes,
                ..Fetched::default()
            },
        })
    }

    /// Fetches the chunk list, then chunks until the blob is whole or the
    /// budget `left` is spent.
    async fn run(
        &mut self,
        store: &EdgeStore,
        hub: &HubLink<'_>,
        audience: &str,
        left: &mut u64,
    ) -> anyhow::Result<()> {
        let base = format!(
            "{}/v1/artifacts/{}/chunks",
            hub.url,
            self.manifest.sha256.to_hex()
        );
        let list = get(hub, &base, hub.token(store, audience).await).await?;
        self.chunks = list
            .chunks(32)
            .map(|hash| Hash::from_slice(hash).context("a chunk hash is not 32 bytes"))
            .collect::<anyhow::Result<_>>()?;
        if self.chunks.len() as u64 != self.manifest.chunk_count()
            || artifact::chunks_hash(&self.chunks) != self.manifest.chunks_sha256
        {
            bail!(
                "the hub's chunk list for {} does not match its manifest",
                self.manifest.name
            );
        }
        self.file
            .seek(SeekFrom::Start(self.next * self.manifest.chunk_bytes))?;
        // A few chunks in flight keep a long link full; they are written
        // in order, each once its hash checks.
        let mut in_flight = std::collections::VecDeque::new();
        let mut asked = self.next;
        let result = async {
            loop {
                let window = (IN_FLIGHT_BYTES / self.manifest.chunk_bytes)
                    .clamp(1, CHUNKS_IN_FLIGHT as u64) as usize;
                while in_flight.len() < window && asked < self.manifest.chunk_count() && *left > 0 {
                    let url = format!("{base}/{asked}");
                    let token = hub.token(store, audience).await;
                    let (client, clock) = (hub.client.clone(), hub.clock.clone());
                    in_flight.push_back(tokio::spawn(get_owned(client, clock, url, token)));
                    *left = left.saturating_sub(self.manifest.chunk_len(asked));
                    asked += 1;
                }
                let Some(next) = in_flight.pop_front() else {
                    return anyhow::Ok(());
                };
                let bytes = next.await.context("a chunk request failed")??;
                let bytes = self.checked(bytes, &base, (store, hub, audience)).await?;
                self.file.write_all(&bytes)?;
                self.next += 1;
                self.unsynced += 1;
                if self.unsynced == SYNC_EVERY_CHUNKS {
                    self.keep()?;
                }
            }
        }
        .await;
        for request in in_flight {
            request.abort();
        }
        result
    }

    /// `bytes` if they are the next chunk, else that chunk fetched again
    /// until it checks (at most [`CHUNK_ATTEMPTS`] in all).
    async fn checked(
        &mut self,
        mut bytes: Vec<u8>,
        base: &str,
        (store, hub, audience): (&EdgeStore, &HubLink<'_>, &str),
    ) -> anyhow::Result<Vec<u8>> {
        let mut attempts = 1;
        loop {
            self.report.bytes_received += bytes.len() as u64;
            if bytes.len() as u64 == self.manifest.chunk_len(self.next)
                && Hash::of(&bytes) == self.chunks[self.next as usize]
            {
                return Ok(bytes);
            }
            self.report.chunks_refused += 1;
            tracing::warn!(artifact = %self.manifest.name, chunk = self.next, "refused a chunk that does not match its hash; fetching it again");
            if attempts == CHUNK_ATTEMPTS {
                bail!(
                    "chunk {} of {} failed its hash {CHUNK_ATTEMPTS} times",
                    self.next,
                    self.manifest.name
                );
            }
            attempts += 1;
            let url = format!("{base}/{}", self.next);
            let token = hub.token(store, audience).await;
            bytes = get(hub, &url, token).await?;
        }
    }

    /// Makes the verified chunks durable and notes how many there are.
    fn keep(&mut self) -> anyhow::Result<()> {
        self.file.sync_data()?;
        let count = count_path(&self.partial);
        let next = count.with_extension("next");
        std::fs::write(&next, self.next.to_string())?;
        std::fs::File::open(&next)?.sync_all()?;
        std::fs::rename(&next, &count)?;
        self.unsynced = 0;
        Ok(())
    }

    /// Checks the whole blob against the manifest, moves it into place
    /// and activates it; a blob that fails is deleted, to be fetched anew.
    fn finish(&mut self, artifacts: &Artifacts) -> anyhow::Result<()> {
        self.file.seek(SeekFrom::Start(0))?;
        let digest = artifact::digest_stream(
            &mut (&self.file).take(u64::MAX),
            self.manifest.chunk_bytes,
            |_| Ok(()),
        )?;
        if digest.size != self.manifest.size || digest.sha256 != self.manifest.sha256 {
            let _ = std::fs::remove_file(&self.partial);
            let _ = std::fs::remove_file(count_path(&self.partial));
            bail!(
                "the blob of {} {} does not match its manifest: fetched again next time",
                self.manifest.name,
                self.manifest.version
            );
        }
        let blob = artifacts.blob_path(&self.manifest);
        std::fs::rename(&self.partial, &blob)?;
        let _ = std::fs::remove_file(count_path(&self.partial));
        if let Some(dir) = blob.parent() {
            cairn_edge::artifacts::sync_dir(dir);
        }
        artifacts.activate(&self.manifest)?;
        self.report.activated = true;
        tracing::info!(artifact = %self.manifest.name, version = %self.manifest.version, "artifact verified and active");
        Ok(())
    }
}

fn count_path(partial: &Path) -> PathBuf {
    partial.with_extension("verified")
}

/// The bytes of a GET the hub must answer 200.
async fn get(hub: &HubLink<'_>, url: &str, token: String) -> anyhow::Result<Vec<u8>> {
    get_owned(
        hub.client.clone(),
        hub.clock.clone(),
        url.to_string(),
        token,
    )
    .await
}

/// [`get`] with what it needs owned, to run as a task of its own.
async fn get_owned(
    client: reqwest::Client,
    clock: std::sync::Arc<crate::clock::HubClock>,
    url: String,
    token: String,
) -> anyhow::Result<Vec<u8>> {
    // A GET is safe to send again: once more when a pooled connection the
    // link dropped (a cut, an idle timeout) fails before any answer.
    let send = || client.get(&url).bearer_auth(&token).send();
    let response = match send().await {
        Ok(response) => response,
        Err(error) if error.is_request() || error.is_connect() => {
            send().await.context("the hub is unreachable")?
        }
        Err(error) => return Err(anyhow::Error::new(error).context("the hub is unreachable")),
    };
    clock.observe(response.headers(), cairn_edge::clock::now_ms());
    let status = response.status();
    let bytes = response.bytes().await.context("the hub's answer was cut")?;
    if !status.is_success() {
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        bail!(
            "the hub refused the artifact request ({status}): {}",
            answer["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(bytes.to_vec())
}
