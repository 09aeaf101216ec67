//! Folds the WAL into the database file on its own thread.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses its
//! threshold, on the committing connection: here, the writer thread, where it
//! was about an eighth of the write path. Instead the writer's connection
//! reports the WAL's size after each commit (`sqlite3_wal_hook`), and once it
//! passes [`WAL_PAGES_CHECKPOINT`] this thread runs a PASSIVE checkpoint on a
//! connection of its own while the writer goes on committing. PASSIVE never
//! blocks the writer or readers; frames it could not copy are copied next
//! time. Should the thread fall far behind, the writer checkpoints itself at
//! [`WAL_PAGES_HARD`], so the WAL stays bounded either way.
//!
//! Checkpoints are crash-safe in SQLite: the WAL stays authoritative until
//! its frames are in the database file and fsynced.

use crate::StoreError;
use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::time::Duration;

/// WAL pages (4 KiB each) after which the checkpointer is woken: 16 MiB.
pub const WAL_PAGES_CHECKPOINT: i32 = 4_096;
/// WAL pages after which the writer checkpoints itself: 64 MiB.
pub const WAL_PAGES_HARD: i32 = 4 * WAL_PAGES_CHECKPOINT;
/// How often an idle checkpointer folds what is left.
const IDLE_CHECKPOINT: Duration = Duration::from_secs(2);

/// The checkpointer thread; dropping it (after the writer) ends the thread.
pub struct WalCheckpointer {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WalCheckpointer {
    /// Starts the thread and hooks `writer` (the writer thread's connection)
    /// up to it, replacing SQLite's automatic checkpoint.
    pub fn start(db_path: &Path, writer: &mut Connection) -> Result<WalCheckpointer, StoreError> {
        let conn = crate::open(db_path)?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.wal_hook(Some(move |wal: &mut Wal, pages: i32| {
            hook(&wake, wal, pages)
        }))?;
        let thread = std::thread::Builder::new()
            .name("cairn-checkpoint".into())
            .spawn(move || run(&conn, &woken))
            .map_err(|error| {
                StoreError::Internal(format!("cannot start the checkpoint thread: {error}"))
            })?;
        Ok(WalCheckpointer {
            thread: Some(thread),
        })
    }
}

impl Drop for WalCheckpointer {
    fn drop(&mut self) {
        // The sender lives in the writer connection's hook: once the writer
        // connection is closed the channel is, and the thread ends.
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs on the writer's connection after each commit.
///
/// It never returns an error: SQLite reports a hook's error as the error of
/// the COMMIT that ran it, although that commit is durable by then. A
/// checkpoint that fails here (busy with the checkpointer's own, or with a
/// reader) loses nothing; the WAL keeps the frames and a later one folds
/// them. Failing the commit instead made the hub answer 500 to pushes it
/// had logged, and would make the edge refuse writes it had stored.
fn hook(wake: &SyncSender<()>, wal: &mut Wal, pages: i32) -> rusqlite::Result<()> {
    if pages >= WAL_PAGES_HARD {
        if let Err(error) = wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            tracing::warn!(%error, "the writer's own WAL checkpoint failed; it will retry");
        }
    } else if pages >= WAL_PAGES_CHECKPOINT {
        match wake.try_send(()) {
            // Full: a wake-up is already pending.
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
    Ok(())
}

fn run(conn: &Connection, woken: &mpsc::Receiver<()>) {
    loop {
        match woken.recv_timeout(IDLE_CHECKPOINT) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // A failed checkpoint loses nothing (the WAL keeps the frames); the
        // next one, or the writer's own at the hard bound, retries.
        if let Err(error) = conn.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            tracing::warn!(%error, "WAL checkpoint failed; it will retry");
        }
    }
}
