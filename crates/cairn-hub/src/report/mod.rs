//! Compliance reports: what the log and the judge's verdicts say about a
//! period, computed in one pass over the log (storage-agnostic), then
//! rendered as JSON, HTML with SVG charts (`html`) or PDF (`pdf`), and
//! sealed with the hub's key (`cairn_core::seal`).
//!
//! Every figure is derived from the log and the stores beside it, so the
//! same history gives the same report: records by state and collection,
//! reconciliation latency (the writer's clock at the write to the hub's
//! verdict), rejections by rule, quarantines, conflicts and other review
//! items, queue depth over time reconstructed from write and arrival times
//! with the disconnects that built it up, Schedule II reconciliation, NDC
//! normalization, sign-offs by meaning where a pack has them; and, for one
//! aircraft registration, every record about it (14 CFR 91.417).

pub mod html;
pub mod pdf;
pub mod text;

use crate::backend::{HubBackend, LogTx, LoggedOp};
use crate::comply::{ComplianceStore, ReviewFilter, State, VerdictRow};
use crate::{Hub, StorageError};
use cairn_core::op::Op;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// Leaves read at a time.
const SCAN_CHUNK: usize = 4_096;
/// Points on the queue-depth chart.
const QUEUE_SAMPLES: usize = 96;
/// A node silent this long with ops written meanwhile was disconnected.
pub const DISCONNECT_GAP_MS: u64 = 10 * 60_000;
/// Upper bounds of the latency histogram's buckets, ms.
const LATENCY_BUCKETS_MS: [u64; 10] = [
    1_000,
    5_000,
    30_000,
    60_000,
    300_000,
    900_000,
    3_600_000,
    21_600_000,
    86_400_000,
    u64::MAX,
];

/// What a report covers.
#[derive(Clone, Debug, Default)]
pub struct ReportQuery {
    /// From this hub time (ms), inclusive; the log's start if none.
    pub from_ms: Option<u64>,
    /// To this hub time (ms), exclusive; now if none.
    pub to_ms: Option<u64>,
    /// Only ops carrying every one of these scope labels.
    pub scope: BTreeMap<String, String>,
    /// Also list every record about this aircraft registration.
    pub aircraft: Option<String>,
}

/// Reconciliation latency, ms: the writer's clock at the write to the
/// hub's verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Ops measured (judged ones).
    pub count: u64,
    /// Percentiles and the largest.
    pub p50_ms: u64,
    /// 90th percentile.
    pub p90_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// The largest.
    pub max_ms: u64,
    /// Ops per bucket, by upper bound (ms; `null` for the last).
    pub buckets: Vec<(Option<u64>, u64)>,
}

/// A node that went quiet with ops piling up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disconnect {
    /// The node.
    pub node: String,
    /// Its last arrival before the gap, ms.
    pub from_ms: u64,
    /// The arrival that ended it, ms.
    pub to_ms: u64,
}

/// Schedule II dispensing and its second-pharmacist verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScheduleTwo {
    /// Schedule II dispensings logged.
    pub dispensed: u64,
    /// Of those, raised as missing their verification in time.
    pub missing_verification: u64,
    /// Of those, still open.
    pub still_open: u64,
}

/// One record about an aircraft, for its transfer export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AircraftRecord {
    /// Its leaf in the log.
    pub leaf: u64,
    /// `node:stream:seq`.
    pub record: String,
    /// Its collection.
    pub collection: String,
    /// When it was written (the writer's clock), ms.
    pub written_ms: u64,
    /// Its state at the hub.
    pub state: String,
    /// What it says.
    pub data: Value,
}

