//! Node identities (Ed25519) and checkpoints.
//!
//! A checkpoint is a node's signature over `(node, stream, seq, head)`: one
//! signature authenticates every op of the stream up to `head`, which is what
//! lets group commit sign once per batch. Key files are encoded and decoded
//! here; writing them (with mode 0600) is the caller's job, since the core
//! does no I/O.

use crate::hash::Hash;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

/// Domain separation tag of the signed checkpoint message.
pub const CHECKPOINT_TAG: &[u8; 10] = b"CAIRN-CKPT";
/// Version of the checkpoint message layout.
pub const CHECKPOINT_FORMAT_VERSION: u8 = 1;
/// First line of a key file.
const KEY_FILE_HEADER: &str = "cairn-node-key v1";

/// A node's name and signing key.
pub struct NodeIdentity {
    /// The node's name, as it appears in every op it writes.
    pub node: String,
    /// The Ed25519 secret key.
    signing_key: SigningKey,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(
            f,
            "NodeIdentity({}, {})",
            self.node,
            hex::encode(self.public_key())
        )
    }
}

/// Why a key file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key file: {0}")]
pub struct KeyFileError(pub String);

impl NodeIdentity {
    /// The identity whose secret key is `seed` (32 random bytes from the caller).
    pub fn from_seed(node: &str, seed: [u8; 32]) -> NodeIdentity {
        NodeIdentity {
            node: node.to_string(),
            signing_key: SigningKey::from_bytes(&seed),
        }
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }

    /// Signs a checkpoint of `stream` at `seq` with head `head`.
    pub fn sign_checkpoint(&self, stream: &str, seq: u64, head: Hash) -> Checkpoint {
        let message = checkpoint_message(&self.node, stream, seq, head);
        let signature = self.signing_key.sign(&message).to_bytes();
        Checkpoint {
            node: self.node.clone(),
            stream: stream.to_string(),
            seq,
            head,
            signature,
        }
    }

    /// Signs arbitrary bytes (used for messages with their own domain tag).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing_key.sign(message).to_bytes()
    }

    /// The text of a key file holding this identity.
    pub fn to_key_file(&self) -> String {
        format!(
            "{KEY_FILE_HEADER}\nnode {}\nsecret {}\npublic {}\n",
            self.node,
            hex::encode(self.signing_key.to_bytes()),
            hex::encode(self.public_key())
        )
    }

    /// Reads a key file written by [`NodeIdentity::to_key_file`].
    pub fn from_key_file(text: &str) -> Result<NodeIdentity, KeyFileError> {
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(KeyFileError(format!(
                "first line must be {KEY_FILE_HEADER:?}"
            )));
        }
        let mut field = |name: &str| -> Result<String, KeyFileError> {
            let line = lines.next().unwrap_or_default();
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(str::to_string)
                .ok_or_else(|| KeyFileError(format!("expected a line `{name} ...`")))
        };
        let node = field("node")?;
        let secret = field("secret")?;
        let public = field("public")?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(&secret, &mut seed)
            .map_err(|_| KeyFileError("secret is not 64 hex characters".into()))?;
        let identity = NodeIdentity::from_seed(&node, seed);
        if hex::encode(identity.public_key()) != public {
            return Err(KeyFileError("public key does not match the secret".into()));
        }
        Ok(identity)
    }
}

/// A signed statement that `stream` of `node` has head `head` at `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Signing node.
    pub node: String,
    /// Stream the checkpoint covers.
    pub stream: String,
    /// Seq of the head op.
    pub seq: u64,
    /// `op_hash` of the op at `seq`.
    pub head: Hash,
    /// Ed25519 signature over the checkpoint message.
    pub signature: [u8; 64],
}

/// Why a checkpoint signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The public key bytes are not a valid Ed25519 point.
    #[error("public key is not a valid Ed25519 key")]
    BadKey,
    /// The signature does not match the message and key.
    #[error("signature does not verify with the node's key")]
    Mismatch,
}

impl Checkpoint {
    /// Verifies the signature with the node's public key.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), SignatureError> {
        let message = checkpoint_message(&self.node, &self.stream, self.seq, self.head);
        verify_signature(public_key, &message, &self.signature)
    }
}

/// Verifies an Ed25519 signature over `message`.
pub fn verify_signature(
    public_key: &[u8; 32],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::BadKey)?;
    key.verify(message, &Signature::from_bytes(signature))
        .map_err(|_| SignatureError::Mismatch)
}

/// The exact bytes a checkpoint signature covers (see FORMAT.md).
pub fn checkpoint_message(node: &str, stream: &str, seq: u64, head: Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(96);
    message.extend_from_slice(CHECKPOINT_TAG);
    message.push(CHECKPOINT_FORMAT_VERSION);
    for text in [node, stream] {
        let len = u16::try_from(text.len()).expect("names are bounded");
        message.extend_from_slice(&len.to_be_bytes());
        message.extend_from_slice(text.as_bytes());
    }
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(&head.0);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_and_any_change_breaks_them() {
        let identity = NodeIdentity::from_seed("hangar-7", [7; 32]);
        let checkpoint = identity.sign_checkpoint("critical", 12, Hash::of(b"head"));
        checkpoint.verify(&identity.public_key()).unwrap();
        let mut forged = checkpoint.clone();
        forged.seq = 13;
        assert_eq!(
            forged.verify(&identity.public_key()),
            Err(SignatureError::Mismatch)
        );
        let other = NodeIdentity::from_seed("hangar-7", [8; 32]);
        assert_eq!(
            checkpoint.verify(&other.public_key()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn key_file_round_trips_and_rejects_tampering() {
        let identity = NodeIdentity::from_seed("pharmacy-1", [3; 32]);
        let text = identity.to_key_file();
        let back = NodeIdentity::from_key_file(&text).unwrap();
        assert_eq!(back.public_key(), identity.public_key());
        assert_eq!(back.node, "pharmacy-1");
        let tampered = text.replace("public ", "public 00");
        assert!(NodeIdentity::from_key_file(&tampered).is_err());
        assert!(NodeIdentity::from_key_file("garbage").is_err());
        assert!(!format!("{identity:?}").contains(&hex::encode([3u8; 32])));
    }
}
