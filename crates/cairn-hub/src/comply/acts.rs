//! What people and edges do with compliance through a [`Hub`]: run the
//! judge, read and resolve review items, learn their ops' states, try and
//! activate pack versions. Every decision is an act of the hub's audit
//! stream (who, what, when, before and after), so it is logged, signed and
//! reaches the edges like any op.

use super::run::{self, DryRun, Pass};
use super::store::{Closure, ComplianceStore, Review, ReviewFilter, VerdictRow};
use super::{Packs, State};
use crate::audit;
use crate::backend::{HubBackend, LogTx};
use crate::{Hub, StorageError};
use cairn_core::hash::Hash;
use cairn_core::pack::RulePack;
use serde_json::json;

/// Most review items one listing returns.
pub const REVIEWS_MAX: usize = 500;
/// Most verdicts one states answer carries.
pub const STATES_MAX: usize = 1_000;
/// The hub's stream of registry writes.
pub const REGISTRY_STREAM: &str = "registry";
/// Decisions a review item can be closed with.
pub const DECISIONS: [&str; 4] = ["accepted", "corrected", "dismissed", "escalated"];

/// Why a review act was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such item.
    #[error("no review item {0}")]
    Unknown(u64),
    /// It was closed before.
    #[error("review item {0} is closed already")]
    Closed(u64),
    /// A field of the request breaks a rule: (field, message).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    /// Storage failed: nothing was decided.
    #[error(transparent)]
    Store(#[from] StorageError),
}

/// Why a pack could not be tried or activated.
#[derive(Debug, thiserror::Error)]
pub enum PackActError {
    /// The pack cannot stand beside the others (a collection twice...).
    #[error("{0}")]
    Invalid(String),
    /// Its dry run rejects more than its tolerance and it was not forced.
    #[error(
        "version {version} of {pack} would newly reject {share:.2} % of its records (tolerance {tolerance:.2} %); activation refused"
    )]
    Refused {
        /// The pack.
        pack: String,
        /// Its version.
        version: String,
        /// The share, in percent.
        share: f64,
        /// The tolerance, in percent.
        tolerance: f64,
    },
    /// Storage failed: nothing changed.
    #[error(transparent)]
    Store(#[from] StorageError),
}

/// A review item with what it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewDetail {
    /// The item.
    pub review: Review,
    /// The logged op it is about (for a quarantine item: the op the hub
    /// logged at the same seq, if any).
    pub logged: Option<Vec<u8>>,
    /// The quarantined material (quarantine items).
    pub quarantined: Option<Vec<u8>>,
}

/// A resolution's note: why, 1 to `REASON_BYTES_MAX` bytes of text.
pub(crate) fn check_note(note: &str) -> Result<&str, ReviewError> {
    let note = note.trim();
    if note.is_empty() || note.len() > cairn_core::limits::REASON_BYTES_MAX {
        return Err(ReviewError::Invalid(
            "note",
            format!(
                "must be 1 to {} bytes of text: why",
                cairn_core::limits::REASON_BYTES_MAX
            ),
        ));
    }
    Ok(note)
}

/// The compliance states of one stream's ops, for its node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStates {
    /// Ops up to this seq are judged (persisted unless listed).
    pub judged_seq: u64,
    /// The ops judged anything but persisted: (seq, verdict).
    pub verdicts: Vec<(u64, VerdictRow)>,
}

impl<B: HubBackend> Hub<B> {
    /// Judges up to `limit` ops logged since the last pass: judged in a
    /// read transaction, stored in a short write transaction (see
    /// [`run::plan`] and [`run::apply`]).
    pub fn judge_pending(&self, limit: usize) -> Result<Pass, StorageError> {
        let now = self.clock().now_ms();
        // Judged on the reader; only the results take the writer lock.
        let plan = {
            let tx = self.backend().read()?;
            let packs = self.stored_packs_taken_up(&tx)?;
            run::plan(&tx, &packs, now, limit)?
        };
        if plan.is_empty() {
            // Caught up: no write transaction, no lock taken.
            return Ok(Pass {
                through: plan.from(),
                ..Pass::default()
            });
        }
        self.in_write(|tx, now| run::apply(tx, &plan, now))
    }

