//! Running the judge over the log: the hub's own pass behind the push path
//! ([`judge_pending`]), and a dry run of a new pack version over history
//! ([`dry_run`]) that changes nothing.

use super::judge::{Logged, ReviewDraft};
use super::ledger::{Ledger, ScratchLedger};
use super::overlay::{Overlay, Writes};
use super::store::{Closure, ReviewRow, VerdictRow};
use super::{Judgement, Packs, State};
use crate::StorageError;
use crate::backend::{LogTx, LoggedOp};
use cairn_core::op::Op;
use cairn_core::pack::RulePack;
use std::collections::{BTreeMap, BTreeSet};

/// Most ops one pass judges (one transaction of the writer).
pub const JUDGE_BATCH: usize = 8_192;
/// Most overdue follow-ups one pass turns into review items.
const OVERDUE_MAX: usize = 1_000;

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Ops judged.
    pub judged: u64,
    /// Of them, rejected.
    pub rejected: u64,
    /// Review items raised.
    pub reviews: u64,
    /// Leaves below this are judged now.
    pub through: u64,
}

/// A pass judged but not stored yet.
#[derive(Debug)]
pub struct Plan {
    /// The judged cursor the pass started from.
    from: u64,
    /// Verdict runs.
    runs: Vec<VerdictRow>,
    /// Review items to raise.
    raise: Vec<ReviewRow>,
    /// Awaited follow-ups that came late: (waiting leaf, the follow-up's leaf).
    fulfilled: Vec<(u64, u64)>,
    /// Conflicts an op settled: (collection, key, field, the op's leaf).
    settled: Vec<(String, String, String, u64)>,
    /// The judge's ledger writes.
    writes: Writes,
    /// Ops judged and rejected.
    judged: u64,
    rejected: u64,
}

/// Judges up to `limit` logged ops the packs have not judged yet, in leaf
/// order, and finds overdue follow-ups, reading `tx` only: the writes wait
/// in the returned plan for [`apply`].
pub fn plan(
    tx: &dyn LogTx,
    packs: &Packs,
    now_ms: u64,
    limit: usize,
) -> Result<Plan, StorageError> {
    let from = tx.judged_through()?;
    let size = tx.log_size()?;
    let leaves = tx.leaves(from, size, limit)?;
    let overlay = Overlay::new(tx);
    let mut plan = Plan {
        from,
        runs: Vec::new(),
        raise: Vec::new(),
        fulfilled: Vec::new(),
        settled: Vec::new(),
        writes: Writes::default(),
        judged: 0,
        rejected: 0,
    };
    for logged in &leaves {
        let op = decode(logged)?;
        let outcome = packs.judge(
            Logged {
                leaf: logged.leaf,
                op: &op,
                received_ms: logged.received_ms,
            },
            &overlay,
        )?;
        plan.judged += 1;
        plan.rejected += u64::from(outcome.judgement.state == State::Rejected);
        for draft in &outcome.reviews {
            plan.raise.push(review_row(draft, logged, &op, now_ms));
        }
        for leaf in outcome.fulfils {
            plan.fulfilled.push((leaf, logged.leaf));
        }
        for field in outcome.settles {
            let (collection, key) = (op.draft.collection.clone(), op.draft.key.clone());
            plan.settled.push((collection, key, field, logged.leaf));
        }
        add_to_runs(&mut plan.runs, logged.leaf, outcome.judgement, now_ms);
    }
    for item in overlay.overdue(now_ms, OVERDUE_MAX)? {
        overlay.stop_waiting(item.leaf)?;
        let Some(logged) = tx.leaves(item.leaf, item.leaf + 1, 1)?.pop() else {
            continue;
        };
        let op = decode(&logged)?;
        let draft = ReviewDraft {
            kind: "missing_follow_up",
            leaf: item.leaf,
            rule: item.rule.clone(),
            message: format!(
                "no {} by a different person arrived within the rule's window",
                item.rule
            ),
        };
        plan.raise.push(review_row(&draft, &logged, &op, now_ms));
    }
    plan.writes = overlay.into_writes();
    Ok(plan)
}

impl Plan {
    /// Whether storing it would change nothing (the judge is caught up).
    pub fn is_empty(&self) -> bool {
        self.judged == 0
            && self.raise.is_empty()
            && self.settled.is_empty()
            && self.writes == Writes::default()
    }

    /// The judged cursor it starts from.
    pub fn from(&self) -> u64 {
        self.from
    }
}

