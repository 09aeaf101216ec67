//! The compliance half of a PostgreSQL transaction: verdicts, the judge's
//! ledger and the review queue, in the same database and transaction as
//! the log (as on SQLite, statement for statement).

use crate::PgTx;
use crate::conn::{Params, get, get_opt_u64, get_u64};
use crate::log::hash_at;
use cairn_core::hash::Hash;
use cairn_core::pack::Violation;
use cairn_hub::StorageError;
use cairn_hub::backend::StreamId;
use cairn_hub::comply::store::{
    Closure, ComplianceStore, PushAttempt, Review, ReviewFilter, ReviewRow, VerdictRow,
};
use cairn_hub::comply::{Awaited, Claim, Judgement, Ledger, RegistryEntry, State};
use std::collections::BTreeMap;
use tokio_postgres::Row;

impl Ledger for PgTx<'_> {
    fn claim_of(&self, key: &Hash) -> Result<Option<Claim>, StorageError> {
        let row = self.conn().one(
            "SELECT leaf, written_ms FROM claims WHERE key = $1",
            &[&key.0.as_slice()],
        )?;
        row.map(|row| {
            Ok(Claim {
                leaf: get_u64(&row, 0)?,
                written_ms: get_u64(&row, 1)?,
            })
        })
        .transpose()
    }

    fn put_claim(&self, key: &Hash, claim: Claim) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO claims (key, leaf, written_ms) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET leaf = $2, written_ms = $3",
            &[
                &key.0.as_slice(),
                &(claim.leaf as i64),
                &(claim.written_ms as i64),
            ],
        )?;
        Ok(())
    }

    fn registry_entry(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<RegistryEntry>, StorageError> {
        let row = self.conn().one(
            "SELECT wall_ms, counter, node, fields FROM registry WHERE collection = $1 AND key = $2",
            &[&collection, &key],
        )?;
        row.map(|row| {
            let hlc = (get_u64(&row, 0)?, get_u64(&row, 1)? as u32, get(&row, 2)?);
            let fields = get::<Option<String>>(&row, 3)?
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
        let fields = entry
            .fields
            .as_ref()
            .map(|fields| serde_json::Value::Object(fields.as_ref().clone()).to_string());
        self.conn().defer(
            "INSERT INTO registry (collection, key, wall_ms, counter, node, fields)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (collection, key) DO UPDATE
             SET wall_ms = $3, counter = $4, node = $5, fields = $6",
            &[
                &collection,
                &key,
                &(entry.hlc.0 as i64),
                &i64::from(entry.hlc.1),
                &entry.hlc.2,
                &fields,
            ],
        )?;
        Ok(())
    }

    fn await_follow_up(&self, item: &Awaited) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO awaited (leaf, key, rule, who, due_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (leaf) DO UPDATE SET key = $2, rule = $3, who = $4, due_ms = $5",
            &[
                &(item.leaf as i64),
                &item.key.0.as_slice(),
                &item.rule,
                &item.who,
                &(item.due_ms as i64),
            ],
        )?;
        Ok(())
    }

    fn awaited(&self, key: &Hash) -> Result<Vec<Awaited>, StorageError> {
        self.awaited_where("key = $1 ORDER BY leaf", &[&key.0.as_slice()])
    }

    fn stop_waiting(&self, leaf: u64) -> Result<(), StorageError> {
        self.conn()
            .defer("DELETE FROM awaited WHERE leaf = $1", &[&(leaf as i64)])?;
        Ok(())
    }

    fn overdue(&self, now_ms: u64, limit: usize) -> Result<Vec<Awaited>, StorageError> {
        self.awaited_where(
            "due_ms < $1 ORDER BY due_ms, leaf LIMIT $2",
            &[&(now_ms as i64), &(limit.min(i64::MAX as usize) as i64)],
        )
    }

    fn entity_state(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let row = self.conn().one(
            "SELECT state FROM entities WHERE collection = $1 AND key = $2",
            &[&collection, &key],
        )?;
        row.map(|row| get(&row, 0)).transpose()
    }

    fn put_entity_state(
        &self,
        collection: &str,
        key: &str,
        state: &[u8],
    ) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO entities (collection, key, state) VALUES ($1, $2, $3)
             ON CONFLICT (collection, key) DO UPDATE SET state = $3",
            &[&collection, &key, &state],
        )?;
        Ok(())
    }

    fn add_entity_op(&self, collection: &str, key: &str, leaf: u64) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO entity_ops (collection, key, leaf) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&collection, &key, &(leaf as i64)],
        )?;
        Ok(())
    }

    fn entity_ops(&self, collection: &str, key: &str) -> Result<Vec<u64>, StorageError> {
        let rows = self.conn().query(
            "SELECT leaf FROM entity_ops WHERE collection = $1 AND key = $2 ORDER BY leaf",
            &[&collection, &key],
        )?;
        rows.iter().map(|row| get_u64(row, 0)).collect()
    }

    fn logged_op(&self, leaf: u64) -> Result<Option<Vec<u8>>, StorageError> {
        let row = self
            .conn()
            .one("SELECT op FROM log WHERE leaf = $1", &[&(leaf as i64)])?;
        row.map(|row| get(&row, 0)).transpose()
    }
}

