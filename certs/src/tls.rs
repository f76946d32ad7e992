//! rustls verifiers and configurations that enforce DESIGN §2.
//!
//! **Inbound** ([`InboundVerifier`]): a client certificate is accepted only if
//! - it names a partner node (`urn:rota:inst:X`), X is active in the live partner table right
//!   now, and the chain ends at X's CA — never another partner's; or
//! - it names a staff member of this institution (`urn:rota:staff:OWN:user`) and the chain
//!   ends at this institution's CA.
//!
//! The partner table is consulted at every handshake through [`TrustSource`], so adding,
//! suspending or removing a partner needs no restart.
//!
//! **Outbound** ([`NamedServerVerifier`]): when dialing X, only X's CA is trusted, the
//! server name is checked as usual, and the URI SAN must name X.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::identity::{Identity, Symbol};

/// Largest number of cached per-partner chain verifiers kept before the cache is reset.
const VERIFIER_CACHE_CAP: usize = 4096;

/// The live partner table, as the TLS layer needs it.
pub trait TrustSource: Send + Sync + std::fmt::Debug {
    /// The DER of partner `symbol`'s CA if that partner is active right now; otherwise
    /// `None` (unknown, suspended or removed).
    fn active_partner_ca(&self, symbol: &Symbol) -> Option<Arc<Vec<u8>>>;
}

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("PEM: {0}")]
    Pem(String),
    #[error("verifier: {0}")]
    Verifier(String),
}

/// Parse all certificates in a PEM string.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let v: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if v.is_empty() {
        return Err(TlsError::Pem("no certificate found".into()));
    }
    Ok(v)
}

/// Parse a private key from PEM.
pub fn key_from_pem(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| TlsError::Pem(e.to_string()))
}

fn roots_of(ca_der: &[u8]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca_der.to_vec())).map_err(TlsError::Rustls)?;
    Ok(Arc::new(roots))
}

fn refused() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// Inbound client-certificate verifier: partners by the live table, staff by our own CA.
#[derive(Debug)]
pub struct InboundVerifier {
    own: Symbol,
    own_ca: Arc<dyn ClientCertVerifier>,
    trust: Arc<dyn TrustSource>,
    provider: Arc<CryptoProvider>,
    cache: Mutex<HashMap<Vec<u8>, Arc<dyn ClientCertVerifier>>>,
}

impl InboundVerifier {
    pub fn new(own: Symbol, own_ca_der: &[u8], trust: Arc<dyn TrustSource>) -> Result<Self, TlsError> {
        let provider = crate::crypto_provider();
        let own_ca = WebPkiClientVerifier::builder_with_provider(roots_of(own_ca_der)?, provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(InboundVerifier { own, own_ca, trust, provider, cache: Mutex::new(HashMap::new()) })
    }

    fn partner_verifier(&self, ca_der: &[u8]) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(ca_der) {
            return Ok(v.clone());
        }
        let roots = roots_of(ca_der).map_err(|_| refused())?;
        let v =
            WebPkiClientVerifier::builder_with_provider(roots, self.provider.clone()).build().map_err(|_| refused())?;
        if cache.len() >= VERIFIER_CACHE_CAP {
            cache.clear();
        }
        cache.insert(ca_der.to_vec(), v.clone());
        Ok(v)
    }
}

