//! The judge's thread: behind the push path, it judges whatever the log has
//! gained, in leaf order, a batch per transaction, and sleeps briefly when
//! it has caught up. A storage fault is logged and retried after a pause;
//! it never becomes a verdict.

use super::run::{JUDGE_BATCH, Pass};
use crate::backend::HubBackend;
use crate::{Hub, StorageError};
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the judge sleeps once it has caught up.
const IDLE: Duration = Duration::from_millis(20);
/// How long it waits after a storage fault.
const AFTER_FAULT: Duration = Duration::from_secs(1);

/// What the judge's thread runs passes on.
pub trait Judging: Send + Sync + 'static {
    /// One pass of at most `limit` ops (see [`Hub::judge_pending`]).
    fn judge_pending(&self, limit: usize) -> Result<Pass, StorageError>;
}

impl<B: HubBackend + Send + Sync + 'static> Judging for Hub<B> {
    fn judge_pending(&self, limit: usize) -> Result<Pass, StorageError> {
        Hub::judge_pending(self, limit)
    }
}

/// The running judge; dropping it stops the thread after its current pass.
pub struct JudgeThread {
    stop: Arc<AtomicBool>,
}

impl Drop for JudgeThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts the judge over `hub`; it also ends when the hub is dropped.
pub fn start(hub: Weak<dyn Judging>) -> std::io::Result<JudgeThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("cairn-hub-judge".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Some(hub) = hub.upgrade() else { break };
                let outcome = hub.judge_pending(JUDGE_BATCH);
                drop(hub);
                match outcome {
                    Ok(pass) if pass.judged as usize == JUDGE_BATCH => {}
                    Ok(_) => std::thread::sleep(IDLE),
                    Err(fault) => {
                        tracing::warn!(
                            compliance_boundary = "judge",
                            error = %fault,
                            "the judge could not run a pass; it retries"
                        );
                        std::thread::sleep(AFTER_FAULT);
                    }
                }
            }
        })?;
    Ok(JudgeThread { stop })
}
