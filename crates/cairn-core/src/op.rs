//! Operations: the unit of replication, and their one byte encoding.
//!
//! An op is `(node, stream, seq, hlc, collection, action, key, scope, base,
//! ref, reason, payload)` plus `payload_hash`, `prev_hash` and `op_hash`.
//! FORMAT.md at the repository root describes the encoding byte by byte; this
//! module is its only implementation. The encoding is also the stored form, so
//! that a flipped byte anywhere in a stored op changes a hash.
//!
//! `op_hash = SHA-256(tag || version || header || payload_hash || prev_hash)`:
//! it covers the payload's hash, not the payload, so a payload can later be
//! redacted without breaking the chain.

use crate::canonical;
use crate::hash::Hash;
use crate::hlc::Hlc;
use crate::limits::{
    BASE_ENTRIES_MAX, KEY_BYTES_MAX, NAME_BYTES_MAX, OP_BYTES_MAX, PAYLOAD_BYTES_MAX,
    REASON_BYTES_MAX, SCOPE_LABELS_MAX,
};
use crate::names::{check_key, check_name, check_scope_value};
use std::collections::BTreeMap;
use std::fmt;

/// Domain separation tag at the start of every encoded op.
pub const OP_TAG: &[u8; 8] = b"CAIRN-OP";
/// Version of the op encoding described in FORMAT.md.
pub const OP_FORMAT_VERSION: u8 = 1;

/// What an op does to its collection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Adds a record to a ledger.
    Append,
    /// Adds a ledger record that corrects an earlier one (named by `ref`).
    Correct,
    /// Sets fields of an entity or the document of a config key.
    Put,
    /// Deletes an entity or config key (a tombstone).
    Delete,
}

impl Action {
    /// The byte that stands for this action in the encoding.
    pub fn code(self) -> u8 {
        match self {
            Action::Append => 1,
            Action::Correct => 2,
            Action::Put => 3,
            Action::Delete => 4,
        }
    }

    /// The action for an encoded byte.
    pub fn from_code(code: u8) -> Option<Action> {
        Some(match code {
            1 => Action::Append,
            2 => Action::Correct,
            3 => Action::Put,
            4 => Action::Delete,
            _ => return None,
        })
    }

    /// Lowercase name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Append => "append",
            Action::Correct => "correct",
            Action::Put => "put",
            Action::Delete => "delete",
        }
    }

    /// Parses [`Action::name`].
    pub fn from_name(name: &str) -> Option<Action> {
        [Action::Append, Action::Correct, Action::Put, Action::Delete]
            .into_iter()
            .find(|action| action.name() == name)
    }
}

/// The name of one stream of one node, `node:stream`: the key of version vectors.
pub fn stream_key(node: &str, stream: &str) -> String {
    format!("{node}:{stream}")
}

/// For each stream, the highest seq of the ops an author had seen on one
/// entity when it wrote; ops of a stream are always seen in seq order, so one
/// number per stream says exactly which ops were seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionVector(pub BTreeMap<String, u64>);

impl VersionVector {
    /// True when the op `(stream_key, seq)` was seen.
    pub fn covers(&self, stream_key: &str, seq: u64) -> bool {
        self.0.get(stream_key).is_some_and(|&seen| seen >= seq)
    }

    /// True when every op seen by `other` was seen by `self`.
    pub fn dominates(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(key, &seq)| self.covers(key, seq))
    }

    /// Adds the op `(stream_key, seq)` and everything before it in its stream.
    pub fn observe(&mut self, stream_key: &str, seq: u64) {
        let entry = self.0.entry(stream_key.to_string()).or_insert(0);
        *entry = (*entry).max(seq);
    }

    /// Pointwise maximum.
    pub fn join(&mut self, other: &VersionVector) {
        for (key, &seq) in &other.0 {
            self.observe(key, seq);
        }
    }
}

