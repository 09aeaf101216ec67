//! The system's clock behind `cairn_core::clock::Clock`: the only place
//! Cairn reads the time of day (the binary's shells ask here too).

use cairn_core::clock::Clock;
use std::sync::Arc;

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64)
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// The system's time now, ms since the epoch, for code that holds no clock
/// of its own (a command that runs once).
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}
