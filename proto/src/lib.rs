//! Rota's wire types, generated from `proto/rota/*.proto`.
//!
//! Two services live here: [`peer`] (node to node, ISO 18626 semantics) and [`staff`]
//! (the `rota` CLI to its own node). Nothing outside the node's transport layer and the CLI
//! should name these types: domain code converts them at the edge.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

/// The peer API (node ↔ node).
pub mod peer {
    tonic::include_proto!("rota.peer.v1");
}

/// The staff API (CLI ↔ own node).
pub mod staff {
    tonic::include_proto!("rota.staff.v1");
}

/// Wire protocol version exchanged in `Hello`.
pub const PROTOCOL_VERSION: &str = "rota-peer/1";

pub mod channel;
