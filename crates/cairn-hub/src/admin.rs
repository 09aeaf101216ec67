//! The hub's administrative acts, each an op of its own signed stream
//! (`hub:audit`) in the same transaction as its effect: enrolling a node
//! (directly or by a one-time token), re-keying it, voiding its tokens,
//! revoking a scope label, resolving an equivocation, and staff tokens.

use crate::StorageError;
use crate::audit::{self, HUB_NODE};
use crate::backend::{AlertRow, EnrollToken, LogTx};
use crate::signer::LogSigner;
use cairn_core::hash::Hash;
use std::collections::BTreeMap;

/// Roles whose tokens the hub signs itself (people and tools, not nodes).
pub const STAFF_ROLES: [&str; 3] = ["operator", "auditor", "admin"];

/// Why an administrative act was refused, or the fault that stopped it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The act breaks a rule; nothing was stored.
    #[error("{0}")]
    Refused(String),
    /// A storage fault; nothing was stored.
    #[error("{0}")]
    Store(#[from] StorageError),
}

/// An operator's decision on an equivocation.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resolution {
    /// The node.
    pub node: String,
    /// Its stream.
    pub stream: String,
    /// The head the hub keeps.
    pub kept_seq: u64,
    /// Its hash, hex.
    pub kept_hash: String,
    /// Quarantined items of the stream, all kept.
    pub quarantined: u64,
    /// Why.
    pub reason: String,
    /// Who decided (a staff token's subject, or `cli`).
    pub by: String,
}

