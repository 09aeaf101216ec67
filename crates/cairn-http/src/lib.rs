//! Cairn over HTTP: the edge's localhost API (`edge`) and the hub's API
//! (`hub`), one error shape for both (`error`), request bodies read within
//! a budget (`body`), the bounded accept loop both serve with (`server`),
//! and TLS with the hub's certificate pinned, for servers and the edge's
//! client (`tls`). Handlers translate between HTTP and the stores; no
//! domain rule lives here.
#![deny(missing_docs)]

pub mod body;
pub mod dashboard;
pub mod edge;
pub mod edge_observe;
pub mod error;
pub mod hub;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod tls;
pub mod tokens;
