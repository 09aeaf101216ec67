//! Reports made and sealed with the hub's key (`cairn_hub::report`,
//! `cairn_core::seal`): the key never leaves the store.

use crate::HubStore;
use cairn_core::seal::{self, Seal};
use cairn_hub::report::{Report, ReportQuery, html, pdf};
use cairn_sqlite::StoreError;

/// The forms a report takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// Canonical JSON, sealed by a `seal` member.
    Json,
    /// One HTML page with SVG charts, sealed by its last line.
    Html,
    /// PDF, sealed by a comment line after `%%EOF`.
    Pdf,
}

impl ReportFormat {
    /// Parses `json`, `html` or `pdf`.
    pub fn from_name(name: &str) -> Option<ReportFormat> {
        match name {
            "json" => Some(ReportFormat::Json),
            "html" => Some(ReportFormat::Html),
            "pdf" => Some(ReportFormat::Pdf),
            _ => None,
        }
    }
}

impl HubStore {
    /// The report `query` asks for.
    pub fn report(&self, query: &ReportQuery) -> Result<Report, StoreError> {
        Ok(self.hub().report(query)?)
    }

    /// `report` in `format`, sealed with the hub's key: the file's bytes
    /// and the seal (for the detached `.sig` file).
    pub fn sealed_report(
        &self,
        report: &Report,
        format: ReportFormat,
    ) -> Result<(Vec<u8>, Seal), StoreError> {
        let origin = self.origin().to_string();
        match format {
            ReportFormat::Json => {
                let value = serde_json::to_value(report)
                    .map_err(|error| StoreError::Internal(error.to_string()))?;
                let object = value.as_object().cloned().unwrap_or_default();
                seal::seal_json_report(&object, self.identity(), &origin)
                    .map_err(StoreError::Internal)
            }
            ReportFormat::Html => Ok(seal::seal_document(
                html::render(report).as_bytes(),
                "html",
                self.identity(),
                &origin,
            )),
            ReportFormat::Pdf => Ok(seal::seal_document(
                &pdf::render(report),
                "pdf",
                self.identity(),
                &origin,
            )),
        }
    }
}
