//! Connections to PostgreSQL, driven from synchronous code.
//!
//! The hub's backend seam is synchronous (the writer thread, the judge and
//! blocking handlers call it), and tokio-postgres is asynchronous. The
//! `postgres` crate bridges the two by blocking on a runtime of its own in
//! every call, which panics when the caller is a thread of another tokio
//! runtime (the HTTP server's). So, written here: each connection's I/O task
//! runs on one small runtime thread the backend owns ([`Driver`]), and a
//! caller waits for a query's answer with `futures_executor::block_on`,
//! which needs no runtime and works from any thread.
//!
//! Statements whose answer nobody reads (a leaf, tree nodes, a verdict,
//! `BEGIN`, a savepoint) are deferred: each is checked and encoded at once,
//! kept, and sent with the others and the next read, in order, in one
//! pipelined burst ([`PgConn::defer`]). A push then costs a few round trips
//! instead of one per statement, and a deferred statement that fails still
//! fails the transaction before anything commits.

use cairn_hub::StorageError;
use std::cell::RefCell;
use std::collections::HashMap;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Statement};

/// Deferred writes sent at once at most (a burst's memory stays bounded).
const DEFERRED_MAX: usize = 4_096;

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A database error as the hub's storage error: a fault (retry), or a full
/// disk; never a verdict about anyone's data.
pub(crate) fn fault(error: tokio_postgres::Error) -> StorageError {
    let text = match error.as_db_error() {
        Some(db) => format!("database: {}: {}", db.code().code(), db.message()),
        None => {
            // The driver's own text names the kind ("error connecting to
            // server"); the cause says why (refused, timed out, ...).
            let mut text = format!("database: {error}");
            let mut cause = std::error::Error::source(&error);
            while let Some(inner) = cause {
                text.push_str(&format!(": {inner}"));
                cause = inner.source();
            }
            text
        }
    };
    match error.code() {
        Some(code) if *code == SqlState::DISK_FULL => StorageError::Full(text),
        _ => StorageError::Fault(text),
    }
}

/// The runtime thread every connection of a backend does its I/O on.
pub(crate) struct Driver {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Driver {
    /// Starts the thread.
    pub(crate) fn start() -> Result<Driver, StorageError> {
        let (ready, handle) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("cairn-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = ready.send(Err(error.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                // Runs the connections until the backend is dropped; then
                // dropping the runtime closes them.
                let _ = runtime.block_on(stopped);
            })
            .map_err(|error| StorageError::Fault(format!("postgres driver thread: {error}")))?;
        let handle = handle
            .recv()
            .map_err(|_| StorageError::Internal("postgres driver thread ended".into()))?
            .map_err(StorageError::Fault)?;
        Ok(Driver {
            handle,
            stop: Some(stop),
        })
    }