/// Stores `plan` inside the write transaction `tx`. A plan made from a
/// cursor another pass has moved since is dropped (nothing stored).
pub fn apply(tx: &dyn LogTx, plan: &Plan, now_ms: u64) -> Result<Pass, StorageError> {
    let mut pass = Pass {
        through: tx.judged_through()?,
        ..Pass::default()
    };
    if pass.through != plan.from {
        return Ok(pass);
    }
    plan.writes.store(tx)?;
    for row in &plan.raise {
        pass.reviews += u64::from(tx.raise_review(row)?.is_some());
    }
    for (waiting, by) in &plan.fulfilled {
        for id in tx.open_reviews_of("missing_follow_up", *waiting)? {
            tx.close_review(
                id,
                &Closure {
                    at_ms: now_ms,
                    by: cairn_core::names::HUB_NODE.into(),
                    decision: "fulfilled".into(),
                    note: format!("the follow-up arrived late, at leaf {by}"),
                    audit_seq: None,
                },
            )?;
        }
    }
    for (collection, key, field, by) in &plan.settled {
        close_settled(tx, (collection, key, field), *by, now_ms)?;
    }
    for run in &plan.runs {
        tx.record_verdict(run)?;
    }
    pass.judged = plan.judged;
    pass.rejected = plan.rejected;
    pass.through = plan.from + plan.judged;
    if plan.judged > 0 {
        tx.set_judged_through(pass.through)?;
    }
    Ok(pass)
}

/// [`plan`] and [`apply`] in one transaction.
pub fn judge_pending(
    tx: &dyn LogTx,
    packs: &Packs,
    now_ms: u64,
    limit: usize,
) -> Result<Pass, StorageError> {
    let plan = plan(tx, packs, now_ms, limit)?;
    apply(tx, &plan, now_ms)
}

/// Closes the open conflict items of `field` of the entity: the op at
/// leaf `by` saw every side and its value stands.
fn close_settled(
    tx: &dyn LogTx,
    (collection, key, field): (&str, &str, &str),
    by: u64,
    now_ms: u64,
) -> Result<(), StorageError> {
    let open = tx.reviews(&super::store::ReviewFilter {
        open_only: true,
        kind: Some("conflict".into()),
        after_id: 0,
        limit: usize::MAX,
    })?;
    for review in open {
        if review.row.collection != collection || review.row.rule != field {
            continue;
        }
        let Some(leaf) = review.row.leaf else {
            continue;
        };
        let same = match tx.logged_op(leaf)? {
            Some(bytes) => Op::decode_logged(&bytes).is_ok_and(|op| op.draft.key == key),
            None => false,
        };
        if same {
            let author = tx
                .logged_op(by)?
                .and_then(|bytes| Op::decode_logged(&bytes).ok())
                .map_or_else(|| "?".to_string(), |op| op.draft.node);
            tx.close_review(
                review.id,
                &Closure {
                    at_ms: now_ms,
                    by: author.clone(),
                    decision: "value chosen".into(),
                    note: format!("settled by {author}'s write at leaf {by}, which saw every side"),
                    audit_seq: None,
                },
            )?;
        }
    }
    Ok(())
}

fn decode(logged: &LoggedOp) -> Result<Op, StorageError> {
    Op::decode_logged(&logged.bytes).map_err(|fault| {
        StorageError::Damaged(format!("leaf {} does not decode: {fault}", logged.leaf))
    })
}

fn review_row(draft: &ReviewDraft, logged: &LoggedOp, op: &Op, now_ms: u64) -> ReviewRow {
    ReviewRow {
        kind: draft.kind.to_string(),
        leaf: Some(draft.leaf),
        node: op.draft.node.clone(),
        stream: op.draft.stream.clone(),
        seq: Some(logged.seq),
        collection: op.draft.collection.clone(),
        rule: draft.rule.clone(),
        message: draft.message.clone(),
        raised_ms: now_ms,
        material_hash: None,
    }
}

/// Consecutive ops one pack version persisted share a run; a rejected op
/// has its own.
fn add_to_runs(runs: &mut Vec<VerdictRow>, leaf: u64, judgement: Judgement, at_ms: u64) {
    if let Some(last) = runs.last_mut()
        && last.end == leaf
        && judgement.state == State::Persisted
        && last.judgement == judgement
    {
        last.end = leaf + 1;
        return;
    }
    runs.push(VerdictRow {
        begin: leaf,
        end: leaf + 1,
        judgement,
        at_ms,
    });
}

