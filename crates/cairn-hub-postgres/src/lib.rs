//! The hub on PostgreSQL: [`PgBackend`] implements the hub's backend seam
//! (`cairn_hub::backend`) so that several hub processes can share one
//! database and one log.
//!
//! What several processes need, and where it comes from:
//! - **One log order.** A write transaction takes a transaction-level
//!   advisory lock ([`LOG_LOCK`]) before anything else, so appending
//!   transactions of every process run one after another; each reads the
//!   log's size after the last one committed, so leaves are contiguous and
//!   never interleave. The `log` primary key refuses a taken leaf besides.
//! - **One signer at a time.** A log checkpoint is signed inside the
//!   appending transaction, under that lock, over the size the transaction
//!   commits: whoever signs holds the lock, so exactly one process signs at
//!   a time, and a checkpoint covers only leaves already committed or
//!   committed with it. When a signer dies, PostgreSQL ends its session and
//!   releases the lock, and the next process to append signs (failover).
//! - **Duplicates and equivocation.** The stream's row and its logged seqs
//!   are read under the lock, after every earlier push committed, so the
//!   same op through two hubs is logged once and two ops at one seq become
//!   one equivocation; `UNIQUE (stream_id, seq)` and the quarantine's
//!   uniqueness stand behind that.
//! - **Stream order.** A push past its stream's head waits in one process
//!   (`cairn_hub::group`) re-reading the head from the database, so a
//!   predecessor that arrived through another hub releases it; past the
//!   wait it is refused as a gap, which the edge retries.
//!
//! Reads run in `REPEATABLE READ READ ONLY` transactions: one snapshot,
//! never waiting for a writer.

mod comply;
mod conn;
mod log;
pub mod migrate;
pub mod schema;

use cairn_hub::StorageError;
use cairn_hub::backend::HubBackend;
use conn::{Driver, PgConn};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The advisory lock every appending transaction holds: the log's append
/// lock across processes (`pg_advisory_xact_lock`, released at commit or
/// rollback, or when the session dies).
pub const LOG_LOCK: i64 = 0x6361_6972_6e5f_6c67; // "cairn_lg"

/// Read connections a backend keeps (pulls and status run on them).
const READERS: usize = 4;

/// A connection slot: connected on first use and again after the server
/// or the network ended it.
struct Slot {
    conn: Option<PgConn>,
}

/// The hub's store on PostgreSQL: one writer connection and a few readers.
pub struct PgBackend {
    url: String,
    writer: Mutex<Slot>,
    readers: Vec<Mutex<Slot>>,
    next_reader: AtomicUsize,
    /// Declared last: dropped after the connections, ending their I/O.
    driver: Driver,
}

impl PgBackend {
    /// Connects to the database at `url` (`postgres://user@host:port/db`
    /// or `host=... dbname=...`). The schema must exist ([`create_schema`]).
    pub fn connect(url: &str) -> Result<PgBackend, StorageError> {
        let driver = Driver::start()?;
        let writer = driver.connect(url)?;
        Ok(PgBackend {
            url: url.to_string(),
            writer: Mutex::new(Slot { conn: Some(writer) }),
            readers: (0..READERS)
                .map(|_| Mutex::new(Slot { conn: None }))
                .collect(),
            next_reader: AtomicUsize::new(0),
            driver,
        })
    }

