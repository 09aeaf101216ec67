//! Offline bundles and acknowledgement files (a USB stick between a site
//! and the hub), typed on both sides.
//!
//! A bundle is JSON lines: a [`BundleHeader`], then one push body per line
//! (`crate::push_json`). An acknowledgement file is one [`AcksFile`]: the
//! hub's Ed25519 signature over the canonical bytes of its `acks`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format tag of bundles.
pub const BUNDLE_FORMAT: &str = "cairn-bundle/1";
/// Format tag of acknowledgement files.
pub const ACKS_FORMAT: &str = "cairn-acks/1";

/// The first line of a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The node whose ops follow.
    pub node: String,
    /// When it was written, the node's time, ms.
    pub created_ms: u64,
}

/// A stream's head as the hub acknowledges it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckHead {
    /// The highest seq the hub holds.
    pub seq: u64,
    /// `op_hash` of the op there, hex.
    pub head: String,
}

/// What the hub acknowledges to one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acks {
    /// The hub's log origin.
    pub origin: String,
    /// The node acknowledged.
    pub node: String,
    /// Per stream, the head the hub holds.
    pub streams: BTreeMap<String, AckHead>,
}

/// An acknowledgement file. `acks` stays as received until its signature
/// is checked over exactly those bytes (canonicalized), then is read as
/// [`Acks`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcksFile {
    /// [`ACKS_FORMAT`].
    pub format: String,
    /// The signed [`Acks`].
    pub acks: serde_json::Value,
    /// The hub's Ed25519 signature over the canonical bytes of `acks`, hex.
    pub signature: String,
}