/// Most examples a dry run keeps per rule.
pub const EXAMPLES_MAX: usize = 5;
/// Ops a dry run reads per page.
const DRY_RUN_PAGE: usize = 10_000;

/// What a new pack version would do to history.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DryRun {
    /// The pack and version tried.
    pub pack: String,
    /// Its version.
    pub version: String,
    /// The version active now, if any.
    pub active_version: Option<String>,
    /// Logged ops replayed.
    pub replayed: u64,
    /// Of them, records of the pack's collections.
    pub records: u64,
    /// Records the active packs persisted that the new version rejects.
    pub newly_rejected: u64,
    /// Records rejected now that the new version would persist.
    pub newly_accepted: u64,
    /// `newly_rejected / records`.
    pub share: f64,
    /// The new version's tolerance.
    pub tolerance: f64,
    /// Would-be rejections per rule: count and a few examples.
    pub by_rule: BTreeMap<String, RuleDrift>,
}

/// Would-be rejections under one rule.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RuleDrift {
    /// How many records.
    pub count: u64,
    /// A few of them: leaf, node, seq and the message.
    pub examples: Vec<DriftExample>,
}

/// One record a new version would newly reject.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DriftExample {
    /// Its leaf.
    pub leaf: u64,
    /// Who wrote it.
    pub node: String,
    /// Its seq.
    pub seq: u64,
    /// What the new version says (never a sensitive value).
    pub message: String,
}

impl DryRun {
    /// Whether activation must be refused (unless forced).
    pub fn exceeds_tolerance(&self) -> bool {
        self.share > self.tolerance
    }
}

/// Replays the log judged so far through `packs` with `pack` in place of its
/// active version, from a scratch ledger; compares with the stored verdicts
/// and touches nothing. `progress` hears the replayed count per page.
pub fn dry_run(
    tx: &dyn LogTx,
    packs: &Packs,
    pack: &RulePack,
    mut progress: impl FnMut(u64),
) -> Result<DryRun, String> {
    let trial = packs.with(pack.clone())?;
    let store = |error: StorageError| error.to_string();
    let through = tx.judged_through().map_err(store)?;
    let rejected_now: BTreeSet<u64> = tx
        .unpersisted_leaves()
        .map_err(store)?
        .into_iter()
        .collect();
    let scratch = ScratchLedger {
        source: Some(tx),
        ..ScratchLedger::default()
    };
    let mut report = DryRun {
        pack: pack.name.clone(),
        version: pack.version.clone(),
        active_version: packs
            .packs()
            .iter()
            .find(|active| active.name == pack.name)
            .map(|active| active.version.clone()),
        tolerance: pack.drift_tolerance,
        ..DryRun::default()
    };
    let mut from = 0;
    while from < through {
        let page = tx.leaves(from, through, DRY_RUN_PAGE).map_err(store)?;
        let Some(last) = page.last() else { break };
        from = last.leaf + 1;
        for logged in &page {
            let op = decode(logged).map_err(store)?;
            let outcome = trial
                .judge(
                    Logged {
                        leaf: logged.leaf,
                        op: &op,
                        received_ms: logged.received_ms,
                    },
                    &scratch,
                )
                .map_err(store)?;
            report.replayed += 1;
            if !pack.collections.contains_key(&op.draft.collection) {
                continue;
            }
            report.records += 1;
            let was_rejected = rejected_now.contains(&logged.leaf);
            match (outcome.judgement.state == State::Rejected, was_rejected) {
                (true, false) => {
                    report.newly_rejected += 1;
                    note_drift(&mut report, logged, &outcome.judgement);
                }
                (false, true) => report.newly_accepted += 1,
                _ => {}
            }
        }
        progress(report.replayed);
    }
    report.share = if report.records == 0 {
        0.0
    } else {
        report.newly_rejected as f64 / report.records as f64
    };
    Ok(report)
}

fn note_drift(report: &mut DryRun, logged: &LoggedOp, judgement: &Judgement) {
    for violation in &judgement.violations {
        let drift = report.by_rule.entry(violation.rule.clone()).or_default();
        drift.count += 1;
        if drift.examples.len() < EXAMPLES_MAX {
            drift.examples.push(DriftExample {
                leaf: logged.leaf,
                node: logged.node.clone(),
                seq: logged.seq,
                message: violation.to_string(),
            });
        }
    }
}
