//! Pulls: pages of the ops in this node's scopes, each op's inclusion in
//! the signed log and its origin's chain checked (`cairn_core::trust`)
//! before it is merged; grants compared, revoked labels purged, new ones
//! backfilled.

use crate::hub::*;
use crate::{hub_log, snapshot};
use anyhow::Context;
use cairn_core::merkle;
use cairn_core::note::LogCheckpoint;
use cairn_edge::EdgeStore;

/// What a pull round brought.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PullReport {
    /// Ops of other nodes stored and merged.
    pub applied: u64,
    /// Ops received in the hub's snapshot (a node's first pull).
    pub snapshot_ops: u64,
    /// Ops received that this node had already.
    pub duplicate: u64,
    /// Receipts whose inclusion proof verified.
    pub receipts_verified: u64,
    /// Ops whose chain led to a checkpoint their origin signed.
    pub origins_verified: u64,
    /// Origin checkpoint signatures verified.
    pub origin_checkpoints: u64,
    /// Scope labels the hub revoked since the last pull.
    pub purged_labels: Vec<String>,
    /// Scope labels the hub granted since the last pull (their history was
    /// taken from snapshot pages).
    pub granted_labels: Vec<String>,
    /// Records recomputed or removed by that purge.
    pub purged_records: u64,
}

