//! How a collection's ops travel (seed 002's data categories), declared
//! under `[collections.NAME.sync]`:
//!
//! ```toml
//! [collections.tracks.sync]
//! priority = "tracks"        # evidence (the default), config or tracks
//! expire_after_hours = 24    # entity collections only
//! ```
//!
//! Ops are chained per stream, so a priority cannot reorder ops inside one
//! stream: a collection of priority `config` or `tracks` writes to a
//! stream of its own in its lane (`standard.tracks` beside `standard`),
//! and an edge pushes the critical lane first, then each lane's evidence,
//! config and tracks streams in that order. An entity not updated within
//! `expire_after_hours` is listed as expired (kept, never deleted), and a
//! node on a constrained link pushes a stream whose next op is such an old
//! update after every other stream.

use super::CollectionKind;
use serde::Deserialize;

/// The longest expiry: ten years.
const EXPIRE_AFTER_HOURS_MAX: u64 = 87_600;
/// The lane pushed before every other.
pub const CRITICAL_LANE: &str = "critical";

/// A collection's sync priority within its lane, first to last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Append-only evidence: sent first.
    #[default]
    Evidence,
    /// Settings and reference data.
    Config,
    /// Mutable tracks: sent last.
    Tracks,
}

impl Priority {
    /// Every priority, first to last.
    pub const ALL: [Priority; 3] = [Priority::Evidence, Priority::Config, Priority::Tracks];

    /// Its name in packs.
    pub fn name(self) -> &'static str {
        match self {
            Priority::Evidence => "evidence",
            Priority::Config => "config",
            Priority::Tracks => "tracks",
        }
    }

    /// The stream of this priority in `lane`: the lane itself for
    /// evidence, `LANE.NAME` otherwise.
    pub fn stream_in(self, lane: &str) -> String {
        match self {
            Priority::Evidence => lane.to_string(),
            other => format!("{lane}.{}", other.name()),
        }
    }
}

/// A collection's `sync` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncRules {
    /// Its priority within its lane.
    #[serde(default)]
    pub priority: Priority,
    /// Hours after its last update an entity is expired.
    pub expire_after_hours: Option<u64>,
}

impl SyncRules {
    /// The expiry in ms, if the collection has one.
    pub fn expire_after_ms(&self) -> Option<u64> {
        self.expire_after_hours.map(|hours| hours * 3_600_000)
    }

    /// Whether a record last updated at `updated_ms` is expired at `now_ms`.
    pub fn expired(&self, updated_ms: u64, now_ms: u64) -> bool {
        self.expire_after_ms()
            .is_some_and(|after| now_ms.saturating_sub(updated_ms) > after)
    }
}

/// Checks a `sync` table: (where, message) on the first fault.
pub(super) fn check(rules: &SyncRules, kind: CollectionKind) -> Result<(), (String, String)> {
    if let Some(hours) = rules.expire_after_hours {
        if kind != CollectionKind::Entity {
            return Err((
                "expire_after_hours".into(),
                "only entity collections expire".into(),
            ));
        }
        if !(1..=EXPIRE_AFTER_HOURS_MAX).contains(&hours) {
            return Err((
                "expire_after_hours".into(),
                format!("from 1 to {EXPIRE_AFTER_HOURS_MAX}"),
            ));
        }
    }
    Ok(())
}

/// Where `stream` goes in push order: the critical lane first, then lanes
/// by name, and within a lane evidence, config, tracks.
pub fn stream_rank(stream: &str) -> (bool, String, Priority) {
    let (lane, priority) = Priority::ALL
        .into_iter()
        .rev()
        .find_map(|priority| {
            let suffix = format!(".{}", priority.name());
            (priority != Priority::Evidence)
                .then(|| stream.strip_suffix(&suffix))
                .flatten()
                .map(|lane| (lane, priority))
        })
        .unwrap_or((stream, Priority::Evidence));
    (lane != CRITICAL_LANE, lane.to_string(), priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_go_critical_first_then_by_lane_and_priority() {
        let mut streams = vec![
            "standard.tracks",
            "bulk",
            "standard",
            "critical.tracks",
            "standard.config",
            "critical",
        ];
        streams.sort_by_key(|stream| stream_rank(stream));
        assert_eq!(
            streams,
            [
                "critical",
                "critical.tracks",
                "bulk",
                "standard",
                "standard.config",
                "standard.tracks"
            ]
        );
        assert_eq!(Priority::Tracks.stream_in("standard"), "standard.tracks");
        assert_eq!(Priority::Evidence.stream_in("critical"), "critical");
    }

    #[test]
    fn expiry_is_for_entities_and_counts_from_the_last_update() {
        let rules = SyncRules {
            priority: Priority::Tracks,
            expire_after_hours: Some(24),
        };
        assert!(check(&rules, CollectionKind::Entity).is_ok());
        assert_eq!(
            check(&rules, CollectionKind::Ledger).unwrap_err().0,
            "expire_after_hours"
        );
        let day = 86_400_000;
        assert!(!rules.expired(1_000, 1_000 + day));
        assert!(rules.expired(1_000, 1_001 + day));
        assert!(!SyncRules::default().expired(0, u64::MAX));
    }
}