/// An op before it is placed in a stream: what the author decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpDraft {
    /// Author node.
    pub node: String,
    /// Stream of the author the op goes into.
    pub stream: String,
    /// Author's HLC at the time of writing.
    pub hlc: Hlc,
    /// Target collection.
    pub collection: String,
    /// What the op does.
    pub action: Action,
    /// Entity or config key; empty for ledger ops.
    pub key: String,
    /// Scope labels, sorted by name.
    pub scope: BTreeMap<String, String>,
    /// Ops on the same entity the author had seen (entity and config ops).
    pub base: VersionVector,
    /// `op_hash` of the op this one corrects (corrections only).
    pub ref_hash: Option<Hash>,
    /// Why the correction was made (corrections only).
    pub reason: String,
    /// Canonical JSON payload (RFC 8785).
    pub payload: Vec<u8>,
}

/// A sealed op: a draft placed at `seq` in its stream, after `prev_hash`.
#[derive(Clone, PartialEq, Eq)]
pub struct Op {
    /// Everything the author decided.
    pub draft: OpDraft,
    /// Position in the stream, from 1, without gaps.
    pub seq: u64,
    /// SHA-256 of the canonical payload.
    pub payload_hash: Hash,
    /// `op_hash` of the previous op of the stream; zero for seq 1.
    pub prev_hash: Hash,
    /// SHA-256 over tag, header, `payload_hash` and `prev_hash`.
    pub op_hash: Hash,
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Op({}/{}#{} {:?} {} {} {:?})",
            self.draft.node,
            self.draft.stream,
            self.seq,
            self.draft.hlc,
            self.draft.collection,
            self.draft.action.name(),
            self.op_hash
        )
    }
}

/// Why bytes are not a well-formed op.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed op at byte {offset}: {what}")]
pub struct DecodeError {
    /// Byte offset where decoding stopped.
    pub offset: usize,
    /// What was wrong there.
    pub what: String,
}

