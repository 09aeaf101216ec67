//! Seals on reports: the hub's Ed25519 signature over a report's SHA-256,
//! embedded in the file and written beside it (`FILE.sig`), checked
//! offline by `cairn verify report`.
//!
//! What is hashed is the report exactly as delivered, less its seal:
//! - HTML: everything before a last line `<!-- cairn-seal {seal} -->`;
//! - PDF: everything before a last line `%cairn-seal {seal}` (a PDF comment
//!   after `%%EOF`, which readers ignore);
//! - JSON: the report object without its `seal` member, in canonical form
//!   (RFC 8785), and the file must be that canonical form with the seal
//!   added, so no byte of it can change unnoticed.
//!
//! The signed message is `cairn-report-v1\n` + format + `\n` + origin +
//! `\n` + the hash in hex, so a seal cannot be taken for a checkpoint or a
//! token.

use crate::hash::Hash;
use crate::identity::{NodeIdentity, verify_signature};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CONTEXT: &str = "cairn-report-v1\n";
const HTML_OPEN: &[u8] = b"<!-- cairn-seal ";
const HTML_CLOSE: &[u8] = b" -->\n";
const PDF_OPEN: &[u8] = b"%cairn-seal ";

/// A report's seal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// `json`, `html` or `pdf`.
    pub format: String,
    /// SHA-256 of what is sealed, hex.
    pub sha256: String,
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
    /// The hub's log origin.
    pub origin: String,
    /// The signature, hex.
    pub signature: String,
}

/// Why a report's seal does not hold.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// No seal where one must be, or one that does not parse.
    #[error("no seal: {0}")]
    Missing(String),
    /// The content does not hash to what the seal says.
    #[error("the report was changed: it hashes to {actual}, its seal says {sealed}")]
    Changed {
        /// The hash in the seal.
        sealed: String,
        /// The hash of the content.
        actual: String,
    },
    /// The signature does not verify under the seal's key.
    #[error("the signature does not verify under key {0}")]
    Signature(String),
    /// The detached seal differs from the embedded one.
    #[error("the detached seal differs from the embedded one")]
    Detached,
}

fn message(format: &str, origin: &str, sha256: &str) -> Vec<u8> {
    format!("{CONTEXT}{format}\n{origin}\n{sha256}").into_bytes()
}

fn make_seal(format: &str, content: &[u8], identity: &NodeIdentity, origin: &str) -> Seal {
    let sha256 = Hash::of(content).to_hex();
    Seal {
        format: format.to_string(),
        signature: hex::encode(identity.sign(&message(format, origin, &sha256))),
        public_key: hex::encode(identity.public_key()),
        origin: origin.to_string(),
        sha256,
    }
}

fn seal_json(seal: &Seal) -> String {
    serde_json::to_string(seal).expect("a seal serializes")
}

/// Seals an HTML or PDF `body` (`format` `html` or `pdf`): the sealed file
/// and its seal.
pub fn seal_document(
    body: &[u8],
    format: &str,
    identity: &NodeIdentity,
    origin: &str,
) -> (Vec<u8>, Seal) {
    let seal = make_seal(format, body, identity, origin);
    let mut sealed = body.to_vec();
    if !sealed.ends_with(b"\n") {
        sealed.push(b'\n');
    }
    let (open, close): (&[u8], &[u8]) = if format == "pdf" {
        (PDF_OPEN, b"\n")
    } else {
        (HTML_OPEN, HTML_CLOSE)
    };
    sealed.extend_from_slice(open);
    sealed.extend_from_slice(seal_json(&seal).as_bytes());
    sealed.extend_from_slice(close);
    (sealed, seal)
}

/// Seals a JSON report object: the sealed file (canonical JSON with a
/// `seal` member) and its seal.
pub fn seal_json_report(
    report: &serde_json::Map<String, Value>,
    identity: &NodeIdentity,
    origin: &str,
) -> Result<(Vec<u8>, Seal), String> {
    let content = crate::canonical::to_canonical_bytes(&Value::Object(report.clone()))
        .map_err(|error| error.to_string())?;
    let seal = make_seal("json", &content, identity, origin);
    let mut sealed = report.clone();
    sealed.insert(
        "seal".into(),
        serde_json::to_value(&seal).map_err(|error| error.to_string())?,
    );
    let bytes = crate::canonical::to_canonical_bytes(&Value::Object(sealed))
        .map_err(|error| error.to_string())?;
    Ok((bytes, seal))
}

