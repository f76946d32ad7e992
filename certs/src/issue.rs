//! Issuing certificates: the institution CA, the node certificate and staff certificates.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::identity::{Identity, StaffUser, Symbol};

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("the certificate signing request is not valid: {0}")]
    BadCsr(String),
    #[error("host name {0:?} cannot go in a certificate")]
    BadHost(String),
}

/// A certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log line.
        f.debug_struct("IssuedCert").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// An institution CA: certificate and key, able to sign node and staff certificates.
pub struct CaBundle {
    pub cert_pem: String,
    key: KeyPair,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

const CA_YEARS: i64 = 20;
const NODE_YEARS: i64 = 5;
const STAFF_YEARS: i64 = 2;

fn validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn random_serial(params: &mut CertificateParams) {
    let mut bytes = uuid::Uuid::new_v4().into_bytes();
    bytes[0] &= 0x7f; // keep the serial positive
    params.serial_number = Some(SerialNumber::from_slice(&bytes));
}

fn uri_san(uri: String) -> Result<SanType, IssueError> {
    Ok(SanType::URI(uri.clone().try_into().map_err(|_| IssueError::BadHost(uri))?))
}

impl CaBundle {
    /// Generate a new institution CA for `symbol`.
    pub fn generate(symbol: &Symbol, name: &str) -> Result<Self, IssueError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Rota institution CA {symbol}"));
        dn.push(DnType::OrganizationName, name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.subject_alt_names = vec![uri_san(symbol.node_urn())?];
        validity(&mut params, CA_YEARS);
        random_serial(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(CaBundle { cert_pem: cert.pem(), key })
    }

    /// Load a CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, IssueError> {
        let key = KeyPair::from_pem(key_pem)?;
        // Parse once now so a damaged file fails at load, not at first use.
        Issuer::from_ca_cert_pem(cert_pem, &key)?;
        Ok(CaBundle { cert_pem: cert_pem.to_owned(), key })
    }

    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, IssueError> {
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?)
    }

    /// The node certificate: EKU serverAuth + clientAuth, DNS/IP SANs for `hosts`, and the
    /// URI SAN `urn:rota:inst:<SYMBOL>`.
    pub fn issue_node(&self, symbol: &Symbol, hosts: &[String]) -> Result<IssuedCert, IssueError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("Rota node {symbol}"));
        params.distinguished_name = dn;
        let mut sans = vec![uri_san(symbol.node_urn())?];
        for h in hosts {
            match h.parse::<IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => {
                    sans.push(SanType::DnsName(h.clone().try_into().map_err(|_| IssueError::BadHost(h.clone()))?))
                }
            }
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, NODE_YEARS);
        random_serial(&mut params);
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    fn staff_params(symbol: &Symbol, user: &StaffUser) -> Result<CertificateParams, IssueError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("{user} ({symbol} staff)"));
        params.distinguished_name = dn;
        let id = Identity::Staff { institution: symbol.clone(), user: user.clone() };
        params.subject_alt_names = vec![uri_san(id.urn())?];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, STAFF_YEARS);
        random_serial(&mut params);
        Ok(params)
    }

    /// A staff certificate and key generated here (used by `rota-node init` for `admin`).
    pub fn issue_staff(&self, symbol: &Symbol, user: &StaffUser) -> Result<IssuedCert, IssueError> {
        let key = KeyPair::generate()?;
        let cert = Self::staff_params(symbol, user)?.signed_by(&key, &self.issuer()?)?;
        Ok(IssuedCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Sign a staff certificate for the public key in `csr_pem`. Everything the CSR asks for
    /// except its key is ignored: names, SANs and usages come from `symbol` and `user`.
    pub fn sign_staff_csr(&self, symbol: &Symbol, user: &StaffUser, csr_pem: &str) -> Result<String, IssueError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| IssueError::BadCsr(e.to_string()))?;
        let cert = Self::staff_params(symbol, user)?.signed_by(&csr.public_key, &self.issuer()?)?;
        Ok(cert.pem())
    }
}

/// A certificate's serial number (hex) and expiry (milliseconds since the epoch).
pub fn serial_and_expiry(der: &[u8]) -> Option<(String, i64)> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    Some((cert.raw_serial_as_string(), cert.validity().not_after.timestamp() * 1000))
}

/// A fresh key and a CSR for it, for a staff member's CLI. The key never leaves the caller.
pub fn staff_csr(user: &StaffUser) -> Result<(String, String), IssueError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, user.as_str());
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec()
    }

    #[test]
    fn node_and_staff_carry_their_identity() {
        let sym = Symbol::parse("DGW").unwrap();
        let ca = CaBundle::generate(&sym, "George Washington University Libraries").unwrap();
        let node = ca.issue_node(&sym, &["127.0.0.1".into(), "rota.example.edu".into()]).unwrap();
        assert_eq!(Identity::from_cert_der(&der(&node.cert_pem)).unwrap(), Identity::Node(sym.clone()));
        let user = StaffUser::parse("jane").unwrap();
        let (csr, _key) = staff_csr(&user).unwrap();
        let staff = ca.sign_staff_csr(&sym, &user, &csr).unwrap();
        assert_eq!(Identity::from_cert_der(&der(&staff)).unwrap(), Identity::Staff { institution: sym.clone(), user });
        let reloaded = CaBundle::from_pem(&ca.cert_pem, &ca.key_pem()).unwrap();
        assert!(reloaded.issue_node(&sym, &[]).is_ok());
        assert!(format!("{node:?}").contains("redacted"));
        assert!(!format!("{node:?}").contains("PRIVATE KEY"));
    }

    /// DESIGN §2: the node certificate names its hosts (DNS and IP) and its institution, and
    /// serves both ends of a TLS connection; a staff certificate is for clients only.
    #[test]
    fn node_certificates_carry_dns_and_ip_names_and_both_ekus() {
        use x509_parser::extensions::GeneralName;
        use x509_parser::prelude::FromDer;
        let sym = Symbol::parse("US-DGW").unwrap();
        let ca = CaBundle::generate(&sym, "x").unwrap();
        let node = ca.issue_node(&sym, &["rota.library.example.edu".into(), "10.0.0.7".into()]).unwrap();
        let d = der(&node.cert_pem);
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&d).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = san
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                GeneralName::URI(u) => format!("uri:{u}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert!(names.contains(&"dns:rota.library.example.edu".to_owned()), "{names:?}");
        assert!(names.contains(&"ip:[10, 0, 0, 7]".to_owned()), "{names:?}");
        assert!(names.contains(&"uri:urn:rota:inst:US-DGW".to_owned()), "{names:?}");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth, "{eku:?}");
        let user = StaffUser::parse("jane").unwrap();
        let staff = ca.issue_staff(&sym, &user).unwrap();
        let d = der(&staff.cert_pem);
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&d).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth, "{eku:?}");
    }

    #[test]
    fn garbage_csr_is_refused() {
        let sym = Symbol::parse("DGW").unwrap();
        let ca = CaBundle::generate(&sym, "x").unwrap();
        let err = ca.sign_staff_csr(&sym, &StaffUser::parse("a").unwrap(), "not a csr").unwrap_err();
        assert!(matches!(err, IssueError::BadCsr(_)));
    }
}