    /// The packs to judge by: the ones the store holds. Another hub process
    /// sharing the database, or a CLI act beside this one, may have
    /// activated a version since this process last looked; it is taken up
    /// here, before the pass (comparing the stored sources' hashes is a
    /// read of a few kilobytes).
    fn stored_packs_taken_up(&self, tx: &dyn LogTx) -> Result<std::sync::Arc<Packs>, StorageError> {
        let current = self.packs();
        let sources = tx.pack_sources()?;
        let known: std::collections::BTreeSet<Hash> = current
            .packs()
            .iter()
            .map(|pack| pack.source_hash)
            .collect();
        let stored: std::collections::BTreeSet<Hash> = sources
            .iter()
            .map(|source| Hash::of(source.as_bytes()))
            .collect();
        if stored.is_empty() || stored == known {
            return Ok(current);
        }
        match stored_packs(tx)? {
            Some(packs) => {
                tracing::info!(
                    packs = packs.packs().len(),
                    "took up the rule packs the store holds now"
                );
                self.set_packs(packs);
                Ok(self.packs())
            }
            None => Ok(current),
        }
    }

    /// Judges until every logged op is judged.
    pub fn judge_all(&self) -> Result<Pass, StorageError> {
        let mut total = Pass::default();
        loop {
            let pass = self.judge_pending(run::JUDGE_BATCH)?;
            total.judged += pass.judged;
            total.rejected += pass.rejected;
            total.reviews += pass.reviews;
            total.through = pass.through;
            if pass.judged == 0 {
                return Ok(total);
            }
        }
    }

    /// Review items by `filter`.
    pub fn reviews(&self, filter: &ReviewFilter) -> Result<Vec<Review>, StorageError> {
        let mut filter = filter.clone();
        filter.limit = filter.limit.clamp(1, REVIEWS_MAX);
        self.backend().read()?.reviews(&filter)
    }

    /// One review item, with what it is about as stored: the logged op,
    /// or the quarantined material beside the op the hub logged at that
    /// seq (if any), so a person sees both versions.
    pub fn review(&self, id: u64) -> Result<Option<ReviewDetail>, StorageError> {
        let tx = self.backend().read()?;
        let Some(review) = tx.review(id)? else {
            return Ok(None);
        };
        let leaf_bytes = |leaf: u64| -> Result<Option<Vec<u8>>, StorageError> {
            Ok(tx
                .leaves(leaf, leaf + 1, 1)?
                .pop()
                .map(|logged| logged.bytes))
        };
        let (logged, quarantined) = match (review.row.leaf, review.row.material_hash) {
            (Some(leaf), _) => (leaf_bytes(leaf)?, None),
            (None, Some(hash)) => {
                let material =
                    tx.quarantined_material(&review.row.node, &review.row.stream, &hash)?;
                let logged = match (
                    tx.stream(&review.row.node, &review.row.stream)?,
                    review.row.seq,
                ) {
                    (Some(stream), Some(seq)) => match tx.logged(stream.id, seq)? {
                        Some((leaf, _)) => leaf_bytes(leaf)?,
                        None => None,
                    },
                    _ => None,
                };
                (logged, material)
            }
            (None, None) => (None, None),
        };
        Ok(Some(ReviewDetail {
            review,
            logged,
            quarantined,
        }))
    }

    /// Closes review item `id` with `decision` and `note`, as `by`: an act
    /// of the hub's audit stream, then the item closed naming it.
    pub fn resolve_review(
        &self,
        id: u64,
        decision: &str,
        note: &str,
        by: &str,
    ) -> Result<Closure, ReviewError> {
        if !DECISIONS.contains(&decision) {
            return Err(ReviewError::Invalid(
                "decision",
                format!("must be one of {}", DECISIONS.join(", ")),
            ));
        }
        let note = check_note(note)?;
        self.in_write(|tx, now| {
            let review = tx.review(id)?.ok_or(ReviewError::Unknown(id))?;
            if review.closure.is_some() {
                return Err(ReviewError::Closed(id));
            }
            if review.row.kind == "conflict" {
                return Err(ReviewError::Invalid(
                    "value",
                    format!("review item {id} is a conflict: name the value that stands"),
                ));
            }
            let act = json!({
                "action": "review.resolve",
                "review": id,
                "kind": review.row.kind,
                "leaf": review.row.leaf,
                "node": review.row.node,
                "stream": review.row.stream,
                "seq": review.row.seq,
                "rule": review.row.rule,
                "before": "open",
                "decision": decision,
                "note": note,
                "by": by,
            });
            let seq = audit::append_act(tx, self.signer(), &act, now)?;
            let closure = Closure {
                at_ms: now,
                by: by.to_string(),
                decision: decision.to_string(),
                note: note.to_string(),
                audit_seq: Some(seq),
            };
            tx.close_review(id, &closure)?;
            Ok(closure)
        })
    }

