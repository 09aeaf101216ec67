//! The files of a data directory: key, database, the record of this node's
//! stream heads, and their sizes.

use crate::StoreError;
use std::path::{Path, PathBuf};

/// The node's key file (mode 0600).
pub(crate) fn key_path(dir: &Path) -> PathBuf {
    dir.join("node.key")
}

/// The SQLite database.
pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join("cairn.db")
}

pub(crate) use cairn_sqlite::{random_seed, write_private};

/// Bytes used by the database and its WAL.
pub(crate) fn storage_bytes(dir: &Path) -> u64 {
    ["cairn.db", "cairn.db-wal", "cairn.db-shm"]
        .iter()
        .filter_map(|name| std::fs::metadata(dir.join(name)).ok())
        .map(|meta| meta.len())
        .sum()
}

/// Where the writer records this node's stream heads outside the database.
pub(crate) fn heads_path(dir: &Path) -> PathBuf {
    dir.join("heads")
}

/// Format line of the heads file.
const HEADS_FORMAT: &str = "cairn-heads/1";

/// Records this node's stream heads (`stream seq hash` a line) after a
/// commit, by writing a new file and renaming it over the old one.
///
/// Not fsynced, deliberately: it is written after the database commit it
/// describes returned, so after a crash it is at worst behind the database
/// (or empty), never ahead of it. `cairn verify` reads a head it names that
/// the database no longer reaches as a tail that was cut off.
pub(crate) fn write_heads(
    dir: &Path,
    node: &str,
    heads: &std::collections::BTreeMap<String, (u64, cairn_core::hash::Hash)>,
) -> Result<(), StoreError> {
    let mut text = format!("{HEADS_FORMAT} {node}\n");
    for (stream, (seq, hash)) in heads {
        text.push_str(&format!("{stream} {seq} {}\n", hash.to_hex()));
    }
    let path = heads_path(dir);
    let temporary = dir.join("heads.new");
    std::fs::write(&temporary, text).map_err(|error| StoreError::io(&temporary, error))?;
    std::fs::rename(&temporary, &path).map_err(|error| StoreError::io(&path, error))
}

/// Where the writer keeps a heads file it found ahead of the database when
/// it started: evidence of a cut tail, for `cairn verify`.
pub(crate) fn cut_heads_path(dir: &Path) -> PathBuf {
    dir.join("heads.cut")
}

/// The heads a heads file (`heads_path` or `cut_heads_path`) records for
/// `node`; `None` when there is no file or it does not parse (a crash
/// between its write and its rename may leave it empty: that proves
/// nothing either way).
pub(crate) fn read_heads(
    path: &Path,
    node: &str,
) -> Option<std::collections::BTreeMap<String, (u64, cairn_core::hash::Hash)>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != format!("{HEADS_FORMAT} {node}") {
        return None;
    }
    lines
        .map(|line| {
            let mut parts = line.split(' ');
            let stream = parts.next()?.to_string();
            let seq = parts.next()?.parse().ok()?;
            let hash = cairn_core::hash::Hash::from_hex(parts.next()?)?;
            Some((stream, (seq, hash)))
        })
        .collect()
}
