//! The one seam through which time enters Cairn. The core never reads the
//! clock: code that needs the time holds a [`Clock`], which the stores and
//! the binary fill with the system's clock and tests with a
//! [`ManualClock`] they move by hand, so nothing time-dependent needs to
//! wait for real time to pass.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where the time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Seconds since the Unix epoch.
    fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// A clock that says what it was last set to (tests and simulation).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock at `now_ms`.
    pub fn at(now_ms: u64) -> ManualClock {
        ManualClock(AtomicU64::new(now_ms))
    }

    /// Moves the clock to `now_ms` (backwards too: clocks do).
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(5_000);
        assert_eq!((clock.now_ms(), clock.now_s()), (5_000, 5));
        clock.advance(2_500);
        assert_eq!(clock.now_ms(), 7_500);
        clock.set(1_000);
        assert_eq!(clock.now_ms(), 1_000);
    }
}
