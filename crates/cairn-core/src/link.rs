//! The edge's view of its link to the hub, as a sans-I/O state machine:
//! exponential backoff with full jitter, a circuit breaker (closed, open,
//! half-open) and a batch size that adapts to the link.
//!
//! The caller owns the clock and the randomness: every method takes
//! `now_ms`, and failures take a random `u64` for the jitter, so tests drive
//! it deterministically and no sleep is ever needed to test it.

/// Pushes of one stream on their way at once while the hub keeps up (the
/// default of [`LinkConfig::pushes_in_flight_max`]).
pub const PUSHES_IN_FLIGHT: usize = 2;

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
    /// A push the hub itself spent longer than this with (its `Server-Timing`)
    /// means the hub is congested: the batch halves and one push travels at
    /// a time, ms.
    pub hub_busy_ms: u64,
    /// Pushes of one stream on their way at once while the hub keeps up.
    pub pushes_in_flight_max: usize,
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            failures_to_open: 3,
            open_ms: 5_000,
            backoff_base_ms: 200,
            backoff_cap_ms: 30_000,
            batch_ops_min: 16,
            // The hub's limit (`limits::PUSH_OPS_MAX`).
            batch_ops_max: 8_192,
            // 3/5 of `cairn edge serve`'s default request timeout (10 s).
            slow_push_ms: 6_000,
            // SPEC 9 wants a push answered within 500 ms when many nodes
            // reconnect at once: this leaves room for one doubling past it
            // and the push's own time on the wire.
            hub_busy_ms: 150,
            pushes_in_flight_max: PUSHES_IN_FLIGHT,
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
    pushes_in_flight: usize,
    window: u64,
    /// The window the last decrease opened.
    decreased: u64,
}

