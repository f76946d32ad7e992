//! One long-lived HTTP/2 channel per partner, shared by the outbox dispatcher and Locate.
//! A channel is rebuilt only when the partner's endpoint or CA changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use rota_proto::peer::peer_client::PeerClient;
use tonic::transport::Channel;

use crate::domain::{Citation, Symbol};
use crate::node::{LocateAnswer, Node};
use crate::rota::Locator;
use crate::transport::convert;

/// The partner channels of one node.
pub struct Channels {
    node: Arc<Node>,
    /// Our node certificate and key, as presented when dialing; replaced on rotation.
    identity: std::sync::RwLock<(String, String)>,
    /// Partner → (endpoint, CA fingerprint, channel).
    map: Mutex<HashMap<Symbol, (String, String, Channel)>>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

impl Channels {
    pub fn new(node: Arc<Node>, cert_pem: &str, key_pem: &str) -> Arc<Self> {
        Arc::new(Channels {
            node,
            identity: std::sync::RwLock::new((cert_pem.to_owned(), key_pem.to_owned())),
            map: Mutex::new(HashMap::new()),
        })
    }

    /// Present a new certificate from now on: channels are rebuilt as they are next used
    /// (calls already under way finish on the old connection).
    pub fn set_identity(&self, cert_pem: &str, key_pem: &str) {
        *self.identity.write().unwrap_or_else(|p| p.into_inner()) = (cert_pem.to_owned(), key_pem.to_owned());
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The channel to `partner` if it is active; dialing trusts only that partner's CA.
    pub fn get(&self, partner: &Symbol) -> Option<Channel> {
        let entry = self.node.directory.active(partner)?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((ep, fp, ch)) = map.get(partner)
            && *ep == entry.endpoint
            && *fp == entry.fingerprint
        {
            return Some(ch.clone());
        }
        let tls = {
            let id = self.identity.read().unwrap_or_else(|p| p.into_inner());
            rota_certs::tls::client_config(partner.clone(), &entry.ca_der, &id.0, &id.1).ok()?
        };
        let ch =
            rota_proto::channel::lazy_channel(&entry.endpoint, tls, self.node.config.limits.request_timeout).ok()?;
        map.insert(partner.clone(), (entry.endpoint, entry.fingerprint, ch.clone()));
        Some(ch)
    }
}

/// Locate over the partner channels.
#[derive(Debug)]
pub struct PeerLocator(pub Arc<Channels>);

impl Locator for PeerLocator {
    fn locate<'a>(
        &'a self,
        partner: &'a Symbol,
        citation: &'a Citation,
    ) -> BoxFuture<'a, Result<LocateAnswer, String>> {
        Box::pin(async move {
            let ch = self.0.get(partner).ok_or_else(|| format!("{partner} is not an active partner"))?;
            let req = rota_proto::peer::LocateRequest { citation: Some(convert::citation_to_proto(citation)) };
            let r = PeerClient::new(ch)
                .locate(req)
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .into_inner();
            Ok(convert::locate_from_proto(&r))
        })
    }
}
