//! Identity and trust for Rota.
//!
//! Every library runs a small certificate authority of its own: institution CA → node
//! certificate → staff certificates (DESIGN §2). This crate issues those certificates with
//! rcgen, reads and writes partner cards, keeps private key files at mode 0600, and provides
//! the rustls verifiers that decide, at every handshake, who is on the other end:
//!
//! - [`identity`]: institution symbols, staff user names and the URI SANs that carry them;
//! - [`issue`]: the CA, node and staff certificates;
//! - [`card`]: the partner card a library hands to a partner, and its fingerprint;
//! - [`files`]: secret files and their permissions;
//! - [`tls`]: inbound and outbound verifiers and rustls configurations.
//!
//! The crate knows nothing of gRPC or of storage: the node hands its live partner table to
//! the inbound verifier through the [`tls::TrustSource`] trait.

pub mod card;
pub mod files;
pub mod identity;
pub mod issue;
pub mod profile;
pub mod tls;

pub use card::{Card, CardError, fingerprint_of_der};
pub use identity::{Identity, IdentityError, StaffUser, Symbol};
pub use issue::{CaBundle, IssueError, IssuedCert};

/// The one rustls crypto provider used across Rota (ring: it builds with the C compiler that
/// every machine has).
pub fn crypto_provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Install [`crypto_provider`] as the process default. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
