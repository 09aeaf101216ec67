//! The SQLite hub's compliance store: verdicts, the judge's ledger and the
//! review queue, in the same database and transaction as the log.

use crate::sqlite::SqlTx;
use cairn_core::hash::Hash;
use cairn_core::pack::Violation;
use cairn_hub::StorageError;
use cairn_hub::backend::StreamId;
use cairn_hub::comply::store::{
    Closure, ComplianceStore, PushAttempt, Review, ReviewFilter, ReviewRow, VerdictRow,
};
use cairn_hub::comply::{Awaited, Claim, Judgement, Ledger, RegistryEntry, State};
use cairn_sqlite::sqlite_fault as fault;
use rusqlite::params;
use std::collections::BTreeMap;

/// The tables of hub schema 4 (also run by the migration from 3).
pub(crate) const COMPLIANCE_DDL: &str = "
CREATE TABLE packs (
    name         TEXT PRIMARY KEY,
    version      TEXT NOT NULL,
    source       TEXT NOT NULL,
    source_hash  TEXT NOT NULL,
    activated_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE verdicts (
    begin_leaf INTEGER PRIMARY KEY,
    end_leaf   INTEGER NOT NULL,
    state      TEXT NOT NULL,
    pack       TEXT NOT NULL,
    version    TEXT NOT NULL,
    violations TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX verdicts_unpersisted ON verdicts (begin_leaf) WHERE state != 'persisted';
CREATE TABLE claims (
    key        BLOB PRIMARY KEY,
    leaf       INTEGER NOT NULL,
    written_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE registry (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    wall_ms    INTEGER NOT NULL,
    counter    INTEGER NOT NULL,
    node       TEXT NOT NULL,
    fields     TEXT,
    PRIMARY KEY (collection, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE awaited (
    leaf   INTEGER PRIMARY KEY,
    key    BLOB NOT NULL,
    rule   TEXT NOT NULL,
    who    TEXT NOT NULL,
    due_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX awaited_by_key ON awaited (key);
CREATE INDEX awaited_by_due ON awaited (due_ms);
CREATE TABLE reviews (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    leaf          INTEGER,
    node          TEXT NOT NULL,
    stream        TEXT NOT NULL,
    seq           INTEGER,
    collection    TEXT NOT NULL,
    rule          TEXT NOT NULL,
    message       TEXT NOT NULL,
    raised_ms     INTEGER NOT NULL,
    material_hash BLOB,
    closed_ms     INTEGER,
    closed_by     TEXT,
    decision      TEXT,
    note          TEXT,
    audit_seq     INTEGER
) STRICT;
CREATE UNIQUE INDEX reviews_once ON reviews (kind, ifnull(leaf, -1), rule, ifnull(material_hash, x''));
CREATE INDEX reviews_open ON reviews (leaf) WHERE closed_ms IS NULL;
CREATE TABLE entities (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      BLOB NOT NULL,
    PRIMARY KEY (collection, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE entity_ops (
    collection TEXT NOT NULL,
    key        TEXT NOT NULL,
    leaf       INTEGER NOT NULL,
    PRIMARY KEY (collection, key, leaf)
) STRICT, WITHOUT ROWID;
CREATE TABLE push_attempts (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    node        TEXT NOT NULL,
    stream      TEXT NOT NULL,
    accepted    INTEGER NOT NULL,
    duplicate   INTEGER NOT NULL,
    quarantined INTEGER NOT NULL,
    refused     TEXT
) STRICT;
INSERT INTO meta (key, value) VALUES ('judged_through', '0');
";

impl Ledger for SqlTx<'_> {
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError> {
        self.one(
            "SELECT leaf, written_ms FROM claims WHERE key = ?1",
            [key.0.as_slice()],
            |row| {
                Ok(Claim {
                    leaf: row.get::<_, i64>(0)? as u64,
                    written_ms: row.get::<_, i64>(1)? as u64,
                })
            },
        )
    }

    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError> {
        self.run(
            "INSERT OR REPLACE INTO claims (key, leaf, written_ms) VALUES (?1, ?2, ?3)",
            params![key.0.as_slice(), claim.leaf as i64, claim.written_ms as i64],
        )
        .map(drop)
    }

    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError> {
        self.one(
            "SELECT wall_ms, counter, node, fields FROM registry WHERE collection = ?1 AND key = ?2",
            [collection, key],
            |row| {
                Ok((
                    (
                        row.get::<_, i64>(0)? as u64,
                        row.get::<_, i64>(1)? as u32,
                        row.get::<_, String>(2)?,
                    ),
                    row.get::<_, Option<String>>(3)?,
                ))
            },
        )?
        .map(|(hlc, fields)| {
            let fields = fields
                .map(|text| serde_json::from_str(&text).map(std::sync::Arc::new))
                .transpose()
                .map_err(|_| StorageError::Damaged(format!("registry entry {collection} {key}")))?;
            Ok(RegistryEntry { hlc, fields })
        })
        .transpose()
    }

    fn put_registry_entry(
        &self,
        collection: &str,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<(), StorageError> {
        self.run(
            "INSERT OR REPLACE INTO registry (collection, key, wall_ms, counter, node, fields)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                collection,
                key,
                entry.hlc.0 as i64,
                entry.hlc.1,
                entry.hlc.2,
                entry
                    .fields
                    .as_ref()
                    .map(|fields| serde_json::Value::Object(fields.as_ref().clone()).to_string())
            ],
        )
        .map(drop)
    }

    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError> {
        self.run(
            "INSERT OR REPLACE INTO awaited (leaf, key, rule, who, due_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                item.leaf as i64,
                item.key.0.as_slice(),
                item.rule,
                item.who,
                item.due_ms as i64
            ],
        )
        .map(drop)
    }

    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError> {
        self.awaited_where("key = ?1", params![key.0.as_slice()])
    }

    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError> {
        self.run("DELETE FROM awaited WHERE leaf = ?1", [leaf as i64])
            .map(drop)
    }

    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError> {
        self.awaited_where(
            "due_ms < ?1 ORDER BY due_ms, leaf LIMIT ?2",
            params![now_ms as i64, limit as i64],
        )
    }

    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.one(
            "SELECT state FROM entities WHERE collection = ?1 AND key = ?2",
            [collection, key],
            |row| row.get(0),
        )
    }

    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), StorageError> {
        self.run(
            "INSERT OR REPLACE INTO entities (collection, key, state) VALUES (?1, ?2, ?3)",
            params![collection, key, state],
        )
        .map(drop)
    }

    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError> {
        self.run(
            "INSERT OR IGNORE INTO entity_ops (collection, key, leaf) VALUES (?1, ?2, ?3)",
            params![collection, key, leaf as i64],
        )
        .map(drop)
    }

    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT leaf FROM entity_ops WHERE collection = ?1 AND key = ?2 ORDER BY leaf",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([collection, key], |row| row.get::<_, i64>(0))
            .map_err(fault)?;
        rows.map(|row| row.map(|leaf| leaf as u64))
            .collect::<Result<_, _>>()
            .map_err(fault)
    }

    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError> {
        self.one("SELECT op FROM log WHERE leaf = ?1", [leaf as i64], |row| {
            row.get(0)
        })
    }
}

impl SqlTx<'_> {
    fn awaited_where(
        &self,
        condition: &str,
        values: impl rusqlite::Params,
    ) -> Result<Vec<Awaited>, StorageError> {
        let sql = format!("SELECT leaf, key, rule, who, due_ms FROM awaited WHERE {condition}");
        let mut statement = self.conn().prepare_cached(&sql).map_err(fault)?;
        let rows = statement
            .query_map(values, |row| {
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get::<_, i64>(4)? as u64,
                ))
            })
            .map_err(fault)?;
        rows.map(|row| {
            let (leaf, key, rule, who, due_ms) = row.map_err(fault)?;
            let key = Hash::from_slice(&key)
                .ok_or_else(|| StorageError::Damaged(format!("awaited key of leaf {leaf}")))?;
            Ok(Awaited {
                key,
                rule,
                leaf,
                who,
                due_ms,
            })
        })
        .collect()
    }

    fn verdicts_where(
        &self,
        sql: &str,
        values: impl rusqlite::Params,
    ) -> Result<Vec<(u64, VerdictRow)>, StorageError> {
        let mut statement = self.conn().prepare_cached(sql).map_err(fault)?;
        let rows = statement
            .query_map(values, |row| {
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    row.get::<_, i64>(1)? as u64,
                    row.get::<_, i64>(2)? as u64,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, i64>(7)? as u64,
                ))
            })
            .map_err(fault)?;
        rows.map(|row| {
            let (key, begin, end, state, pack, version, violations, at_ms) = row.map_err(fault)?;
            let damaged = || StorageError::Damaged(format!("verdict at leaf {begin}"));
            let violations: Vec<StoredViolation> =
                serde_json::from_str(&violations).map_err(|_| damaged())?;
            Ok((
                key,
                VerdictRow {
                    begin,
                    end,
                    judgement: Judgement {
                        state: State::from_name(&state).ok_or_else(damaged)?,
                        pack,
                        version,
                        violations: violations
                            .into_iter()
                            .map(|v| Violation::new(v.field, v.rule, v.message))
                            .collect(),
                    },
                    at_ms,
                },
            ))
        })
        .collect()
    }

    fn reviews_where(
        &self,
        condition: &str,
        values: impl rusqlite::Params,
    ) -> Result<Vec<Review>, StorageError> {
        let sql = format!(
            "SELECT id, kind, leaf, node, stream, seq, collection, rule, message, raised_ms,
                    material_hash, closed_ms, closed_by, decision, note, audit_seq
             FROM reviews WHERE {condition}"
        );
        let mut statement = self.conn().prepare_cached(&sql).map_err(fault)?;
        let rows = statement.query_map(values, review_of).map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }
}