/// A problem with the fields of a draft, found before sealing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DraftError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl OpDraft {
    /// Checks every header field against the limits and naming rules.
    pub fn check(&self) -> Result<(), DraftError> {
        self.check_header()?;
        if !canonical::is_canonical(&self.payload) {
            return Err(DraftError {
                field: "payload",
                message: "not canonical JSON (RFC 8785)".into(),
            });
        }
        Ok(())
    }

    /// [`OpDraft::check`] without re-parsing the payload, for drafts whose
    /// payload the caller just produced with [`canonical::to_canonical_bytes`].
    pub fn check_header(&self) -> Result<(), DraftError> {
        let fail = |field: &'static str, message: String| Err(DraftError { field, message });
        if let Err(message) = check_name(&self.node) {
            return fail("node", message);
        }
        if let Err(message) = check_name(&self.stream) {
            return fail("stream", message);
        }
        if let Err(message) = check_name(&self.collection) {
            return fail("collection", message);
        }
        let keyed = matches!(self.action, Action::Put | Action::Delete);
        if keyed {
            if let Err(message) = check_key(&self.key) {
                return fail("key", message);
            }
        } else if !self.key.is_empty() {
            return fail("key", "ledger ops carry no key".into());
        }
        if self.scope.len() > SCOPE_LABELS_MAX {
            return fail("scope", format!("at most {SCOPE_LABELS_MAX} labels"));
        }
        for (name, value) in &self.scope {
            if let Err(message) = check_name(name) {
                return fail("scope", format!("label {name:?} {message}"));
            }
            if let Err(message) = check_scope_value(value) {
                return fail("scope", format!("value of {name:?} {message}"));
            }
        }
        if self.base.0.len() > BASE_ENTRIES_MAX {
            return fail("base", format!("at most {BASE_ENTRIES_MAX} entries"));
        }
        if !keyed && !self.base.0.is_empty() {
            return fail("base", "ledger ops carry no base version".into());
        }
        match (self.action, self.ref_hash) {
            (Action::Correct, None) => {
                return fail("ref", "a correction names the op it corrects".into());
            }
            (Action::Correct, Some(_)) => {}
            (_, Some(_)) => return fail("ref", "only corrections reference another op".into()),
            (_, None) => {}
        }
        if self.reason.len() > REASON_BYTES_MAX {
            return fail("reason", format!("at most {REASON_BYTES_MAX} bytes"));
        }
        if self.action == Action::Correct && self.reason.trim().is_empty() {
            return fail("reason", "a correction needs a reason".into());
        }
        if self.action != Action::Correct && !self.reason.is_empty() {
            return fail("reason", "only corrections carry a reason".into());
        }
        if self.payload.len() > PAYLOAD_BYTES_MAX {
            return fail("payload", format!("at most {PAYLOAD_BYTES_MAX} bytes"));
        }
        Ok(())
    }

    /// Places the draft at `seq` after `prev_hash`, returning the op and its encoding.
    ///
    /// The caller has run [`OpDraft::check`]; sealing an unchecked draft with an
    /// oversize field is a bug and panics.
    pub fn seal(self, seq: u64, prev_hash: Hash) -> (Op, Vec<u8>) {
        let payload_hash = canonical::payload_hash(&self.payload);
        self.seal_prehashed(seq, prev_hash, payload_hash)
    }

    /// [`OpDraft::seal`] with the payload hash computed earlier (off a hot
    /// thread). Passing the hash of other bytes is a bug.
    pub fn seal_prehashed(self, seq: u64, prev_hash: Hash, payload_hash: Hash) -> (Op, Vec<u8>) {
        assert!(seq >= 1, "seq starts at 1");
        debug_assert_eq!(payload_hash, canonical::payload_hash(&self.payload));
        let mut bytes = Vec::with_capacity(256 + self.payload.len());
        encode_header(&mut bytes, &self, seq);
        bytes.extend_from_slice(&payload_hash.0);
        bytes.extend_from_slice(&prev_hash.0);
        let op_hash = Hash::of(&bytes);
        let payload_len =
            u32::try_from(self.payload.len()).expect("payload bounded by PAYLOAD_BYTES_MAX");
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.extend_from_slice(&self.payload);
        let op = Op {
            draft: self,
            seq,
            payload_hash,
            prev_hash,
            op_hash,
        };
        (op, bytes)
    }
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("string fields are bounded below 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn encode_header(out: &mut Vec<u8>, draft: &OpDraft, seq: u64) {
    out.extend_from_slice(OP_TAG);
    out.push(OP_FORMAT_VERSION);
    put_str(out, &draft.node);
    put_str(out, &draft.stream);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&draft.hlc.wall_ms.to_be_bytes());
    out.extend_from_slice(&draft.hlc.counter.to_be_bytes());
    put_str(out, &draft.collection);
    out.push(draft.action.code());
    put_str(out, &draft.key);
    let labels = u16::try_from(draft.scope.len()).expect("bounded by SCOPE_LABELS_MAX");
    out.extend_from_slice(&labels.to_be_bytes());
    for (name, value) in &draft.scope {
        put_str(out, name);
        put_str(out, value);
    }
    let entries = u16::try_from(draft.base.0.len()).expect("bounded by BASE_ENTRIES_MAX");
    out.extend_from_slice(&entries.to_be_bytes());
    for (stream_key, seen) in &draft.base.0 {
        put_str(out, stream_key);
        out.extend_from_slice(&seen.to_be_bytes());
    }
    match draft.ref_hash {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(&hash.0);
        }
        None => out.push(0),
    }
    put_str(out, &draft.reason);
}

/// A cursor over encoded bytes that reports where it failed.
struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, what: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.offset,
            what: what.into(),
        })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() - self.offset < len {
            return self.fail(format!(
                "needs {len} more bytes, {} left",
                self.bytes.len() - self.offset
            ));
        }
        let slice = &self.bytes[self.offset..self.offset + len];
        self.offset += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn str(&mut self, field: &str, max: usize) -> Result<String, DecodeError> {
        let len = usize::from(self.u16()?);
        if len > max {
            return self.fail(format!("{field} is {len} bytes, at most {max}"));
        }
        let start = self.offset;
        let raw = self.take(len)?;
        match std::str::from_utf8(raw) {
            Ok(text) => Ok(text.to_string()),
            Err(_) => Err(DecodeError {
                offset: start,
                what: format!("{field} is not UTF-8"),
            }),
        }
    }
}