/// A compliance report's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// The hub's log origin.
    pub origin: String,
    /// When it was made, ms.
    pub generated_ms: u64,
    /// The period, ms: from (inclusive), to (exclusive).
    pub from_ms: u64,
    /// End of the period.
    pub to_ms: u64,
    /// The scope it is limited to.
    pub scope: BTreeMap<String, String>,
    /// The log's size when it was made, and the leaves it covers.
    pub log_size: u64,
    /// Leaves in the period: first and one past the last.
    pub leaves: (u64, u64),
    /// Records (ops) in the period, in scope.
    pub records: u64,
    /// By state: persisted, rejected, validated (not judged yet).
    pub by_state: BTreeMap<String, u64>,
    /// By collection.
    pub by_collection: BTreeMap<String, u64>,
    /// Reconciliation latency.
    pub latency: Latency,
    /// Rejections by rule.
    pub rejections_by_rule: BTreeMap<String, u64>,
    /// Quarantined pushes in the period, by reason's first words.
    pub quarantines: u64,
    /// Review items raised in the period, by kind.
    pub reviews_raised: BTreeMap<String, u64>,
    /// Of those, still open, by kind.
    pub reviews_open: BTreeMap<String, u64>,
    /// Merge conflicts raised in the period.
    pub conflicts: u64,
    /// Queue depth across the fleet over time, reconstructed from each
    /// op's write and arrival: (time ms, ops written and not yet at the hub).
    pub queue_depth: Vec<(u64, u64)>,
    /// Disconnects that held ops back.
    pub disconnects: Vec<Disconnect>,
    /// Schedule II reconciliation.
    pub schedule_two: ScheduleTwo,
    /// Dispensings whose NDC is in NDC-11 form (normalized), of all.
    pub ndc_normalized: (u64, u64),
    /// Sign-offs by meaning (collections with a `meaning` field).
    pub sign_offs: BTreeMap<String, u64>,
    /// Every record about the aircraft asked for.
    pub aircraft: Option<(String, Vec<AircraftRecord>)>,
}

/// The verdicts of consecutive leaves, read a page at a time.
struct Verdicts {
    pending: VecDeque<VerdictRow>,
    next: u64,
}

impl Verdicts {
    fn starting_at(tx: &impl ComplianceStore, leaf: u64) -> Result<Verdicts, StorageError> {
        let mut pending = VecDeque::new();
        pending.extend(tx.verdict_at(leaf)?);
        let next = pending.back().map_or(leaf, |row| row.end);
        Ok(Verdicts { pending, next })
    }

    /// The verdict on `leaf` (leaves asked in ascending order), if judged.
    fn at(
        &mut self,
        tx: &impl ComplianceStore,
        leaf: u64,
    ) -> Result<Option<VerdictRow>, StorageError> {
        loop {
            while self.pending.front().is_some_and(|row| row.end <= leaf) {
                self.pending.pop_front();
            }
            if !self.pending.is_empty() {
                let front = &self.pending[0];
                return Ok((front.begin <= leaf).then(|| front.clone()));
            }
            let page = tx.verdicts_from(self.next, SCAN_CHUNK)?;
            let Some(last) = page.last() else {
                return Ok(None);
            };
            self.next = last.end;
            self.pending.extend(page);
        }
    }
}

/// What one pass accumulates.
#[derive(Default)]
struct Pass {
    report: Report,
    latencies: Vec<u64>,
    /// Queue depth as a difference array over the chart's samples.
    depth_changes: Vec<i64>,
    last_arrival: BTreeMap<String, u64>,
    schedule_two_leaves: Vec<u64>,
}

impl<B: HubBackend> Hub<B> {
    /// The report `query` asks for, from the log as it is now.
    pub fn report(&self, query: &ReportQuery) -> Result<Report, StorageError> {
        let tx = self.backend().read()?;
        let now = self.clock().now_ms();
        let size = tx.log_size()?;
        let from_ms = match query.from_ms {
            Some(from) => from,
            None => tx.leaves(0, 1, 1)?.first().map_or(now, |op| op.received_ms),
        };
        let to_ms = query.to_ms.unwrap_or(now + 1).max(from_ms + 1);
        let first = crate::comply::entities::first_leaf_at(&tx, from_ms)?;
        let end = crate::comply::entities::first_leaf_at(&tx, to_ms)?;
        let mut pass = Pass {
            report: Report {
                origin: self.signer().origin().to_string(),
                generated_ms: now,
                from_ms,
                to_ms,
                scope: query.scope.clone(),
                log_size: size,
                leaves: (first, end),
                aircraft: query
                    .aircraft
                    .clone()
                    .map(|registration| (registration, Vec::new())),
                ..Report::default()
            },
            depth_changes: vec![0; QUEUE_SAMPLES + 1],
            ..Pass::default()
        };
        let mut verdicts = Verdicts::starting_at(&tx, first)?;
        let mut at = first;
        while at < end {
            let chunk = tx.leaves(at, end, SCAN_CHUNK)?;
            let Some(last) = chunk.last().map(|op| op.leaf) else {
                break;
            };
            for logged in &chunk {
                let verdict = verdicts.at(&tx, logged.leaf)?;
                pass.add(logged, verdict.as_ref(), query)?;
            }
            at = last + 1;
        }
        pass.reviews(&tx)?;
        pass.quarantines(&tx)?;
        Ok(pass.finish())
    }
}

