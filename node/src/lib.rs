//! The Rota node: one per library.
//!
//! A node keeps its library's holdings, partners and agreements in SQLite, and serves two
//! gRPC APIs over mutual TLS on one port: the **peer API** for partner nodes and the
//! **staff API** for the `rota` CLI. Borrowing requests hop along a rota of lenders; every
//! message goes out through a transactional outbox.
//!
//! Layers, from the edge in:
//! - [`transport`]: tonic servers and clients, TLS acceptance, identity, conversion
//!   between protobuf and domain types, the outbox dispatcher. The only module that knows
//!   tonic or prost.
//! - [`node`]: behaviour, independent of transport.
//! - [`machine`]: the pure request state machines.
//! - [`store`]: SQLite storage; sees domain types only.
//! - [`domain`], [`message`]: the types everything else shares.

pub mod clock;
pub mod config;
pub mod demo;
pub mod directory;
pub mod domain;
pub mod error;
pub mod import;
pub mod init;
pub mod lifecycle;
pub mod machine;
pub mod message;
pub mod node;
pub mod rota;
pub mod runtime;
pub mod store;
pub mod transport;

pub use node::Node;