impl Op {
    /// Decodes an op and checks its structure and both hashes.
    pub fn decode(bytes: &[u8]) -> Result<Op, OpFault> {
        let (op, header_end) = decode_structure(bytes).map_err(OpFault::Malformed)?;
        let computed_payload = canonical::payload_hash(&op.draft.payload);
        if computed_payload != op.payload_hash {
            return Err(OpFault::PayloadHash {
                stored: op.payload_hash,
                computed: computed_payload,
            });
        }
        let computed = Hash::of(&bytes[..header_end]);
        Ok(Op {
            op_hash: computed,
            ..op
        })
    }

    /// Decodes an op read back from a log that verified it when it was
    /// appended (the hub's judge): its structure, header and header hash,
    /// but neither its payload hash nor its canonical form again, which
    /// cost a SHA-256 and a JSON parse for nothing (`cairn hub verify`
    /// re-checks every stored op in full).
    pub fn decode_logged(bytes: &[u8]) -> Result<Op, OpFault> {
        let (op, header_end) =
            decode_checked(bytes, OpDraft::check_header).map_err(OpFault::Malformed)?;
        Ok(Op {
            op_hash: Hash::of(&bytes[..header_end]),
            ..op
        })
    }

    /// Encodes the op; the same bytes [`OpDraft::seal`] returned.
    pub fn encode(&self) -> Vec<u8> {
        let (op, bytes) = self.draft.clone().seal(self.seq, self.prev_hash);
        debug_assert_eq!(op.op_hash, self.op_hash);
        bytes
    }

    /// The hashed part of an encoded op: every byte before the payload
    /// length, the preimage of `op_hash`. It links the op into its chain
    /// without revealing the payload (see [`OpHeader`]).
    pub fn header_bytes(bytes: &[u8]) -> Result<&[u8], OpFault> {
        let (_, header_end) = decode_structure(bytes).map_err(OpFault::Malformed)?;
        Ok(&bytes[..header_end])
    }

    /// `node:stream` of the author's stream.
    pub fn stream_key(&self) -> String {
        stream_key(&self.draft.node, &self.draft.stream)
    }

    /// The id of the record an op creates: `node:stream:seq`.
    pub fn record_id(&self) -> String {
        format!("{}:{}:{}", self.draft.node, self.draft.stream, self.seq)
    }
}

/// An op's header without its payload: enough to link the op into its
/// stream's chain, and nothing of what it records beyond its header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpHeader {
    /// Author node.
    pub node: String,
    /// Author stream.
    pub stream: String,
    /// Position in the stream.
    pub seq: u64,
    /// `op_hash` of the previous op.
    pub prev_hash: Hash,
    /// SHA-256 of the header bytes: the op's `op_hash`.
    pub op_hash: Hash,
}

impl OpHeader {
    /// Decodes the bytes [`Op::header_bytes`] returns, as strictly as
    /// [`Op::decode`] decodes a whole op, and hashes them.
    pub fn decode(header: &[u8]) -> Result<OpHeader, DecodeError> {
        let mut reader = Reader {
            bytes: header,
            offset: 0,
        };
        let (draft, seq, _payload_hash, prev_hash) = decode_header(&mut reader)?;
        if reader.offset != header.len() {
            return reader.fail(format!(
                "{} bytes after the header",
                header.len() - reader.offset
            ));
        }
        if let Err(error) = draft.check_header() {
            return Err(DecodeError {
                offset: 0,
                what: error.to_string(),
            });
        }
        Ok(OpHeader {
            node: draft.node,
            stream: draft.stream,
            seq,
            prev_hash,
            op_hash: Hash::of(header),
        })
    }
}

/// What is wrong with one stored op on its own (before chain checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpFault {
    /// The bytes do not decode.
    #[error("{0}")]
    Malformed(DecodeError),
    /// The payload does not hash to the recorded `payload_hash`.
    #[error("payload hash mismatch: recorded {stored}, payload hashes to {computed}")]
    PayloadHash {
        /// The hash recorded in the op.
        stored: Hash,
        /// The hash of the payload as stored.
        computed: Hash,
    },
}

