//! What nodes and legacy clients last showed of themselves, kept in the
//! store when several hub processes share it (PostgreSQL): each process's
//! fleet page and gauges then show the whole fleet, not only the nodes that
//! reported to it. Reports are not records: the newest replaces the last,
//! and they are written beside the log, never waiting for its order.

use crate::HubStore;
use cairn_hub::backend::{FleetReport, HubBackend, LogTx};
use cairn_sqlite::StoreError;

impl HubStore {
    /// True when other hub processes may share this hub's store.
    pub fn is_shared(&self) -> bool {
        matches!(self.hub().backend(), crate::StoreBackend::Postgres(_))
    }

    /// Keeps `report` for every process sharing the store (unless a newer
    /// one is kept).
    pub fn put_fleet_report(&self, report: &FleetReport) -> Result<(), StoreError> {
        let tx = self.hub().backend().write_beside_log()?;
        tx.put_fleet_report(report)?;
        tx.commit()?;
        Ok(())
    }

    /// Every fleet report the store keeps.
    pub fn fleet_reports(&self) -> Result<Vec<FleetReport>, StoreError> {
        Ok(self.hub().backend().read()?.fleet_reports()?)
    }
}