impl Link {
    /// A closed link with a middling batch size.
    pub fn new(config: LinkConfig) -> Link {
        assert!(config.batch_ops_min >= 1 && config.batch_ops_min <= config.batch_ops_max);
        assert!(config.failures_to_open >= 1 && config.backoff_base_ms <= config.backoff_cap_ms);
        assert!(config.pushes_in_flight_max >= 1);
        Link {
            config,
            breaker: Breaker::Closed,
            failures: 0,
            retry_at_ms: 0,
            batch_ops: Link::first_batch(&config),
            pushes_in_flight: config.pushes_in_flight_max,
            window: 0,
            decreased: 0,
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

    /// Whether the link is constrained: slow pushes or a congested hub
    /// shrank the batch below where it starts, or a push failed since the
    /// last success. A constrained node sends stale tracks last.
    pub fn constrained(&self) -> bool {
        self.failures > 0 || self.batch_ops < Link::first_batch(&self.config)
    }

    fn first_batch(config: &LinkConfig) -> usize {
        (config.batch_ops_max / 4).max(config.batch_ops_min)
    }

    /// How many pushes of one stream may be on their way at once.
    pub fn pushes_in_flight(&self) -> usize {
        self.pushes_in_flight
    }

    /// How many times the batch size or the pushes in flight changed. A
    /// push records it when sent: its answer speaks only for the sizes it
    /// was sent with, so an answer to a push sent before the last change
    /// changes nothing (one change per round trip, as TCP grows its window
    /// once per round trip and not once per ack).
    pub fn window(&self) -> u64 {
        self.window
    }

    /// How long to wait before the next push after an answer the hub held
    /// `hub_ms`, ms: when the hub is congested, a random part of that time
    /// (`random` draws it, full jitter), so that many nodes pushing at once
    /// spread out instead of all queueing at the hub again; otherwise
    /// nothing.
    pub fn pause_ms(&self, hub_ms: Option<u64>, random: u64) -> u64 {
        match hub_ms {
            Some(ms) if ms > self.config.hub_busy_ms => random % (ms + 1),
            _ => 0,
        }
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

    /// A health probe succeeded: the breaker closes. The batch stays as the
    /// failures left it: a probe carries no ops.
    pub fn probe_succeeded(&mut self) {
        self.round_succeeded();
    }

    /// A push sent under `window` ([`Link::window`]) was answered after
    /// `elapsed_ms`, of which the hub said it spent `hub_ms` itself. The
    /// breaker closes, and the ops in flight change like TCP's congestion
    /// window. A congested hub quarters them (half the batch, one push at a
    /// time) and a slow link halves the batch, unless they shrank already
    /// since the push was sent. Otherwise, when the push was sent under the
    /// current window and took at most 2/3 of the slow time (twice the ops
    /// take about twice as long on a busy link), a second push goes on its
    /// way or, already there, the batch doubles.
    pub fn pushed(&mut self, window: u64, elapsed_ms: u64, hub_ms: Option<u64>) {
        self.round_succeeded();
        let before = (self.batch_ops, self.pushes_in_flight);
        let (min, max) = (self.config.batch_ops_min, self.config.batch_ops_max);
        let congested = hub_ms.is_some_and(|ms| ms > self.config.hub_busy_ms);
        if congested || elapsed_ms > self.config.slow_push_ms {
            if window < self.decreased {
                return;
            }
            self.batch_ops = (self.batch_ops / 2).max(min);
            if congested {
                self.pushes_in_flight = 1;
            }
            if (self.batch_ops, self.pushes_in_flight) != before {
                self.window += 1;
                self.decreased = self.window;
            }
            return;
        }
        // Growing doubles the ops on their way, and on a link that is the
        // bottleneck the time of each push with them: only while that stays
        // within 4/3 of the slow time (4/5 of the request timeout), never
        // into a timeout.
        if window != self.window
            || elapsed_ms.saturating_mul(3) > self.config.slow_push_ms.saturating_mul(2)
        {
            return;
        }
        if self.pushes_in_flight < self.config.pushes_in_flight_max {
            self.pushes_in_flight += 1;
        } else {
            self.batch_ops = (self.batch_ops * 2).min(max);
        }
        if (self.batch_ops, self.pushes_in_flight) != before {
            self.window += 1;
        }
    }

    /// A push or probe failed at `now_ms`; `random` draws the jitter.
    pub fn failed(&mut self, now_ms: u64, random: u64) {
        self.failures = self.failures.saturating_add(1);
        self.batch_ops = (self.batch_ops / 2).max(self.config.batch_ops_min);
        // Back from a failure, one push at a time until one is answered
        // (TCP's restart window): many nodes may be coming back at once.
        self.pushes_in_flight = 1;
        self.window += 1;
        self.decreased = self.window;
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
            hub_busy_ms: 200,
            pushes_in_flight_max: 2,
        })
    }

    /// Ops a link would have on their way at once.
    fn volume(link: &Link) -> usize {
        link.batch_ops() * link.pushes_in_flight()
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
        link.probe_succeeded();
        assert_eq!(link.breaker(), Breaker::Closed);
        assert!(matches!(link.step(6_000), Step::Push { .. }));
    }

    #[test]
    fn batches_grow_on_a_fast_link_and_shrink_on_a_slow_one() {
        let mut link = link();
        for _ in 0..10 {
            link.pushed(link.window(), 1, Some(1));
        }
        assert_eq!(link.batch_ops(), 1_000);
        for _ in 0..10 {
            link.pushed(link.window(), 900, Some(1));
        }
        assert_eq!(link.batch_ops(), 10);
        // A slow link with a quick hub keeps two pushes on the wire.
        assert_eq!(link.pushes_in_flight(), 2);
        // A long round of many batches is not a slow link.
        link.round_succeeded();
        assert_eq!(link.batch_ops(), 10);
        assert_eq!(link.breaker(), Breaker::Closed);
    }

    #[test]
    fn a_congested_hub_gets_fewer_ops_at_once() {
        let mut link = link();
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (250, 2));
        // Quick on the wire, but long in the hub's queue: a quarter as many.
        link.pushed(link.window(), 300, Some(250));
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (125, 1));
        // Without the hub's word, only the link's time counts: a push that
        // took over 2/3 of the slow time holds the sizes (twice as many ops
        // could time out), a quicker one grows them.
        link.pushed(link.window(), 400, None);
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (125, 1));
        link.pushed(link.window(), 300, None);
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (125, 2));
        for _ in 0..10 {
            link.pushed(link.window(), 300, Some(900));
        }
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (10, 1));
    }

    #[test]
    fn sizes_grow_once_a_round_trip_and_shrink_once_per_congestion() {
        let mut link = link();
        let (first, second, third) = (link.window(), link.window(), link.window());
        link.pushed(first, 5, Some(5));
        assert_eq!(link.batch_ops(), 500);
        // The second push was sent with the old size: its quick answer
        // says nothing of the new one.
        link.pushed(second, 5, Some(5));
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (500, 2));
        // Congestion is heeded whenever it is news...
        link.pushed(second, 5, Some(900));
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (250, 1));
        // ...but pushes sent before the cut report the same congestion.
        link.pushed(third, 5, Some(900));
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (250, 1));
        // Any answer closes the breaker.
        link.failed(0, 0);
        assert_eq!(link.failures(), 1);
        link.pushed(third, 5, Some(5));
        assert_eq!(link.failures(), 0);
    }

    #[test]
    fn back_from_an_outage_the_ops_in_flight_at_most_double_per_answer() {
        let mut link = link();
        let mut now = 0;
        // A minute without the hub: failed pushes, then failed probes.
        while now < 60_000 {
            match link.step(now) {
                Step::Wait { until_ms } => now = until_ms,
                Step::Probe | Step::Push { .. } => link.failed(now, now.wrapping_mul(7919)),
            }
        }
        assert!(matches!(link.breaker(), Breaker::Open { .. }));
        assert_eq!((link.batch_ops(), link.pushes_in_flight()), (10, 1));
        link.probe_succeeded();
        assert_eq!(volume(&link), 10, "a probe carries no ops");
        let mut volumes = vec![volume(&link)];
        for _ in 0..12 {
            link.pushed(link.window(), 5, Some(5));
            volumes.push(volume(&link));
        }
        assert!(volumes.windows(2).all(|pair| pair[1] <= 2 * pair[0]));
        assert_eq!(volumes[1], 20, "a second push goes out before batches grow");
        assert_eq!(*volumes.last().unwrap(), 2_000);
    }

    #[test]
    fn only_a_congested_hub_spreads_the_next_push_out() {
        let link = link();
        assert_eq!(link.pause_ms(None, 77), 0);
        assert_eq!(link.pause_ms(Some(150), 77), 0, "not over the threshold");
        let pauses: Vec<u64> = (0..1_000)
            .map(|n| link.pause_ms(Some(400), n * 7_919))
            .collect();
        assert!(pauses.iter().all(|&pause| pause <= 400));
        assert!(pauses.iter().any(|&pause| pause < 100) && pauses.iter().any(|&pause| pause > 300));
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

    #[test]
    fn a_slow_or_failing_link_is_constrained_until_it_recovers() {
        let mut link = link();
        assert!(!link.constrained(), "a new link is not");
        link.pushed(link.window(), 900, None);
        assert!(link.constrained(), "a slow push shrank the batch");
        let mut other = self::link();
        other.failed(0, 0);
        assert!(other.constrained(), "a failed push");
        other.round_succeeded();
        assert!(other.constrained(), "until fast pushes grow the batch back");
        for _ in 0..50 {
            other.pushed(other.window(), 10, None);
        }
        assert!(!other.constrained());
    }
}