/// The content a sealed file's seal covers, and the seal.
fn split(file: &[u8]) -> Result<(Vec<u8>, Seal), SealError> {
    let missing = |why: &str| SealError::Missing(why.to_string());
    if file.first() == Some(&b'{') {
        let mut value: Value =
            serde_json::from_slice(file).map_err(|error| missing(&error.to_string()))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| missing("not a JSON object"))?;
        let seal = object
            .remove("seal")
            .ok_or_else(|| missing("no seal member"))?;
        let seal: Seal =
            serde_json::from_value(seal).map_err(|error| missing(&error.to_string()))?;
        let content = crate::canonical::to_canonical_bytes(&value)
            .map_err(|error| missing(&error.to_string()))?;
        // The file must be exactly the canonical form: whitespace or key
        // order cannot change unnoticed.
        let mut whole = value;
        whole["seal"] = serde_json::to_value(&seal).map_err(|error| missing(&error.to_string()))?;
        let canonical = crate::canonical::to_canonical_bytes(&whole)
            .map_err(|error| missing(&error.to_string()))?;
        if canonical != file {
            return Err(SealError::Changed {
                sealed: seal.sha256.clone(),
                actual: format!("{} (not in canonical form)", Hash::of(&content).to_hex()),
            });
        }
        return Ok((content, seal));
    }
    let body_end = file[..file.len().saturating_sub(1)]
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map(|at| at + 1)
        .ok_or_else(|| missing("no seal line"))?;
    let line = &file[body_end..];
    let inner = if let Some(rest) = line.strip_prefix(HTML_OPEN) {
        rest.strip_suffix(HTML_CLOSE)
    } else if let Some(rest) = line.strip_prefix(PDF_OPEN) {
        rest.strip_suffix(b"\n")
    } else {
        None
    };
    let inner = inner.ok_or_else(|| missing("the last line is not a seal"))?;
    let seal: Seal = serde_json::from_slice(inner).map_err(|error| missing(&error.to_string()))?;
    // The body as sealed: the newline added before the seal line is not
    // part of it when the body did not end in one; both hashes are tried
    // against the seal, which names exactly one.
    let body = &file[..body_end];
    let trimmed = &body[..body.len() - 1];
    let content = if Hash::of(trimmed).to_hex() == seal.sha256 {
        trimmed
    } else {
        body
    };
    Ok((content.to_vec(), seal))
}

/// Checks a sealed report: the seal is there, the content hashes to it,
/// the signature verifies under its key, and `detached` (a `.sig` file's
/// seal), if given, is the same seal. Returns the seal.
pub fn verify_sealed(file: &[u8], detached: Option<&Seal>) -> Result<Seal, SealError> {
    let (content, seal) = split(file)?;
    let actual = Hash::of(&content).to_hex();
    if actual != seal.sha256 {
        return Err(SealError::Changed {
            sealed: seal.sha256.clone(),
            actual,
        });
    }
    let key: [u8; 32] = hex::decode(&seal.public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| SealError::Signature(seal.public_key.clone()))?;
    let signature: [u8; 64] = hex::decode(&seal.signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| SealError::Signature(seal.public_key.clone()))?;
    // Hex in the seal's own form (lowercase), so no byte of it can change.
    if hex::encode(key) != seal.public_key || hex::encode(signature) != seal.signature {
        return Err(SealError::Signature(seal.public_key.clone()));
    }
    verify_signature(
        &key,
        &message(&seal.format, &seal.origin, &seal.sha256),
        &signature,
    )
    .map_err(|_| SealError::Signature(seal.public_key.clone()))?;
    if detached.is_some_and(|detached| *detached != seal) {
        return Err(SealError::Detached);
    }
    Ok(seal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> NodeIdentity {
        NodeIdentity::from_seed("hub", [7; 32])
    }

    #[test]
    fn every_format_verifies_and_no_byte_can_change() {
        let report: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"records": 3, "by_state": {"persisted": 2, "rejected": 1}}"#)
                .unwrap();
        let (json, json_seal) = seal_json_report(&report, &hub(), "test.hub").unwrap();
        let (html, html_seal) = seal_document(
            b"<html><body>3 records</body></html>",
            "html",
            &hub(),
            "test.hub",
        );
        let (pdf, pdf_seal) = seal_document(b"%PDF-1.7\n...\n%%EOF\n", "pdf", &hub(), "test.hub");
        for (file, seal) in [(&json, &json_seal), (&html, &html_seal), (&pdf, &pdf_seal)] {
            assert_eq!(verify_sealed(file, Some(seal)).as_ref(), Ok(seal));
            for at in 0..file.len() {
                for flip in [0x01, 0x20] {
                    let mut changed = file.clone();
                    changed[at] ^= flip;
                    assert!(
                        verify_sealed(&changed, None).is_err(),
                        "byte {at} of {}",
                        seal.format
                    );
                }
            }
        }
        let other = seal_document(b"<html>2 records</html>", "html", &hub(), "test.hub").1;
        assert_eq!(verify_sealed(&html, Some(&other)), Err(SealError::Detached));
    }
}
