//! Clients that cannot be changed (the seeds' workers and apps) as the hub
//! keeps them: each is enrolled as a node whose key the hub holds, so the
//! records it sends become ops of its own stream, signed by the hub on its
//! behalf and verified, logged, judged and receipted like any push. A
//! client proves itself with a bearer token (stored as its SHA-256 only)
//! or, for a client that sends none, by its source address.
//!
//! Kept in `legacy/NAME.json` in the hub's directory (mode 0600: it holds
//! the client's key).

use cairn_core::hash::Hash;
use cairn_core::identity::NodeIdentity;
use cairn_sqlite::StoreError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegacyKind {
    /// Seed 000: `POST /api/v1/mro/sync`.
    MroSync,
    /// Seed 001: `POST /api/v1/mro/records`.
    MroRecords,
    /// Seed 003: `POST /api/v1/transactions/sync`, `GET /api/v1/inventory/ping`.
    Pharmacy,
    /// Seed 004: the mobile batch and updates endpoints.
    Mobile,
}

impl LegacyKind {
    /// Every kind.
    pub const ALL: [LegacyKind; 4] = [
        LegacyKind::MroSync,
        LegacyKind::MroRecords,
        LegacyKind::Pharmacy,
        LegacyKind::Mobile,
    ];

    /// The name `--legacy` takes.
    pub fn name(self) -> &'static str {
        match self {
            LegacyKind::MroSync => "mro-sync",
            LegacyKind::MroRecords => "mro-records",
            LegacyKind::Pharmacy => "pharmacy",
            LegacyKind::Mobile => "mobile",
        }
    }

    /// Parses [`LegacyKind::name`].
    pub fn from_name(name: &str) -> Option<LegacyKind> {
        LegacyKind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// A legacy client as stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    kind: LegacyKind,
    key_file: String,
    token_sha256: String,
    scopes: BTreeMap<String, String>,
    allow_from: Vec<String>,
}

/// A legacy client the hub serves.
pub struct LegacyClient {
    /// Its name (a node name).
    pub name: String,
    /// What it speaks.
    pub kind: LegacyKind,
    /// The key the hub signs its ops with.
    pub identity: NodeIdentity,
    /// Its granted scope labels (its ops carry them).
    pub scopes: BTreeMap<String, String>,
    /// SHA-256 of its bearer token.
    pub token_hash: Hash,
    /// Source addresses (CIDR) it may call from without a token.
    pub allow_from: Vec<String>,
}

fn legacy_dir(dir: &Path) -> PathBuf {
    dir.join("legacy")
}

/// Creates client `name` of `kind` in the hub at `dir` and returns its
/// bearer token (shown once). The caller enrolls its key.
pub fn create(
    dir: &Path,
    name: &str,
    kind: LegacyKind,
    scopes: &BTreeMap<String, String>,
    allow_from: &[String],
) -> Result<(LegacyClient, String), StoreError> {
    cairn_core::names::check_name(name).map_err(StoreError::Config)?;
    let path = legacy_dir(dir).join(format!("{name}.json"));
    if path.exists() {
        return Err(StoreError::Config(format!(
            "legacy client {name:?} exists already"
        )));
    }
    std::fs::create_dir_all(legacy_dir(dir)).map_err(|error| StoreError::io(dir, error))?;
    let identity = NodeIdentity::from_seed(name, cairn_sqlite::random_seed()?);
    let token = hex::encode(cairn_sqlite::random_seed()?);
    let token_hash = Hash::of(token.as_bytes());
    let stored = Stored {
        kind,
        key_file: identity.to_key_file(),
        token_sha256: token_hash.to_hex(),
        scopes: scopes.clone(),
        allow_from: allow_from.to_vec(),
    };
    let text = serde_json::to_string_pretty(&stored)
        .map_err(|error| StoreError::Internal(error.to_string()))?;
    cairn_sqlite::write_private(&path, text.as_bytes())?;
    Ok((
        LegacyClient {
            name: name.to_string(),
            kind,
            identity,
            scopes: scopes.clone(),
            token_hash,
            allow_from: allow_from.to_vec(),
        },
        token,
    ))
}

/// Every legacy client of the hub at `dir`.
pub fn load(dir: &Path) -> Result<Vec<LegacyClient>, StoreError> {
    let Ok(entries) = std::fs::read_dir(legacy_dir(dir)) else {
        return Ok(Vec::new());
    };
    let mut clients = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| StoreError::io(dir, error))?.path();
        let Some(name) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".json"))
        else {
            continue;
        };
        let damaged = |what: String| StoreError::Damaged(format!("{}: {what}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|error| StoreError::io(&path, error))?;
        let stored: Stored =
            serde_json::from_str(&text).map_err(|error| damaged(error.to_string()))?;
        let identity = NodeIdentity::from_key_file(&stored.key_file)
            .map_err(|error| damaged(error.to_string()))?;
        let token_hash = Hash::from_hex(&stored.token_sha256)
            .ok_or_else(|| damaged("token_sha256 is not a hash".into()))?;
        clients.push(LegacyClient {
            name: name.to_string(),
            kind: stored.kind,
            identity,
            scopes: stored.scopes,
            token_hash,
            allow_from: stored.allow_from,
        });
    }
    clients.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(clients)
}
