//! The hub's tables on PostgreSQL: the same tables, columns and constraints
//! as the SQLite hub's schema 4 (FORMAT.md), in PostgreSQL's types: BIGINT
//! for integers, BYTEA for hashes and ops, BOOLEAN for flags, BIGSERIAL for
//! the ids SQLite numbers by rowid. The constraints are what several hub
//! processes lean on: a leaf is taken once (`log` primary key), a seq of a
//! stream once (`UNIQUE (stream_id, seq)`), a stream row once per name.

/// Version of the hub schema, kept in `meta` (the same number as SQLite's).
pub const SCHEMA_VERSION: &str = "4";

/// Every table of the hub, in one transaction with `meta`'s first rows.
pub(crate) const DDL: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE nodes (
    node        TEXT PRIMARY KEY,
    public_key  BYTEA NOT NULL,
    scopes      TEXT NOT NULL,
    enrolled_ms BIGINT NOT NULL,
    pushed_ms   BIGINT,
    clock_offset_ms BIGINT
);
CREATE TABLE streams (
    id        BIGSERIAL PRIMARY KEY,
    node      TEXT NOT NULL,
    stream    TEXT NOT NULL,
    head_seq  BIGINT NOT NULL,
    head_hash BYTEA NOT NULL,
    held      BOOLEAN NOT NULL DEFAULT false,
    UNIQUE (node, stream)
);
CREATE TABLE log (
    leaf        BIGINT PRIMARY KEY,
    stream_id   BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    op_hash     BYTEA NOT NULL,
    op          BYTEA NOT NULL,
    node        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    UNIQUE (stream_id, seq)
);
CREATE TABLE tree (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);
CREATE TABLE node_keys (
    node       TEXT NOT NULL,
    public_key BYTEA NOT NULL,
    audit_seq  BIGINT NOT NULL,
    PRIMARY KEY (node, public_key)
);
CREATE TABLE origin_checkpoints (
    stream_id  BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    signature  BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    PRIMARY KEY (stream_id, seq)
);
CREATE TABLE log_checkpoints (
    size       BIGINT PRIMARY KEY,
    root       BYTEA NOT NULL,
    note       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE quarantine (
    id          BIGSERIAL PRIMARY KEY,
    node        TEXT NOT NULL,
    stream      TEXT NOT NULL,
    seq         BIGINT,
    material_hash BYTEA NOT NULL,
    op          BYTEA NOT NULL,
    reason      TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    UNIQUE (node, stream, material_hash)
);
CREATE TABLE enrollments (
    token_hash BYTEA PRIMARY KEY,
    node       TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms    BIGINT,
    rekey      BOOLEAN NOT NULL DEFAULT false,
    revoked_ms BIGINT
);
CREATE TABLE alerts (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    node       TEXT NOT NULL,
    stream     TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE packs (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    source       TEXT NOT NULL,
    source_hash  TEXT NOT NULL,
    activated_ms BIGINT NOT NULL
);
CREATE TABLE verdicts (
    begin_leaf BIGINT PRIMARY KEY,
    end_leaf   BIGINT NOT NULL,
    state      TEXT NOT NULL,
    pack       TEXT NOT NULL,
    version    TEXT NOT NULL,
    violations TEXT NOT NULL,
    at_ms      BIGINT NOT NULL
);
CREATE INDEX verdicts_unpersisted ON verdicts (begin_leaf) WHERE state != 'persisted';
CREATE TABLE claims (
    key        BYTEA PRIMARY KEY,
    leaf       BIGINT NOT NULL,
    written_ms BIGINT NOT NULL
);
CREATE TABLE registry (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    wall_ms    BIGINT NOT NULL,
    counter    BIGINT NOT NULL,
    node       TEXT NOT NULL,
    fields     TEXT,
    PRIMARY KEY (collection, key)
);
CREATE TABLE awaited (
    leaf   BIGINT PRIMARY KEY,
    key    BYTEA NOT NULL,
    rule   TEXT NOT NULL,
    who    TEXT NOT NULL,
    due_ms BIGINT NOT NULL
);
CREATE INDEX awaited_by_key ON awaited (key);
CREATE INDEX awaited_by_due ON awaited (due_ms);
CREATE TABLE reviews (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    leaf          BIGINT,
    node          TEXT NOT NULL,
    stream        TEXT NOT NULL,
    seq           BIGINT,
    collection    TEXT NOT NULL,
    rule          TEXT NOT NULL,
    message       TEXT NOT NULL,
    raised_ms     BIGINT NOT NULL,
    material_hash BYTEA,
    closed_ms     BIGINT,
    closed_by     TEXT,
    decision      TEXT,
    note          TEXT,
    audit_seq     BIGINT
);
CREATE UNIQUE INDEX reviews_once ON reviews (kind, coalesce(leaf, -1), rule, coalesce(material_hash, '\\x'::bytea));
CREATE INDEX reviews_open ON reviews (leaf) WHERE closed_ms IS NULL;
CREATE TABLE entities (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      BYTEA NOT NULL,
    PRIMARY KEY (collection, key)
);
CREATE TABLE entity_ops (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    leaf       BIGINT NOT NULL,
    PRIMARY KEY (collection, key, leaf)
);
CREATE TABLE fleet_reports (
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (name, kind)
);
CREATE TABLE push_attempts (
    id          BIGSERIAL PRIMARY KEY,
    at_ms       BIGINT NOT NULL,
    node        TEXT NOT NULL,
    stream      TEXT NOT NULL,
    accepted    BIGINT NOT NULL,
    duplicate   BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    refused     TEXT
);
";

/// The tables in the order a migration fills them (every table of [`DDL`]).
pub const TABLES: &[&str] = &[
    "meta",
    "nodes",
    "streams",
    "log",
    "tree",
    "node_keys",
    "origin_checkpoints",
    "log_checkpoints",
    "quarantine",
    "enrollments",
    "alerts",
    "packs",
    "verdicts",
    "claims",
    "registry",
    "awaited",
    "reviews",
    "entities",
    "entity_ops",
    "push_attempts",
    "fleet_reports",
];

/// The tables whose ids PostgreSQL numbers (their sequences follow a
/// migration's rows).
pub const SERIAL_TABLES: &[&str] = &[
    "streams",
    "quarantine",
    "alerts",
    "reviews",
    "push_attempts",
];