/// Checks that `ops`, received from the hub, are what their origin nodes
/// wrote, and, with the hub's key known, that it enrolled every key that
/// signed them (`cairn_core::trust::verify_origins`).
pub(crate) fn check_origins(
    ops: &[(cairn_core::op::Op, Vec<u8>)],
    chains: &[cairn_proto::ChainSegment],
    enrollments: &[String],
    hub_key: Option<[u8; 32]>,
    report: &mut PullReport,
) -> anyhow::Result<()> {
    let enrollments = cairn_proto::decode_base64("enrollments", enrollments)?
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            cairn_core::op::Op::decode(bytes)
                .map_err(|fault| anyhow::anyhow!("enrollments[{index}]: {fault}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let proofs = cairn_proto::chain_proofs(chains)?;
    let refs: Vec<&cairn_core::op::Op> = ops.iter().map(|(op, _)| op).collect();
    let proven = cairn_core::trust::verify_origins(&refs, &enrollments, &proofs, hub_key)?;
    report.origins_verified += ops.len() as u64;
    report.origin_checkpoints += proven.checkpoints as u64;
    Ok(())
}

/// Compares the hub's grants with the last ones seen: labels no longer
/// granted make the node purge the records it pulled under them (never its
/// own), and say so in its log.
async fn apply_grants(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    audience: &str,
    grants: &std::collections::BTreeMap<String, String>,
    report: &mut PullReport,
) -> anyhow::Result<()> {
    if let Some(previous) = store.grants()? {
        // A label granted since the last pull brings its history: the
        // ops below the cursor that carry it (SPEC §5), before the grants
        // are saved, so an interrupted backfill is done again.
        let added: Vec<String> = grants
            .iter()
            .filter(|(name, value)| previous.get(*name) != Some(*value))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !added.is_empty() {
            let cursor = store.pull_cursor()?;
            if hub.key.is_some() {
                let pages = snapshot::Pages {
                    from: 0,
                    to: Some(cursor),
                    labels: &added,
                    advance_cursor: false,
                };
                let taken = snapshot::take(store, hub, audience, &pages, report).await?;
                tracing::info!(?added, ops = taken, "new scope granted: took its history");
            } else {
                // Without the hub's key no manifest can be checked: pull
                // the log again from the start, page by page, with proofs.
                store.set_pull_cursor(0)?;
            }
            report.granted_labels.extend(added);
        }
        let revoked: Vec<String> = previous
            .iter()
            .filter(|(name, value)| grants.get(*name) != Some(*value))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if !revoked.is_empty() {
            let purged = store.purge_revoked_async(revoked.clone()).await?;
            tracing::warn!(
                ?revoked,
                records = purged.len(),
                "scope revoked by the hub: purged the records pulled under it"
            );
            report.purged_labels.extend(revoked);
            report.purged_records += purged.len() as u64;
        }
    }
    if store.grants()?.as_ref() != Some(grants) {
        store.set_grants(grants)?;
    }
    Ok(())
}

/// Pulls every op in this node's scopes it does not hold yet, page by page.
/// Each op is decoded (so its hashes are checked) and its receipt verified
/// against the page's log checkpoint (and that checkpoint's signature, when
/// the hub's key is known) before anything is stored.
pub async fn pull_all(store: &EdgeStore, hub: &HubLink<'_>) -> anyhow::Result<PullReport> {
    let (client, hub_url, hub_key) = (hub.client, hub.url, hub.key);
    let mut report = PullReport::default();
    let audience = hub_audience(client, hub_url, hub_key).await?;
    bootstrap(store, hub, &audience, &mut report).await?;
    let mut newest: Option<(LogCheckpoint, String)> = None;
    // Bounded: a page either advances the cursor or ends the round.
    for _ in 0..100_000 {
        let from = store.pull_cursor()?;
        let token = hub.token(store, &audience).await;
        let response = client
            .get(format!("{hub_url}/v1/pull?from={from}"))
            .bearer_auth(token)
            .send()
            .await
            .context("the hub is unreachable")?;
        let page: cairn_proto::PullPage =
            cairn_proto::from_value(hub_answer(&hub.clock, response, "pull").await?)?;
        apply_grants(store, hub, &audience, &page.grants, &mut report).await?;
        let checkpoint = read_checkpoint(&page.checkpoint, hub_key)?;
        let mut verified = Vec::new();
        for (index, item) in page.ops.iter().enumerate() {
            let bytes = cairn_proto::decode_base64(
                &format!("ops[{index}].op"),
                std::slice::from_ref(&item.op),
            )?
            .remove(0);
            let op = cairn_core::op::Op::decode(&bytes)
                .map_err(|fault| anyhow::anyhow!("a pulled op is damaged: {fault}"))?;
            let proof = cairn_proto::hashes(&format!("ops[{index}].proof"), &item.proof)?;
            merkle::verify_inclusion(
                item.leaf,
                checkpoint.size,
                &merkle::leaf_hash(&op.op_hash.0),
                &proof,
                &checkpoint.root,
            )
            .with_context(|| {
                format!(
                    "the receipt of pulled op {} does not verify",
                    op.record_id()
                )
            })?;
            report.receipts_verified += 1;
            verified.push((op, bytes));
        }
        check_origins(
            &verified,
            &page.chains,
            &page.enrollments,
            hub_key.map(|(_, key)| key),
            &mut report,
        )?;
        let received = verified.len() as u64;
        let applied = store.apply_pulled_async(verified).await?;
        report.applied += applied.len() as u64;
        report.duplicate += received - applied.len() as u64;
        let next = page.next;
        newest = Some((checkpoint, page.checkpoint.clone()));
        if next <= from && received == 0 {
            break;
        }
        store.set_pull_cursor(next)?;
        if !page.more {
            break;
        }
    }
    if let Some((checkpoint, note)) = newest {
        hub_log::hold(store, hub, &checkpoint, &note).await?;
    }
    Ok(report)
}

/// A node that has pulled nothing yet starts from the hub's snapshot
/// (`cairn_core::snapshot`): every op it may see, under one signed manifest
/// instead of an inclusion proof each. It needs the hub's pinned key; without
/// one, or from a hub that serves no snapshots, the node pulls page by page.
async fn bootstrap(
    store: &EdgeStore,
    hub: &HubLink<'_>,
    audience: &str,
    report: &mut PullReport,
) -> anyhow::Result<()> {
    if hub.key.is_none() || store.pull_cursor()? != 0 {
        return Ok(());
    }
    let pages = snapshot::Pages {
        from: 0,
        to: None,
        labels: &[],
        advance_cursor: true,
    };
    snapshot::take(store, hub, audience, &pages, report).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use cairn_core::chain::StreamHead;
    use cairn_core::op::{Action, OpDraft};
    use serde_json::Value;
    use serde_json::json;

    fn ops(count: u64) -> Vec<Vec<u8>> {
        let mut head = StreamHead::EMPTY;
        cairn_core::testkit::notes("a", &mut head, count as usize, "n", &Default::default())
    }

    /// The part of a pull or snapshot answer that proves origins.
    #[derive(serde::Deserialize)]
    struct Origins {
        chains: Vec<cairn_proto::ChainSegment>,
        enrollments: Vec<String>,
    }

    /// A segment as the hub sends it.
    fn segment(checkpoint: &cairn_core::identity::Checkpoint, key: [u8; 32]) -> Value {
        json!({
            "node": checkpoint.node,
            "stream": checkpoint.stream,
            "seq": checkpoint.seq,
            "head": checkpoint.head.to_hex(),
            "signature": hex::encode(checkpoint.signature),
            "public_key": hex::encode(key),
            "headers": [],
        })
    }

    #[test]
    fn pulled_ops_need_their_origin_chain_and_a_key_the_hub_enrolled() {
        let author = cairn_core::identity::NodeIdentity::from_seed("a", [1; 32]);
        let hub = cairn_core::identity::NodeIdentity::from_seed("hub", [2; 32]);
        let rogue = cairn_core::identity::NodeIdentity::from_seed("hub", [3; 32]);
        let pulled: Vec<(cairn_core::op::Op, Vec<u8>)> = ops(3)
            .into_iter()
            .map(|bytes| (cairn_core::op::Op::decode(&bytes).unwrap(), bytes))
            .collect();
        let head = pulled[2].0.op_hash;
        let signed = author.sign_checkpoint("standard", 3, head);
        let act = |key: [u8; 32]| {
            let mut head = StreamHead::EMPTY;
            head.append(OpDraft {
                node: "hub".into(),
                stream: "audit".into(),
                hlc: cairn_core::hlc::Hlc {
                    wall_ms: 1,
                    counter: 0,
                },
                collection: "hub_audit".into(),
                action: Action::Append,
                key: String::new(),
                scope: [("hub".to_string(), "audit".to_string())].into(),
                base: Default::default(),
                ref_hash: None,
                reason: String::new(),
                payload: cairn_core::canonical::to_canonical_bytes(
                    &json!({"action": "enroll", "node": "a", "public_key": hex::encode(key)}),
                )
                .unwrap(),
            })
        };
        let (enrolled, enrolled_bytes) = act(author.public_key());
        let answer = |act: &(cairn_core::op::Op, Vec<u8>),
                      signer: &cairn_core::identity::NodeIdentity| {
            let by_hub = signer.sign_checkpoint("audit", 1, act.0.op_hash);
            json!({
                "chains": [segment(&signed, author.public_key()), segment(&by_hub, signer.public_key())],
                "enrollments": [base64::engine::general_purpose::STANDARD.encode(&act.1)],
            })
        };
        let check = |answer: &Value, hub_key: Option<[u8; 32]>| {
            let mut report = PullReport::default();
            let origins: Origins = cairn_proto::from_value(answer.clone())?;
            check_origins(
                &pulled,
                &origins.chains,
                &origins.enrollments,
                hub_key,
                &mut report,
            )
            .map(|()| report)
        };
        let good = answer(&(enrolled.clone(), enrolled_bytes.clone()), &hub);
        let report = check(&good, Some(hub.public_key())).unwrap();
        assert_eq!((report.origins_verified, report.origin_checkpoints), (3, 2));

        // The act enrolled another key: the author's key is not vouched for.
        let other = act([9; 32]);
        let error = check(&answer(&other, &hub), Some(hub.public_key())).unwrap_err();
        assert!(
            format!("{error:#}").contains("a:standard seq 3 is not one the hub enrolled"),
            "{error:#}"
        );
        // The act is signed by a key that is not the hub's.
        let error = check(
            &answer(&(enrolled, enrolled_bytes), &rogue),
            Some(hub.public_key()),
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("hub:audit seq 1 is not one the hub enrolled"),
            "{error:#}"
        );
        // Without the hub's key, only the chains can be checked.
        assert!(check(&answer(&other, &hub), None).is_ok());

        // A missing op of the chain, and malformed answers, each named.
        let mut short = good.clone();
        short["chains"][0]["seq"] = json!(2);
        assert!(check(&short, None).is_err());
        for (edit, expected) in [
            (json!({"enrollments": []}), "missing field `chains`"),
            (
                json!({"chains": [{"node": "a"}], "enrollments": []}),
                "chains[0]: missing field `stream`",
            ),
            (
                json!({"chains": [], "enrollments": ["%%"]}),
                "enrollments[0] must be base64",
            ),
            (json!({"chains": []}), "missing field `enrollments`"),
        ] {
            let error = check(&edit, None).unwrap_err();
            assert!(format!("{error:#}").contains(expected), "{error:#}");
        }
        let mut bad_hex = good.clone();
        bad_hex["chains"][0]["signature"] = json!("zz");
        let error = check(&bad_hex, None).unwrap_err();
        assert!(
            format!("{error:#}").contains("chains[0].signature must be 64 bytes of hex"),
            "{error:#}"
        );
    }

    proptest::proptest! {
        /// A pull answer from the network, mutated: its chain proofs and
        /// enrollments are refused cleanly or checked, never a panic.
        #[test]
        fn pull_answers_decode_or_refuse(
            at in proptest::prelude::any::<usize>(),
            kind in proptest::prelude::any::<u8>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..12),
        ) {
            let author = cairn_core::identity::NodeIdentity::from_seed("a", [1; 32]);
            let pulled: Vec<(cairn_core::op::Op, Vec<u8>)> = ops(3)
                .into_iter()
                .map(|bytes| (cairn_core::op::Op::decode(&bytes).unwrap(), bytes))
                .collect();
            let signed = author.sign_checkpoint("standard", 3, pulled[2].0.op_hash);
            let answer = json!({"chains": [segment(&signed, author.public_key())], "enrollments": []});
            let bytes = cairn_core::mutation::mutated(answer.to_string().as_bytes(), at, kind, &extra);
            if let Ok(answer) = serde_json::from_slice::<Value>(&bytes)
                && let Ok(origins) = cairn_proto::from_value::<Origins>(answer)
            {
                let _ = check_origins(
                    &pulled,
                    &origins.chains,
                    &origins.enrollments,
                    None,
                    &mut PullReport::default(),
                );
            }
        }
    }
}
