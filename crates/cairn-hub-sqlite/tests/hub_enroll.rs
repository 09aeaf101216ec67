//! Enrollment (issue 9, item 3): a one-time token dies with any enrollment
//! of its node, and replacing an enrolled node's key is an explicit act the
//! hub's own stream records.

use cairn_core::identity::NodeIdentity;
use cairn_core::op::Op;
use cairn_hub_sqlite::{EnrollError, HubStore};

fn hub() -> (tempfile::TempDir, HubStore) {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let hub = HubStore::open(dir.path()).unwrap();
    (dir, hub)
}

fn key(seed: u8) -> [u8; 32] {
    NodeIdentity::from_seed("n", [seed; 32]).public_key()
}

/// The payloads of the hub's audit acts.
fn acts(hub: &HubStore) -> Vec<serde_json::Value> {
    hub.audit_ops()
        .unwrap()
        .iter()
        .map(|bytes| serde_json::from_slice(&Op::decode(bytes).unwrap().draft.payload).unwrap())
        .collect()
}

#[test]
fn issue_9_3_a_token_does_not_outlive_a_direct_enrollment() {
    let (_dir, hub) = hub();
    let scopes = [("site".to_string(), "x".to_string())].into();
    let token = hub.create_enrollment("n", &scopes, 60_000, false).unwrap();
    hub.enroll("n", key(1), &scopes).unwrap();
    // The token, issued before, cannot re-key the node now.
    let refused = hub.redeem_enrollment("n", key(2), &token).unwrap_err();
    assert!(
        matches!(refused, EnrollError::Token(reason) if reason.contains("revoked")),
        "{refused:?}"
    );
    assert_eq!(hub.node_key("n").unwrap(), Some(key(1)));
    let enrolled = acts(&hub).pop().unwrap();
    assert_eq!(enrolled["tokens_revoked"], 1, "{enrolled}");
}

#[test]
fn issue_9_3_re_keying_is_explicit_and_audited() {
    let (_dir, hub) = hub();
    let scopes = Default::default();
    hub.enroll("n", key(1), &scopes).unwrap();
    // The same key again is a grant update, not a re-key.
    hub.enroll("n", key(1), &[("site".to_string(), "y".to_string())].into())
        .unwrap();
    let refused = hub.enroll("n", key(2), &scopes).unwrap_err();
    assert!(refused.to_string().contains("--rekey"), "{refused}");
    assert_eq!(hub.node_key("n").unwrap(), Some(key(1)));
    // A token for an enrolled node needs the same explicit choice.
    let refused = hub
        .create_enrollment("n", &scopes, 60_000, false)
        .unwrap_err();
    assert!(refused.to_string().contains("--rekey"), "{refused}");

    hub.rekey("n", key(2), &scopes, "alice").unwrap();
    assert_eq!(hub.node_key("n").unwrap(), Some(key(2)));
    let act = acts(&hub).pop().unwrap();
    assert_eq!(act["rekey"], true, "{act}");
    assert_eq!(act["previous_key"], hex::encode(key(1)));
    assert_eq!(act["by"], "alice");

    // A re-key token, then revoked by an admin before use.
    let token = hub.create_enrollment("n", &scopes, 60_000, true).unwrap();
    assert_eq!(hub.revoke_tokens("n", "alice").unwrap(), 1);
    assert!(hub.redeem_enrollment("n", key(3), &token).is_err());
    assert_eq!(acts(&hub).pop().unwrap()["action"], "revoke_tokens");
    // Another, redeemed: the node's key is replaced, and recorded so.
    let token = hub.create_enrollment("n", &scopes, 60_000, true).unwrap();
    hub.redeem_enrollment("n", key(3), &token).unwrap();
    assert_eq!(hub.node_key("n").unwrap(), Some(key(3)));
    let act = acts(&hub).pop().unwrap();
    assert_eq!(act["previous_key"], hex::encode(key(2)), "{act}");
    assert!(hub.redeem_enrollment("n", key(4), &token).is_err(), "used");
    assert_eq!(hub.revoke_tokens("n", "alice").unwrap(), 0);
}

/// Time-dependent rules run under a clock the test moves (issue 10, item
/// 4): a one-time token lives exactly its validity, by the hub's clock.
#[test]
fn issue_10_4_a_token_expires_by_the_hub_s_clock() {
    let dir = tempfile::tempdir().unwrap();
    HubStore::init(dir.path(), "test.hub").unwrap();
    let clock = std::sync::Arc::new(cairn_core::clock::ManualClock::at(1_000_000));
    let hub = HubStore::open_with_clock(dir.path(), clock.clone()).unwrap();
    let first = hub
        .create_enrollment("n", &Default::default(), 60_000, false)
        .unwrap();
    let second = hub
        .create_enrollment("m", &Default::default(), 60_000, false)
        .unwrap();
    clock.advance(60_000);
    hub.redeem_enrollment("n", key(1), &first).unwrap();
    clock.advance(1);
    let refused = hub.redeem_enrollment("m", key(2), &second).unwrap_err();
    assert!(
        matches!(refused, EnrollError::Token("token expired")),
        "{refused:?}"
    );
}
