//! The hub: what it does with a push, over storage it does not know.
//!
//! A push goes ingest -> verify (`cairn_core::push`) -> persist (log
//! leaves and their tree nodes, quarantine, stream heads, alerts) -> sign
//! the log -> answer with receipts ([`pipeline`]). It reads and writes the
//! hub's state through a [`backend::HubBackend`]: SQLite in
//! `cairn-hub-sqlite`, [`memory::MemoryBackend`] for tests, which can fail
//! any read or write to show that a fault is never a verdict.
#![deny(missing_docs)]

pub mod admin;
pub mod artifacts;
pub mod audit;
pub mod backend;
pub mod chains;
pub mod comply;
mod error;
pub mod group;
mod hub;
pub mod ingest;
pub mod memory;
pub mod pipeline;
pub mod pull;
pub mod report;
pub mod signer;
pub mod status;
pub mod tree;
pub mod verify;

pub use audit::{AUDIT_COLLECTION, AUDIT_STREAM, HUB_NODE};
pub use error::{PushError, StorageError};
pub use hub::Hub;
pub use pipeline::{PUSH_OPS_MAX, PushRequest};