/// Whether an op's scope (`,name=value,...,`) holds every label asked for.
fn in_scope(scope: &str, wanted: &BTreeMap<String, String>) -> bool {
    wanted
        .iter()
        .all(|(name, value)| scope.contains(&format!(",{name}={value},")))
}

impl Pass {
    fn add(
        &mut self,
        logged: &LoggedOp,
        verdict: Option<&VerdictRow>,
        query: &ReportQuery,
    ) -> Result<(), StorageError> {
        if !in_scope(&logged.scope, &query.scope) {
            return Ok(());
        }
        let op = Op::decode_logged(&logged.bytes)
            .map_err(|fault| StorageError::Damaged(format!("leaf {}: {fault}", logged.leaf)))?;
        let report = &mut self.report;
        report.records += 1;
        *report
            .by_collection
            .entry(op.draft.collection.clone())
            .or_default() += 1;
        let state = verdict.map_or(State::Validated, |row| row.judgement.state);
        *report.by_state.entry(state.name().to_string()).or_default() += 1;
        if let Some(row) = verdict {
            self.latencies
                .push(row.at_ms.saturating_sub(op.draft.hlc.wall_ms));
            if row.judgement.state == State::Rejected {
                for violation in &row.judgement.violations {
                    *report
                        .rejections_by_rule
                        .entry(violation.rule.clone())
                        .or_default() += 1;
                }
            }
        }
        self.queue(&op, logged.received_ms);
        self.disconnects(&op, logged.received_ms);
        self.payload_figures(logged, &op, state)?;
        Ok(())
    }

    /// Adds the op's time in a queue (write to arrival) to the chart.
    fn queue(&mut self, op: &Op, arrived_ms: u64) {
        let (from, to) = (self.report.from_ms, self.report.to_ms);
        let span = (to - from).max(1);
        let sample = |ms: u64| -> usize {
            let clamped = ms.clamp(from, to);
            ((clamped - from) as u128 * QUEUE_SAMPLES as u128 / span as u128) as usize
        };
        let (written, arrived) = (sample(op.draft.hlc.wall_ms), sample(arrived_ms));
        if written < arrived {
            self.depth_changes[written] += 1;
            self.depth_changes[arrived] -= 1;
        }
    }

    /// A gap in a node's arrivals during which it wrote ops is a disconnect.
    fn disconnects(&mut self, op: &Op, arrived_ms: u64) {
        let node = &op.draft.node;
        if let Some(&last) = self.last_arrival.get(node)
            && arrived_ms.saturating_sub(last) > DISCONNECT_GAP_MS
            && op.draft.hlc.wall_ms < arrived_ms.saturating_sub(DISCONNECT_GAP_MS)
        {
            self.report.disconnects.push(Disconnect {
                node: node.clone(),
                from_ms: last,
                to_ms: arrived_ms,
            });
        }
        self.last_arrival.insert(node.clone(), arrived_ms);
    }