impl PgTx<'_> {
    fn awaited_where(
        &self,
        condition: &str,
        params: Params<'_>,
    ) -> Result<Vec<Awaited>, StorageError> {
        let sql = format!("SELECT leaf, key, rule, who, due_ms FROM awaited WHERE {condition}");
        let rows = self.conn().query(&sql, params)?;
        rows.iter()
            .map(|row| {
                let leaf = get_u64(row, 0)?;
                Ok(Awaited {
                    key: hash_at(row, 1, || format!("awaited key of leaf {leaf}"))?,
                    rule: get(row, 2)?,
                    leaf,
                    who: get(row, 3)?,
                    due_ms: get_u64(row, 4)?,
                })
            })
            .collect()
    }

    /// Rows of `(key, begin, end, state, pack, version, violations, at_ms)`.
    fn verdicts_where(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<(u64, VerdictRow)>, StorageError> {
        let rows = self.conn().query(sql, params)?;
        rows.iter()
            .map(|row| {
                let begin = get_u64(row, 1)?;
                let damaged = || StorageError::Damaged(format!("verdict at leaf {begin}"));
                let violations: Vec<StoredViolation> =
                    serde_json::from_str(&get::<String>(row, 6)?).map_err(|_| damaged())?;
                let state: String = get(row, 3)?;
                Ok((
                    get_u64(row, 0)?,
                    VerdictRow {
                        begin,
                        end: get_u64(row, 2)?,
                        judgement: Judgement {
                            state: State::from_name(&state).ok_or_else(damaged)?,
                            pack: get(row, 4)?,
                            version: get(row, 5)?,
                            violations: violations
                                .into_iter()
                                .map(|v| Violation::new(v.field, v.rule, v.message))
                                .collect(),
                        },
                        at_ms: get_u64(row, 7)?,
                    },
                ))
            })
            .collect()
    }

    fn reviews_where(
        &self,
        condition: &str,
        params: Params<'_>,
    ) -> Result<Vec<Review>, StorageError> {
        let sql = format!(
            "SELECT id, kind, leaf, node, stream, seq, collection, rule, message, raised_ms,
                    material_hash, closed_ms, closed_by, decision, note, audit_seq
             FROM reviews WHERE {condition}"
        );
        let rows = self.conn().query(&sql, params)?;
        rows.iter().map(review_of).collect()
    }

    fn counts(&self, sql: &str) -> Result<BTreeMap<String, u64>, StorageError> {
        let rows = self.conn().query(sql, &[])?;
        rows.iter()
            .map(|row| Ok((get(row, 0)?, get_u64(row, 1)?)))
            .collect()
    }
}

#[derive(serde::Deserialize)]
struct StoredViolation {
    field: String,
    rule: String,
    message: String,
}

fn review_of(row: &Row) -> Result<Review, StorageError> {
    let material: Option<Vec<u8>> = get(row, 10)?;
    let closure = match get_opt_u64(row, 11)? {
        None => None,
        Some(at_ms) => Some(Closure {
            at_ms,
            by: get::<Option<String>>(row, 12)?.unwrap_or_default(),
            decision: get::<Option<String>>(row, 13)?.unwrap_or_default(),
            note: get::<Option<String>>(row, 14)?.unwrap_or_default(),
            audit_seq: get_opt_u64(row, 15)?,
        }),
    };
    Ok(Review {
        id: get_u64(row, 0)?,
        row: ReviewRow {
            kind: get(row, 1)?,
            leaf: get_opt_u64(row, 2)?,
            node: get(row, 3)?,
            stream: get(row, 4)?,
            seq: get_opt_u64(row, 5)?,
            collection: get(row, 6)?,
            rule: get(row, 7)?,
            message: get(row, 8)?,
            raised_ms: get_u64(row, 9)?,
            material_hash: material.as_deref().and_then(Hash::from_slice),
        },
        closure,
    })
}

