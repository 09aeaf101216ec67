//! Programs around Cairn, run by the binary as `cairn demo` and `cairn
//! bench`: the demo (real processes, a real outage), the benchmarks with
//! their peers, the PouchDB driver, the fault-injecting TCP proxy, and the
//! printing of tables and JSON they and the command line share.
#![deny(missing_docs)]

pub mod bench;
pub mod demo;
pub mod output;
pub mod pouch;
pub mod proxy;
