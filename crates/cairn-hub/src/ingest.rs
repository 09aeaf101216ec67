//! Ingest: a push body from the network (JSON, or postcard, plain or
//! zstd) into a [`PushRequest`], every refusal naming the field and rule.
//! Nothing here trusts the bytes: the pipeline verifies what they claim.

use crate::{PUSH_OPS_MAX, PushRequest};
use base64::Engine;
use cairn_core::hash::Hash;
use cairn_core::identity::Checkpoint;
use cairn_core::pack::Violation;
use cairn_proto::{BINARY_PUSH_BYTES_MAX, PushWire, with_zstd};
use serde_json::Value;

/// The size a zstd frame says it decompresses to: our clients always say
/// it, so the hub can hold it against its budget before decompressing (a
/// small frame may expand a thousandfold).
pub fn zstd_content_size(bytes: &[u8]) -> Result<usize, Violation> {
    match zstd::zstd_safe::get_frame_content_size(bytes) {
        Ok(Some(size)) if size <= BINARY_PUSH_BYTES_MAX as u64 => Ok(size as usize),
        Ok(Some(size)) => Err(Violation::new(
            "body",
            "max_bytes",
            format!("decompresses to {size} bytes, at most {BINARY_PUSH_BYTES_MAX}"),
        )),
        _ => Err(Violation::new(
            "body",
            "zstd",
            "must be one zstd frame that declares its content size",
        )),
    }
}

/// Decodes a binary push body (zstd when `compressed`), naming the rule it broke.
pub fn push_from_binary(bytes: &[u8], compressed: bool) -> Result<PushRequest, Violation> {
    let raw = if compressed {
        let size = zstd_content_size(bytes)?;
        with_zstd(|_, decompressor| decompressor.decompress(bytes, size)).map_err(|error| {
            Violation::new(
                "body",
                "zstd",
                format!("not a zstd frame of the size it declares: {error}"),
            )
        })?
    } else {
        bytes.to_vec()
    };
    let wire: PushWire = postcard::from_bytes(&raw).map_err(|error| {
        Violation::new(
            "body",
            "postcard",
            format!("not a binary push body: {error}"),
        )
    })?;
    if wire.ops.is_empty() || wire.ops.len() > PUSH_OPS_MAX {
        return Err(Violation::new(
            "ops",
            "max_ops",
            format!(
                "a push holds 1 to {PUSH_OPS_MAX} ops, got {}",
                wire.ops.len()
            ),
        ));
    }
    let signature: [u8; 64] = wire
        .checkpoint_signature
        .as_slice()
        .try_into()
        .map_err(|_| Violation::new("checkpoint.signature", "format", "must be 64 bytes"))?;
    Ok(PushRequest {
        decoded: None,
        checkpoint_key: None,
        node_time_ms: None,
        built_on: None,
        checkpoint: Checkpoint {
            node: wire.node.clone(),
            stream: wire.stream.clone(),
            seq: wire.checkpoint_seq,
            head: Hash(wire.checkpoint_head),
            signature,
        },
        node: wire.node,
        stream: wire.stream,
        ops: wire.ops,
    })
}

/// Parses a push body, naming the field and rule of every problem.
pub fn push_from_json(value: &Value) -> Result<PushRequest, Vec<Violation>> {
    let mut violations = Vec::new();
    let Some(object) = value.as_object() else {
        return Err(vec![Violation::new(
            "body",
            "type",
            "must be a JSON object",
        )]);
    };
    for name in object.keys() {
        if !["node", "stream", "ops", "checkpoint"].contains(&name.as_str()) {
            violations.push(Violation::new(
                name.clone(),
                "unknown_field",
                "expected node, stream, ops, checkpoint",
            ));
        }
    }
    let mut text = |name: &'static str| -> String {
        match object.get(name).and_then(Value::as_str) {
            Some(text) => text.to_string(),
            None => {
                violations.push(Violation::new(name, "required", "must be a string"));
                String::new()
            }
        }
    };
    let (node, stream) = (text("node"), text("stream"));
    let ops = ops_field(object.get("ops"), &mut violations);
    let checkpoint = checkpoint_field(object.get("checkpoint"), &mut violations);
    match (violations.is_empty(), checkpoint) {
        (true, Some((seq, head, signature))) => Ok(PushRequest {
            decoded: None,
            checkpoint_key: None,
            node_time_ms: None,
            built_on: None,
            checkpoint: Checkpoint {
                node: node.clone(),
                stream: stream.clone(),
                seq,
                head,
                signature,
            },
            node,
            stream,
            ops,
        }),
        _ => Err(violations),
    }
}

/// The `ops` of a JSON push: 1 to [`PUSH_OPS_MAX`] base64 strings.
fn ops_field(ops: Option<&Value>, violations: &mut Vec<Violation>) -> Vec<Vec<u8>> {
    let Some(list) = ops.and_then(Value::as_array) else {
        violations.push(Violation::new(
            "ops",
            "required",
            "must be an array of base64 ops",
        ));
        return Vec::new();
    };
    if list.is_empty() || list.len() > PUSH_OPS_MAX {
        violations.push(Violation::new(
            "ops",
            "max_ops",
            format!("a push holds 1 to {PUSH_OPS_MAX} ops, got {}", list.len()),
        ));
        return Vec::new();
    }
    let mut ops = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        match item
            .as_str()
            .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
        {
            Some(bytes) => ops.push(bytes),
            None => violations.push(Violation::new(
                format!("ops[{index}]"),
                "base64",
                "must be a base64 string",
            )),
        }
    }
    ops
}

/// The `checkpoint` of a JSON push: its seq, head and signature.
fn checkpoint_field(
    checkpoint: Option<&Value>,
    violations: &mut Vec<Violation>,
) -> Option<(u64, Hash, [u8; 64])> {
    let field = |name: &str| checkpoint.and_then(|c| c.get(name));
    let seq = field("seq").and_then(Value::as_u64);
    let head = field("head")
        .and_then(Value::as_str)
        .and_then(Hash::from_hex);
    let signature = field("signature")
        .and_then(Value::as_str)
        .and_then(|text| hex::decode(text).ok())
        .and_then(|bytes| <[u8; 64]>::try_from(bytes).ok());
    if seq.is_none() {
        violations.push(Violation::new(
            "checkpoint.seq",
            "required",
            "must be an unsigned integer",
        ));
    }
    if head.is_none() {
        violations.push(Violation::new(
            "checkpoint.head",
            "format",
            "must be 64 hex characters",
        ));
    }
    if signature.is_none() {
        violations.push(Violation::new(
            "checkpoint.signature",
            "format",
            "must be 128 hex characters",
        ));
    }
    Some((seq?, head?, signature?))
}
