//! The peer API adapter: partner RPCs → [`Node`].

use std::sync::Arc;

use rota_proto::peer as pb;
use rota_proto::peer::peer_server::Peer;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::domain::check_text;
use crate::node::Node;
use crate::transport::convert;
use crate::transport::server::partner;
use crate::transport::status::invalid;

pub struct PeerApi {
    node: Arc<Node>,
}

impl PeerApi {
    pub fn new(node: Arc<Node>) -> Self {
        PeerApi { node }
    }
}

#[tonic::async_trait]
impl Peer for PeerApi {
    async fn hello(&self, req: Request<pb::HelloRequest>) -> Result<Response<pb::HelloResponse>, Status> {
        let from = partner(&req)?;
        let ours = self.node.hello(&from).await?;
        let pb::HelloRequest { protocol_version, symbol, agreement } = req.into_inner();
        if symbol != from.as_str() {
            return Err(Status::invalid_argument(format!(
                "symbol: {:?} does not match your certificate ({from})",
                symbol.chars().take(32).collect::<String>()
            )));
        }
        let protocol_version = check_text("protocol_version", &protocol_version, 32, true).map_err(invalid)?;
        let agreement = agreement
            .map(|a| convert::agreement_from_view(a).map_err(|e| invalid(e.within("agreement"))))
            .transpose()?;
        if let Some(theirs) = agreement
            && ours.configured
            && theirs.configured
            && (theirs.borrow != ours.lend || theirs.lend != ours.borrow)
        {
            tracing::warn!(partner = %from, "agreement mismatch: their lend/borrow is the reverse of ours");
        }
        tracing::info!(partner = %from, version = %protocol_version, "hello");
        Ok(Response::new(pb::HelloResponse {
            protocol_version: rota_proto::PROTOCOL_VERSION.into(),
            symbol: self.node.symbol().to_string(),
            name: self.node.config.name.clone(),
            agreement: Some(convert::agreement_view(&ours)),
        }))
    }

    async fn locate(&self, req: Request<pb::LocateRequest>) -> Result<Response<pb::LocateResponse>, Status> {
        let from = partner(&req)?;
        let citation = req.into_inner().citation.ok_or_else(|| Status::invalid_argument("citation: is required"))?;
        let citation = convert::citation_from_proto(citation).map_err(|e| invalid(e.within("citation")))?;
        let answer =
            self.node.locate(&from, &citation).instrument(tracing::info_span!("locate", partner = %from)).await?;
        Ok(Response::new(convert::locate_to_proto(&answer)))
    }

    async fn deliver(&self, req: Request<pb::Envelope>) -> Result<Response<pb::Confirmation>, Status> {
        let from = partner(&req)?;
        let env = convert::envelope_from_proto(req.into_inner()).map_err(invalid)?;
        let span = tracing::info_span!("deliver", partner = %from, request = %env.request_id, seq = env.sequence);
        async move {
            let kind = env.body.kind();
            let conf = self.node.deliver(&from, env).await?;
            tracing::info!(kind, confirmation = ?conf, "message received");
            Ok(Response::new(convert::confirmation_to_proto(&conf)))
        }
        .instrument(span)
        .await
    }
}