#[derive(serde::Deserialize)]
struct StoredViolation {
    field: String,
    rule: String,
    message: String,
}

fn review_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<Review> {
    let optional = |index: usize| -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<i64>>(index)?.map(|value| value as u64))
    };
    let material: Option<Vec<u8>> = row.get(10)?;
    let closure = match optional(11)? {
        None => None,
        Some(at_ms) => Some(Closure {
            at_ms,
            by: row.get::<_, Option<String>>(12)?.unwrap_or_default(),
            decision: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            note: row.get::<_, Option<String>>(14)?.unwrap_or_default(),
            audit_seq: optional(15)?,
        }),
    };
    Ok(Review {
        id: row.get::<_, i64>(0)? as u64,
        row: ReviewRow {
            kind: row.get(1)?,
            leaf: optional(2)?,
            node: row.get(3)?,
            stream: row.get(4)?,
            seq: optional(5)?,
            collection: row.get(6)?,
            rule: row.get(7)?,
            message: row.get(8)?,
            raised_ms: row.get::<_, i64>(9)? as u64,
            material_hash: material.as_deref().and_then(Hash::from_slice),
        },
        closure,
    })
}

const VERDICT_COLUMNS: &str = "begin_leaf, end_leaf, state, pack, version, violations, at_ms";