    /// Opens a connection to `url`, its I/O task on the driver's thread.
    pub(crate) fn connect(&self, url: &str) -> Result<PgConn, StorageError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| StorageError::Fault(format!("database url: {error}")))?;
        let (sender, receiver) = std::sync::mpsc::channel();
        self.handle.spawn(async move {
            match config.connect(NoTls).await {
                Ok((client, connection)) => {
                    let _ = sender.send(Ok(client));
                    // Ends when the client is dropped or the server goes.
                    let _ = connection.await;
                }
                Err(error) => {
                    let _ = sender.send(Err(fault(error)));
                }
            }
        });
        let client = receiver
            .recv()
            .map_err(|_| StorageError::Internal("postgres driver thread ended".into()))??;
        Ok(PgConn {
            client,
            statements: RefCell::new(HashMap::new()),
            deferred: RefCell::new(Vec::new()),
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One connection, with the statements it has prepared and the writes it
/// has deferred.
pub(crate) struct PgConn {
    client: Client,
    statements: RefCell<HashMap<String, Statement>>,
    deferred: RefCell<Vec<(Statement, Vec<Encoded>)>>,
}

/// A parameter already in PostgreSQL's binary form (checked against its
/// column's type when it was deferred).
#[derive(Debug)]
struct Encoded(Option<Vec<u8>>);

impl ToSql for Encoded {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

impl PgConn {
    /// True once the server or the network ended the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    fn statement(&self, sql: &str) -> Result<Statement, StorageError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = futures_executor::block_on(self.client.prepare(sql)).map_err(fault)?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Runs a write whose answer nobody reads later: its parameters are
    /// checked and encoded now, the statement sent with the other deferred
    /// ones before the next read, savepoint or commit.
    pub(crate) fn defer(&self, sql: &str, params: Params<'_>) -> Result<(), StorageError> {
        let statement = self.statement(sql)?;
        let types = statement.params();
        if types.len() != params.len() {
            return Err(StorageError::Internal(format!(
                "{sql}: {} parameters for {} places",
                params.len(),
                types.len()
            )));
        }
        let mut encoded = Vec::with_capacity(params.len());
        for (param, kind) in params.iter().zip(types) {
            let mut out = bytes::BytesMut::new();
            let null = param
                .to_sql_checked(kind, &mut out)
                .map_err(|error| StorageError::Internal(format!("{sql}: {error}")))?;
            encoded.push(Encoded(match null {
                IsNull::Yes => None,
                IsNull::No => Some(out.to_vec()),
            }));
        }
        let full = {
            let mut deferred = self.deferred.borrow_mut();
            deferred.push((statement, encoded));
            deferred.len() >= DEFERRED_MAX
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends every deferred write, then `last`, in one pipelined burst, and
    /// waits for all: `last`'s answer.
    fn after_deferred<T>(
        &self,
        last: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StorageError> {
        let pending = std::mem::take(&mut *self.deferred.borrow_mut());
        let client = &self.client;
        // Polled together, in order, the requests are all sent before the
        // first answer is awaited (tokio-postgres sends a request when its
        // future is first polled): one round trip for the lot.
        let writes = pending.iter().map(|(statement, params)| async move {
            let params: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|param| param as &(dyn ToSql + Sync))
                .collect();
            client.execute(statement, &params).await
        });
        let burst =
            futures_util::future::try_join(futures_util::future::try_join_all(writes), last);
        let (_, answer) = futures_executor::block_on(burst).map_err(fault)?;
        Ok(answer)
    }

    /// Sends every deferred write and waits for them.
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        if self.deferred.borrow().is_empty() {
            return Ok(());
        }
        self.after_deferred(std::future::ready(Ok(())))
    }

    /// Drops the deferred writes unsent (the transaction is rolled back).
    pub(crate) fn discard(&self) {
        self.deferred.borrow_mut().clear();
    }

    /// Runs statements that take no parameters (DDL, a savepoint's
    /// rollback), after the deferred writes.
    pub(crate) fn batch(&self, sql: &str) -> Result<(), StorageError> {
        self.flush()?;
        futures_executor::block_on(self.client.batch_execute(sql)).map_err(fault)
    }

    /// Every row of a query, sent with the deferred writes before it.
    pub(crate) fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, StorageError> {
        let statement = self.statement(sql)?;
        self.after_deferred(self.client.query(&statement, params))
    }

    /// The first row of a query, if any.
    pub(crate) fn one(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, StorageError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a statement, sent with the deferred writes before it; how many
    /// rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, StorageError> {
        let statement = self.statement(sql)?;
        self.after_deferred(self.client.execute(&statement, params))
    }

    /// The types a statement's parameters take (the migration converts
    /// SQLite's values to them).
    pub(crate) fn param_types(
        &self,
        sql: &str,
    ) -> Result<Vec<tokio_postgres::types::Type>, StorageError> {
        Ok(self.statement(sql)?.params().to_vec())
    }
}

/// Column `index` of `row`, or damage naming `what`.
pub(crate) fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    index: usize,
) -> Result<T, StorageError> {
    row.try_get(index)
        .map_err(|error| StorageError::Damaged(format!("column {index}: {error}")))
}

/// Column `index` of `row` as a count, index or time (stored as BIGINT).
pub(crate) fn get_u64(row: &Row, index: usize) -> Result<u64, StorageError> {
    get::<i64>(row, index).map(|value| value as u64)
}

/// A nullable BIGINT column as an optional count.
pub(crate) fn get_opt_u64(row: &Row, index: usize) -> Result<Option<u64>, StorageError> {
    get::<Option<i64>>(row, index).map(|value| value.map(|value| value as u64))
}
