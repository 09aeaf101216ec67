//! Filling a new PostgreSQL hub with another store's rows (`cairn hub
//! migrate`): the tables are made and filled in one transaction, so a
//! migration that fails leaves the database as empty as it found it.
//!
//! Rows come as SQLite hands them (a [`Value`] per column, SQLite's four
//! storage classes) and each is converted to the type its PostgreSQL column
//! takes: integers to BIGINT, INTEGER or BOOLEAN, blobs to BYTEA, text to
//! TEXT. Anything else is refused, naming the table and column.

use crate::{PgBackend, PgTx, conn, schema};
use cairn_hub::StorageError;
use cairn_hub::backend::LogTx;
use std::collections::HashMap;
use tokio_postgres::types::{ToSql, Type};

/// One column's value as the source store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// NULL.
    Null,
    /// An integer.
    Integer(i64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A transaction that creates the hub's tables and fills them.
pub struct Filler<'a> {
    tx: PgTx<'a>,
    /// Per table: its INSERT and its parameters' types.
    inserts: HashMap<String, (String, Vec<Type>)>,
}

impl PgBackend {
    /// Starts filling this empty database: the tables are made inside the
    /// transaction [`Filler::finish`] commits. Refused when the database
    /// already holds a Cairn hub.
    pub fn filler(&self) -> Result<Filler<'_>, StorageError> {
        let tx = cairn_hub::backend::HubBackend::write(self)?;
        crate::refuse_a_hub(&tx)?;
        tx.conn().batch(schema::DDL)?;
        Ok(Filler {
            tx,
            inserts: HashMap::new(),
        })
    }
}

impl Filler<'_> {
    /// Inserts one row of `table`, its values in the order of `columns`.
    pub fn insert(
        &mut self,
        table: &str,
        columns: &[String],
        row: Vec<Value>,
    ) -> Result<(), StorageError> {
        if !schema::TABLES.contains(&table) {
            return Err(StorageError::Internal(format!(
                "{table} is no table of the hub"
            )));
        }
        if !self.inserts.contains_key(table) {
            let names = columns.join(", ");
            let places: Vec<String> = (1..=columns.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "INSERT INTO {table} ({names}) VALUES ({})",
                places.join(", ")
            );
            let types = self.tx.param_types(&sql)?;
            self.inserts.insert(table.to_string(), (sql, types));
        }
        let (sql, types) = &self.inserts[table];
        let values = row
            .into_iter()
            .zip(types)
            .zip(columns)
            .map(|((value, kind), column)| convert(value, kind, table, column))
            .collect::<Result<Vec<_>, _>>()?;
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(|value| value.as_ref()).collect();
        // Deferred: rows go in pipelined bursts, not a round trip each.
        self.tx.conn().defer(sql, &params)?;
        Ok(())
    }

    /// Records the hub's key, moves the id sequences past the rows copied,
    /// and commits.
    pub fn finish(self, hub_key: &[u8; 32]) -> Result<(), StorageError> {
        self.tx.execute(
            "INSERT INTO meta (key, value) VALUES ('hub_key', $1)
             ON CONFLICT (key) DO UPDATE SET value = $1",
            &[&crate::hex(hub_key)],
        )?;
        for table in schema::SERIAL_TABLES {
            self.tx.conn().batch(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) FROM {table}"
            ))?;
        }
        self.tx.commit()
    }
}

/// `value` as column `column` of `table` takes it.
fn convert(
    value: Value,
    kind: &Type,
    table: &str,
    column: &str,
) -> Result<Box<dyn ToSql + Sync>, StorageError> {
    let refuse = |value: &Value| {
        StorageError::Damaged(format!(
            "{table}.{column}: {value:?} does not fit a {kind} column"
        ))
    };
    Ok(match (value, kind) {
        (Value::Null, kind) if *kind == Type::INT8 => Box::new(None::<i64>),
        (Value::Null, kind) if *kind == Type::INT4 => Box::new(None::<i32>),
        (Value::Null, kind) if *kind == Type::BOOL => Box::new(None::<bool>),
        (Value::Null, kind) if *kind == Type::BYTEA => Box::new(None::<Vec<u8>>),
        (Value::Null, kind) if *kind == Type::TEXT => Box::new(None::<String>),
        (Value::Integer(number), kind) if *kind == Type::INT8 => Box::new(number),
        (Value::Integer(number), kind) if *kind == Type::INT4 => {
            let number = i32::try_from(number).map_err(|_| refuse(&Value::Integer(number)))?;
            Box::new(number)
        }
        (Value::Integer(number), kind) if *kind == Type::BOOL => Box::new(number != 0),
        (Value::Blob(bytes), kind) if *kind == Type::BYTEA => Box::new(bytes),
        (Value::Text(text), kind) if *kind == Type::TEXT => Box::new(text),
        (other, _) => return Err(refuse(&other)),
    })
}

/// Rows of each table in the database at `url`, by table (a migration's
/// target is counted after its commit).
pub fn row_counts(backend: &PgBackend) -> Result<Vec<(String, u64)>, StorageError> {
    let tx = cairn_hub::backend::HubBackend::read(backend)?;
    schema::TABLES
        .iter()
        .map(|table| {
            let row = tx
                .conn()
                .one(&format!("SELECT count(*) FROM {table}"), &[])?
                .ok_or_else(|| StorageError::Internal("count gave no row".into()))?;
            Ok((table.to_string(), conn::get_u64(&row, 0)?))
        })
        .collect()
}
