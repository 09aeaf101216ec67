//! The deterministic core of Cairn.
//!
//! Bytes and events in, state and verdicts out. This crate never touches a
//! file, a socket, a clock or an unseeded random source: callers pass the time
//! (`now_ms`) and key seeds in, so every function here is reproducible from
//! its arguments and can be tested, fuzzed and simulated without a runtime.
//! A tidy test in this crate checks that its dependency list stays that way.
#![deny(missing_docs)]

pub mod artifact;
pub mod canonical;
pub mod chain;
pub mod clock;
pub mod dates;
pub mod hash;
pub mod hlc;
pub mod identity;
pub mod limits;
pub mod link;
pub mod merge;
pub mod merkle;
pub mod mutation;
#[cfg(test)]
mod mutation_tests;
pub mod names;
pub mod note;
pub mod op;
pub mod pack;
pub mod provenance;
pub mod push;
pub mod receipt;
pub mod seal;
pub mod snapshot;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod token;
pub mod trust;

pub use hash::Hash;
pub use hlc::{Hlc, HybridClock};
pub use identity::{Checkpoint, NodeIdentity};
pub use op::{Action, Op, OpDraft, VersionVector};
