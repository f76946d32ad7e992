//! The partner card: a small text file a library hands to a partner (DESIGN §2).
//!
//! ```text
//! # Rota partner card ...
//! rota-card: 1
//! symbol: DGW
//! name: George Washington University Libraries
//! endpoint: https://rota.library.gwu.edu:7443
//! fingerprint: SHA256:3f1c…
//! -----BEGIN CERTIFICATE-----
//! …institution CA…
//! -----END CERTIFICATE-----
//! ```
//!
//! The fingerprint is the SHA-256 of the CA certificate's DER. Both libraries compare it out
//! of band, as with SSH host keys.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;

use crate::identity::{Identity, Symbol};

/// Largest card accepted, in bytes.
pub const MAX_CARD_BYTES: usize = 64 * 1024;

/// Why a card was refused. Each names the line or field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CardError {
    #[error("card is larger than {MAX_CARD_BYTES} bytes")]
    TooLarge,
    #[error("card line {line}: expected `key: value`, found {text:?}")]
    BadLine { line: usize, text: String },
    #[error("card line {line}: unknown field {field:?}")]
    UnknownField { line: usize, field: String },
    #[error("card line {line}: field {field:?} appears twice")]
    Repeated { line: usize, field: String },
    #[error("card is missing the {0:?} field")]
    Missing(&'static str),
    #[error("card field {field:?}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("card certificate: {0}")]
    BadCertificate(String),
    #[error("card says fingerprint {stated} but its certificate's fingerprint is {actual}")]
    FingerprintMismatch { stated: String, actual: String },
}

/// A parsed, checked partner card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub symbol: Symbol,
    pub name: String,
    pub endpoint: String,
    pub ca_pem: String,
    pub ca_der: Vec<u8>,
}

/// `SHA256:<hex>` of a certificate's DER.
pub fn fingerprint_of_der(der: &[u8]) -> String {
    format!("SHA256:{}", hex::encode(Sha256::digest(der)))
}

/// Normalise a fingerprint as typed by a person: case, colons and spaces are ignored.
pub fn normalise_fingerprint(s: &str) -> String {
    let hexpart = s.trim().strip_prefix("SHA256:").or_else(|| s.trim().strip_prefix("sha256:")).unwrap_or(s.trim());
    let cleaned: String = hexpart.chars().filter(|c| !matches!(c, ':' | ' ')).collect::<String>().to_ascii_lowercase();
    format!("SHA256:{cleaned}")
}

/// Check an endpoint URL: `https://host[:port]`, no path, query or credentials.
pub fn check_endpoint(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("https://").ok_or("must start with https://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return Err("must be https://host:port with no path".into());
    }
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h).ok_or("unclosed [ in IPv6 address")?
    } else {
        rest.rsplit_once(':').map_or(rest, |(h, _)| h)
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if let Some((_, port)) = rest.rsplit_once(':').filter(|_| !rest.ends_with(']'))
        && !port.is_empty()
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(format!("port {port:?} is not a port number"));
    }
    if url.len() > 512 {
        return Err("is longer than 512 characters".into());
    }
    Ok(())
}