    /// Writes registry entry `key` of config collection `collection` (the
    /// authorized technicians): an op of the hub's `registry` stream,
    /// checked by the collection's rules, and an audit act naming `by`.
    /// `data` `None` deletes (revokes) the entry. Returns the op's seq.
    pub fn put_registry(
        &self,
        collection: &str,
        key: &str,
        data: Option<&serde_json::Value>,
        by: &str,
    ) -> Result<u64, ReviewError> {
        let packs = self.packs();
        let rules = packs
            .pack_of(collection)
            .map(|pack| &pack.collections[collection])
            .filter(|rules| rules.kind == cairn_core::pack::CollectionKind::Config)
            .ok_or_else(|| {
                ReviewError::Invalid(
                    "collection",
                    format!("{collection:?} is not a config collection of an active pack"),
                )
            })?;
        cairn_core::names::check_key(key)
            .map_err(|message| ReviewError::Invalid("key", message))?;
        if !rules.scope.is_empty() {
            return Err(ReviewError::Invalid(
                "collection",
                format!("{collection} is scoped; the hub writes only fleet-wide registries"),
            ));
        }
        let (action, payload) = match data {
            None => (cairn_core::op::Action::Delete, b"{}".to_vec()),
            Some(data) => {
                let checked = rules.validate(cairn_core::op::Action::Put, data, true);
                if let Some(first) = checked.violations.first() {
                    return Err(ReviewError::Invalid("data", first.to_string()));
                }
                let payload = serde_json::Value::Object(checked.payload);
                let bytes = cairn_core::canonical::to_canonical_bytes(&payload)
                    .map_err(|error| ReviewError::Invalid("data", error.to_string()))?;
                (cairn_core::op::Action::Put, bytes)
            }
        };
        self.in_write(|tx, now| {
            let seq = audit::append_own(
                tx,
                self.signer(),
                audit::HubWrite {
                    stream: REGISTRY_STREAM,
                    collection,
                    action,
                    key,
                    scope: Default::default(),
                    payload,
                    base: Default::default(),
                },
                now,
            )?;
            let act = json!({
                "action": if data.is_some() { "registry.put" } else { "registry.revoke" },
                "collection": collection,
                "key": key,
                "registry_seq": seq,
                "by": by,
            });
            audit::append_act(tx, self.signer(), &act, now)?;
            Ok(seq)
        })
    }

    /// The compliance states of the ops of `node`'s `stream` after
    /// `after_seq`.
    pub fn stream_states(
        &self,
        node: &str,
        stream: &str,
        after_seq: u64,
    ) -> Result<StreamStates, StorageError> {
        let tx = self.backend().read()?;
        let Some(row) = tx.stream(node, stream)? else {
            return Ok(StreamStates::default());
        };
        let mut verdicts = tx.stream_verdicts(row.id, after_seq, STATES_MAX)?;
        let mut judged_seq = tx.judged_seq(row.id)?;
        if verdicts.len() == STATES_MAX
            && let Some((last, _)) = verdicts.last()
        {
            // More follow: this answer covers up to its last verdict.
            judged_seq = judged_seq.min(*last);
        }
        verdicts.retain(|(seq, _)| *seq <= judged_seq);
        Ok(StreamStates {
            judged_seq,
            verdicts,
        })
    }

    /// Replays history through `pack` in place of its active version (see
    /// [`run::dry_run`]); changes nothing.
    pub fn dry_run(&self, pack: &RulePack, progress: impl FnMut(u64)) -> Result<DryRun, String> {
        let tx = self.backend().read().map_err(|error| error.to_string())?;
        run::dry_run(&tx, &self.packs(), pack, progress)
    }