impl ComplianceStore for SqlTx<'_> {
    fn judged_through(&self) -> Result<u64, StorageError> {
        let text: Option<String> = self.one(
            "SELECT value FROM meta WHERE key = 'judged_through'",
            [],
            |row| row.get(0),
        )?;
        text.unwrap_or_else(|| "0".into())
            .parse()
            .map_err(|_| StorageError::Damaged("meta judged_through".into()))
    }

    fn set_judged_through(&self, leaf: u64) -> Result<(), StorageError> {
        self.run(
            "UPDATE meta SET value = ?1 WHERE key = 'judged_through'",
            [leaf.to_string()],
        )
        .map(drop)
    }

    fn record_verdict(&self, row: &VerdictRow) -> Result<(), StorageError> {
        let violations = if row.judgement.violations.is_empty() {
            "[]".to_string()
        } else {
            serde_json::to_string(&row.judgement.violations)
                .map_err(|error| StorageError::Internal(error.to_string()))?
        };
        self.run(
            "INSERT INTO verdicts (begin_leaf, end_leaf, state, pack, version, violations, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.begin as i64,
                row.end as i64,
                row.judgement.state.name(),
                row.judgement.pack,
                row.judgement.version,
                violations,
                row.at_ms as i64
            ],
        )
        .map(drop)
    }

    fn verdict_at(&self, leaf: u64) -> Result<Option<VerdictRow>, StorageError> {
        let sql = format!(
            "SELECT begin_leaf, {VERDICT_COLUMNS} FROM verdicts
             WHERE begin_leaf <= ?1 ORDER BY begin_leaf DESC LIMIT 1"
        );
        let found = self.verdicts_where(&sql, [leaf as i64])?.pop();
        Ok(found.map(|(_, row)| row).filter(|row| leaf < row.end))
    }

    fn state_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached("SELECT state, sum(end_leaf - begin_leaf) FROM verdicts GROUP BY state")
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn unpersisted_leaves(&self) -> Result<Vec<u64>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT begin_leaf, end_leaf FROM verdicts WHERE state != 'persisted' ORDER BY begin_leaf",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
            })
            .map_err(fault)?;
        let mut leaves = Vec::new();
        for row in rows {
            let (begin, end) = row.map_err(fault)?;
            leaves.extend(begin..end);
        }
        Ok(leaves)
    }

    fn stream_verdicts(
        &self,
        stream_id: StreamId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, VerdictRow)>, StorageError> {
        let sql = "SELECT l.seq, v.begin_leaf, v.end_leaf, v.state, v.pack, v.version, v.violations, v.at_ms
             FROM verdicts v JOIN log l ON l.leaf = v.begin_leaf
             WHERE v.state != 'persisted' AND l.stream_id = ?1 AND l.seq > ?2
             ORDER BY l.seq LIMIT ?3";
        self.verdicts_where(sql, params![stream_id, after_seq as i64, limit as i64])
    }

    fn judged_seq(&self, stream_id: StreamId) -> Result<u64, StorageError> {
        let through = self.judged_through()?;
        let seq: Option<i64> = self.one(
            "SELECT seq FROM log WHERE stream_id = ?1 AND leaf < ?2 ORDER BY seq DESC LIMIT 1",
            params![stream_id, through as i64],
            |row| row.get(0),
        )?;
        Ok(seq.map_or(0, |seq| seq as u64))
    }

    fn raise_review(&self, row: &ReviewRow) -> Result<Option<u64>, StorageError> {
        let inserted = self.run(
            "INSERT OR IGNORE INTO reviews (kind, leaf, node, stream, seq, collection, rule, message, raised_ms, material_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                row.kind,
                row.leaf.map(|leaf| leaf as i64),
                row.node,
                row.stream,
                row.seq.map(|seq| seq as i64),
                row.collection,
                row.rule,
                row.message,
                row.raised_ms as i64,
                row.material_hash.map(|hash| hash.0.to_vec())
            ],
        )?;
        Ok((inserted == 1).then(|| self.conn().last_insert_rowid() as u64))
    }

    fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>, StorageError> {
        self.reviews_where(
            "id > ?1 AND (?2 = 0 OR closed_ms IS NULL) AND (?3 IS NULL OR kind = ?3)
             ORDER BY id LIMIT ?4",
            params![
                filter.after_id as i64,
                i64::from(filter.open_only),
                filter.kind,
                filter.limit as i64
            ],
        )
    }

    fn review(&self, id: u64) -> Result<Option<Review>, StorageError> {
        Ok(self.reviews_where("id = ?1", [id as i64])?.pop())
    }

    fn close_review(&self, id: u64, closure: &Closure) -> Result<bool, StorageError> {
        let changed = self.run(
            "UPDATE reviews SET closed_ms = ?2, closed_by = ?3, decision = ?4, note = ?5, audit_seq = ?6
             WHERE id = ?1 AND closed_ms IS NULL",
            params![
                id as i64,
                closure.at_ms as i64,
                closure.by,
                closure.decision,
                closure.note,
                closure.audit_seq.map(|seq| seq as i64)
            ],
        )?;
        Ok(changed == 1)
    }

    fn open_reviews_of(&self, kind: &str, leaf: u64) -> Result<Vec<u64>, StorageError> {
        Ok(self
            .reviews_where(
                "closed_ms IS NULL AND leaf = ?1 AND kind = ?2",
                params![leaf as i64, kind],
            )?
            .into_iter()
            .map(|review| review.id)
            .collect())
    }

    fn open_review_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT kind, count(*) FROM reviews WHERE closed_ms IS NULL GROUP BY kind",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn pack_sources(&self) -> Result<Vec<String>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached("SELECT source FROM packs ORDER BY name")
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn put_pack(
        &self,
        pack: &cairn_core::pack::RulePack,
        source: &str,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        self.run(
            "INSERT OR REPLACE INTO packs (name, version, source, source_hash, activated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                pack.name,
                pack.version,
                source,
                pack.source_hash.to_hex(),
                at_ms as i64
            ],
        )
        .map(drop)
    }

    fn record_push(&self, attempt: &PushAttempt) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO push_attempts (at_ms, node, stream, accepted, duplicate, quarantined, refused)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                attempt.at_ms as i64,
                attempt.node,
                attempt.stream,
                attempt.accepted as i64,
                attempt.duplicate as i64,
                attempt.quarantined as i64,
                attempt.refused
            ],
        )
        .map(drop)
    }

    fn push_attempts(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PushAttempt)>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT id, at_ms, node, stream, accepted, duplicate, quarantined, refused
                 FROM push_attempts WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map(params![after_id as i64, limit as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    PushAttempt {
                        at_ms: row.get::<_, i64>(1)? as u64,
                        node: row.get(2)?,
                        stream: row.get(3)?,
                        accepted: row.get::<_, i64>(4)? as u64,
                        duplicate: row.get::<_, i64>(5)? as u64,
                        quarantined: row.get::<_, i64>(6)? as u64,
                        refused: row.get(7)?,
                    },
                ))
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn changed_entities(
        &self,
        collection: &str,
        from_leaf: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>, StorageError> {
        // The collection's ops by the primary key's prefix, grouped by entity.
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT key, max(leaf), count(*) FROM entity_ops WHERE collection = ?1
                 GROUP BY key HAVING max(leaf) >= ?2 ORDER BY key LIMIT ?3",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map(params![collection, from_leaf as i64, limit as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)? as u64,
                    row.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn verdicts_from(&self, from: u64, limit: usize) -> Result<Vec<VerdictRow>, StorageError> {
        let sql = format!(
            "SELECT begin_leaf, {VERDICT_COLUMNS} FROM verdicts WHERE begin_leaf >= ?1
             ORDER BY begin_leaf LIMIT ?2"
        );
        Ok(self
            .verdicts_where(&sql, params![from as i64, limit as i64])?
            .into_iter()
            .map(|(_, row)| row)
            .collect())
    }
}