const VERDICT_COLUMNS: &str = "begin_leaf, end_leaf, state, pack, version, violations, at_ms";

impl ComplianceStore for PgTx<'_> {
    fn judged_through(&self) -> Result<u64, StorageError> {
        let row = self
            .conn()
            .one("SELECT value FROM meta WHERE key = 'judged_through'", &[])?;
        let text = row.map(|row| get::<String>(&row, 0)).transpose()?;
        text.unwrap_or_else(|| "0".into())
            .parse()
            .map_err(|_| StorageError::Damaged("meta judged_through".into()))
    }

    fn set_judged_through(&self, leaf: u64) -> Result<(), StorageError> {
        self.conn().defer(
            "UPDATE meta SET value = $1 WHERE key = 'judged_through'",
            &[&leaf.to_string()],
        )?;
        Ok(())
    }

    fn record_verdict(&self, row: &VerdictRow) -> Result<(), StorageError> {
        let violations = if row.judgement.violations.is_empty() {
            "[]".to_string()
        } else {
            serde_json::to_string(&row.judgement.violations)
                .map_err(|error| StorageError::Internal(error.to_string()))?
        };
        self.conn().defer(
            "INSERT INTO verdicts (begin_leaf, end_leaf, state, pack, version, violations, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &(row.begin as i64),
                &(row.end as i64),
                &row.judgement.state.name(),
                &row.judgement.pack,
                &row.judgement.version,
                &violations,
                &(row.at_ms as i64),
            ],
        )?;
        Ok(())
    }

    fn verdict_at(&self, leaf: u64) -> Result<Option<VerdictRow>, StorageError> {
        let sql = format!(
            "SELECT begin_leaf, {VERDICT_COLUMNS} FROM verdicts
             WHERE begin_leaf <= $1 ORDER BY begin_leaf DESC LIMIT 1"
        );
        let found = self.verdicts_where(&sql, &[&(leaf as i64)])?.pop();
        Ok(found.map(|(_, row)| row).filter(|row| leaf < row.end))
    }

    fn state_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        self.counts("SELECT state, sum(end_leaf - begin_leaf)::BIGINT FROM verdicts GROUP BY state")
    }

    fn unpersisted_leaves(&self) -> Result<Vec<u64>, StorageError> {
        let rows = self.conn().query(
            "SELECT begin_leaf, end_leaf FROM verdicts WHERE state != 'persisted' ORDER BY begin_leaf",
            &[],
        )?;
        let mut leaves = Vec::new();
        for row in &rows {
            leaves.extend(get_u64(row, 0)?..get_u64(row, 1)?);
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
             WHERE v.state != 'persisted' AND l.stream_id = $1 AND l.seq > $2
             ORDER BY l.seq LIMIT $3";
        self.verdicts_where(
            sql,
            &[
                &stream_id,
                &(after_seq as i64),
                &(limit.min(i64::MAX as usize) as i64),
            ],
        )
    }

    fn judged_seq(&self, stream_id: StreamId) -> Result<u64, StorageError> {
        let through = self.judged_through()?;
        let row = self.conn().one(
            "SELECT seq FROM log WHERE stream_id = $1 AND leaf < $2 ORDER BY seq DESC LIMIT 1",
            &[&stream_id, &(through as i64)],
        )?;
        Ok(row.map(|row| get_u64(&row, 0)).transpose()?.unwrap_or(0))
    }

    fn raise_review(&self, row: &ReviewRow) -> Result<Option<u64>, StorageError> {
        let inserted = self.conn().one(
            "INSERT INTO reviews (kind, leaf, node, stream, seq, collection, rule, message, raised_ms, material_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT DO NOTHING RETURNING id",
            &[
                &row.kind,
                &row.leaf.map(|leaf| leaf as i64),
                &row.node,
                &row.stream,
                &row.seq.map(|seq| seq as i64),
                &row.collection,
                &row.rule,
                &row.message,
                &(row.raised_ms as i64),
                &row.material_hash.map(|hash| hash.0.to_vec()),
            ],
        )?;
        inserted.map(|row| get_u64(&row, 0)).transpose()
    }

    fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>, StorageError> {
        self.reviews_where(
            "id > $1 AND (NOT $2 OR closed_ms IS NULL) AND ($3::TEXT IS NULL OR kind = $3)
             ORDER BY id LIMIT $4",
            &[
                &(filter.after_id as i64),
                &filter.open_only,
                &filter.kind,
                &(filter.limit.min(i64::MAX as usize) as i64),
            ],
        )
    }

    fn review(&self, id: u64) -> Result<Option<Review>, StorageError> {
        Ok(self.reviews_where("id = $1", &[&(id as i64)])?.pop())
    }

    fn close_review(&self, id: u64, closure: &Closure) -> Result<bool, StorageError> {
        let changed = self.conn().execute(
            "UPDATE reviews SET closed_ms = $2, closed_by = $3, decision = $4, note = $5, audit_seq = $6
             WHERE id = $1 AND closed_ms IS NULL",
            &[
                &(id as i64),
                &(closure.at_ms as i64),
                &closure.by,
                &closure.decision,
                &closure.note,
                &closure.audit_seq.map(|seq| seq as i64),
            ],
        )?;
        Ok(changed == 1)
    }

    fn open_reviews_of(&self, kind: &str, leaf: u64) -> Result<Vec<u64>, StorageError> {
        Ok(self
            .reviews_where(
                "closed_ms IS NULL AND leaf = $1 AND kind = $2 ORDER BY id",
                &[&(leaf as i64), &kind],
            )?
            .into_iter()
            .map(|review| review.id)
            .collect())
    }

    fn open_review_counts(&self) -> Result<BTreeMap<String, u64>, StorageError> {
        self.counts("SELECT kind, count(*) FROM reviews WHERE closed_ms IS NULL GROUP BY kind")
    }

    fn pack_sources(&self) -> Result<Vec<String>, StorageError> {
        let rows = self
            .conn()
            .query("SELECT source FROM packs ORDER BY name COLLATE \"C\"", &[])?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    fn put_pack(
        &self,
        pack: &cairn_core::pack::RulePack,
        source: &str,
        at_ms: u64,
    ) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO packs (name, version, source, source_hash, activated_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE
             SET version = $2, source = $3, source_hash = $4, activated_ms = $5",
            &[
                &pack.name,
                &pack.version,
                &source,
                &pack.source_hash.to_hex(),
                &(at_ms as i64),
            ],
        )?;
        Ok(())
    }

    fn record_push(&self, attempt: &PushAttempt) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO push_attempts (at_ms, node, stream, accepted, duplicate, quarantined, refused)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &(attempt.at_ms as i64),
                &attempt.node,
                &attempt.stream,
                &(attempt.accepted as i64),
                &(attempt.duplicate as i64),
                &(attempt.quarantined as i64),
                &attempt.refused,
            ],
        )?;
        Ok(())
    }

    fn push_attempts(
        &self,
        after_id: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PushAttempt)>, StorageError> {
        let rows = self.conn().query(
            "SELECT id, at_ms, node, stream, accepted, duplicate, quarantined, refused
             FROM push_attempts WHERE id > $1 ORDER BY id LIMIT $2",
            &[&(after_id as i64), &(limit.min(i64::MAX as usize) as i64)],
        )?;
        rows.iter()
            .map(|row| {
                Ok((
                    get_u64(row, 0)?,
                    PushAttempt {
                        at_ms: get_u64(row, 1)?,
                        node: get(row, 2)?,
                        stream: get(row, 3)?,
                        accepted: get_u64(row, 4)?,
                        duplicate: get_u64(row, 5)?,
                        quarantined: get_u64(row, 6)?,
                        refused: get(row, 7)?,
                    },
                ))
            })
            .collect()
    }

    fn changed_entities(
        &self,
        collection: &str,
        from_leaf: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64, u64)>, StorageError> {
        let rows = self.conn().query(
            "SELECT key, max(leaf), count(*) FROM entity_ops WHERE collection = $1
             GROUP BY key HAVING max(leaf) >= $2 ORDER BY key COLLATE \"C\" LIMIT $3",
            &[
                &collection,
                &(from_leaf as i64),
                &(limit.min(i64::MAX as usize) as i64),
            ],
        )?;
        rows.iter()
            .map(|row| Ok((get(row, 0)?, get_u64(row, 1)?, get_u64(row, 2)?)))
            .collect()
    }

    fn verdicts_from(&self, from: u64, limit: usize) -> Result<Vec<VerdictRow>, StorageError> {
        let sql = format!(
            "SELECT begin_leaf, {VERDICT_COLUMNS} FROM verdicts WHERE begin_leaf >= $1
             ORDER BY begin_leaf LIMIT $2"
        );
        Ok(self
            .verdicts_where(
                &sql,
                &[&(from as i64), &(limit.min(i64::MAX as usize) as i64)],
            )?
            .into_iter()
            .map(|(_, row)| row)
            .collect())
    }
}