/// Why a resolution was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The hub holds no such stream.
    #[error("the hub holds no stream {0}")]
    UnknownStream(String),
    /// The stream is not held.
    #[error("stream {0} is not held: there is nothing to resolve")]
    NotHeld(String),
    /// The reason is missing or too long.
    #[error("reason {0}")]
    Reason(String),
    /// A storage fault.
    #[error("{0}")]
    Store(#[from] StorageError),
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The token is unknown, used or expired.
    #[error("{0}")]
    Token(&'static str),
    /// The token was issued for another node.
    #[error("the token was issued for node {0:?}")]
    Node(String),
    /// The public key is not an Ed25519 key.
    #[error("public key is not a valid Ed25519 key")]
    Key,
    /// A storage fault.
    #[error("{0}")]
    Store(#[from] StorageError),
}

/// Refuses names that are not node names, and the hub's own.
pub fn check_node_name(node: &str) -> Result<(), AdminError> {
    cairn_core::names::check_name(node)
        .map_err(|message| AdminError::Refused(format!("node {node:?}: {message}")))?;
    if node == HUB_NODE {
        return Err(AdminError::Refused(format!(
            "node {node:?}: the name is the hub's own"
        )));
    }
    Ok(())
}

/// True when 32 bytes are a usable Ed25519 public key.
fn is_key(public_key: &[u8; 32]) -> bool {
    // A signature check against a key that is not a curve point fails with
    // `BadKey`; any other outcome means the key itself decoded.
    !matches!(
        cairn_core::identity::verify_signature(public_key, b"", &[0; 64]),
        Err(cairn_core::identity::SignatureError::BadKey)
    )
}

/// An enrollment about to be written.
struct EnrollAct<'a> {
    node: &'a str,
    public_key: [u8; 32],
    scopes: &'a BTreeMap<String, String>,
    /// The key this enrollment replaces, when it re-keys the node.
    previous: Option<[u8; 32]>,
    /// Who enrolled it.
    by: &'a str,
}

/// Writes an enrollment inside `tx`: the node's row, the act in
/// `hub:audit`, the key's record (pulls hand the act out beside every
/// checkpoint the key signed), and the end of every token still
/// outstanding for the node (any enrollment makes them void).
fn register(
    tx: &dyn LogTx,
    signer: &LogSigner,
    now: u64,
    act: &EnrollAct<'_>,
) -> Result<(), StorageError> {
    tx.put_node(act.node, &act.public_key, act.scopes, now)?;
    let revoked = tx.void_tokens(act.node, now)?;
    let mut record = serde_json::json!({
        "action": "enroll",
        "node": act.node,
        "public_key": hex::encode(act.public_key),
        "scopes": act.scopes,
        "by": act.by,
    });
    if let Some(previous) = act.previous {
        record["rekey"] = true.into();
        record["previous_key"] = hex::encode(previous).into();
    }
    if revoked > 0 {
        record["tokens_revoked"] = revoked.into();
    }
    let seq = audit::append_act(tx, signer, &record, now)?;
    tx.keep_node_key(act.node, &act.public_key, seq)
}

/// Registers a node with its key and scopes, or grants an enrolled node new
/// scopes under the same key. Another key for an enrolled node is refused
/// unless `rekey`, and then recorded with the key it replaces.
#[allow(clippy::too_many_arguments)] // An act's facts, each named at the call.
pub fn enroll(
    tx: &dyn LogTx,
    signer: &LogSigner,
    now: u64,
    node: &str,
    public_key: [u8; 32],
    scopes: &BTreeMap<String, String>,
    rekey: bool,
    by: &str,
) -> Result<(), AdminError> {
    check_node_name(node)?;
    if !is_key(&public_key) {
        return Err(AdminError::Refused(
            "public key is not a valid Ed25519 key".into(),
        ));
    }
    let previous = tx.node_key(node)?;
    let rekeyed = previous.filter(|previous| *previous != public_key);
    if let Some(previous) = rekeyed
        && !rekey
    {
        return Err(AdminError::Refused(format!(
            "node {node:?} is already enrolled with key {}; replacing its key is an explicit act: pass --rekey",
            hex::encode(previous)
        )));
    }
    let act = EnrollAct {
        node,
        public_key,
        scopes,
        previous: rekeyed,
        by,
    };
    Ok(register(tx, signer, now, &act)?)
}

/// Makes every outstanding one-time token of `node` void; returns how many
/// there were. Recorded in `hub:audit` when there were any.
pub fn revoke_tokens(
    tx: &dyn LogTx,
    signer: &LogSigner,
    now: u64,
    node: &str,
    by: &str,
) -> Result<u64, StorageError> {
    let revoked = tx.void_tokens(node, now)?;
    if revoked > 0 {
        let act = serde_json::json!({"action": "revoke_tokens", "node": node, "count": revoked, "by": by});
        audit::append_act(tx, signer, &act, now)?;
    }
    Ok(revoked)
}

/// Revokes a scope label from a node; returns whether it was granted.
pub fn revoke_scope(
    tx: &dyn LogTx,
    signer: &LogSigner,
    now: u64,
    node: &str,
    label: &str,
    value: &str,
) -> Result<bool, AdminError> {
    let mut grants = tx
        .grants(node)?
        .ok_or_else(|| AdminError::Refused(format!("node {node:?} is not enrolled")))?;
    if grants.get(label).map(String::as_str) != Some(value) {
        return Ok(false);
    }
    grants.remove(label);
    tx.set_grants(node, &grants)?;
    let act =
        serde_json::json!({"action": "revoke", "node": node, "label": format!("{label}={value}")});
    audit::append_act(tx, signer, &act, now)?;
    Ok(true)
}

/// Releases a stream an equivocation held, keeping the hub's version: its
/// head stays where it is, both diverging versions stay in the quarantine,
/// and pushes that extend the head are accepted again (a push that still
/// rewrites a logged seq holds the stream anew). The act, with who decided
/// and why, is an op of the hub's own stream.
pub fn resolve(
    tx: &dyn LogTx,
    signer: &LogSigner,
    now: u64,
    (node, stream): (&str, &str),
    reason: &str,
    by: &str,
) -> Result<Resolution, ResolveError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > cairn_core::limits::REASON_BYTES_MAX {
        return Err(ResolveError::Reason(format!(
            "must be 1 to {} bytes of text",
            cairn_core::limits::REASON_BYTES_MAX
        )));
    }
    let Some(row) = tx.stream(node, stream)? else {
        return Err(ResolveError::UnknownStream(format!("{node}:{stream}")));
    };
    if !row.held {
        return Err(ResolveError::NotHeld(format!("{node}:{stream}")));
    }
    let resolution = Resolution {
        node: node.to_string(),
        stream: stream.to_string(),
        kept_seq: row.head.seq,
        kept_hash: row.head.hash.to_hex(),
        quarantined: tx.quarantined_count(node, stream)?,
        reason: reason.to_string(),
        by: by.to_string(),
    };
    let act = serde_json::json!({
        "action": "resolve",
        "node": node,
        "stream": stream,
        "decision": "keep the hub's version",
        "kept_seq": resolution.kept_seq,
        "kept_hash": resolution.kept_hash,
        "quarantined": resolution.quarantined,
        "reason": reason,
        "by": by,
    });
    audit::append_act(tx, signer, &act, now)?;
    tx.set_stream(row.id, row.head, false)?;
    let message = format!(
        "released by {by}, keeping seq {} as held: {reason}",
        row.head.seq
    );
    tx.alert(&AlertRow {
        kind: "resolved",
        node,
        stream,
        message: &message,
        created_ms: now,
    })?;
    Ok(resolution)
}