    fn begin<'c>(&self, slot: MutexGuard<'c, Slot>, write: bool) -> Result<PgTx<'c>, StorageError> {
        match write {
            // The lock comes first: everything the transaction reads is
            // what every earlier appender committed.
            true => self.begin_with(slot, "BEGIN ISOLATION LEVEL READ COMMITTED", true),
            false => self.begin_with(
                slot,
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                false,
            ),
        }
    }

    /// Begins `begin` on the slot's connection (connected again when the
    /// server or the network ended it), taking the log's lock if `lock`.
    fn begin_with<'c>(
        &self,
        mut slot: MutexGuard<'c, Slot>,
        begin: &str,
        lock: bool,
    ) -> Result<PgTx<'c>, StorageError> {
        if slot.conn.as_ref().is_none_or(PgConn::is_closed) {
            slot.conn = None;
            slot.conn = Some(self.driver.connect(&self.url)?);
        }
        let conn = slot.conn.as_ref().expect("connected above");
        conn.discard();
        // Sent with the transaction's first statement, not on their own.
        conn.defer(begin, &[])?;
        if lock {
            conn.defer("SELECT pg_advisory_xact_lock($1)", &[&LOG_LOCK])?;
        }
        Ok(PgTx { slot, open: true })
    }

    /// Runs `sql` (no parameters) in a transaction of its own.
    pub fn batch(&self, sql: &str) -> Result<(), StorageError> {
        let tx = self.write()?;
        tx.conn().batch(sql)?;
        cairn_hub::backend::LogTx::commit(tx)
    }
}

impl HubBackend for PgBackend {
    type Tx<'a> = PgTx<'a>;

    fn write(&self) -> Result<PgTx<'_>, StorageError> {
        let slot = self
            .writer
            .lock()
            .map_err(|_| StorageError::Internal("hub writer lock poisoned".into()))?;
        self.begin(slot, true)
    }

    fn write_beside_log(&self) -> Result<PgTx<'_>, StorageError> {
        // On a connection of the readers', without the log's lock: nothing
        // is appended, so neither this process's group commit nor another
        // process's appends wait for it.
        let slot = self.reader_slot()?;
        self.begin_with(slot, "BEGIN ISOLATION LEVEL READ COMMITTED", false)
    }

    fn read(&self) -> Result<PgTx<'_>, StorageError> {
        let slot = self.reader_slot()?;
        self.begin(slot, false)
    }
}

impl PgBackend {
    /// A free reader's connection if there is one, else the next in turn's
    /// once it is free.
    fn reader_slot(&self) -> Result<MutexGuard<'_, Slot>, StorageError> {
        self.readers
            .iter()
            .find_map(|reader| reader.try_lock().ok())
            .map(Ok)
            .unwrap_or_else(|| {
                let turn = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
                self.readers[turn].lock()
            })
            .map_err(|_| StorageError::Internal("hub reader lock poisoned".into()))
    }
}

/// A transaction on one connection, rolled back when dropped uncommitted.
pub struct PgTx<'c> {
    slot: MutexGuard<'c, Slot>,
    open: bool,
}

impl PgTx<'_> {
    fn conn(&self) -> &PgConn {
        self.slot
            .conn
            .as_ref()
            .expect("a transaction has a connection")
    }

    /// Parameter types of `sql` on this connection.
    pub fn param_types(&self, sql: &str) -> Result<Vec<tokio_postgres::types::Type>, StorageError> {
        self.conn().param_types(sql)
    }

    /// Runs `sql` with `params`; rows changed.
    pub fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StorageError> {
        self.conn().execute(sql, params)
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Uncommitted: undone. A connection that cannot even roll back
            // is dropped, and the slot connects again on next use.
            if let Some(conn) = self.slot.conn.as_ref() {
                conn.discard();
                if conn.batch("ROLLBACK").is_err() {
                    self.slot.conn = None;
                }
            }
        }
    }
}

/// Creates the hub's tables in the empty database at `url`, with `meta`'s
/// rows (origin, schema version, the hub's public key) and `packs`' rows
/// given as `(name, version, source, source_hash)`. Refused when the
/// database already holds a Cairn hub.
pub fn create_schema(
    url: &str,
    origin: &str,
    hub_key: &[u8; 32],
    packs: &[(String, String, String, String)],
    now_ms: u64,
) -> Result<(), StorageError> {
    let backend = PgBackend::connect(url)?;
    let tx = backend.write()?;
    refuse_a_hub(&tx)?;
    tx.conn().batch(schema::DDL)?;
    for (key, value) in [
        ("origin", origin.to_string()),
        ("schema_version", schema::SCHEMA_VERSION.to_string()),
        ("hub_key", hex(hub_key)),
        ("judged_through", "0".to_string()),
    ] {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)",
            &[&key, &value],
        )?;
    }
    for (name, version, source, source_hash) in packs {
        tx.execute(
            "INSERT INTO packs (name, version, source, source_hash, activated_ms) VALUES ($1, $2, $3, $4, $5)",
            &[name, version, source, source_hash, &(now_ms as i64)],
        )?;
    }
    cairn_hub::backend::LogTx::commit(tx)
}

