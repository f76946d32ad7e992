//! Institution symbols, staff users, and the URI SANs that name them.

use std::fmt;

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// URI SAN prefix of a node certificate: `urn:rota:inst:<SYMBOL>`.
pub const INST_URN_PREFIX: &str = "urn:rota:inst:";
/// URI SAN prefix of a staff certificate: `urn:rota:staff:<SYMBOL>:<user>`.
pub const STAFF_URN_PREFIX: &str = "urn:rota:staff:";

/// Why an identity could not be read or accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("institution symbol {0:?} is invalid: use 2-16 characters from A-Z, 0-9 and '-'")]
    BadSymbol(String),
    #[error("staff user name {0:?} is invalid: use 1-64 characters from a-z, 0-9, '.', '_' and '-'")]
    BadUser(String),
    #[error("certificate could not be parsed")]
    BadCertificate,
    #[error("certificate carries no Rota identity (no urn:rota URI SAN)")]
    NoIdentity,
    #[error("certificate carries more than one Rota identity")]
    AmbiguousIdentity,
}

/// An institution symbol: 2–16 characters from `A-Z`, `0-9` and `-`, ISIL-like (`DGW`,
/// `US-DGW`). Immutable once a node is initialised.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl TryFrom<String> for Symbol {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, IdentityError> {
        Symbol::parse(&s)
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> String {
        s.0
    }
}

impl Symbol {
    /// Validate a symbol exactly as written (no case folding: staff see what they typed
    /// refused rather than silently changed).
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let ok = (2..=16).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok { Ok(Symbol(s.to_owned())) } else { Err(IdentityError::BadSymbol(s.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URI SAN of this institution's node certificate.
    pub fn node_urn(&self) -> String {
        format!("{INST_URN_PREFIX}{}", self.0)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A staff user name, as it appears in `urn:rota:staff:<SYMBOL>:<user>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StaffUser(String);

impl StaffUser {
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
        if ok { Ok(StaffUser(s.to_owned())) } else { Err(IdentityError::BadUser(s.to_owned())) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StaffUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a certificate says it is. Whether that claim is believed is the verifier's job
/// ([`crate::tls`]); this type only reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// A library's node: `urn:rota:inst:<SYMBOL>`.
    Node(Symbol),
    /// A staff member of a library: `urn:rota:staff:<SYMBOL>:<user>`.
    Staff { institution: Symbol, user: StaffUser },
}

impl Identity {
    /// Parse a `urn:rota:…` URI.
    pub fn from_urn(uri: &str) -> Result<Self, IdentityError> {
        if let Some(sym) = uri.strip_prefix(INST_URN_PREFIX) {
            return Ok(Identity::Node(Symbol::parse(sym)?));
        }
        if let Some(rest) = uri.strip_prefix(STAFF_URN_PREFIX) {
            let (sym, user) = rest.split_once(':').ok_or(IdentityError::NoIdentity)?;
            return Ok(Identity::Staff { institution: Symbol::parse(sym)?, user: StaffUser::parse(user)? });
        }
        Err(IdentityError::NoIdentity)
    }

    /// The URN this identity is written as.
    pub fn urn(&self) -> String {
        match self {
            Identity::Node(s) => s.node_urn(),
            Identity::Staff { institution, user } => format!("{STAFF_URN_PREFIX}{institution}:{user}"),
        }
    }

    /// Read the single Rota identity from a DER certificate's URI SANs.
    pub fn from_cert_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (_, cert) =
            x509_parser::certificate::X509Certificate::from_der(der).map_err(|_| IdentityError::BadCertificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| IdentityError::BadCertificate)?
            .ok_or(IdentityError::NoIdentity)?;
        let mut found = None;
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && uri.starts_with("urn:rota:")
            {
                if found.is_some() {
                    return Err(IdentityError::AmbiguousIdentity);
                }
                found = Some(Identity::from_urn(uri)?);
            }
        }
        found.ok_or(IdentityError::NoIdentity)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Node(s) => write!(f, "partner {s}"),
            Identity::Staff { institution, user } => write!(f, "staff {user}@{institution}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols() {
        for ok in ["DGW", "US-DGW", "A1", "ABCDEFGHIJKLMNOP"] {
            assert!(Symbol::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "D", "dgw", "DG W", "-DGW", "DGW-", "ABCDEFGHIJKLMNOPQ", "DGÜ"] {
            assert!(Symbol::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urns_round_trip() {
        let id = Identity::from_urn("urn:rota:staff:US-DGW:jane.doe").unwrap();
        assert_eq!(id.urn(), "urn:rota:staff:US-DGW:jane.doe");
        assert!(Identity::from_urn("urn:rota:staff:DGW").is_err());
        assert!(Identity::from_urn("urn:rota:inst:dgw").is_err());
        assert!(Identity::from_urn("https://example.org").is_err());
    }
}
