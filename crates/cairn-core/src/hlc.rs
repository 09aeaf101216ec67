//! Hybrid logical clock (Kulkarni et al.): physical milliseconds plus a
//! logical counter, so that causally later events always compare greater even
//! when wall clocks disagree.
//!
//! The clock never reads time itself: every call takes `physical_ms` from the
//! caller. A received timestamp further ahead of local physical time than the
//! configured drift bound is refused rather than followed, so one node with a
//! clock set days ahead cannot drag every replica's clock with it.

use serde::{Deserialize, Serialize};

/// One HLC timestamp. Ordered by wall time, then counter; ties between nodes
/// are broken by the caller with the node name.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Hlc {
    /// Physical component, milliseconds since the Unix epoch.
    pub wall_ms: u64,
    /// Logical component, counts events within one millisecond.
    pub counter: u32,
}

/// A received timestamp was too far ahead of local physical time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("received clock {remote_ms} ms is {ahead_ms} ms ahead of local time (bound {bound_ms} ms)")]
pub struct ClockSkew {
    /// Wall time of the received timestamp.
    pub remote_ms: u64,
    /// How far it was ahead of local physical time.
    pub ahead_ms: u64,
    /// The configured bound it exceeded.
    pub bound_ms: u64,
}

/// The clock of one node.
#[derive(Clone, Debug)]
pub struct HybridClock {
    /// The greatest timestamp issued or received so far.
    last: Hlc,
    /// Largest accepted lead of a received timestamp over local time.
    drift_ms_max: u64,
}

impl HybridClock {
    /// A clock that has issued nothing yet, resuming after `last` (for example
    /// the newest timestamp found in the store after a restart).
    pub fn new(last: Hlc, drift_ms_max: u64) -> HybridClock {
        HybridClock { last, drift_ms_max }
    }

    /// The greatest timestamp issued or received so far.
    pub fn last(&self) -> Hlc {
        self.last
    }

    /// Timestamp for a local or send event.
    pub fn send(&mut self, physical_ms: u64) -> Hlc {
        let next = if physical_ms > self.last.wall_ms {
            Hlc {
                wall_ms: physical_ms,
                counter: 0,
            }
        } else {
            bump(self.last)
        };
        debug_assert!(next > self.last);
        self.last = next;
        next
    }

    /// Merges a received timestamp; refuses one too far ahead of local time.
    pub fn receive(&mut self, remote: Hlc, physical_ms: u64) -> Result<Hlc, ClockSkew> {
        let ahead_ms = remote.wall_ms.saturating_sub(physical_ms);
        if ahead_ms > self.drift_ms_max {
            return Err(ClockSkew {
                remote_ms: remote.wall_ms,
                ahead_ms,
                bound_ms: self.drift_ms_max,
            });
        }
        let wall_ms = physical_ms.max(self.last.wall_ms).max(remote.wall_ms);
        let next = if wall_ms == self.last.wall_ms && wall_ms == remote.wall_ms {
            bump(Hlc {
                wall_ms,
                counter: self.last.counter.max(remote.counter),
            })
        } else if wall_ms == self.last.wall_ms {
            bump(self.last)
        } else if wall_ms == remote.wall_ms {
            bump(remote)
        } else {
            Hlc {
                wall_ms,
                counter: 0,
            }
        };
        debug_assert!(next > self.last && next > remote);
        self.last = next;
        Ok(next)
    }
}

/// The next timestamp after `hlc`; a full counter spills into the next millisecond.
fn bump(hlc: Hlc) -> Hlc {
    match hlc.counter.checked_add(1) {
        Some(counter) => Hlc { counter, ..hlc },
        None => Hlc {
            wall_ms: hlc.wall_ms + 1,
            counter: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn local_events_are_monotonic_when_time_stands_still_or_goes_back() {
        let mut clock = HybridClock::new(Hlc::default(), 1_000);
        let a = clock.send(100);
        let b = clock.send(100);
        let c = clock.send(50);
        assert!(a < b && b < c);
        assert_eq!(
            c,
            Hlc {
                wall_ms: 100,
                counter: 2
            }
        );
        assert_eq!(
            clock.send(200),
            Hlc {
                wall_ms: 200,
                counter: 0
            }
        );
    }

    #[test]
    fn receive_moves_past_the_remote_and_refuses_far_future() {
        let mut clock = HybridClock::new(Hlc::default(), 1_000);
        let remote = Hlc {
            wall_ms: 900,
            counter: 7,
        };
        let got = clock.receive(remote, 500).unwrap();
        assert_eq!(
            got,
            Hlc {
                wall_ms: 900,
                counter: 8
            }
        );
        let skew = clock
            .receive(
                Hlc {
                    wall_ms: 10_000,
                    counter: 0,
                },
                500,
            )
            .unwrap_err();
        assert_eq!(skew.ahead_ms, 9_500);
        // A refused timestamp leaves the clock where it was.
        assert_eq!(clock.last(), got);
    }

    #[test]
    fn counter_overflow_spills_into_the_next_millisecond() {
        let mut clock = HybridClock::new(
            Hlc {
                wall_ms: 5,
                counter: u32::MAX,
            },
            0,
        );
        assert_eq!(
            clock.send(5),
            Hlc {
                wall_ms: 6,
                counter: 0
            }
        );
    }

    proptest! {
        #[test]
        fn any_event_sequence_is_strictly_increasing(
            events in prop::collection::vec((any::<bool>(), 0u64..1_000, 0u64..1_200, 0u32..3), 1..64)
        ) {
            let mut clock = HybridClock::new(Hlc::default(), 500);
            let mut last = Hlc::default();
            for (is_receive, physical, remote_wall, remote_counter) in events {
                let next = if is_receive {
                    match clock.receive(Hlc { wall_ms: remote_wall, counter: remote_counter }, physical) {
                        Ok(next) => next,
                        Err(_) => continue,
                    }
                } else {
                    clock.send(physical)
                };
                prop_assert!(next > last);
                last = next;
            }
        }
    }
}
