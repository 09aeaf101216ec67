//! The log half of a SQLite transaction: every read and write of
//! [`LogTx`] (nodes, streams, leaves, the tree, checkpoints, quarantine,
//! alerts, enrollment tokens) in SQL.

use super::SqlTx;
use cairn_core::chain::StreamHead;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_hub::StorageError;
use cairn_hub::backend::{
    Alert, AlertRow, EnrollToken, FleetReport, LeafRow, LogNote, LogTx, LoggedOp, NoteRow,
    OriginCheckpoint, QuarantineEntry, QuarantineRow, StreamId, StreamRow,
};
use cairn_sqlite::sqlite_fault as fault;
use rusqlite::params;
use std::collections::BTreeMap;

/// Granted scopes as stored: a JSON object of label to value.
fn scopes_json(scopes: &BTreeMap<String, String>) -> Result<String, StorageError> {
    serde_json::to_string(scopes).map_err(|error| StorageError::Internal(error.to_string()))
}

fn hash_of(bytes: &[u8], what: impl FnOnce() -> String) -> Result<Hash, StorageError> {
    Hash::from_slice(bytes).ok_or_else(|| StorageError::Damaged(what()))
}

impl LogTx for SqlTx<'_> {
    fn node_key(&self, node: &str) -> Result<Option<[u8; 32]>, StorageError> {
        let key: Option<Vec<u8>> = self.one(
            "SELECT public_key FROM nodes WHERE node = ?1",
            [node],
            |row| row.get(0),
        )?;
        key.map(|key| {
            key.try_into()
                .map_err(|_| StorageError::Damaged(format!("enrolled key of {node}")))
        })
        .transpose()
    }

    fn stream(&self, node: &str, stream: &str) -> Result<Option<StreamRow>, StorageError> {
        let row: Option<(i64, i64, Vec<u8>, bool)> = self.one(
            "SELECT id, head_seq, head_hash, held FROM streams WHERE node = ?1 AND stream = ?2",
            params![node, stream],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )?;
        row.map(|(id, seq, hash, held)| {
            Ok(StreamRow {
                id,
                head: StreamHead {
                    seq: seq as u64,
                    hash: hash_of(&hash, || format!("head hash of {node}:{stream}"))?,
                },
                held,
            })
        })
        .transpose()
    }

    fn create_stream(&self, node: &str, stream: &str) -> Result<StreamId, StorageError> {
        self.run(
            "INSERT INTO streams (node, stream, head_seq, head_hash) VALUES (?1, ?2, 0, ?3)",
            params![node, stream, Hash::ZERO.0.as_slice()],
        )?;
        Ok(self.conn().last_insert_rowid())
    }

    fn set_stream(&self, id: StreamId, head: StreamHead, held: bool) -> Result<(), StorageError> {
        self.run(
            "UPDATE streams SET head_seq = ?1, head_hash = ?2, held = ?3 WHERE id = ?4",
            params![head.seq as i64, head.hash.0.as_slice(), held, id],
        )?;
        Ok(())
    }

    fn logged(&self, id: StreamId, seq: u64) -> Result<Option<(u64, Hash)>, StorageError> {
        let row: Option<(i64, Vec<u8>)> = self.one(
            "SELECT leaf, op_hash FROM log WHERE stream_id = ?1 AND seq = ?2",
            params![id, seq as i64],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        row.map(|(leaf, hash)| Ok((leaf as u64, hash_of(&hash, || format!("log leaf {leaf}"))?)))
            .transpose()
    }

    /// Leaves are numbered densely from 0, so this is the largest rowid
    /// plus one: one b-tree descent, where `count(*)` reads every row (it
    /// made each push slower as the log grew).
    fn log_size(&self) -> Result<u64, StorageError> {
        let last: Option<i64> = self
            .one("SELECT max(leaf) FROM log", [], |row| row.get(0))?
            .flatten();
        Ok(last.map_or(0, |leaf| leaf as u64 + 1))
    }

    fn append(&self, row: &LeafRow<'_>) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO log (leaf, stream_id, seq, op_hash, op, node, scope, received_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                row.leaf as i64,
                row.stream_id,
                row.op.seq as i64,
                row.op.op_hash.0.as_slice(),
                row.bytes,
                row.op.draft.node,
                cairn_sqlite::scope_text(&row.op.draft.scope),
                row.received_ms as i64
            ],
        )?;
        Ok(())
    }

    fn leaf_hashes(&self, begin: u64, end: u64) -> Result<Vec<Hash>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT leaf, op_hash FROM log WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map(params![begin as i64, end as i64], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .map_err(fault)?;
        let mut hashes = Vec::new();
        for row in rows {
            let (leaf, hash) = row.map_err(fault)?;
            hashes.push(hash_of(&hash, || format!("log leaf {leaf}"))?);
        }
        Ok(hashes)
    }

    fn tree_node(&self, level: u32, index: u64) -> Result<Option<Hash>, StorageError> {
        let hash: Option<Vec<u8>> = self.one(
            "SELECT hash FROM tree WHERE level = ?1 AND idx = ?2",
            params![level, index as i64],
            |row| row.get(0),
        )?;
        hash.map(|hash| hash_of(&hash, || format!("tree node {level}/{index}")))
            .transpose()
    }

    fn put_tree_node(&self, level: u32, index: u64, hash: Hash) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO tree (level, idx, hash) VALUES (?1, ?2, ?3)",
            params![level, index as i64, hash.0.as_slice()],
        )?;
        Ok(())
    }

    fn quarantine(&self, item: &QuarantineRow<'_>) -> Result<bool, StorageError> {
        let added = self.run(
            "INSERT INTO quarantine (node, stream, seq, material_hash, op, reason, received_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (node, stream, material_hash) DO NOTHING",
            params![
                item.node,
                item.stream,
                item.seq.map(|seq| seq as i64),
                item.material_hash.0.as_slice(),
                item.bytes,
                item.reason,
                item.received_ms as i64
            ],
        )?;
        Ok(added > 0)
    }

    fn alert(&self, alert: &AlertRow<'_>) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO alerts (kind, node, stream, message, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                alert.kind,
                alert.node,
                alert.stream,
                alert.message,
                alert.created_ms as i64
            ],
        )?;
        Ok(())
    }

    fn clock_offset(&self, node: &str) -> Result<Option<i64>, StorageError> {
        Ok(self
            .one(
                "SELECT clock_offset_ms FROM nodes WHERE node = ?1",
                [node],
                |row| row.get::<_, Option<i64>>(0),
            )?
            .flatten())
    }

    fn set_clock(&self, node: &str, pushed_ms: u64, offset_ms: i64) -> Result<(), StorageError> {
        self.run(
            "UPDATE nodes SET pushed_ms = ?1, clock_offset_ms = ?2 WHERE node = ?3",
            params![pushed_ms as i64, offset_ms, node],
        )?;
        Ok(())
    }

    fn keep_origin_checkpoint(
        &self,
        id: StreamId,
        checkpoint: &Checkpoint,
        public_key: &[u8; 32],
    ) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO origin_checkpoints (stream_id, seq, signature, public_key) VALUES (?1, ?2, ?3, ?4)",
            params![
                id,
                checkpoint.seq as i64,
                checkpoint.signature.as_slice(),
                public_key.as_slice()
            ],
        )?;
        Ok(())
    }

    fn log_note(&self, size: u64) -> Result<Option<String>, StorageError> {
        self.one(
            "SELECT note FROM log_checkpoints WHERE size = ?1",
            [size as i64],
            |row| row.get(0),
        )
    }

    fn put_log_note(&self, note: &NoteRow<'_>) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO log_checkpoints (size, root, note, created_ms) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (size) DO NOTHING",
            params![
                note.size as i64,
                note.root.0.as_slice(),
                note.note,
                note.created_ms as i64
            ],
        )?;
        Ok(())
    }

    fn grants(&self, node: &str) -> Result<Option<BTreeMap<String, String>>, StorageError> {
        let scopes: Option<String> =
            self.one("SELECT scopes FROM nodes WHERE node = ?1", [node], |row| {
                row.get(0)
            })?;
        scopes
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|error| StorageError::Damaged(format!("scopes of {node}: {error}")))
            })
            .transpose()
    }

    fn leaves(&self, from: u64, to: u64, limit: usize) -> Result<Vec<LoggedOp>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT leaf, stream_id, seq, node, scope, op, received_ms, op_hash FROM log
                 WHERE leaf >= ?1 AND leaf < ?2 ORDER BY leaf LIMIT ?3",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map(params![from as i64, to as i64, limit as i64], |row| {
                Ok((
                    LoggedOp {
                        leaf: row.get::<_, i64>(0)? as u64,
                        stream_id: row.get(1)?,
                        seq: row.get::<_, i64>(2)? as u64,
                        node: row.get(3)?,
                        scope: row.get(4)?,
                        bytes: row.get(5)?,
                        op_hash: Hash::ZERO,
                        received_ms: row.get::<_, i64>(6)? as u64,
                    },
                    row.get::<_, Vec<u8>>(7)?,
                ))
            })
            .map_err(fault)?;
        let mut leaves = Vec::new();
        for row in rows {
            let (mut logged, hash) = row.map_err(fault)?;
            logged.op_hash = hash_of(&hash, || format!("log leaf {}", logged.leaf))?;
            leaves.push(logged);
        }
        Ok(leaves)
    }

    fn log_notes(&self, below: u64, limit: usize) -> Result<Vec<LogNote>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT size, root, note, created_ms FROM log_checkpoints
                 WHERE size < ?1 ORDER BY size DESC LIMIT ?2",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map(
                params![below.min(i64::MAX as u64) as i64, limit as i64],
                |row| {
                    Ok((
                        row.get::<_, i64>(0)? as u64,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)? as u64,
                    ))
                },
            )
            .map_err(fault)?;
        let mut notes = Vec::new();
        for row in rows {
            let (size, root, note, created_ms) = row.map_err(fault)?;
            let root = hash_of(&root, || format!("root of log checkpoint {size}"))?;
            notes.push(LogNote {
                size,
                root,
                note,
                created_ms,
            });
        }
        Ok(notes)
    }

    fn origin_checkpoints_of(
        &self,
        id: StreamId,
    ) -> Result<Vec<(u64, Option<OriginCheckpoint>)>, StorageError> {
        type Row = (i64, Vec<u8>, Vec<u8>, Option<Vec<u8>>);
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT c.seq, c.signature, c.public_key, l.op_hash FROM origin_checkpoints c
                 LEFT JOIN log l ON l.stream_id = c.stream_id AND l.seq = c.seq
                 WHERE c.stream_id = ?1 ORDER BY c.seq",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([id], |row| -> rusqlite::Result<Row> {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .map_err(fault)?;
        let mut checkpoints = Vec::new();
        for row in rows {
            let (seq, signature, public_key, head) = row.map_err(fault)?;
            checkpoints.push((
                seq as u64,
                cairn_hub::backend::origin_checkpoint_of(&signature, &public_key, head.as_deref()),
            ));
        }
        Ok(checkpoints)
    }

    fn stream_ops(
        &self,
        id: StreamId,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT seq, op FROM log WHERE stream_id = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map(params![id, from as i64, to as i64], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn stream_name(&self, id: StreamId) -> Result<Option<(String, String)>, StorageError> {
        self.one(
            "SELECT node, stream FROM streams WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    fn checkpoint_covering(&self, id: StreamId, seq: u64) -> Result<Option<u64>, StorageError> {
        let seq: Option<i64> = self.one(
            "SELECT seq FROM origin_checkpoints WHERE stream_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
            params![id, seq as i64],
            |row| row.get(0),
        )?;
        Ok(seq.map(|seq| seq as u64))
    }

    fn origin_checkpoint(
        &self,
        id: StreamId,
        seq: u64,
    ) -> Result<Option<OriginCheckpoint>, StorageError> {
        let row: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = self.one(
            "SELECT c.signature, c.public_key, l.op_hash FROM origin_checkpoints c
             JOIN log l ON l.stream_id = c.stream_id AND l.seq = c.seq
             WHERE c.stream_id = ?1 AND c.seq = ?2",
            params![id, seq as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        row.map(|(signature, public_key, head)| {
            let damaged = || StorageError::Damaged(format!("origin checkpoint {id}/{seq}"));
            Ok(OriginCheckpoint {
                signature: signature.try_into().map_err(|_| damaged())?,
                public_key: public_key.try_into().map_err(|_| damaged())?,
                head: hash_of(&head, || format!("origin checkpoint {id}/{seq}"))?,
            })
        })
        .transpose()
    }

    fn enrollment_act(
        &self,
        node: &str,
        public_key: &[u8; 32],
    ) -> Result<Option<u64>, StorageError> {
        let seq: Option<i64> = self.one(
            "SELECT audit_seq FROM node_keys WHERE node = ?1 AND public_key = ?2",
            params![node, public_key.as_slice()],
            |row| row.get(0),
        )?;
        Ok(seq.map(|seq| seq as u64))
    }

    fn put_node(
        &self,
        node: &str,
        public_key: &[u8; 32],
        scopes: &BTreeMap<String, String>,
        now_ms: u64,
    ) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO nodes (node, public_key, scopes, enrolled_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (node) DO UPDATE SET public_key = ?2, scopes = ?3",
            params![
                node,
                public_key.as_slice(),
                scopes_json(scopes)?,
                now_ms as i64
            ],
        )?;
        Ok(())
    }

    fn set_grants(
        &self,
        node: &str,
        scopes: &BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        self.run(
            "UPDATE nodes SET scopes = ?1 WHERE node = ?2",
            params![scopes_json(scopes)?, node],
        )?;
        Ok(())
    }

    fn keep_node_key(
        &self,
        node: &str,
        public_key: &[u8; 32],
        audit_seq: u64,
    ) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO node_keys (node, public_key, audit_seq) VALUES (?1, ?2, ?3)
             ON CONFLICT (node, public_key) DO UPDATE SET audit_seq = ?3",
            params![node, public_key.as_slice(), audit_seq as i64],
        )?;
        Ok(())
    }

    fn void_tokens(&self, node: &str, now_ms: u64) -> Result<u64, StorageError> {
        let voided = self.run(
            "UPDATE enrollments SET revoked_ms = ?1
             WHERE node = ?2 AND used_ms IS NULL AND revoked_ms IS NULL",
            params![now_ms as i64, node],
        )?;
        Ok(voided as u64)
    }

    fn put_token(&self, token_hash: &Hash, token: &EnrollToken) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO enrollments (token_hash, node, scopes, expires_ms, rekey) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token_hash.0.as_slice(),
                token.node,
                scopes_json(&token.scopes)?,
                token.expires_ms as i64,
                token.rekey
            ],
        )?;
        Ok(())
    }

    fn token(&self, token_hash: &Hash) -> Result<Option<EnrollToken>, StorageError> {
        type Row = (String, String, i64, Option<i64>, bool, Option<i64>);
        let row: Option<Row> = self.one(
            "SELECT node, scopes, expires_ms, used_ms, rekey, revoked_ms FROM enrollments WHERE token_hash = ?1",
            [token_hash.0.as_slice()],
            |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            },
        )?;
        row.map(|(node, scopes, expires_ms, used_ms, rekey, revoked_ms)| {
            let scopes = serde_json::from_str(&scopes).map_err(|error| {
                StorageError::Damaged(format!("scopes of a token for {node}: {error}"))
            })?;
            Ok(EnrollToken {
                node,
                scopes,
                expires_ms: expires_ms as u64,
                used_ms: used_ms.map(|ms| ms as u64),
                rekey,
                revoked_ms: revoked_ms.map(|ms| ms as u64),
            })
        })
        .transpose()
    }

    fn use_token(&self, token_hash: &Hash, now_ms: u64) -> Result<(), StorageError> {
        self.run(
            "UPDATE enrollments SET used_ms = ?1 WHERE token_hash = ?2",
            params![now_ms as i64, token_hash.0.as_slice()],
        )?;
        Ok(())
    }

    fn quarantined_count(&self, node: &str, stream: &str) -> Result<u64, StorageError> {
        let count: Option<i64> = self.one(
            "SELECT count(*) FROM quarantine WHERE node = ?1 AND stream = ?2",
            params![node, stream],
            |row| row.get(0),
        )?;
        Ok(count.unwrap_or(0) as u64)
    }

    fn streams_of(&self, node: &str) -> Result<Vec<(String, StreamRow)>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT stream, id, head_seq, head_hash, held FROM streams WHERE node = ?1 ORDER BY stream",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([node], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, bool>(4)?,
                ))
            })
            .map_err(fault)?;
        let mut streams = Vec::new();
        for row in rows {
            let (stream, id, seq, hash, held) = row.map_err(fault)?;
            let head = StreamHead {
                seq: seq as u64,
                hash: hash_of(&hash, || format!("head hash of {node}:{stream}"))?,
            };
            streams.push((stream, StreamRow { id, head, held }));
        }
        Ok(streams)
    }

    fn node_count(&self) -> Result<u64, StorageError> {
        let count: Option<i64> = self.one("SELECT count(*) FROM nodes", [], |row| row.get(0))?;
        Ok(count.unwrap_or(0) as u64)
    }

    fn quarantine_count(&self) -> Result<u64, StorageError> {
        let count: Option<i64> =
            self.one("SELECT count(*) FROM quarantine", [], |row| row.get(0))?;
        Ok(count.unwrap_or(0) as u64)
    }

    fn streams(&self) -> Result<Vec<(String, String, StreamRow)>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT node, stream, id, head_seq, head_hash, held FROM streams ORDER BY node, stream",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, bool>(5)?,
                ))
            })
            .map_err(fault)?;
        let mut streams = Vec::new();
        for row in rows {
            let (node, stream, id, seq, hash, held) = row.map_err(fault)?;
            let head = StreamHead {
                seq: seq as u64,
                hash: hash_of(&hash, || format!("head hash of {node}:{stream}"))?,
            };
            streams.push((node, stream, StreamRow { id, head, held }));
        }
        Ok(streams)
    }

    fn alerts(&self) -> Result<Vec<Alert>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached("SELECT kind, node, stream, message FROM alerts ORDER BY id")
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok(Alert {
                    kind: row.get(0)?,
                    node: row.get(1)?,
                    stream: row.get(2)?,
                    message: row.get(3)?,
                })
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn clocks(&self) -> Result<Vec<(String, u64, i64)>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT node, pushed_ms, clock_offset_ms FROM nodes
                 WHERE clock_offset_ms IS NOT NULL ORDER BY node",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok((row.get(0)?, row.get::<_, i64>(1)? as u64, row.get(2)?))
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn quarantined_material(
        &self,
        node: &str,
        stream: &str,
        hash: &Hash,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.one(
            "SELECT op FROM quarantine WHERE node = ?1 AND stream = ?2 AND material_hash = ?3",
            params![node, stream, hash.0.as_slice()],
            |row| row.get(0),
        )
    }

    fn recent_quarantine(&self, limit: usize) -> Result<Vec<QuarantineEntry>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT node, stream, seq, material_hash, reason, received_ms FROM quarantine
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([limit as i64], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<i64>>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                ))
            })
            .map_err(fault)?;
        let mut items = Vec::new();
        for row in rows {
            let (node, stream, seq, hash, reason, received_ms) = row.map_err(fault)?;
            items.push(QuarantineEntry {
                material_hash: hash_of(&hash, || format!("quarantine item of {node}:{stream}"))?,
                node,
                stream,
                seq: seq.map(|seq| seq as u64),
                reason,
                received_ms: received_ms as u64,
            });
        }
        Ok(items)
    }

    fn put_fleet_report(&self, report: &FleetReport) -> Result<(), StorageError> {
        self.run(
            "INSERT INTO fleet_reports (name, kind, status, received_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name, kind) DO UPDATE SET status = excluded.status, received_ms = excluded.received_ms
             WHERE fleet_reports.received_ms < excluded.received_ms",
            params![
                report.name,
                report.kind,
                report.status,
                report.received_ms as i64
            ],
        )?;
        Ok(())
    }

    fn fleet_reports(&self) -> Result<Vec<FleetReport>, StorageError> {
        let mut statement = self
            .conn()
            .prepare_cached(
                "SELECT name, kind, status, received_ms FROM fleet_reports ORDER BY name, kind",
            )
            .map_err(fault)?;
        let rows = statement
            .query_map([], |row| {
                Ok(FleetReport {
                    name: row.get(0)?,
                    kind: row.get(1)?,
                    status: row.get(2)?,
                    received_ms: row.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(fault)?;
        rows.collect::<Result<_, _>>().map_err(fault)
    }

    fn savepoint(&self) -> Result<(), StorageError> {
        self.run("SAVEPOINT push", []).map(drop)
    }

    fn release_savepoint(&self) -> Result<(), StorageError> {
        self.run("RELEASE push", []).map(drop)
    }

    fn rollback_savepoint(&self) -> Result<(), StorageError> {
        self.conn()
            .execute_batch("ROLLBACK TO push; RELEASE push")
            .map_err(fault)
    }

    fn commit(mut self) -> Result<(), StorageError> {
        if self.open {
            self.conn().execute_batch("COMMIT").map_err(fault)?;
            self.open = false;
        }
        Ok(())
    }
}
