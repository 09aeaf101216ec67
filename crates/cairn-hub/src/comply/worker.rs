//! The judge's thread: behind the push path, it judges whatever the log has
//! gained, in leaf order, a batch per transaction, and sleeps briefly when
//! it has caught up. A storage fault is logged and retried after a pause;
//! it never becomes a verdict.

use super::run::{JUDGE_BATCH, Pass};
use crate::backend::HubBackend;
use crate::group::Activity;
use crate::{Hub, StorageError};
use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long the judge sleeps once it has caught up.
const IDLE: Duration = Duration::from_millis(20);
/// Ops a pass judges while pushes are flowing: short passes, so the
/// writer lock and the cores go to the pushes first.
const BUSY_BATCH: usize = 256;
/// While pushes flow, the judge rests this many times as long as its last
/// pass took: at most a fifth of one core goes to judging, and verdicts
/// lag a burst by seconds at most, catching up at full speed after it.
const BUSY_REST_FACTOR: u32 = 4;
/// How long after the last push the hub counts as quiet, ms.
const QUIET_MS: u64 = 50;
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

/// Starts the judge over `hub`, yielding to the pushes `activity` counts;
/// it also ends when the hub is dropped.
pub fn start(hub: Weak<dyn Judging>, activity: Arc<Activity>) -> std::io::Result<JudgeThread> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("cairn-hub-judge".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Some(hub) = hub.upgrade() else { break };
                let busy = activity.busy(QUIET_MS);
                let limit = if busy { BUSY_BATCH } else { JUDGE_BATCH };
                let started = Instant::now();
                let outcome = hub.judge_pending(limit);
                drop(hub);
                if let Ok(pass) = &outcome
                    && (pass.rejected > 0 || pass.reviews > 0)
                {
                    // Counts only: verdicts name fields and rules, and
                    // the review queue holds the rest.
                    tracing::info!(
                        judged = pass.judged,
                        rejected = pass.rejected,
                        reviews = pass.reviews,
                        through = pass.through,
                        compliance_boundary = "rule_pack",
                        "judged ops"
                    );
                }
                match outcome {
                    Ok(pass) if pass.judged as usize == limit => {
                        if busy {
                            std::thread::sleep(started.elapsed() * BUSY_REST_FACTOR);
                        }
                    }
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
