//! How a command fails: an exit code, a line for people and JSON for scripts.

use super::*;

/// A failure with the exit code it maps to.
pub(super) struct Failure {
    pub(super) code: i32,
    pub(super) json: Value,
    pub(super) text: String,
}

impl Failure {
    pub(super) fn invalid(index: Option<usize>, violations: &[Violation]) -> Failure {
        let list: Vec<Value> = violations
            .iter()
            .map(|violation| {
                let mut entry = json!({"field": violation.field, "rule": violation.rule, "message": violation.message});
                if let Some(index) = index {
                    entry["index"] = json!(index);
                }
                entry
            })
            .collect();
        let lines: Vec<String> = violations
            .iter()
            .map(|violation| format!("  {violation}"))
            .collect();
        Failure {
            code: exit::INVALID,
            json: json!({"error": {"code": "invalid", "violations": list}}),
            text: format!("error: refused\n{}", lines.join("\n")),
        }
    }

    /// A write refused for breaking rules: nothing of it was stored.
    pub(super) fn refused_write(index: Option<usize>, violations: &[Violation]) -> Failure {
        let mut failure = Failure::invalid(index, violations);
        failure.text =
            failure
                .text
                .replacen("error: refused", "error: refused, nothing was stored", 1);
        failure
    }

    pub(super) fn fault(error: anyhow::Error) -> Failure {
        Failure {
            code: exit::FAULT,
            json: json!({"error": {"code": "fault", "message": format!("{error:#}")}}),
            text: format!("error: {error:#}"),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        Failure::fault(error)
    }
}

impl From<WriteError> for Failure {
    fn from(error: WriteError) -> Failure {
        match error {
            WriteError::Invalid { violations, .. } => Failure::refused_write(None, &violations),
            WriteError::StorageFull(message) => Failure {
                code: exit::STORAGE_FULL,
                json: json!({"error": {"code": "storage_full", "message": message}}),
                text: format!("error: storage full, nothing was stored: {message}"),
            },
            other => Failure::fault(anyhow::anyhow!(other)),
        }
    }
}

impl From<cairn_edge::StoreError> for Failure {
    fn from(error: cairn_edge::StoreError) -> Failure {
        match error {
            cairn_edge::StoreError::UnknownCollection(name) => Failure::invalid(
                None,
                &[Violation::new(
                    "collection",
                    "unknown",
                    format!("{name:?} is not defined by an active pack"),
                )],
            ),
            other => Failure::fault(anyhow::anyhow!(other)),
        }
    }
}
