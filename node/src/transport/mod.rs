//! The transport layer: the only part of the node that knows tonic and prost.
//!
//! - [`server`]: TLS acceptance with the live partner table, peer identity, interceptors
//!   that separate the peer and staff roles, and the gRPC server itself;
//! - [`peer_api`], [`staff_api`]: thin adapters from gRPC to [`crate::node::Node`];
//! - [`convert`]: protobuf ↔ domain, field by field, with validation that names the field;
//! - [`dispatch`]: the outbox dispatcher, one long-lived channel per partner;
//! - [`status`]: the one place node errors become gRPC statuses.

pub mod channels;
pub mod convert;
pub mod dispatch;
pub mod peer_api;
pub mod server;
pub mod staff_api;
pub mod status;

pub use server::{PeerInfo, serve};
