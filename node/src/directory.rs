//! The live partner table in memory: what the TLS layer checks at every handshake and the
//! transport checks on every RPC. Rebuilt from storage after each partner change, so
//! adding, suspending or removing a partner takes effect without a restart.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rota_certs::tls::TrustSource;

use crate::domain::{Partner, PartnerStatus, Symbol};

/// One partner as the transport needs it.
#[derive(Clone, Debug)]
pub struct DirectoryEntry {
    pub symbol: Symbol,
    pub endpoint: String,
    pub status: PartnerStatus,
    pub fingerprint: String,
    pub ca_der: Arc<Vec<u8>>,
}

/// The live partner table.
#[derive(Debug, Default)]
pub struct Directory {
    entries: RwLock<HashMap<Symbol, DirectoryEntry>>,
}

impl Directory {
    /// Replace the whole table with `partners`.
    pub fn load(&self, partners: &[Partner]) {
        let map = partners
            .iter()
            .filter_map(|p| {
                let der = rota_certs::tls::certs_from_pem(&p.ca_pem).ok()?.into_iter().next()?;
                Some((
                    p.symbol.clone(),
                    DirectoryEntry {
                        symbol: p.symbol.clone(),
                        endpoint: p.endpoint.clone(),
                        status: p.status,
                        fingerprint: p.fingerprint.clone(),
                        ca_der: Arc::new(der.to_vec()),
                    },
                ))
            })
            .collect();
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    pub fn get(&self, symbol: &Symbol) -> Option<DirectoryEntry> {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).get(symbol).cloned()
    }

    /// The entry for `symbol` if that partner is active right now.
    pub fn active(&self, symbol: &Symbol) -> Option<DirectoryEntry> {
        self.get(symbol).filter(|e| e.status == PartnerStatus::Active)
    }
}

impl TrustSource for Directory {
    fn active_partner_ca(&self, symbol: &Symbol) -> Option<Arc<Vec<u8>>> {
        self.active(symbol).map(|e| e.ca_der)
    }
}
