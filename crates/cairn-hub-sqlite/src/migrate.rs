//! `cairn hub migrate`: a hub on SQLite moved to PostgreSQL, and proved the
//! same after the move.
//!
//! Every table is read in one SQLite read transaction (one snapshot) and
//! written in one PostgreSQL transaction (all or nothing), row for row: the
//! log, the tree, checkpoints, quarantine, compliance, reviews, audit
//! trail. The source is never changed. The new hub gets a directory of its
//! own: the hub's key, TLS material, legacy clients and artifact blobs
//! copied from the old one, and the database's URL. Then both are opened
//! as hubs and must agree on the log's size and root, and the new one's
//! whole log must verify (`cairn hub verify`'s checks).

use crate::{HubStore, HubVerifyReport, hub_db_path};
use cairn_hub_postgres::migrate::Value;
use cairn_hub_postgres::{PgBackend, schema};
use cairn_sqlite::StoreError;
use std::path::Path;

/// What a migration moved and proved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Migration {
    /// Rows copied, by table.
    pub rows: Vec<(String, u64)>,
    /// The log's size, the same on both.
    pub log_size: u64,
    /// The log's root, the same on both (hex).
    pub root: String,
    /// The new hub's log, verified.
    pub verified: HubVerifyReport,
}

/// Moves the SQLite hub in `from` to the empty PostgreSQL database at
/// `url`, the new hub's directory being `into` (made here). The old hub
/// should not be serving: what it logs after the copy's snapshot is not
/// moved, and the roots then differ, which fails the migration.
pub fn migrate_to_postgres(from: &Path, into: &Path, url: &str) -> Result<Migration, StoreError> {
    let source = HubStore::open(from)?;
    if crate::database_url(from)?.is_some() {
        return Err(StoreError::Config(format!(
            "{} runs on PostgreSQL already",
            from.display()
        )));
    }
    if into.exists()
        && std::fs::read_dir(into)
            .map_err(|error| StoreError::io(into, error))?
            .next()
            .is_some()
    {
        return Err(StoreError::Config(format!(
            "{} is not empty: the new hub's directory is made by the migration",
            into.display()
        )));
    }
    let target = PgBackend::connect(url)?;
    if cairn_hub_postgres::holds_a_hub(&target)? {
        return Err(StoreError::Config(format!(
            "database: {url} already holds a Cairn hub; migrate into an empty database"
        )));
    }
    let rows = copy_tables(from, &target, &source.public_key())?;
    copy_directory(from, into)?;
    cairn_sqlite::write_private(&crate::database_url_path(into), url.as_bytes())?;
    let moved = HubStore::open(into)?;
    let (size, root) = source.hub().root()?;
    let (moved_size, moved_root) = moved.hub().root()?;
    if (size, root) != (moved_size, moved_root) {
        return Err(StoreError::Damaged(format!(
            "the moved log is not the source's: {moved_size} leaves, root {moved_root}, where the source has {size} leaves, root {root} (was the source hub serving?)"
        )));
    }
    let verified = moved.verify()?;
    if !verified.faults.is_empty() {
        return Err(StoreError::Damaged(format!(
            "the moved log does not verify: {}",
            verified.faults.join("; ")
        )));
    }
    Ok(Migration {
        rows,
        log_size: size,
        root: root.to_hex(),
        verified,
    })
}

/// Copies every table of `from`'s database into `target` in one
/// transaction each side; rows copied by table.
fn copy_tables(
    from: &Path,
    target: &PgBackend,
    hub_key: &[u8; 32],
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut conn = cairn_sqlite::open(&hub_db_path(from))?;
    // One snapshot of every table.
    let snapshot = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
    let mut filler = target.filler()?;
    let mut copied = Vec::new();
    for table in schema::TABLES {
        let mut statement = snapshot.prepare(&format!("SELECT * FROM {table}"))?;
        let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
        let mut rows = statement.query([])?;
        let mut count = 0;
        while let Some(row) = rows.next()? {
            let values = (0..columns.len())
                .map(|index| value_of(row.get_ref(index)?))
                .collect::<Result<Vec<_>, rusqlite::Error>>()?;
            filler.insert(table, &columns, values)?;
            count += 1;
        }
        copied.push((table.to_string(), count));
    }
    filler.finish(hub_key)?;
    Ok(copied)
}

fn value_of(value: rusqlite::types::ValueRef<'_>) -> Result<Value, rusqlite::Error> {
    use rusqlite::types::ValueRef;
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(number) => Value::Integer(number),
        ValueRef::Text(text) => Value::Text(
            String::from_utf8(text.to_vec())
                .map_err(|error| rusqlite::Error::Utf8Error(0, error.utf8_error()))?,
        ),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        // The hub's tables are STRICT and hold no REAL column.
        ValueRef::Real(_) => {
            return Err(rusqlite::Error::InvalidColumnType(
                0,
                "a REAL value".into(),
                rusqlite::types::Type::Real,
            ));
        }
    })
}

/// Copies what the hub keeps beside its database (key, TLS, legacy
/// clients, artifact blobs) from `from` into the new directory `into`;
/// not the SQLite database and its WAL.
fn copy_directory(from: &Path, into: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(into).map_err(|error| StoreError::io(into, error))?;
    for entry in std::fs::read_dir(from).map_err(|error| StoreError::io(from, error))? {
        let entry = entry.map_err(|error| StoreError::io(from, error))?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if name_text.starts_with("hub.db") {
            continue;
        }
        let (source, target) = (entry.path(), into.join(&name));
        if source.is_dir() {
            copy_directory(&source, &target)?;
        } else {
            std::fs::copy(&source, &target).map_err(|error| StoreError::io(&source, error))?;
        }
    }
    // The key file keeps its owner-only mode: fs::copy copies permissions.
    Ok(())
}