/// True when the database already holds a Cairn hub (a table named meta).
pub fn holds_a_hub(backend: &PgBackend) -> Result<bool, StorageError> {
    holds_meta(&backend.read()?)
}

fn holds_meta(tx: &PgTx<'_>) -> Result<bool, StorageError> {
    let taken = tx.conn().one(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'meta'",
        &[],
    )?;
    Ok(taken.map(|row| conn::get_u64(&row, 0)).transpose()? != Some(0))
}

/// Refuses a database that already holds a Cairn hub.
fn refuse_a_hub(tx: &PgTx<'_>) -> Result<(), StorageError> {
    if holds_meta(tx)? {
        return Err(StorageError::Fault(
            "database: it already holds a Cairn hub (a table named meta)".into(),
        ));
    }
    Ok(())
}

/// What `meta` says of the hub in the database: (origin, hub key hex);
/// refused when the schema is another version.
pub fn hub_meta(backend: &PgBackend) -> Result<(String, String), StorageError> {
    let tx = backend.read()?;
    let value = |key: &str| -> Result<String, StorageError> {
        let row = tx
            .conn()
            .one("SELECT value FROM meta WHERE key = $1", &[&key])?
            .ok_or_else(|| StorageError::Damaged(format!("meta has no {key}")))?;
        conn::get(&row, 0)
    };
    let version = value("schema_version")?;
    if version != schema::SCHEMA_VERSION {
        return Err(StorageError::Fault(format!(
            "database: it holds hub schema {version}, this build reads {}",
            schema::SCHEMA_VERSION
        )));
    }
    Ok((value("origin")?, value("hub_key")?))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Creates the empty database `name` on the server of `server_url` (any
/// database there it may connect to) and returns that database's URL: a
/// hub's tests and tools make one database per hub.
pub fn create_database(server_url: &str, name: &str) -> Result<String, StorageError> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(StorageError::Internal(format!(
            "database name {name:?}: letters, digits and _ only"
        )));
    }
    let driver = Driver::start()?;
    let conn = driver.connect(server_url)?;
    // CREATE DATABASE cannot run inside a transaction: on its own.
    conn.batch(&format!("CREATE DATABASE \"{name}\""))?;
    Ok(url_with_database(server_url, name))
}

/// Creates an empty database of a name no other made by this function
/// takes (`prefix`, the process id, a counter and the time), and returns
/// its URL: one per hub a test or benchmark makes.
pub fn create_fresh_database(server_url: &str, prefix: &str) -> Result<String, StorageError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let name = format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    create_database(server_url, &name)
}

/// `url` naming database `name` instead of its own.
pub fn url_with_database(url: &str, name: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, query) = match rest.split_once('?') {
                Some((before, query)) => (before, Some(query)),
                None => (rest, None),
            };
            let authority = authority.split('/').next().unwrap_or(authority);
            match query {
                Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
                None => format!("{scheme}://{authority}/{name}"),
            }
        }
        // Key-value form: a later dbname wins.
        None => format!("{url} dbname={name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_names_another_database() {
        use super::url_with_database as with;
        assert_eq!(with("postgres://u@h:5/db", "x"), "postgres://u@h:5/x");
        assert_eq!(with("postgres://u@h:5", "x"), "postgres://u@h:5/x");
        assert_eq!(
            with("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with("host=/tmp user=u", "x"), "host=/tmp user=u dbname=x");
    }
}
