//! Signed checkpoints of the hub log in the C2SP `tlog-checkpoint` /
//! `signed-note` text form, so standard tooling can read and check them.
//!
//! Body: `origin\n` + `tree size\n` + `base64(root)\n`. A signed note is the
//! body, a blank line, then one line per signature:
//! `— <name> base64(key_id[4] || signature[64])`, where
//! `key_id = SHA-256(name || "\n" || 0x01 || ed25519 public key)[:4]`.
//! Verifiers ignore signatures from unknown keys and accept at most
//! [`NOTE_SIGNATURES_MAX`] lines.

use crate::hash::Hash;
use crate::identity::{NodeIdentity, verify_signature};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Most signature lines a note may carry.
pub const NOTE_SIGNATURES_MAX: usize = 16;
/// Signature type byte of Ed25519 in C2SP signed notes.
const ED25519_TYPE: u8 = 0x01;
/// The em dash that starts a signature line.
const DASH: &str = "\u{2014}";

/// A checkpoint of the log: who, how big, which root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCheckpoint {
    /// The log's origin line (e.g. `cairn.example/hub-1`).
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// Root hash at that size.
    pub root: Hash,
}

impl LogCheckpoint {
    /// The checkpoint body text.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root.0)
        )
    }

    /// Parses a body; `None` if it is not three well-formed lines.
    pub fn parse_body(body: &str) -> Option<LogCheckpoint> {
        let mut lines = body.strip_suffix('\n')?.split('\n');
        let origin = lines
            .next()
            .filter(|origin| !origin.is_empty())?
            .to_string();
        let size_text = lines.next()?;
        if size_text.is_empty() || (size_text.len() > 1 && size_text.starts_with('0')) {
            return None;
        }
        let size = size_text.parse().ok()?;
        let root = Hash::from_slice(&STANDARD.decode(lines.next()?).ok()?)?;
        // Extension lines are allowed but not used by Cairn.
        Some(LogCheckpoint { origin, size, root })
    }
}

/// The 4-byte key id of an Ed25519 key under `name`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut input = Vec::with_capacity(name.len() + 34);
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(ED25519_TYPE);
    input.extend_from_slice(public_key);
    let hash = Hash::of(&input);
    [hash.0[0], hash.0[1], hash.0[2], hash.0[3]]
}

/// Signs a checkpoint as `name`, giving the whole note text.
pub fn sign(checkpoint: &LogCheckpoint, name: &str, identity: &NodeIdentity) -> String {
    sign_body(&checkpoint.body(), name, identity)
}

/// Signs any note body (lines, each ending in `\n`) as `name`.
pub fn sign_body(body: &str, name: &str, identity: &NodeIdentity) -> String {
    let signature = identity.sign(body.as_bytes());
    let mut blob = key_id(name, &identity.public_key()).to_vec();
    blob.extend_from_slice(&signature);
    format!("{body}\n{DASH} {name} {}\n", STANDARD.encode(blob))
}

/// Why a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The text is not a signed note.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature by the expected key verified.
    #[error("no valid signature by {0}")]
    Unsigned(String),
}

/// Verifies a note signed by `name` with `public_key` and returns its checkpoint.
pub fn verify(note: &str, name: &str, public_key: &[u8; 32]) -> Result<LogCheckpoint, NoteError> {
    let body = verify_body(note, name, public_key)?;
    LogCheckpoint::parse_body(&body).ok_or(NoteError::Malformed("body is not origin, size, root"))
}

/// Verifies a note signed by `name` with `public_key` and returns its body.
pub fn verify_body(note: &str, name: &str, public_key: &[u8; 32]) -> Result<String, NoteError> {
    let (body, signatures) = note
        .split_once("\n\n")
        .ok_or(NoteError::Malformed("no blank line after the body"))?;
    let body = format!("{body}\n");
    let lines: Vec<&str> = signatures
        .strip_suffix('\n')
        .unwrap_or(signatures)
        .split('\n')
        .collect();
    if lines.is_empty() || lines.len() > NOTE_SIGNATURES_MAX {
        return Err(NoteError::Malformed("1 to 16 signature lines"));
    }
    let wanted = key_id(name, public_key);
    for line in lines {
        let mut parts = line.splitn(3, ' ');
        if parts.next() != Some(DASH) {
            return Err(NoteError::Malformed(
                "a signature line starts with an em dash",
            ));
        }
        let (Some(signer), Some(blob)) = (parts.next(), parts.next()) else {
            return Err(NoteError::Malformed(
                "a signature line has a name and a signature",
            ));
        };
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| NoteError::Malformed("signature is not base64"))?;
        if signer != name || blob.len() != 68 || blob[..4] != wanted {
            // Someone else's signature (a witness, say): not ours to check.
            continue;
        }
        let signature: [u8; 64] = blob[4..].try_into().expect("68 - 4 bytes");
        if verify_signature(public_key, body.as_bytes(), &signature).is_ok() {
            return Ok(body);
        }
    }
    Err(NoteError::Unsigned(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> LogCheckpoint {
        LogCheckpoint {
            origin: "cairn.test/hub".into(),
            size: 8,
            root: Hash::from_hex(
                "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
            )
            .unwrap(),
        }
    }

    #[test]
    fn signed_notes_round_trip_and_refuse_changes() {
        let hub = NodeIdentity::from_seed("hub", [9; 32]);
        let note = sign(&checkpoint(), "cairn.test/hub", &hub);
        assert!(note.starts_with("cairn.test/hub\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\u{2014} cairn.test/hub "));
        assert_eq!(
            verify(&note, "cairn.test/hub", &hub.public_key()),
            Ok(checkpoint())
        );
        let grown = note.replacen("\n8\n", "\n9\n", 1);
        assert!(matches!(
            verify(&grown, "cairn.test/hub", &hub.public_key()),
            Err(NoteError::Unsigned(_))
        ));
        let other = NodeIdentity::from_seed("hub", [10; 32]);
        assert!(verify(&note, "cairn.test/hub", &other.public_key()).is_err());
        assert!(matches!(
            verify("garbage", "x", &hub.public_key()),
            Err(NoteError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_signatures_are_ignored() {
        let hub = NodeIdentity::from_seed("hub", [9; 32]);
        let witness = NodeIdentity::from_seed("witness", [11; 32]);
        let note = sign(&checkpoint(), "cairn.test/hub", &hub);
        let witnessed = sign(&checkpoint(), "witness.example", &witness);
        let witness_line = witnessed.split("\n\n").nth(1).unwrap();
        let both = format!("{note}{witness_line}");
        assert_eq!(
            verify(&both, "cairn.test/hub", &hub.public_key()),
            Ok(checkpoint())
        );
    }
}
