//! The edge's view of its link to the hub, as a sans-I/O state machine:
//! exponential backoff with full jitter, a circuit breaker (closed, open,
//! half-open) and a batch size that adapts to the link.
//!
//! The caller owns the clock and the randomness: every method takes
//! `now_ms`, and failures take a random `u64` for the jitter, so tests drive
//! it deterministically and no sleep is ever needed to test it.

/// Thresholds of the link (from configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long the breaker stays open before a probe, ms.
    pub open_ms: u64,
    /// First backoff ceiling, ms.
    pub backoff_base_ms: u64,
    /// Largest backoff ceiling, ms.
    pub backoff_cap_ms: u64,
    /// Smallest and largest batch, ops.
    pub batch_ops_min: usize,
    /// Largest batch, ops.
    pub batch_ops_max: usize,
    /// A push slower than this shrinks the batch, ms.
    pub slow_push_ms: u64,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            failures_to_open: 3,
            open_ms: 5_000,
            backoff_base_ms: 200,
            backoff_cap_ms: 30_000,
            batch_ops_min: 16,
            // The hub's limit (`cairn_store::hub::PUSH_OPS_MAX`).
            batch_ops_max: 8_192,
            // 3/5 of `cairn edge serve`'s default request timeout (10 s).
            slow_push_ms: 6_000,
        }
    }
}

/// The circuit breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breaker {
    /// Pushing normally.
    Closed,
    /// Not trying until `until_ms`.
    Open {
        /// When a probe may be tried.
        until_ms: u64,
    },
    /// One probe is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl Breaker {
    /// Lowercase name for status output.
    pub fn name(self) -> &'static str {
        match self {
            Breaker::Closed => "closed",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen => "half-open",
        }
    }
}

/// What the caller should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Push a batch of at most this many ops.
    Push {
        /// Batch size to use.
        batch_ops: usize,
    },
    /// Probe the hub's health before pushing again.
    Probe,
    /// Do nothing until this time.
    Wait {
        /// When to ask again.
        until_ms: u64,
    },
}

/// The link state machine.
#[derive(Clone, Debug)]
pub struct Link {
    config: LinkConfig,
    breaker: Breaker,
    failures: u32,
    retry_at_ms: u64,
    batch_ops: usize,
}

impl Link {
    /// A closed link with a middling batch size.
    pub fn new(config: LinkConfig) -> Link {
        assert!(config.batch_ops_min >= 1 && config.batch_ops_min <= config.batch_ops_max);
        assert!(config.failures_to_open >= 1 && config.backoff_base_ms <= config.backoff_cap_ms);
        Link {
            config,
            breaker: Breaker::Closed,
            failures: 0,
            retry_at_ms: 0,
            batch_ops: (config.batch_ops_max / 4).max(config.batch_ops_min),
        }
    }

    /// The breaker's state.
    pub fn breaker(&self) -> Breaker {
        self.breaker
    }