    /// Activates `pack` (TOML `source`) after a dry run: refused when the
    /// share it would newly reject exceeds its tolerance, unless `force`.
    /// The refusal, the forcing and the activation are each an act of the
    /// audit stream. Ops judged before keep their verdicts; the judge goes
    /// by the new version from the next op on, and no node re-syncs.
    pub fn activate_pack(
        &self,
        pack: &RulePack,
        source: &str,
        force: bool,
        by: &str,
    ) -> Result<DryRun, PackActError> {
        let packs = self
            .packs()
            .with(pack.clone())
            .map_err(PackActError::Invalid)?;
        let distributed = distribution_payload(pack, source)?;
        let report = self
            .dry_run(pack, |_| {})
            .map_err(|error| PackActError::Store(StorageError::Fault(error)))?;
        let refused = report.exceeds_tolerance() && !force;
        let act = json!({
            "action": if refused { "pack.refuse" } else if report.exceeds_tolerance() { "pack.force" } else { "pack.activate" },
            "pack": pack.name,
            "before": report.active_version,
            "after": if refused { report.active_version.clone() } else { Some(pack.version.clone()) },
            "version": pack.version,
            "source_hash": pack.source_hash.to_hex(),
            "records": report.records,
            "newly_rejected": report.newly_rejected,
            "share": report.share,
            "tolerance": report.tolerance,
            "by": by,
        });
        self.in_write(|tx: &dyn LogTx, now| {
            audit::append_act(tx, self.signer(), &act, now)?;
            if !refused {
                tx.put_pack(pack, source, now)?;
                publish_pack(tx, self.signer(), pack, distributed, now)?;
            }
            Ok::<_, StorageError>(())
        })?;
        if refused {
            return Err(PackActError::Refused {
                pack: pack.name.clone(),
                version: pack.version.clone(),
                share: report.share * 100.0,
                tolerance: report.tolerance * 100.0,
            });
        }
        self.set_packs(packs);
        Ok(report)
    }

    /// How many judged ops stand in each state, with the count of logged
    /// ops the judge has yet to reach as `validated`.
    pub fn state_counts(&self) -> Result<std::collections::BTreeMap<String, u64>, StorageError> {
        let tx = self.backend().read()?;
        let mut counts = tx.state_counts()?;
        let pending = tx.log_size()? - tx.judged_through()?;
        if pending > 0 {
            counts.insert(State::Validated.name().into(), pending);
        }
        Ok(counts)
    }
}

/// The op that hands a pack version to the edges: the pack's TOML in the
/// hub's `packs` stream, which every node pulls (no scope labels).
fn distribution_payload(pack: &RulePack, source: &str) -> Result<Vec<u8>, PackActError> {
    let payload = json!({"name": pack.name, "version": pack.version, "source": source});
    let bytes = cairn_core::canonical::to_canonical_bytes(&payload)
        .map_err(|error| PackActError::Invalid(error.to_string()))?;
    let most = cairn_core::limits::PAYLOAD_BYTES_MAX;
    if bytes.len() > most {
        return Err(PackActError::Invalid(format!(
            "pack {} is {} bytes as an op; the edges take at most {most}: split it",
            pack.name,
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Appends the distribution op of `pack` (see [`distribution_payload`]).
pub fn publish_pack(
    tx: &dyn LogTx,
    signer: &crate::signer::LogSigner,
    pack: &RulePack,
    payload: Vec<u8>,
    now: u64,
) -> Result<u64, StorageError> {
    audit::append_own(
        tx,
        signer,
        audit::HubWrite {
            stream: cairn_core::names::PACKS_STREAM,
            collection: cairn_core::names::PACKS_COLLECTION,
            action: cairn_core::op::Action::Put,
            key: &pack.name,
            scope: Default::default(),
            payload,
            base: Default::default(),
        },
        now,
    )
}

impl<B: HubBackend> Hub<B> {
    /// Hands the edges the active version of every pack given, as ops of
    /// the `packs` stream (a hub whose packs are not the built-in ones
    /// does this at init, so edges judge by the same versions).
    pub fn publish_packs(&self, packs: &[(RulePack, String)]) -> Result<(), PackActError> {
        let payloads = packs
            .iter()
            .map(|(pack, source)| Ok((pack, distribution_payload(pack, source)?)))
            .collect::<Result<Vec<_>, PackActError>>()?;
        self.in_write(|tx: &dyn LogTx, now| {
            for (pack, payload) in payloads {
                publish_pack(tx, self.signer(), pack, payload, now)?;
            }
            Ok::<_, StorageError>(())
        })?;
        Ok(())
    }
}

/// The packs stored in a store, parsed (`None` when none are stored).
pub fn stored_packs(tx: &dyn LogTx) -> Result<Option<Packs>, StorageError> {
    let sources = tx.pack_sources()?;
    if sources.is_empty() {
        return Ok(None);
    }
    let packs = sources
        .iter()
        .map(|source| {
            RulePack::from_toml(source)
                .map_err(|error| StorageError::Damaged(format!("a stored rule pack: {error}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Packs::new(packs).map(Some).map_err(StorageError::Damaged)
}
