//! The hub's memory of bearer tokens whose signature already verified, so
//! that a node's repeated token costs a SHA-256 instead of an Ed25519
//! verification. Whether a signature verifies is a function of the key and
//! the token alone, so remembering it changes no verdict: a token is
//! remembered with the key it verified under, and every claim (audience,
//! role, lifetime, expiry) is checked again on every use
//! (`cairn_core::token`). Bounded; forgets everything when full.

use cairn_core::token::{Claims, TokenError, check_claims, check_signature, peek};

/// Longest list of tokens a [`Verified`] remembers before it starts over.
pub const TOKENS_REMEMBERED_MAX: usize = 16_384;

/// Tokens whose signature already verified.
#[derive(Debug, Default)]
pub struct Verified {
    seen: std::sync::Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl Verified {
    /// `cairn_core::token::verify`, remembering tokens that pass.
    pub fn verify(
        &self,
        token: &str,
        public_key: &[u8; 32],
        audience: &str,
        now_s: u64,
    ) -> Result<Claims, TokenError> {
        use sha2::Digest;
        let claims = peek(token)?;
        let digest: [u8; 32] = sha2::Sha256::new()
            .chain_update(public_key)
            .chain_update(token.as_bytes())
            .finalize()
            .into();
        let known = self.seen.lock().is_ok_and(|set| set.contains(&digest));
        if !known {
            check_signature(token, public_key)?;
        }
        check_claims(&claims, audience, now_s)?;
        if !known && let Ok(mut set) = self.seen.lock() {
            if set.len() >= TOKENS_REMEMBERED_MAX {
                set.clear();
            }
            set.insert(digest);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_core::identity::NodeIdentity;
    use cairn_core::token::sign;

    fn claims(now: u64) -> Claims {
        Claims {
            sub: "hangar-7".into(),
            aud: "hub.test".into(),
            role: "node".into(),
            iat: now,
            exp: now + 300,
        }
    }

    #[test]
    fn a_remembered_token_still_answers_to_its_key_and_its_claims() {
        let node = NodeIdentity::from_seed("hangar-7", [1; 32]);
        let rekeyed = NodeIdentity::from_seed("hangar-7", [2; 32]);
        let token = sign(&claims(1_000), &node);
        let verified = Verified::default();
        for _ in 0..2 {
            assert_eq!(
                verified.verify(&token, &node.public_key(), "hub.test", 1_100),
                Ok(claims(1_000))
            );
        }
        // Remembered under the key it verified with, not under another.
        assert_eq!(
            verified.verify(&token, &rekeyed.public_key(), "hub.test", 1_100),
            Err(TokenError::Signature)
        );
        // The claims are checked on every use.
        assert_eq!(
            verified.verify(&token, &node.public_key(), "other.hub", 1_100),
            Err(TokenError::Audience)
        );
        assert_eq!(
            verified.verify(&token, &node.public_key(), "hub.test", 10_000),
            Err(TokenError::Expired)
        );
        // A token that differs in one signature byte is not the remembered one.
        let mut forged = token.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            verified.verify(&forged, &node.public_key(), "hub.test", 1_100),
            Err(TokenError::Signature)
        );
    }
}
