//! Every bound in the core, in one place, so their relations can be checked.
//!
//! Untrusted input (API bodies, pulled ops, rule packs) is measured against
//! these before any work is done on it.

/// Most ops in one push (the hub's bound, and a bundle line's).
pub const PUSH_OPS_MAX: usize = 8_192;

/// Longest node, stream, collection or scope name, in bytes.
pub const NAME_BYTES_MAX: usize = 64;
/// Longest entity or config key, in bytes.
pub const KEY_BYTES_MAX: usize = 256;
/// Most scope labels on one op.
pub const SCOPE_LABELS_MAX: usize = 16;
/// Longest scope label value, in bytes.
pub const SCOPE_VALUE_BYTES_MAX: usize = 128;
/// Longest correction reason, in bytes.
pub const REASON_BYTES_MAX: usize = 2_048;
/// Most entries in an op's base version vector.
pub const BASE_ENTRIES_MAX: usize = 1_024;
/// Largest canonical payload of one op, in bytes.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// Largest encoded op (header plus payload), in bytes.
pub const OP_BYTES_MAX: usize = PAYLOAD_BYTES_MAX
    + 2 * 1024 // fixed header fields and hashes
    + 4 * NAME_BYTES_MAX
    + KEY_BYTES_MAX
    + SCOPE_LABELS_MAX * (NAME_BYTES_MAX + SCOPE_VALUE_BYTES_MAX + 4)
    + BASE_ENTRIES_MAX * (2 * NAME_BYTES_MAX + 12)
    + REASON_BYTES_MAX;
/// Most elements in one `set` field change.
pub const SET_ELEMENTS_MAX: usize = 1_024;
/// Largest rule pack source, in bytes.
pub const PACK_BYTES_MAX: usize = 256 * 1024;
/// Most collections in one rule pack.
pub const PACK_COLLECTIONS_MAX: usize = 64;
/// Most fields in one collection.
pub const COLLECTION_FIELDS_MAX: usize = 128;
/// Longest regular expression in a rule pack, in bytes.
pub const FORMAT_PATTERN_BYTES_MAX: usize = 512;
/// How far ahead of local physical time a received HLC may be, by default.
pub const CLOCK_DRIFT_MS_MAX_DEFAULT: u64 = 5 * 60 * 1000;
/// Deepest nesting accepted in a JSON payload.
pub const JSON_DEPTH_MAX: usize = 32;

// How the bounds relate, checked at compile time: a whole op fits the op
// bound even at every field's maximum, and every length fits its prefix.
const _: () = assert!(OP_BYTES_MAX > PAYLOAD_BYTES_MAX);
const _: () = assert!(KEY_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(REASON_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(BASE_ENTRIES_MAX <= u16::MAX as usize);
const _: () = assert!(SCOPE_LABELS_MAX <= u16::MAX as usize);
const _: () = assert!(OP_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(SCOPE_VALUE_BYTES_MAX <= KEY_BYTES_MAX);