/// Check a display name: 1–200 characters, no control characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("is empty".into());
    }
    if name.chars().count() > 200 {
        return Err("is longer than 200 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

impl Card {
    /// Build a card for this library.
    pub fn new(symbol: Symbol, name: String, endpoint: String, ca_pem: String) -> Result<Self, CardError> {
        let ca_der = check_ca(&ca_pem, &symbol)?;
        check_name(&name).map_err(|reason| CardError::BadField { field: "name", reason })?;
        check_endpoint(&endpoint).map_err(|reason| CardError::BadField { field: "endpoint", reason })?;
        Ok(Card { symbol, name, endpoint, ca_pem, ca_der })
    }

    pub fn fingerprint(&self) -> String {
        fingerprint_of_der(&self.ca_der)
    }

    /// The card as a file.
    pub fn to_text(&self) -> String {
        format!(
            "# Rota partner card. Give this file to a partner library. Before they add it, read\n\
             # the fingerprint to each other over the phone or in person: it must match.\n\
             rota-card: 1\nsymbol: {}\nname: {}\nendpoint: {}\nfingerprint: {}\n{}",
            self.symbol,
            self.name,
            self.endpoint,
            self.fingerprint(),
            self.ca_pem.trim_end().to_owned() + "\n"
        )
    }

    /// Parse and check a card file.
    pub fn parse(text: &str) -> Result<Self, CardError> {
        if text.len() > MAX_CARD_BYTES {
            return Err(CardError::TooLarge);
        }
        let (mut version, mut symbol, mut name, mut endpoint, mut fingerprint) = (None, None, None, None, None);
        let mut pem_start = None;
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let lineno = i + 1;
            let trimmed = line.trim();
            if trimmed.starts_with("-----BEGIN") {
                pem_start = Some(offset);
                break;
            }
            offset += line.len();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (key, value) = trimmed
                .split_once(':')
                .ok_or_else(|| CardError::BadLine { line: lineno, text: trimmed.chars().take(80).collect() })?;
            let slot = match key.trim() {
                "rota-card" => &mut version,
                "symbol" => &mut symbol,
                "name" => &mut name,
                "endpoint" => &mut endpoint,
                "fingerprint" => &mut fingerprint,
                other => return Err(CardError::UnknownField { line: lineno, field: other.chars().take(40).collect() }),
            };
            if slot.is_some() {
                return Err(CardError::Repeated { line: lineno, field: key.trim().to_owned() });
            }
            *slot = Some(value.trim().to_owned());
        }
        match version.as_deref() {
            Some("1") => {}
            Some(v) => {
                return Err(CardError::BadField {
                    field: "rota-card",
                    reason: format!("version {v:?} is not supported (this node reads version 1)"),
                });
            }
            None => return Err(CardError::Missing("rota-card")),
        }
        let symbol = Symbol::parse(&symbol.ok_or(CardError::Missing("symbol"))?)
            .map_err(|e| CardError::BadField { field: "symbol", reason: e.to_string() })?;
        let name = name.ok_or(CardError::Missing("name"))?;
        let endpoint = endpoint.ok_or(CardError::Missing("endpoint"))?;
        let pem = &text[pem_start.ok_or(CardError::Missing("certificate"))?..];
        let card = Card::new(symbol, name, endpoint, pem.trim().to_owned() + "\n")?;
        if let Some(stated) = fingerprint {
            let stated = normalise_fingerprint(&stated);
            if stated != card.fingerprint() {
                return Err(CardError::FingerprintMismatch { stated, actual: card.fingerprint() });
            }
        }
        Ok(card)
    }
}

/// The card's certificate must be exactly one CA certificate naming `symbol`.
fn check_ca(pem: &str, symbol: &Symbol) -> Result<Vec<u8>, CardError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CardError::BadCertificate(format!("not valid PEM: {e}")))?;
    let [der] = certs.as_slice() else {
        return Err(CardError::BadCertificate(format!("expected one certificate, found {}", certs.len())));
    };
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|_| CardError::BadCertificate("not a valid X.509 certificate".into()))?;
    if !cert.is_ca() {
        return Err(CardError::BadCertificate("is not a CA certificate".into()));
    }
    match Identity::from_cert_der(der) {
        Ok(Identity::Node(s)) if &s == symbol => {}
        Ok(other) => {
            return Err(CardError::BadCertificate(format!("names {other}, but the card is for {symbol}")));
        }
        Err(e) => return Err(CardError::BadCertificate(e.to_string())),
    }
    Ok(der.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::CaBundle;

    fn card() -> Card {
        let sym = Symbol::parse("DGW").unwrap();
        let ca = CaBundle::generate(&sym, "GWU").unwrap();
        Card::new(sym, "George Washington University Libraries".into(), "https://127.0.0.1:7443".into(), ca.cert_pem)
            .unwrap()
    }

    #[test]
    fn round_trip() {
        let c = card();
        let parsed = Card::parse(&c.to_text()).unwrap();
        assert_eq!(parsed, Card { ca_pem: parsed.ca_pem.clone(), ..c.clone() });
        assert_eq!(parsed.fingerprint(), c.fingerprint());
        assert!(c.fingerprint().starts_with("SHA256:") && c.fingerprint().len() == 7 + 64);
    }

    #[test]
    fn refusals_name_the_field() {
        let text = card().to_text();
        let e = Card::parse(&text.replace("symbol: DGW", "symbol: dgw")).unwrap_err();
        assert!(matches!(e, CardError::BadField { field: "symbol", .. }), "{e}");
        let e = Card::parse(&text.replace("symbol: DGW", "symbol: DGU")).unwrap_err();
        assert!(matches!(e, CardError::BadCertificate(_)), "{e}");
        let e = Card::parse(&text.replace("https://", "http://")).unwrap_err();
        assert!(matches!(e, CardError::BadField { field: "endpoint", .. }), "{e}");
        let e = Card::parse(&text.replace("fingerprint: SHA256:", "fingerprint: SHA256:00")).unwrap_err();
        assert!(matches!(e, CardError::FingerprintMismatch { .. }), "{e}");
        let e = Card::parse(&text.replace("name:", "colour: blue\nname:")).unwrap_err();
        assert!(matches!(e, CardError::UnknownField { line: 5, .. }), "{e}");
        let e = Card::parse("rota-card: 1\nsymbol: DGW\n").unwrap_err();
        assert_eq!(e, CardError::Missing("name"));
    }

    #[test]
    fn fingerprints_are_compared_as_people_type_them() {
        assert_eq!(normalise_fingerprint("sha256:AB:cd ef"), "SHA256:abcdef");
    }

    #[test]
    fn endpoints() {
        for ok in ["https://127.0.0.1:7443", "https://rota.example.edu", "https://[::1]:7443", "https://h:1/"] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in ["http://h:1", "https://", "https://h:1/x", "https://u@h", "https://h:0", "https://h:99999"] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