/// Stores a one-time enrollment token for `node` with its scopes, valid
/// until `expires_ms`; only its hash is kept. For a node already enrolled
/// it is refused unless `rekey`: redeeming it then replaces the node's key.
pub fn create_enrollment(
    tx: &dyn LogTx,
    token: &str,
    node: &str,
    scopes: &BTreeMap<String, String>,
    expires_ms: u64,
    rekey: bool,
) -> Result<(), AdminError> {
    check_node_name(node)?;
    if !rekey && tx.node_key(node)?.is_some() {
        return Err(AdminError::Refused(format!(
            "node {node:?} is already enrolled; a token would replace its key: pass --rekey to issue one"
        )));
    }
    let row = EnrollToken {
        node: node.to_string(),
        scopes: scopes.clone(),
        expires_ms,
        used_ms: None,
        rekey,
        revoked_ms: None,
    };
    Ok(tx.put_token(&Hash::of(token.as_bytes()), &row)?)
}

/// Redeems a one-time token: registers `public_key` for the token's node.
pub fn redeem_enrollment(
    tx: &dyn LogTx,
    signer: &LogSigner,
    now: u64,
    (node, public_key): (&str, [u8; 32]),
    token: &str,
) -> Result<(), EnrollError> {
    if !is_key(&public_key) {
        return Err(EnrollError::Key);
    }
    let token_hash = Hash::of(token.as_bytes());
    let Some(row) = tx.token(&token_hash)? else {
        return Err(EnrollError::Token("unknown token"));
    };
    if row.used_ms.is_some() {
        return Err(EnrollError::Token("token already used"));
    }
    if row.revoked_ms.is_some() {
        return Err(EnrollError::Token(
            "token revoked (the node was enrolled since, or an admin revoked it)",
        ));
    }
    if row.expires_ms < now {
        return Err(EnrollError::Token("token expired"));
    }
    if row.node != node {
        return Err(EnrollError::Node(row.node));
    }
    let previous = tx.node_key(node)?;
    if previous.is_some() && !row.rekey {
        return Err(EnrollError::Token(
            "the node is already enrolled and this token may not replace its key",
        ));
    }
    tx.use_token(&token_hash, now)?;
    let act = EnrollAct {
        node,
        public_key,
        scopes: &row.scopes,
        previous: previous.filter(|previous| *previous != public_key),
        by: "one-time token",
    };
    Ok(register(tx, signer, now, &act)?)
}

/// A token for a person or tool (role `operator`, `auditor` or `admin`),
/// signed with the hub's own key: whoever holds the hub's key vouches for
/// it. Nodes sign their own tokens instead.
pub fn issue_token(
    signer: &LogSigner,
    subject: &str,
    role: &str,
    lifetime_s: u64,
    now_s: u64,
) -> Result<String, AdminError> {
    if !STAFF_ROLES.contains(&role) {
        return Err(AdminError::Refused(format!(
            "role {role:?}: the hub issues tokens for {} (nodes sign their own)",
            STAFF_ROLES.join(", ")
        )));
    }
    cairn_core::names::check_name(subject)
        .map_err(|message| AdminError::Refused(format!("subject {subject:?}: {message}")))?;
    let lifetime_max = cairn_core::token::TOKEN_LIFETIME_S_MAX;
    if lifetime_s == 0 || lifetime_s > lifetime_max {
        return Err(AdminError::Refused(format!(
            "lifetime: 1 to {lifetime_max} seconds"
        )));
    }
    let claims = cairn_core::token::Claims {
        sub: subject.to_string(),
        aud: signer.origin().to_string(),
        role: role.to_string(),
        iat: now_s,
        exp: now_s + lifetime_s,
    };
    Ok(cairn_core::token::sign(&claims, signer.identity()))
}