impl ClientCertVerifier for InboundVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match Identity::from_cert_der(end_entity) {
            Ok(Identity::Node(sym)) if sym != self.own => {
                // Only this partner's own CA may vouch for this partner's symbol.
                let ca = self.trust.active_partner_ca(&sym).ok_or_else(refused)?;
                self.partner_verifier(&ca)?.verify_client_cert(end_entity, intermediates, now)
            }
            Ok(Identity::Staff { institution, .. }) if institution == self.own => {
                self.own_ca.verify_client_cert(end_entity, intermediates, now)
            }
            _ => Err(refused()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Outbound server verifier: one CA, and the server's URI SAN must name the expected node.
#[derive(Debug)]
pub struct NamedServerVerifier {
    expected: Identity,
    inner: Arc<WebPkiServerVerifier>,
}

impl NamedServerVerifier {
    pub fn new(expected: Symbol, ca_der: &[u8]) -> Result<Self, TlsError> {
        let inner = WebPkiServerVerifier::builder_with_provider(roots_of(ca_der)?, crate::crypto_provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(NamedServerVerifier { expected: Identity::Node(expected), inner })
    }
}

impl ServerCertVerifier for NamedServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        match Identity::from_cert_der(end_entity) {
            Ok(id) if id == self.expected => Ok(ServerCertVerified::assertion()),
            _ => Err(refused()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The node's own certificate, replaceable while the node runs (certificate rotation):
/// every new handshake presents whatever it holds now.
#[derive(Debug)]
pub struct SwappableCert(RwLock<Arc<CertifiedKey>>);

impl SwappableCert {
    pub fn new(cert_pem: &str, key_pem: &str) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(SwappableCert(RwLock::new(certified_key(cert_pem, key_pem)?))))
    }

    /// Present this certificate from the next handshake on.
    pub fn swap(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let new = certified_key(cert_pem, key_pem)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

fn certified_key(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let key = crate::crypto_provider().key_provider.load_private_key(key_from_pem(key_pem)?)?;
    let ck = CertifiedKey::new(certs_from_pem(cert_pem)?, key);
    ck.keys_match().map_err(TlsError::Rustls)?;
    Ok(Arc::new(ck))
}

/// The node's server configuration: TLS 1.3, HTTP/2 only, client certificates required and
/// checked by `verifier`, our own certificate from `cert`.
pub fn server_config(
    cert: Arc<SwappableCert>,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

/// A client configuration that presents `cert_pem`/`key_pem` and trusts only `ca_der`,
/// expecting the server to be the node of `expected`.
pub fn client_config(expected: Symbol, ca_der: &[u8], cert_pem: &str, key_pem: &str) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(NamedServerVerifier::new(expected, ca_der)?);
    let mut cfg = ClientConfig::builder_with_provider(crate::crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(certs_from_pem(cert_pem)?, key_from_pem(key_pem)?)?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use rustls::pki_types::{CertificateDer, UnixTime};
    use rustls::server::danger::ClientCertVerifier;

    use super::{InboundVerifier, TrustSource, certs_from_pem};
    use crate::identity::{StaffUser, Symbol};
    use crate::issue::CaBundle;

    /// A partner table the test edits, as staff do with `rota partner …`.
    #[derive(Debug, Default)]
    struct Table(Mutex<HashMap<Symbol, Arc<Vec<u8>>>>);

    impl TrustSource for Table {
        fn active_partner_ca(&self, symbol: &Symbol) -> Option<Arc<Vec<u8>>> {
            self.0.lock().unwrap().get(symbol).cloned()
        }
    }

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        certs_from_pem(pem).unwrap().remove(0)
    }

    fn ca(s: &str) -> (CaBundle, Vec<u8>) {
        let ca = CaBundle::generate(&sym(s), s).unwrap();
        let d = der(&ca.cert_pem).to_vec();
        (ca, d)
    }

    /// The handshake itself refuses, before any RPC: each case is decided by the verifier
    /// the TLS layer calls, against the live table.
    #[test]
    fn the_handshake_checks_the_live_partner_table() {
        crate::install_crypto_provider();
        let (dgw, dgw_der) = ca("DGW");
        let (uva, uva_der) = ca("UVA");
        let (aaa, aaa_der) = ca("AAA");
        let table = Arc::new(Table::default());
        let v = InboundVerifier::new(sym("DGW"), &dgw_der, table.clone()).unwrap();
        let check = |pem: &str| v.verify_client_cert(&der(pem), &[], UnixTime::now()).is_ok();

        let uva_node = uva.issue_node(&sym("UVA"), &["127.0.0.1".into()]).unwrap().cert_pem;
        let aaa_node = aaa.issue_node(&sym("AAA"), &["127.0.0.1".into()]).unwrap().cert_pem;
        let aaa_as_uva = aaa.issue_node(&sym("UVA"), &["127.0.0.1".into()]).unwrap().cert_pem;
        let our_staff = dgw.issue_staff(&sym("DGW"), &StaffUser::parse("alice").unwrap()).unwrap().cert_pem;
        let uva_staff = uva.issue_staff(&sym("UVA"), &StaffUser::parse("bob").unwrap()).unwrap().cert_pem;
        let our_node = dgw.issue_node(&sym("DGW"), &["127.0.0.1".into()]).unwrap().cert_pem;

        assert!(!check(&uva_node), "a stranger is refused");
        table.0.lock().unwrap().insert(sym("UVA"), Arc::new(uva_der));
        table.0.lock().unwrap().insert(sym("AAA"), Arc::new(aaa_der));
        assert!(check(&uva_node), "an active partner is let in");
        assert!(check(&aaa_node));
        assert!(!check(&aaa_as_uva), "AAA's CA cannot vouch for UVA");
        assert!(check(&our_staff), "our own staff");
        assert!(!check(&uva_staff), "a partner's staff certificate");
        assert!(!check(&our_node), "our own node certificate is not a partner");
        // Suspending or removing takes the partner out of the table: the next handshake fails.
        table.0.lock().unwrap().remove(&sym("UVA"));
        assert!(!check(&uva_node), "a removed partner is refused at once");
        // A new card for UVA (another CA) replaces the old trust.
        let (uva2, uva2_der) = ca("UVA");
        table.0.lock().unwrap().insert(sym("UVA"), Arc::new(uva2_der));
        assert!(!check(&uva_node), "the old CA no longer vouches");
        assert!(check(&uva2.issue_node(&sym("UVA"), &["127.0.0.1".into()]).unwrap().cert_pem));
    }
}
