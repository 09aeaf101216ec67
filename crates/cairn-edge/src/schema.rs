//! The SQLite schema of the edge store, and opening a connection.
//!
//! No SQL lives outside this crate. The op table is keyed by
//! `rowid = stream_id << 40 | seq`, so one b-tree both orders a stream for
//! verification and finds an op by `(stream, seq)`.

use crate::{InitOptions, NodeSettings, StoreError};
use cairn_core::identity::NodeIdentity;
use cairn_core::pack::RulePack;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

/// Version of this schema, kept in `meta`.
pub(crate) const SCHEMA_VERSION: &str = "2";
/// Bits of the op rowid that hold the seq.
pub(crate) const SEQ_BITS: u32 = 40;

/// Rowid of op `seq` of stream `stream_id`.
pub(crate) fn op_rowid(stream_id: i64, seq: u64) -> i64 {
    debug_assert!(seq < 1 << SEQ_BITS);
    (stream_id << SEQ_BITS) | seq as i64
}

pub(crate) use cairn_sqlite::{open, scope_text};

/// Ops of this node set aside when it took a stream back from the hub
/// (`EdgeStore::realign_async`): kept, never deleted.
pub(crate) const DISPLACED_DDL: &str = "
CREATE TABLE IF NOT EXISTS displaced (
    id           INTEGER PRIMARY KEY,
    stream       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    op_hash      BLOB NOT NULL,
    op           BLOB NOT NULL,
    displaced_ms INTEGER NOT NULL,
    new_seq      INTEGER
) STRICT;
";

/// Adds `ops.pack` (the pack version a write was validated under) to
/// stores made before it existed; their ops keep it empty.
pub(crate) fn add_ops_pack(conn: &Connection) -> Result<(), StoreError> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('ops') WHERE name = 'pack'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE ops ADD COLUMN pack TEXT")?;
    }
    Ok(())
}

/// Adds `displaced.new_seq` to stores made before it existed.
pub(crate) fn add_displaced_new_seq(conn: &Connection) -> Result<(), StoreError> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('displaced') WHERE name = 'new_seq'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE displaced ADD COLUMN new_seq INTEGER")?;
    }
    Ok(())
}

/// Conditions the node raises for a person to see (`EdgeStore::raise_alert`):
/// a hub whose log went back or forked, a clock far off the hub's.
pub(crate) const ALERTS_DDL: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    kind     TEXT NOT NULL,
    message  TEXT NOT NULL,
    first_ms INTEGER NOT NULL,
    last_ms  INTEGER NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (kind, message)
) STRICT;
";

const DDL: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE packs (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    source       TEXT NOT NULL,
    source_hash  TEXT NOT NULL,
    activated_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE nodes (
    node       TEXT PRIMARY KEY,
    public_key BLOB NOT NULL
) STRICT;
CREATE TABLE streams (
    id        INTEGER PRIMARY KEY,
    node      TEXT NOT NULL,
    stream    TEXT NOT NULL,
    head_seq  INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    acked_seq INTEGER NOT NULL DEFAULT 0,
    foreign_  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (node, stream)
) STRICT;
CREATE TABLE collections (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;
CREATE TABLE ops (
    id          INTEGER PRIMARY KEY,
    op_hash     BLOB NOT NULL,
    op          BLOB NOT NULL,
    coll        INTEGER NOT NULL,
    action      INTEGER NOT NULL,
    record_key  TEXT NOT NULL,
    scope       TEXT NOT NULL,
    ref_id      TEXT,
    written_ms  INTEGER NOT NULL,
    pack        TEXT
) STRICT;
CREATE INDEX ops_by_record ON ops (coll, record_key) WHERE record_key != '';
CREATE INDEX ops_by_ledger ON ops (coll) WHERE record_key = '';
CREATE INDEX ops_by_ref ON ops (ref_id) WHERE ref_id IS NOT NULL;
CREATE TABLE checkpoints (
    stream_id INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    head      BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (stream_id, seq)
) STRICT, WITHOUT ROWID;
CREATE TABLE entities (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    scope      TEXT NOT NULL,
    deleted    INTEGER NOT NULL,
    conflicted INTEGER NOT NULL,
    state      BLOB NOT NULL,
    PRIMARY KEY (collection, key)
) STRICT;
";

/// Creates the schema and records the node's settings and packs.
pub(crate) fn create(
    conn: &mut Connection,
    identity: &NodeIdentity,
    options: &InitOptions,
    packs: &[(RulePack, String)],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute_batch(DDL)?;
    let scope_json = serde_json::to_string(&options.default_scope)
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    for (key, value) in [
        ("schema_version", SCHEMA_VERSION.to_string()),
        ("node", identity.node.clone()),
        ("default_scope", scope_json),
        ("quota_bytes", options.quota_bytes.to_string()),
    ] {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
    }
    tx.execute(
        "INSERT INTO nodes (node, public_key) VALUES (?1, ?2)",
        params![identity.node, identity.public_key().as_slice()],
    )?;
    let now_ms = crate::clock::now_ms() as i64;
    for (pack, source) in packs {
        tx.execute(
            "INSERT INTO packs (name, version, source, source_hash, activated_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![pack.name, pack.version, source, pack.source_hash.to_hex(), now_ms],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn meta(conn: &Connection, key: &str) -> Result<String, StoreError> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()?
    .ok_or_else(|| StoreError::Config(format!("meta.{key} is missing")))
}

/// Reads the node's settings and checks they belong to `identity`.
pub(crate) fn load_settings(
    conn: &Connection,
    identity: &NodeIdentity,
) -> Result<NodeSettings, StoreError> {
    let version = meta(conn, "schema_version")?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Config(format!(
            "schema version {version}, this build reads {SCHEMA_VERSION}"
        )));
    }
    let node = meta(conn, "node")?;
    if node != identity.node {
        return Err(StoreError::Config(format!(
            "the database belongs to node {node:?} but node.key to {:?}",
            identity.node
        )));
    }
    let default_scope: BTreeMap<String, String> =
        serde_json::from_str(&meta(conn, "default_scope")?)
            .map_err(|error| StoreError::Config(format!("meta.default_scope: {error}")))?;
    let quota_bytes = meta(conn, "quota_bytes")?
        .parse()
        .map_err(|_| StoreError::Config("meta.quota_bytes is not a number".into()))?;
    Ok(NodeSettings {
        node,
        public_key: identity.public_key(),
        default_scope,
        quota_bytes,
    })
}

/// Parses the active packs.
pub(crate) fn load_packs(conn: &Connection) -> Result<Vec<RulePack>, StoreError> {
    let mut statement = conn.prepare("SELECT source FROM packs ORDER BY name")?;
    let sources = statement
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    sources
        .iter()
        .map(|source| {
            RulePack::from_toml(source).map_err(|error| StoreError::Config(error.to_string()))
        })
        .collect()
}
