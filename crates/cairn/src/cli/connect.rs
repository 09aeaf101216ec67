//! Reaching a hub: enrollment with a one-time token, pins, the hub's key and address.

use super::*;

/// Registers this node's key at a hub with a one-time token; returns what to remember of the hub.
pub(super) fn enroll_at_hub(
    hub: &str,
    node: &str,
    public_key: &[u8; 32],
    token: &str,
    pin: Option<[u8; 32]>,
) -> Result<Value, Failure> {
    let url = hub.trim_end_matches('/').to_string();
    let client = cairn_http::tls::client(&url, pin, None).map_err(pin_failure)?;
    let runtime = one_shot_runtime()?;
    let answer: anyhow::Result<(u16, Value)> = runtime.block_on(async {
        let response = client
            .post(format!("{url}/v1/enroll"))
            .json(&json!({"node": node, "public_key": hex::encode(public_key), "token": token}))
            .send()
            .await
            .context("the hub is unreachable")?;
        let status = response.status().as_u16();
        Ok((
            status,
            response
                .json()
                .await
                .context("the hub's answer is not JSON")?,
        ))
    });
    let (status, body) = answer.map_err(Failure::from)?;
    if status != 201 {
        return Err(Failure {
            code: exit::SYNC_INCOMPLETE,
            json: json!({"error": {"code": "enrollment_refused", "status": status, "hub": body["error"]}}),
            text: format!(
                "error: the hub refused the enrollment ({status}): {}",
                body["error"]["message"].as_str().unwrap_or("")
            ),
        });
    }
    let mut hub = json!({"url": url, "origin": body["origin"], "public_key": body["public_key"]});
    if let Some(pin) = pin {
        hub["tls_sha256"] = json!(hex::encode(pin));
    }
    Ok(hub)
}

/// This machine's host name as a node name: lower case, with anything
/// outside a-z, 0-9, '.', '_' and '-' made a '-'.
pub(super) fn host_node_name() -> Result<String, Failure> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let name: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(cairn_core::limits::NAME_BYTES_MAX)
        .collect();
    if cairn_core::names::check_name(&name).is_err() {
        return Err(Failure::invalid(
            None,
            &[Violation::new(
                "node",
                "required",
                format!(
                    "this machine's host name {host:?} is no node name: name the node with --node"
                ),
            )],
        ));
    }
    Ok(name)
}

/// Removes what `edge init` created when its enrollment failed.
pub(super) fn remove_node(dir: &std::path::Path, existed: bool) {
    for name in [
        "node.key",
        "cairn.db",
        "cairn.db-wal",
        "cairn.db-shm",
        "heads",
        "heads.new",
    ] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    if !existed {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A hub's URL, with its origin and key when known.
pub(super) type HubTarget = (String, Option<HubKey>);

/// A `--hub-cert-sha256` value, checked.
pub(super) fn parse_pin(text: &Option<String>) -> Result<Option<[u8; 32]>, Failure> {
    text.as_deref()
        .map(|text| {
            cairn_http::tls::parse_pin(text).map_err(|message| {
                Failure::invalid(
                    None,
                    &[Violation::new("hub-cert-sha256", "format", message)],
                )
            })
        })
        .transpose()
}

/// The pin of the hub's certificate: `--hub-cert-sha256`, else the one
/// remembered at enrollment.
pub(super) fn resolve_pin(
    store: &EdgeStore,
    explicit: &Option<String>,
) -> Result<Option<[u8; 32]>, Failure> {
    if explicit.is_some() {
        return parse_pin(explicit);
    }
    let saved = store
        .hub()?
        .and_then(|hub| hub["tls_sha256"].as_str().map(str::to_string));
    parse_pin(&saved)
}

/// An HTTP client that could not be made: an https:// hub with no pin.
pub(super) fn pin_failure(error: anyhow::Error) -> Failure {
    Failure::invalid(
        None,
        &[Violation::new(
            "hub-cert-sha256",
            "pinned",
            format!("{error:#}"),
        )],
    )
}

/// The hub to sync with: `--hub` (with `--hub-key`/`--hub-origin` if given),
/// else the hub this node enrolled with, whose key is then always checked.
pub(super) fn resolve_hub(
    store: &EdgeStore,
    hub: &Option<String>,
    key: &Option<String>,
    origin: &Option<String>,
) -> Result<Option<HubTarget>, Failure> {
    if let Some(url) = hub {
        return Ok(Some((
            url.trim_end_matches('/').to_string(),
            parse_hub_key(key, origin)?,
        )));
    }
    let Some(saved) = store.hub()? else {
        return Ok(None);
    };
    let url = saved["url"].as_str().unwrap_or_default().to_string();
    let known = parse_hub_key(
        &saved["public_key"].as_str().map(str::to_string),
        &saved["origin"].as_str().map(str::to_string),
    )?;
    Ok(Some((url, known)))
}
