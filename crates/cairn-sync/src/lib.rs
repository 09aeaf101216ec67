//! The edge's sync client: pushes unacknowledged ops to the hub, stream by
//! stream (critical first), in batches that end at a signed checkpoint, and
//! records the hub's watermark. Receipts are checked: a push's accepted ops
//! must lead, through one range proof, to the root of the log checkpoint the
//! hub returned (and that checkpoint's signature, when the hub's key is
//! known).
//!
//! Pulls are checked twice before anything is merged: each op's inclusion
//! proof against the page's log checkpoint (the hub logged it), and its
//! chain up to a checkpoint its origin node signed (the origin wrote it,
//! `cairn_core::provenance`). [`run`] is the background loop with the
//! health probe, backoff, circuit breaker and adaptive batches.

#![deny(missing_docs)]

pub mod artifacts;
pub mod bundle;
pub mod clock;
pub mod hub;
pub mod hub_log;
mod pull;
mod push;
mod recover;
pub mod report;
mod run;
mod snapshot;
mod states;

pub use hub::{Encoding, HubLink, hub_audience};
pub use pull::{PullReport, pull_all};
pub use push::{PUSHES_IN_FLIGHT, SyncReport, push_all};
pub use recover::{Recovered, recover};
pub use run::{Jitter, SyncSettings, run};
pub use states::{StatesReport, learn_states};
