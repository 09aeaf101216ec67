//! Short-lived EdDSA JWTs (RFC 7519, RFC 8037) that a node signs with its
//! own Ed25519 key and the hub checks against the key it enrolled.
//!
//! Hand-written rather than taken from `jsonwebtoken`: Cairn needs one
//! algorithm with keys it already holds, and the crate would add a second
//! generation of the RustCrypto stack (about 50 crates) for it. The time is
//! passed in, like everywhere in the core.

use crate::identity::{NodeIdentity, verify_signature};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Longest lifetime a token may claim, seconds.
pub const TOKEN_LIFETIME_S_MAX: u64 = 15 * 60;
/// Clock difference tolerated when checking `exp` and `iat`, seconds.
pub const TOKEN_LEEWAY_S: u64 = 60;
/// Longest token accepted, bytes.
pub const TOKEN_BYTES_MAX: usize = 2_048;

/// The roles a token can carry.
pub const ROLES: [&str; 4] = ["node", "operator", "auditor", "admin"];

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The node (or person) it speaks for.
    pub sub: String,
    /// The hub it is meant for (the log origin).
    pub aud: String,
    /// `node`, `operator`, `auditor` or `admin`.
    pub role: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three base64url parts with a JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm.
    #[error("token algorithm must be EdDSA")]
    Algorithm,
    /// The signature does not verify with the subject's key.
    #[error("token signature does not verify")]
    Signature,
    /// Past `exp` (beyond the leeway), or issued in the future.
    #[error("token expired or not yet valid")]
    Expired,
    /// Meant for another hub.
    #[error("token is for another audience")]
    Audience,
    /// Lives longer than allowed, or names an unknown role.
    #[error("token claims are not acceptable: {0}")]
    Claims(&'static str),
}

/// Signs a token for `claims`.
pub fn sign(claims: &Claims, identity: &NodeIdentity) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{body}");
    let signature = URL_SAFE_NO_PAD.encode(identity.sign(signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// Reads the claims without checking anything (to find the subject's key).
pub fn peek(token: &str) -> Result<Claims, TokenError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(TokenError::Malformed("too long"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected header.claims.signature"));
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed("header is not base64url JSON"))?;
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("EdDSA") {
        return Err(TokenError::Algorithm);
    }
    URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed("claims are not base64url JSON"))
}

/// Checks a token against the subject's key, the audience and the time.
pub fn verify(
    token: &str,
    public_key: &[u8; 32],
    audience: &str,
    now_s: u64,
) -> Result<Claims, TokenError> {
    let claims = peek(token)?;
    check_signature(token, public_key)?;
    check_claims(&claims, audience, now_s)?;
    Ok(claims)
}

/// Checks the token's signature under `public_key`, and nothing else.
pub fn check_signature(token: &str, public_key: &[u8; 32]) -> Result<(), TokenError> {
    let (signing_input, signature) = token
        .rsplit_once('.')
        .ok_or(TokenError::Malformed("no signature"))?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(TokenError::Malformed("signature is not 64 base64url bytes"))?;
    verify_signature(public_key, signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::Signature)
}

/// Checks the claims of a token: audience, role, lifetime and expiry at
/// `now_s`, and nothing else.
pub fn check_claims(claims: &Claims, audience: &str, now_s: u64) -> Result<(), TokenError> {
    if claims.aud != audience {
        return Err(TokenError::Audience);
    }
    if !ROLES.contains(&claims.role.as_str()) {
        return Err(TokenError::Claims("unknown role"));
    }
    if claims.exp < claims.iat || claims.exp - claims.iat > TOKEN_LIFETIME_S_MAX {
        return Err(TokenError::Claims("lifetime over the maximum"));
    }
    if now_s > claims.exp + TOKEN_LEEWAY_S || claims.iat > now_s + TOKEN_LEEWAY_S {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_fresh_token_verifies_and_every_fault_is_named() {
        let node = NodeIdentity::from_seed("hangar-7", [1; 32]);
        let token = sign(&claims(1_000), &node);
        assert_eq!(
            verify(&token, &node.public_key(), "hub.test", 1_100),
            Ok(claims(1_000))
        );
        assert_eq!(
            verify(
                &token,
                &node.public_key(),
                "hub.test",
                1_000 + 300 + TOKEN_LEEWAY_S + 1
            ),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&token, &node.public_key(), "other.hub", 1_100),
            Err(TokenError::Audience)
        );
        let other = NodeIdentity::from_seed("pharmacy-1", [2; 32]);
        assert_eq!(
            verify(&token, &other.public_key(), "hub.test", 1_100),
            Err(TokenError::Signature)
        );
        let mut long = claims(1_000);
        long.exp = long.iat + TOKEN_LIFETIME_S_MAX + 1;
        assert!(matches!(
            verify(&sign(&long, &node), &node.public_key(), "hub.test", 1_100),
            Err(TokenError::Claims(_))
        ));
        assert!(matches!(
            verify("a.b", &node.public_key(), "hub.test", 0),
            Err(TokenError::Malformed(_))
        ));
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            token.split('.').nth(1).unwrap()
        );
        assert_eq!(
            verify(&none, &node.public_key(), "hub.test", 1_100),
            Err(TokenError::Algorithm)
        );
        // Claims edited after signing.
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let mut edited = claims(1_000);
        edited.sub = "pharmacy-1".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&edited).unwrap());
        assert_eq!(
            verify(&parts.join("."), &node.public_key(), "hub.test", 1_100),
            Err(TokenError::Signature)
        );
    }
}
