//! The log half of a PostgreSQL transaction: nodes, streams, leaves, the
//! tree, checkpoints, quarantine, alerts and enrollment tokens, statement
//! for statement what the SQLite backend runs.

use crate::PgTx;
use crate::conn::{get, get_opt_u64, get_u64};
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_hub::StorageError;
use cairn_hub::backend::{
    Alert, AlertRow, EnrollToken, FleetReport, LeafRow, LogNote, LogTx, LoggedOp, NoteRow,
    OriginCheckpoint, QuarantineEntry, QuarantineRow, StreamId, StreamRow,
};
use std::collections::BTreeMap;
use tokio_postgres::Row;

/// Granted scopes as stored: a JSON object of label to value.
fn scopes_json(scopes: &BTreeMap<String, String>) -> Result<String, StorageError> {
    serde_json::to_string(scopes).map_err(|error| StorageError::Internal(error.to_string()))
}

fn scopes_of(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<BTreeMap<String, String>, StorageError> {
    serde_json::from_str(text)
        .map_err(|error| StorageError::Damaged(format!("{}: {error}", what())))
}

pub(crate) fn hash_at(
    row: &Row,
    index: usize,
    what: impl FnOnce() -> String,
) -> Result<Hash, StorageError> {
    Hash::from_slice(&get::<Vec<u8>>(row, index)?).ok_or_else(|| StorageError::Damaged(what()))
}

/// A stream row from `(id, head_seq, head_hash, held)` at `at`.
fn stream_row(row: &Row, at: usize, name: &str) -> Result<StreamRow, StorageError> {
    Ok(StreamRow {
        id: get(row, at)?,
        head: StreamHead {
            seq: get_u64(row, at + 1)?,
            hash: hash_at(row, at + 2, || format!("head hash of {name}"))?,
        },
        held: get(row, at + 3)?,
    })
}

fn count(row: Option<Row>) -> Result<u64, StorageError> {
    row.map_or(Ok(0), |row| get_u64(&row, 0))
}

impl LogTx for PgTx<'_> {
    fn node_key(&self, node: &str) -> Result<Option<[u8; 32]>, StorageError> {
        let row = self
            .conn()
            .one("SELECT public_key FROM nodes WHERE node = $1", &[&node])?;
        row.map(|row| {
            get::<Vec<u8>>(&row, 0)?
                .try_into()
                .map_err(|_| StorageError::Damaged(format!("enrolled key of {node}")))
        })
        .transpose()
    }

    fn stream(&self, node: &str, stream: &str) -> Result<Option<StreamRow>, StorageError> {
        let row = self.conn().one(
            "SELECT id, head_seq, head_hash, held FROM streams WHERE node = $1 AND stream = $2",
            &[&node, &stream],
        )?;
        row.map(|row| stream_row(&row, 0, &format!("{node}:{stream}")))
            .transpose()
    }

    fn create_stream(&self, node: &str, stream: &str) -> Result<StreamId, StorageError> {
        let row = self.conn().one(
            "INSERT INTO streams (node, stream, head_seq, head_hash) VALUES ($1, $2, 0, $3) RETURNING id",
            &[&node, &stream, &Hash::ZERO.0.as_slice()],
        )?;
        let row =
            row.ok_or_else(|| StorageError::Internal("INSERT RETURNING gave no row".into()))?;
        get(&row, 0)
    }

    fn set_stream(&self, id: StreamId, head: StreamHead, held: bool) -> Result<(), StorageError> {
        self.conn().defer(
            "UPDATE streams SET head_seq = $1, head_hash = $2, held = $3 WHERE id = $4",
            &[&(head.seq as i64), &head.hash.0.as_slice(), &held, &id],
        )?;
        Ok(())
    }

    fn logged(&self, id: StreamId, seq: u64) -> Result<Option<(u64, Hash)>, StorageError> {
        let row = self.conn().one(
            "SELECT leaf, op_hash FROM log WHERE stream_id = $1 AND seq = $2",
            &[&id, &(seq as i64)],
        )?;
        row.map(|row| {
            let leaf = get_u64(&row, 0)?;
            Ok((leaf, hash_at(&row, 1, || format!("log leaf {leaf}"))?))
        })
        .transpose()
    }

    fn log_size(&self) -> Result<u64, StorageError> {
        let row = self.conn().one("SELECT max(leaf) FROM log", &[])?;
        let last = row
            .map(|row| get::<Option<i64>>(&row, 0))
            .transpose()?
            .flatten();
        Ok(last.map_or(0, |leaf| leaf as u64 + 1))
    }

    fn append(&self, row: &LeafRow<'_>) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO log (leaf, stream_id, seq, op_hash, op, node, scope, received_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &(row.leaf as i64),
                &row.stream_id,
                &(row.op.seq as i64),
                &row.op.op_hash.0.as_slice(),
                &row.bytes,
                &row.op.draft.node,
                &cairn_core::names::scope_text(&row.op.draft.scope),
                &(row.received_ms as i64),
            ],
        )?;
        Ok(())
    }

    fn leaf_hashes(&self, begin: u64, end: u64) -> Result<Vec<Hash>, StorageError> {
        let rows = self.conn().query(
            "SELECT leaf, op_hash FROM log WHERE leaf >= $1 AND leaf < $2 ORDER BY leaf",
            &[&(begin as i64), &(end.min(i64::MAX as u64) as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let leaf = get_u64(row, 0)?;
                hash_at(row, 1, || format!("log leaf {leaf}"))
            })
            .collect()
    }

    fn tree_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StorageError> {
        let row = self.conn().one(
            "SELECT hash FROM tree WHERE level = $1 AND idx = $2",
            &[&(level as i32), &(index as i64)],
        )?;
        row.map(|row| hash_at(&row, 0, || format!("tree node {level}/{index}")))
            .transpose()
    }

    fn put_tree_node(&self, level: u32, index: u64, hash: Hash) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO tree (level, idx, hash) VALUES ($1, $2, $3)",
            &[&(level as i32), &(index as i64), &hash.0.as_slice()],
        )?;
        Ok(())
    }

    fn quarantine(&self, item: &QuarantineRow<'_>) -> Result<bool, StorageError> {
        let added = self.conn().execute(
            "INSERT INTO quarantine (node, stream, seq, material_hash, op, reason, received_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (node, stream, material_hash) DO NOTHING",
            &[
                &item.node,
                &item.stream,
                &item.seq.map(|seq| seq as i64),
                &item.material_hash.0.as_slice(),
                &item.bytes,
                &item.reason,
                &(item.received_ms as i64),
            ],
        )?;
        Ok(added > 0)
    }

    fn alert(&self, alert: &AlertRow<'_>) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO alerts (kind, node, stream, message, created_ms) VALUES ($1, $2, $3, $4, $5)",
            &[&alert.kind, &alert.node, &alert.stream, &alert.message, &(alert.created_ms as i64)],
        )?;
        Ok(())
    }

    fn clock_offset(&self, node: &str) -> Result<Option<i64>, StorageError> {
        let row = self.conn().one(
            "SELECT clock_offset_ms FROM nodes WHERE node = $1",
            &[&node],
        )?;
        Ok(row
            .map(|row| get::<Option<i64>>(&row, 0))
            .transpose()?
            .flatten())
    }

    fn set_clock(&self, node: &str, pushed_ms: u64, offset_ms: i64) -> Result<(), StorageError> {
        self.conn().defer(
            "UPDATE nodes SET pushed_ms = $1, clock_offset_ms = $2 WHERE node = $3",
            &[&(pushed_ms as i64), &offset_ms, &node],
        )?;
        Ok(())
    }

    fn keep_origin_checkpoint(
        &self,
        id: StreamId,
        checkpoint: &Checkpoint,
        public_key: &[u8; 32],
    ) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO origin_checkpoints (stream_id, seq, signature, public_key) VALUES ($1, $2, $3, $4)",
            &[&id, &(checkpoint.seq as i64), &checkpoint.signature.as_slice(), &public_key.as_slice()],
        )?;
        Ok(())
    }

    fn log_note(&self, size: u64) -> Result<Option<String>, StorageError> {
        let row = self.conn().one(
            "SELECT note FROM log_checkpoints WHERE size = $1",
            &[&(size as i64)],
        )?;
        row.map(|row| get(&row, 0)).transpose()
    }

    fn put_log_note(&self, note: &NoteRow<'_>) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO log_checkpoints (size, root, note, created_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (size) DO NOTHING",
            &[&(note.size as i64), &note.root.0.as_slice(), &note.note, &(note.created_ms as i64)],
        )?;
        Ok(())
    }

    fn log_notes(&self, below: u64, limit: usize) -> Result<Vec<LogNote>, StorageError> {
        let rows = self.conn().query(
            "SELECT size, root, note, created_ms FROM log_checkpoints WHERE size < $1 ORDER BY size DESC LIMIT $2",
            &[&(below.min(i64::MAX as u64) as i64), &(limit as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let size = get_u64(row, 0)?;
                Ok(LogNote {
                    size,
                    root: hash_at(row, 1, || format!("root of log checkpoint {size}"))?,
                    note: get(row, 2)?,
                    created_ms: get_u64(row, 3)?,
                })
            })
            .collect()
    }

    fn grants(&self, node: &str) -> Result<Option<BTreeMap<String, String>>, StorageError> {
        let row = self
            .conn()
            .one("SELECT scopes FROM nodes WHERE node = $1", &[&node])?;
        row.map(|row| scopes_of(&get::<String>(&row, 0)?, || format!("scopes of {node}")))
            .transpose()
    }

    fn leaves(&self, from: u64, to: u64, limit: usize) -> Result<Vec<LoggedOp>, StorageError> {
        let rows = self.conn().query(
            "SELECT leaf, stream_id, seq, node, scope, op, received_ms, op_hash FROM log
             WHERE leaf >= $1 AND leaf < $2 ORDER BY leaf LIMIT $3",
            &[
                &(from as i64),
                &(to.min(i64::MAX as u64) as i64),
                &(limit.min(i64::MAX as usize) as i64),
            ],
        )?;
        rows.iter()
            .map(|row| {
                let leaf = get_u64(row, 0)?;
                Ok(LoggedOp {
                    leaf,
                    stream_id: get(row, 1)?,
                    seq: get_u64(row, 2)?,
                    node: get(row, 3)?,
                    scope: get(row, 4)?,
                    bytes: get(row, 5)?,
                    received_ms: get_u64(row, 6)?,
                    op_hash: hash_at(row, 7, || format!("log leaf {leaf}"))?,
                })
            })
            .collect()
    }

    fn stream_ops(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let rows = self.conn().query(
            "SELECT seq, op FROM log WHERE stream_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq",
            &[&id, &(from as i64), &(to.min(i64::MAX as u64) as i64)],
        )?;
        rows.iter()
            .map(|row| Ok((get_u64(row, 0)?, get(row, 1)?)))
            .collect()
    }

    fn stream_name(&self, id: StreamId) -> Result<Option<(String, String)>, StorageError> {
        let row = self
            .conn()
            .one("SELECT node, stream FROM streams WHERE id = $1", &[&id])?;
        row.map(|row| Ok((get(&row, 0)?, get(&row, 1)?)))
            .transpose()
    }

    fn checkpoint_covering(&self, id: StreamId, seq: u64) -> Result<Option<u64>, StorageError> {
        let row = self.conn().one(
            "SELECT seq FROM origin_checkpoints WHERE stream_id = $1 AND seq >= $2 ORDER BY seq LIMIT 1",
            &[&id, &(seq as i64)],
        )?;
        row.map(|row| get_u64(&row, 0)).transpose()
    }

    fn origin_checkpoints_of(
        &self,
        id: StreamId,
    ) -> Result<Vec<(u64, Option<OriginCheckpoint>)>, StorageError> {
        let rows = self.conn().query(
            "SELECT c.seq, c.signature, c.public_key, l.op_hash FROM origin_checkpoints c
             LEFT JOIN log l ON l.stream_id = c.stream_id AND l.seq = c.seq
             WHERE c.stream_id = $1 ORDER BY c.seq",
            &[&id],
        )?;
        rows.iter()
            .map(|row| {
                let head: Option<Vec<u8>> = get(row, 3)?;
                Ok((
                    get_u64(row, 0)?,
                    cairn_hub::backend::origin_checkpoint_of(
                        &get::<Vec<u8>>(row, 1)?,
                        &get::<Vec<u8>>(row, 2)?,
                        head.as_deref(),
                    ),
                ))
            })
            .collect()
    }

    fn origin_checkpoint(
        &self,
        id: StreamId,
        seq: u64,
    ) -> Result<Option<OriginCheckpoint>, StorageError> {
        let row = self.conn().one(
            "SELECT c.signature, c.public_key, l.op_hash FROM origin_checkpoints c
             JOIN log l ON l.stream_id = c.stream_id AND l.seq = c.seq
             WHERE c.stream_id = $1 AND c.seq = $2",
            &[&id, &(seq as i64)],
        )?;
        row.map(|row| {
            cairn_hub::backend::origin_checkpoint_of(
                &get::<Vec<u8>>(&row, 0)?,
                &get::<Vec<u8>>(&row, 1)?,
                Some(&get::<Vec<u8>>(&row, 2)?),
            )
            .ok_or_else(|| StorageError::Damaged(format!("origin checkpoint {id}/{seq}")))
        })
        .transpose()
    }

    fn enrollment_act(
        &self,
        node: &str,
        public_key: &[u8; 32],
    ) -> Result<Option<u64>, StorageError> {
        let row = self.conn().one(
            "SELECT audit_seq FROM node_keys WHERE node = $1 AND public_key = $2",
            &[&node, &public_key.as_slice()],
        )?;
        row.map(|row| get_u64(&row, 0)).transpose()
    }

    fn put_node(
        &self,
        node: &str,
        public_key: &[u8; 32],
        scopes: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO nodes (node, public_key, scopes, enrolled_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node) DO UPDATE SET public_key = $2, scopes = $3",
            &[
                &node,
                &public_key.as_slice(),
                &scopes_json(scopes)?,
                &(now_ms as i64),
            ],
        )?;
        Ok(())
    }

    fn set_grants(
        &self,
        node: &str,
        scopes: &BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        self.conn().defer(
            "UPDATE nodes SET scopes = $1 WHERE node = $2",
            &[&scopes_json(scopes)?, &node],
        )?;
        Ok(())
    }

    fn keep_node_key(
        &self,
        node: &str,
        public_key: &[u8; 32],
        audit_seq: u64,
    ) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO node_keys (node, public_key, audit_seq) VALUES ($1, $2, $3)
             ON CONFLICT (node, public_key) DO UPDATE SET audit_seq = $3",
            &[&node, &public_key.as_slice(), &(audit_seq as i64)],
        )?;
        Ok(())
    }

    fn void_tokens(&self, node: &str, now_ms: u64) -> Result<u64, StorageError> {
        self.conn().execute(
            "UPDATE enrollments SET revoked_ms = $1
             WHERE node = $2 AND used_ms IS NULL AND revoked_ms IS NULL",
            &[&(now_ms as i64), &node],
        )
    }

    fn put_token(&self, token_hash: &Hash, token: &EnrollToken) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO enrollments (token_hash, node, scopes, expires_ms, rekey) VALUES ($1, $2, $3, $4, $5)",
            &[
                &token_hash.0.as_slice(),
                &token.node,
                &scopes_json(&token.scopes)?,
                &(token.expires_ms as i64),
                &token.rekey,
            ],
        )?;
        Ok(())
    }

    fn token(&self, token_hash: &Hash) -> Result<Option<EnrollToken>, StorageError> {
        let row = self.conn().one(
            "SELECT node, scopes, expires_ms, used_ms, rekey, revoked_ms FROM enrollments WHERE token_hash = $1",
            &[&token_hash.0.as_slice()],
        )?;
        row.map(|row| {
            let node: String = get(&row, 0)?;
            Ok(EnrollToken {
                scopes: scopes_of(&get::<String>(&row, 1)?, || {
                    format!("scopes of a token for {node}")
                })?,
                node,
                expires_ms: get_u64(&row, 2)?,
                used_ms: get_opt_u64(&row, 3)?,
                rekey: get(&row, 4)?,
                revoked_ms: get_opt_u64(&row, 5)?,
            })
        })
        .transpose()
    }

    fn use_token(&self, token_hash: &Hash, now_ms: u64) -> Result<(), StorageError> {
        self.conn().defer(
            "UPDATE enrollments SET used_ms = $1 WHERE token_hash = $2",
            &[&(now_ms as i64), &token_hash.0.as_slice()],
        )?;
        Ok(())
    }

    fn quarantined_count(&self, node: &str, stream: &str) -> Result<u64, StorageError> {
        count(self.conn().one(
            "SELECT count(*) FROM quarantine WHERE node = $1 AND stream = $2",
            &[&node, &stream],
        )?)
    }

    fn streams_of(&self, node: &str) -> Result<Vec<(String, StreamRow)>, StorageError> {
        let rows = self.conn().query(
            "SELECT stream, id, head_seq, head_hash, held FROM streams WHERE node = $1 ORDER BY stream",
            &[&node],
        )?;
        rows.iter()
            .map(|row| {
                let stream: String = get(row, 0)?;
                let parsed = stream_row(row, 1, &format!("{node}:{stream}"))?;
                Ok((stream, parsed))
            })
            .collect()
    }

    fn node_count(&self) -> Result<u64, StorageError> {
        count(self.conn().one("SELECT count(*) FROM nodes", &[])?)
    }

    fn quarantine_count(&self) -> Result<u64, StorageError> {
        count(self.conn().one("SELECT count(*) FROM quarantine", &[])?)
    }

    fn streams(&self) -> Result<Vec<(String, String, StreamRow)>, StorageError> {
        // Sorted by byte, as SQLite sorts text: both backends answer alike.
        let rows = self.conn().query(
            "SELECT node, stream, id, head_seq, head_hash, held FROM streams
             ORDER BY node COLLATE \"C\", stream COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let (node, stream): (String, String) = (get(row, 0)?, get(row, 1)?);
                let parsed = stream_row(row, 2, &format!("{node}:{stream}"))?;
                Ok((node, stream, parsed))
            })
            .collect()
    }

    fn alerts(&self) -> Result<Vec<Alert>, StorageError> {
        let rows = self.conn().query(
            "SELECT kind, node, stream, message FROM alerts ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(Alert {
                    kind: get(row, 0)?,
                    node: get(row, 1)?,
                    stream: get(row, 2)?,
                    message: get(row, 3)?,
                })
            })
            .collect()
    }

    fn clocks(&self) -> Result<Vec<(String, u64, i64)>, StorageError> {
        let rows = self.conn().query(
            "SELECT node, pushed_ms, clock_offset_ms FROM nodes
             WHERE clock_offset_ms IS NOT NULL ORDER BY node COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|row| Ok((get(row, 0)?, get_u64(row, 1)?, get(row, 2)?)))
            .collect()
    }

    fn recent_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StorageError> {
        let rows = self.conn().query(
            "SELECT node, stream, seq, material_hash, reason, received_ms FROM quarantine
             ORDER BY id DESC LIMIT $1",
            &[&(limit.min(i64::MAX as usize) as i64)],
        )?;
        rows.iter()
            .map(|row| {
                let (node, stream): (String, String) = (get(row, 0)?, get(row, 1)?);
                Ok(QuarantineEntry {
                    material_hash: hash_at(row, 3, || {
                        format!("quarantine item of {node}:{stream}")
                    })?,
                    node,
                    stream,
                    seq: get_opt_u64(row, 2)?,
                    reason: get(row, 4)?,
                    received_ms: get_u64(row, 5)?,
                })
            })
            .collect()
    }

    fn quarantined_material(
        &self,
        node: &str,
        stream: &str,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let row = self.conn().one(
            "SELECT op FROM quarantine WHERE node = $1 AND stream = $2 AND material_hash = $3",
            &[&node, &stream, &hash.0.as_slice()],
        )?;
        row.map(|row| get(&row, 0)).transpose()
    }

    fn put_fleet_report(&self, report: &FleetReport) -> Result<(), StorageError> {
        self.conn().defer(
            "INSERT INTO fleet_reports (name, kind, status, received_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name, kind) DO UPDATE SET status = excluded.status, received_ms = excluded.received_ms
             WHERE fleet_reports.received_ms < excluded.received_ms",
            &[&report.name, &report.kind, &report.status, &(report.received_ms as i64)],
        )
    }

    fn fleet_reports(&self) -> Result<Vec<FleetReport>, StorageError> {
        let rows = self.conn().query(
            "SELECT name, kind, status, received_ms FROM fleet_reports
             ORDER BY name COLLATE \"C\", kind COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(FleetReport {
                    name: get(row, 0)?,
                    kind: get(row, 1)?,
                    status: get(row, 2)?,
                    received_ms: get_u64(row, 3)?,
                })
            })
            .collect()
    }

    fn savepoint(&self) -> Result<(), StorageError> {
        self.conn().defer("SAVEPOINT push", &[])
    }

    fn release_savepoint(&self) -> Result<(), StorageError> {
        self.conn().defer("RELEASE SAVEPOINT push", &[])
    }

    fn rollback_savepoint(&self) -> Result<(), StorageError> {
        self.conn()
            .batch("ROLLBACK TO SAVEPOINT push; RELEASE SAVEPOINT push")
    }

    fn commit(mut self) -> Result<(), StorageError> {
        if self.open {
            // Marked closed first: a commit that fails is not rolled back
            // by the drop on a connection whose state is unknown; the
            // server ends the transaction itself.
            self.open = false;
            let committed = self
                .conn()
                .defer("COMMIT", &[])
                .and_then(|()| self.conn().flush());
            if let Err(error) = committed {
                self.slot.conn = None;
                return Err(error);
            }
        }
        Ok(())
    }
}