    /// Figures that read the record itself: Schedule II, NDC form,
    /// sign-offs, the aircraft export.
    fn payload_figures(
        &mut self,
        logged: &LoggedOp,
        op: &Op,
        state: State,
    ) -> Result<(), StorageError> {
        let collection = op.draft.collection.as_str();
        let wanted = self.report.aircraft.is_some();
        if collection != "dispensing" && !wanted && !collection.ends_with("sign_offs") {
            return Ok(());
        }
        let Ok(data) = serde_json::from_slice::<Value>(&op.draft.payload) else {
            return Ok(());
        };
        if collection == "dispensing" {
            if data["dea_schedule"] == "II" {
                self.report.schedule_two.dispensed += 1;
                self.schedule_two_leaves.push(logged.leaf);
            }
            let ndc = data["ndc"].as_str().unwrap_or_default();
            let normalized =
                ndc.len() == 13 && ndc.as_bytes()[5] == b'-' && ndc.as_bytes()[10] == b'-';
            self.report.ndc_normalized.0 += u64::from(normalized);
            self.report.ndc_normalized.1 += 1;
        }
        if let Some(meaning) = data["meaning"].as_str() {
            *self
                .report
                .sign_offs
                .entry(meaning.to_string())
                .or_default() += 1;
        }
        if let Some((registration, records)) = &mut self.report.aircraft
            && (data["aircraft_registration"].as_str() == Some(registration.as_str())
                || (collection == "aircraft" && op.draft.key == *registration))
        {
            records.push(AircraftRecord {
                leaf: logged.leaf,
                record: if op.draft.key.is_empty() {
                    op.record_id()
                } else {
                    op.draft.key.clone()
                },
                collection: collection.to_string(),
                written_ms: op.draft.hlc.wall_ms,
                state: state.name().to_string(),
                data,
            });
        }
        Ok(())
    }

    /// Review items raised in the period (and their leaves' scope).
    fn reviews(&mut self, tx: &impl ComplianceStore) -> Result<(), StorageError> {
        let (from, to) = (self.report.from_ms, self.report.to_ms);
        let mut after_id = 0;
        loop {
            let filter = ReviewFilter {
                open_only: false,
                kind: None,
                after_id,
                limit: SCAN_CHUNK,
            };
            let page = tx.reviews(&filter)?;
            let Some(last) = page.last().map(|review| review.id) else {
                break;
            };
            for review in page {
                let row = &review.row;
                if row.raised_ms < from || row.raised_ms >= to {
                    continue;
                }
                *self
                    .report
                    .reviews_raised
                    .entry(row.kind.clone())
                    .or_default() += 1;
                if review.closure.is_none() {
                    *self
                        .report
                        .reviews_open
                        .entry(row.kind.clone())
                        .or_default() += 1;
                }
                if row.kind == "conflict" {
                    self.report.conflicts += 1;
                }
                if row.kind == "missing_follow_up"
                    && row
                        .leaf
                        .is_some_and(|leaf| self.schedule_two_leaves.binary_search(&leaf).is_ok())
                {
                    self.report.schedule_two.missing_verification += 1;
                    self.report.schedule_two.still_open += u64::from(review.closure.is_none());
                }
            }
            after_id = last;
        }
        Ok(())
    }

    fn quarantines(&mut self, tx: &(impl LogTx + ?Sized)) -> Result<(), StorageError> {
        let (from, to) = (self.report.from_ms, self.report.to_ms);
        self.report.quarantines = tx
            .recent_quarantine(usize::MAX >> 1)?
            .iter()
            .filter(|item| (from..to).contains(&item.received_ms))
            .count() as u64;
        Ok(())
    }

    fn finish(mut self) -> Report {
        let mut latencies = std::mem::take(&mut self.latencies);
        latencies.sort_unstable();
        let percentile = |share: f64| -> u64 {
            if latencies.is_empty() {
                return 0;
            }
            let rank = ((latencies.len() as f64 * share).ceil() as usize).clamp(1, latencies.len());
            latencies[rank - 1]
        };
        let mut buckets: Vec<(Option<u64>, u64)> = LATENCY_BUCKETS_MS
            .iter()
            .map(|&bound| ((bound != u64::MAX).then_some(bound), 0))
            .collect();
        for &latency in &latencies {
            let index = LATENCY_BUCKETS_MS
                .iter()
                .position(|&bound| latency <= bound)
                .unwrap_or(0);
            buckets[index].1 += 1;
        }
        self.report.latency = Latency {
            count: latencies.len() as u64,
            p50_ms: percentile(0.50),
            p90_ms: percentile(0.90),
            p99_ms: percentile(0.99),
            max_ms: latencies.last().copied().unwrap_or(0),
            buckets,
        };
        let (from, to) = (self.report.from_ms, self.report.to_ms);
        let span = (to - from).max(1);
        let mut depth = 0i64;
        self.report.queue_depth = (0..QUEUE_SAMPLES)
            .map(|sample| {
                depth += self.depth_changes[sample];
                (
                    from + span * sample as u64 / QUEUE_SAMPLES as u64,
                    depth.max(0) as u64,
                )
            })
            .collect();
        self.report
    }
}