    /// The current batch size.
    pub fn batch_ops(&self) -> usize {
        self.batch_ops
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// What to do at `now_ms`.
    pub fn step(&mut self, now_ms: u64) -> Step {
        match self.breaker {
            Breaker::Open { until_ms } if now_ms < until_ms => Step::Wait { until_ms },
            Breaker::Open { .. } => {
                self.breaker = Breaker::HalfOpen;
                Step::Probe
            }
            Breaker::HalfOpen => Step::Probe,
            Breaker::Closed if now_ms < self.retry_at_ms => Step::Wait {
                until_ms: self.retry_at_ms,
            },
            Breaker::Closed => Step::Push {
                batch_ops: self.batch_ops,
            },
        }
    }

    /// A round (pushes and pulls) succeeded: the breaker closes. Its length
    /// says nothing about the link, so the batch size stays.
    pub fn round_succeeded(&mut self) {
        self.breaker = Breaker::Closed;
        self.failures = 0;
        self.retry_at_ms = 0;
    }

    /// A push or probe succeeded, taking `elapsed_ms`: the breaker closes
    /// and the batch size doubles, or halves when it was slow.
    pub fn succeeded(&mut self, elapsed_ms: u64) {
        self.round_succeeded();
        self.batch_ops = if elapsed_ms > self.config.slow_push_ms {
            (self.batch_ops / 2).max(self.config.batch_ops_min)
        } else {
            (self.batch_ops * 2).min(self.config.batch_ops_max)
        };
    }

    /// A push or probe failed at `now_ms`; `random` draws the jitter.
    pub fn failed(&mut self, now_ms: u64, random: u64) {
        self.failures = self.failures.saturating_add(1);
        self.batch_ops = (self.batch_ops / 2).max(self.config.batch_ops_min);
        if self.breaker == Breaker::HalfOpen || self.failures >= self.config.failures_to_open {
            self.breaker = Breaker::Open {
                until_ms: now_ms + self.config.open_ms,
            };
            return;
        }
        // Full jitter: anywhere between now and the exponential ceiling.
        let exponent = self.failures.min(20) - 1;
        let ceiling = self
            .config
            .backoff_base_ms
            .saturating_mul(1 << exponent)
            .min(self.config.backoff_cap_ms);
        self.retry_at_ms = now_ms + random % (ceiling + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link::new(LinkConfig {
            failures_to_open: 3,
            open_ms: 1_000,
            backoff_base_ms: 100,
            backoff_cap_ms: 1_000,
            batch_ops_min: 10,
            batch_ops_max: 1_000,
            slow_push_ms: 500,
        })
    }

    #[test]
    fn failures_back_off_with_jitter_then_open_the_breaker() {
        let mut link = link();
        assert_eq!(link.step(0), Step::Push { batch_ops: 250 });
        link.failed(0, u64::MAX);
        // Within the first ceiling (100 ms), never beyond.
        let Step::Wait { until_ms } = link.step(0) else {
            panic!("should wait")
        };
        assert!(until_ms <= 100);
        link.failed(until_ms, 7);
        assert_eq!(
            link.step(until_ms),
            Step::Wait {
                until_ms: until_ms + 7
            }
        );
        link.failed(until_ms + 7, 0);
        assert_eq!(
            link.breaker(),
            Breaker::Open {
                until_ms: until_ms + 7 + 1_000
            }
        );
        assert!(matches!(link.step(until_ms + 8), Step::Wait { .. }));
        assert_eq!(link.step(until_ms + 7 + 1_000), Step::Probe);
        assert_eq!(link.breaker(), Breaker::HalfOpen);
    }

    #[test]
    fn a_failed_probe_reopens_and_a_good_one_closes() {
        let mut link = link();
        for now in 0..3 {
            link.failed(now, 0);
        }
        assert_eq!(link.step(5_000), Step::Probe);
        link.failed(5_000, 0);
        assert_eq!(link.breaker(), Breaker::Open { until_ms: 6_000 });
        assert_eq!(link.step(6_000), Step::Probe);
        link.succeeded(10);
        assert_eq!(link.breaker(), Breaker::Closed);
        assert!(matches!(link.step(6_000), Step::Push { .. }));
    }

    #[test]
    fn batches_grow_on_a_fast_link_and_shrink_on_a_slow_one() {
        let mut link = link();
        for _ in 0..10 {
            link.succeeded(1);
        }
        assert_eq!(link.batch_ops(), 1_000);
        for _ in 0..10 {
            link.succeeded(900);
        }
        assert_eq!(link.batch_ops(), 10);
        // A long round of many batches is not a slow link.
        link.round_succeeded();
        assert_eq!(link.batch_ops(), 10);
        assert_eq!(link.breaker(), Breaker::Closed);
    }

    #[test]
    fn the_backoff_ceiling_is_capped() {
        let mut link = Link::new(LinkConfig {
            failures_to_open: 100,
            ..LinkConfig::default()
        });
        for now in 0..50 {
            link.failed(now, u64::MAX - 1);
        }
        let Step::Wait { until_ms } = link.step(49) else {
            panic!("should wait")
        };
        assert!(until_ms <= 49 + LinkConfig::default().backoff_cap_ms);
    }
}
