//! The hub's time, as this node learns it from the hub's answers.
//!
//! A device's clock can be days off (a dead RTC battery, a hand-set date).
//! Tokens are judged by the hub against its own clock, so the node signs
//! them with the hub's time (its own plus the offset it measured), and
//! reports the offset: `cairn status` raises an alert past
//! [`CLOCK_OFFSET_ALERT_MS`], and each push tells the hub the node's own
//! time so the hub can report it too. Ops keep the node's own clock: the
//! HLC orders them, and merges never follow wall clocks.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

pub use cairn_proto::{HUB_TIME_HEADER, NODE_TIME_HEADER};
/// An offset beyond this raises an alert on the node (and on the hub).
pub const CLOCK_OFFSET_ALERT_MS: u64 = cairn_core::limits::CLOCK_DRIFT_MS_MAX_DEFAULT;
/// Kind of the node's alert about its clock.
pub const ALERT_KIND: &str = "clock";

/// The offset of the hub's clock from this node's.
#[derive(Debug, Default)]
pub struct HubClock {
    offset_ms: AtomicI64,
    known: AtomicBool,
}

impl HubClock {
    /// Reads the hub's time off an answer's headers (received at local
    /// `local_ms`).
    pub fn observe(&self, headers: &reqwest::header::HeaderMap, local_ms: u64) {
        let Some(hub_ms) = headers
            .get(HUB_TIME_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok())
        else {
            return;
        };
        self.offset_ms
            .store(hub_ms as i64 - local_ms as i64, Ordering::Relaxed);
        self.known.store(true, Ordering::Relaxed);
    }

    /// The hub's clock minus this node's, once an answer said it.
    pub fn offset_ms(&self) -> Option<i64> {
        self.known
            .load(Ordering::Relaxed)
            .then(|| self.offset_ms.load(Ordering::Relaxed))
    }

    /// The hub's time now, by this node's clock and the offset (the
    /// node's own time until the hub has said its own).
    pub fn hub_now_ms(&self, local_ms: u64) -> u64 {
        let offset = self.offset_ms().unwrap_or(0);
        local_ms.saturating_add_signed(offset)
    }
}

/// Words for an offset: "2 d 0 h ahead of the hub's".
pub fn describe(offset_ms: i64) -> String {
    let seconds = offset_ms.unsigned_abs() / 1000;
    let amount = if seconds >= 86_400 {
        format!("{} d {} h", seconds / 86_400, seconds % 86_400 / 3_600)
    } else if seconds >= 3_600 {
        format!("{} h {} min", seconds / 3_600, seconds % 3_600 / 60)
    } else {
        format!("{seconds} s")
    };
    // A positive offset: the hub is ahead, so this clock is behind.
    let side = if offset_ms > 0 { "behind" } else { "ahead of" };
    format!("{amount} {side} the hub's")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_comes_from_the_hub_s_header_and_is_described_plainly() {
        let clock = HubClock::default();
        assert_eq!(clock.offset_ms(), None);
        assert_eq!(clock.hub_now_ms(5_000), 5_000);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(HUB_TIME_HEADER, "1000".parse().unwrap());
        clock.observe(&headers, 172_801_000);
        assert_eq!(clock.offset_ms(), Some(-172_800_000));
        assert_eq!(clock.hub_now_ms(172_801_000), 1_000);
        assert_eq!(describe(-172_800_000), "2 d 0 h ahead of the hub's");
        assert_eq!(describe(7_200_000), "2 h 0 min behind the hub's");
        assert_eq!(describe(-30_000), "30 s ahead of the hub's");
        headers.insert(HUB_TIME_HEADER, "soon".parse().unwrap());
        clock.observe(&headers, 0);
        assert_eq!(clock.offset_ms(), Some(-172_800_000), "junk is ignored");
    }
}