fn decode_structure(bytes: &[u8]) -> Result<(Op, usize), DecodeError> {
    decode_checked(bytes, OpDraft::check)
}

/// [`decode_structure`], the draft checked by `check` (the whole draft, or
/// its header only for ops a log verified before).
fn decode_checked(
    bytes: &[u8],
    check: fn(&OpDraft) -> Result<(), DraftError>,
) -> Result<(Op, usize), DecodeError> {
    let mut reader = Reader { bytes, offset: 0 };
    if bytes.len() > OP_BYTES_MAX {
        return reader.fail(format!(
            "op is {} bytes, at most {OP_BYTES_MAX}",
            bytes.len()
        ));
    }
    let (mut draft, seq, payload_hash, prev_hash) = decode_header(&mut reader)?;
    let header_end = reader.offset;
    let payload_len = reader.u32()? as usize;
    if payload_len > PAYLOAD_BYTES_MAX {
        return reader.fail(format!(
            "payload is {payload_len} bytes, at most {PAYLOAD_BYTES_MAX}"
        ));
    }
    draft.payload = reader.take(payload_len)?.to_vec();
    if reader.offset != bytes.len() {
        return reader.fail(format!("{} trailing bytes", bytes.len() - reader.offset));
    }
    if let Err(error) = check(&draft) {
        return Err(DecodeError {
            offset: 0,
            what: error.to_string(),
        });
    }
    let op = Op {
        draft,
        seq,
        payload_hash,
        prev_hash,
        op_hash: Hash::ZERO,
    };
    Ok((op, header_end))
}

