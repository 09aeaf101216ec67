//! The background loop: health probe, backoff with jitter, the circuit
//! breaker and adaptive batches (`cairn_core::link`), a push and a pull
//! each round.

use crate::clock;
use crate::hub::*;
use crate::{pull_all, push_all};
use cairn_edge::EdgeStore;
use cairn_edge::clock::now_ms;

/// Logs when the node goes online or offline and when its breaker changes
/// state: what an operator looks for in the node's log after an outage.
fn log_transitions(
    last: &mut (bool, &'static str),
    online: bool,
    breaker: &'static str,
    error: Option<&str>,
) {
    if online != last.0 {
        if online {
            tracing::info!("the hub is reachable: online");
        } else {
            tracing::warn!(
                error = error.unwrap_or(""),
                "the hub is unreachable: offline, writes queue here"
            );
        }
    }
    if breaker != last.1 {
        tracing::warn!(from = last.1, to = breaker, "circuit breaker changed state");
    }
    *last = (online, breaker);
}

/// Draws for backoff and pause jitter (xorshift64). Jitter only needs to
/// differ between nodes, not to be unpredictable.
pub struct Jitter(u64);

impl Default for Jitter {
    fn default() -> Jitter {
        Jitter::new()
    }
}

impl Jitter {
    /// Seeded from the time and the process id.
    pub fn new() -> Jitter {
        Jitter::seeded(now_ms() ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// Seeded with `seed` (simulated nodes).
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// The next draw.
    pub fn draw(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Least time between two status reports to the hub, ms.
const REPORT_EVERY_MS: u64 = 1_000;

/// Most artifact bytes one background round fetches.
const ARTIFACT_ROUND_BYTES: u64 = 8 * 1024 * 1024;

/// Where the background sync keeps its settings.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// The hub's base URL.
    pub hub_url: String,
    /// The hub's origin and key, to check its checkpoints.
    pub hub_key: Option<(String, [u8; 32])>,
    /// SHA-256 of an https:// hub's certificate, the only one trusted.
    pub hub_pin: Option<[u8; 32]>,
    /// How often to look for new ops when idle, ms.
    pub interval_ms: u64,
    /// How long one request to the hub may take, ms.
    pub timeout_ms: u64,
    /// How push bodies travel.
    pub encoding: Encoding,
    /// Breaker, backoff and batch thresholds.
    pub link: cairn_core::link::LinkConfig,
}

/// Runs the sync client until `shutdown` resolves: probes, pushes, backs off.
pub async fn run(
    store: std::sync::Arc<EdgeStore>,
    settings: SyncSettings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use cairn_core::link::{Link, Step};
    let client = match cairn_http::tls::client(
        &settings.hub_url,
        settings.hub_pin,
        Some(std::time::Duration::from_millis(settings.timeout_ms)),
    ) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "sync client cannot start");
            return;
        }
    };
    let mut link = Link::new(settings.link);
    let mut state = Background {
        store: &store,
        settings: &settings,
        client: &client,
        hub_clock: std::sync::Arc::new(clock::HubClock::default()),
        jitter: Jitter::new(),
        stuck: std::collections::BTreeSet::new(),
        last_sync_ms: None,
        last_error: None,
        online: false,
        last_seen: (false, "closed"),
        last_report_ms: 0,
    };
    loop {
        let now = now_ms();
        let wait_ms = match link.step(now) {
            Step::Wait { until_ms } => until_ms.saturating_sub(now).min(settings.interval_ms),
            Step::Probe => state.probe(&mut link).await,
            Step::Push { batch_ops } => state.round(&mut link, batch_ops).await,
        };
        state.record(&link);
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait_ms.max(10))) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// What the background loop knows between steps.
struct Background<'a> {
    store: &'a EdgeStore,
    settings: &'a SyncSettings,
    client: &'a reqwest::Client,
    hub_clock: std::sync::Arc<clock::HubClock>,
    jitter: Jitter,
    /// Streams stopped on a quarantined op: not pushed again.
    stuck: std::collections::BTreeSet<String>,
    last_sync_ms: Option<u64>,
    last_error: Option<String>,
    online: bool,
    /// Online and breaker state as last logged.
    last_seen: (bool, &'static str),
    /// When the node last told the hub its status, ms.
    last_report_ms: u64,
}

impl Background<'_> {
    /// Asks the hub whether it is up; the wait before the next step.
    async fn probe(&mut self, link: &mut cairn_core::link::Link) -> u64 {
        let url = format!("{}/v1/health", self.settings.hub_url);
        let healthy = matches!(self.client.get(url).send().await, Ok(response) if response.status().is_success());
        if healthy {
            link.probe_succeeded();
        } else {
            link.failed(now_ms(), self.jitter.draw());
            self.last_error = Some("health probe failed".into());
        }
        self.online = healthy;
        0
    }

    /// A push and a pull; the wait before the next step.
    async fn round(&mut self, link: &mut cairn_core::link::Link, batch_ops: usize) -> u64 {
        let settings = self.settings;
        let key = settings
            .hub_key
            .as_ref()
            .map(|(origin, key)| (origin.as_str(), *key));
        let hub = HubLink {
            client: self.client,
            url: &settings.hub_url,
            key,
            clock: self.hub_clock.clone(),
        };
        let (store, stuck) = (self.store, &self.stuck);
        // The status goes to the hub at most once a second, however short
        // the rounds.
        let report_due = now_ms().saturating_sub(self.last_report_ms) >= REPORT_EVERY_MS;
        if report_due {
            self.last_report_ms = now_ms();
        }
        let round = async {
            let report = push_all(
                store,
                &hub,
                batch_ops,
                Some(&mut *link),
                stuck,
                settings.encoding,
                None,
            )
            .await?;
            let pulled = pull_all(store, &hub).await?;
            if pulled.applied > 0 {
                tracing::info!(applied = pulled.applied, "pulled from the hub");
            }
            let states = crate::learn_states(store, &hub).await?;
            if !states.rejected.is_empty() {
                tracing::warn!(
                    rejected = states.rejected.len(),
                    compliance_boundary = "hub_verdict",
                    "the hub's rule packs rejected ops of this node: see cairn status"
                );
            }
            // Artifact blobs a bounded share at a time, so pushes never wait
            // long behind a model; a cut fetch resumes next round.
            match crate::artifacts::fetch_artifacts(store, &hub, Some(ARTIFACT_ROUND_BYTES)).await {
                Ok(fetched) => {
                    for item in fetched.iter().filter(|item| item.activated) {
                        tracing::info!(artifact = %item.name, version = %item.version, "artifact active");
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "artifact fetch incomplete; it resumes next round")
                }
            }
            // How this node stands, for the hub's fleet page and metrics.
            if report_due && let Err(error) = crate::report::report_status(store, &hub).await {
                tracing::debug!(error = %format!("{error:#}"), "status report not delivered");
            }
            anyhow::Ok(report)
        };
        match round.await {
            Ok(report) => {
                link.round_succeeded();
                self.online = true;
                self.last_sync_ms = Some(now_ms());
                if !report.quarantined.is_empty() {
                    tracing::error!(quarantined = ?report.quarantined, "the hub quarantined ops");
                    self.last_error =
                        Some(format!("quarantined: {}", report.quarantined.join("; ")));
                } else {
                    self.last_error = None;
                }
                self.stuck.extend(report.stuck);
                if report.accepted > 0 {
                    tracing::info!(accepted = report.accepted, "pushed to the hub");
                }
                settings.interval_ms
            }
            Err(error) => {
                tracing::debug!(error = format!("{error:#}"), "sync round failed");
                link.failed(now_ms(), self.jitter.draw());
                self.online = false;
                self.last_error = Some(format!("{error:#}"));
                0
            }
        }
    }

    /// Logs transitions and saves the sync state for `cairn status`.
    fn record(&mut self, link: &cairn_core::link::Link) {
        log_transitions(
            &mut self.last_seen,
            self.online,
            link.breaker().name(),
            self.last_error.as_deref(),
        );
        let state = serde_json::json!({
            "hub": self.settings.hub_url,
            "online": self.online,
            "breaker": link.breaker().name(),
            "failures": link.failures(),
            "batch_ops": link.batch_ops(),
            "last_sync_ms": self.last_sync_ms,
            "last_error": self.last_error,
            "clock_offset_ms": self.hub_clock.offset_ms(),
            "stuck_streams": self.stuck,
        });
        if let Err(error) = self.store.set_sync_state(&state) {
            tracing::warn!(%error, "cannot save the sync state");
        }
    }
}