/// Reads the header, up to and including `prev_hash`: a draft with an empty
/// payload, the seq, `payload_hash` and `prev_hash`. Field rules beyond
/// structure are the caller's to check.
fn decode_header(reader: &mut Reader<'_>) -> Result<(OpDraft, u64, Hash, Hash), DecodeError> {
    if reader.take(OP_TAG.len())? != OP_TAG {
        return Err(DecodeError {
            offset: 0,
            what: "missing CAIRN-OP tag".into(),
        });
    }
    let version = reader.u8()?;
    if version != OP_FORMAT_VERSION {
        return reader.fail(format!("unknown format version {version}"));
    }
    let node = reader.str("node", NAME_BYTES_MAX)?;
    let stream = reader.str("stream", NAME_BYTES_MAX)?;
    let seq = reader.u64()?;
    let wall_ms = reader.u64()?;
    let counter = reader.u32()?;
    let collection = reader.str("collection", NAME_BYTES_MAX)?;
    let code = reader.u8()?;
    let Some(action) = Action::from_code(code) else {
        return reader.fail(format!("unknown action {code}"));
    };
    let key = reader.str("key", KEY_BYTES_MAX)?;
    let labels = usize::from(reader.u16()?);
    if labels > SCOPE_LABELS_MAX {
        return reader.fail(format!("{labels} scope labels, at most {SCOPE_LABELS_MAX}"));
    }
    let mut scope = BTreeMap::new();
    for _ in 0..labels {
        let name = reader.str("scope label", NAME_BYTES_MAX)?;
        let value = reader.str("scope value", KEY_BYTES_MAX)?;
        if scope
            .last_key_value()
            .is_some_and(|(last, _)| *last >= name)
        {
            return reader.fail("scope labels not in strictly ascending order");
        }
        scope.insert(name, value);
    }
    let entries = usize::from(reader.u16()?);
    if entries > BASE_ENTRIES_MAX {
        return reader.fail(format!(
            "{entries} base entries, at most {BASE_ENTRIES_MAX}"
        ));
    }
    let mut base = BTreeMap::new();
    for _ in 0..entries {
        let key = reader.str("base stream", 2 * NAME_BYTES_MAX + 1)?;
        let seen = reader.u64()?;
        if base.last_key_value().is_some_and(|(last, _)| *last >= key) {
            return reader.fail("base entries not in strictly ascending order");
        }
        base.insert(key, seen);
    }
    let ref_hash = match reader.u8()? {
        0 => None,
        1 => Some(Hash(reader.array()?)),
        flag => return reader.fail(format!("ref flag {flag} is neither 0 nor 1")),
    };
    let reason = reader.str("reason", REASON_BYTES_MAX)?;
    let payload_hash = Hash(reader.array()?);
    let prev_hash = Hash(reader.array()?);
    if seq == 0 {
        return Err(DecodeError {
            offset: 0,
            what: "seq 0 (sequences start at 1)".into(),
        });
    }
    let draft = OpDraft {
        node,
        stream,
        hlc: crate::hlc::Hlc { wall_ms, counter },
        collection,
        action,
        key,
        scope,
        base: VersionVector(base),
        ref_hash,
        reason,
        payload: Vec::new(),
    };
    Ok((draft, seq, payload_hash, prev_hash))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_draft() -> OpDraft {
        OpDraft {
            node: "hangar-7".into(),
            stream: "standard".into(),
            hlc: Hlc {
                wall_ms: 1_700_000_000_000,
                counter: 3,
            },
            collection: "maintenance_actions".into(),
            action: Action::Append,
            key: String::new(),
            scope: [("site".to_string(), "hangar-7".to_string())].into(),
            base: VersionVector::default(),
            ref_hash: None,
            reason: String::new(),
            payload: br#"{"action":"inspection","work_order":"WO-1"}"#.to_vec(),
        }
    }

    #[test]
    fn seal_then_decode_round_trips() {
        let draft = sample_draft();
        draft.check().unwrap();
        let (op, bytes) = draft.seal(1, Hash::ZERO);
        let decoded = Op::decode(&bytes).unwrap();
        assert_eq!(decoded, op);
        assert_eq!(decoded.encode(), bytes);
        assert_eq!(op.record_id(), "hangar-7:standard:1");
    }

    #[test]
    fn op_hash_is_sha256_of_the_header_prefix() {
        let (op, bytes) = sample_draft().seal(4, Hash::of(b"prev"));
        let payload_len = op.draft.payload.len();
        assert_eq!(
            op.op_hash,
            Hash::of(&bytes[..bytes.len() - 4 - payload_len])
        );
        assert_eq!(&bytes[..9], b"CAIRN-OP\x01");
    }

    #[test]
    fn draft_checks_name_the_field() {
        let mut draft = sample_draft();
        draft.node = "Bad Node".into();
        assert_eq!(draft.check().unwrap_err().field, "node");
        let mut draft = sample_draft();
        draft.action = Action::Correct;
        assert_eq!(draft.check().unwrap_err().field, "ref");
        let mut draft = sample_draft();
        draft.payload = br#"{"b":1,"a":2}"#.to_vec();
        assert_eq!(draft.check().unwrap_err().field, "payload");
        let mut draft = sample_draft();
        draft.action = Action::Put;
        assert_eq!(draft.check().unwrap_err().field, "key");
    }

    #[test]
    fn truncated_and_trailing_bytes_are_malformed() {
        let (_, bytes) = sample_draft().seal(1, Hash::ZERO);
        assert!(matches!(
            Op::decode(&bytes[..bytes.len() - 1]),
            Err(OpFault::Malformed(_))
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Op::decode(&longer), Err(OpFault::Malformed(_))));
    }

    proptest! {
        // Decoding random bytes could not fail (they almost never pass the
        // tag): `mutation_tests` mutates real encodings instead.

        #[test]
        fn every_single_byte_change_is_noticed(index in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let (op, bytes) = sample_draft().seal(2, Hash::of(b"p"));
            let mut changed = bytes.clone();
            let at = index.index(changed.len());
            changed[at] ^= flip;
            // Either the bytes no longer decode, or they decode to an op with a different hash.
            match Op::decode(&changed) {
                Err(_) => {}
                Ok(decoded) => prop_assert_ne!(decoded.op_hash, op.op_hash),
            }
        }
    }
}
