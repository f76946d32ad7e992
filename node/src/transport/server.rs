//! The node's gRPC server: TLS acceptance, identity, role separation.
//!
//! Each TCP connection gets a TLS handshake (bounded by the handshake timeout) whose client
//! certificate is checked by [`rota_certs::tls::InboundVerifier`] against the live partner
//! table. The certificate is then read once into a [`PeerInfo`] that travels with the
//! connection; interceptors turn it into the typed caller each handler receives
//! ([`AuthedPartner`] or [`StaffUser`]), re-checking the partner table on every RPC.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rota_certs::Identity;
use rota_certs::tls::{InboundVerifier, server_config};
use rota_proto::peer::peer_server::PeerServer;
use rota_proto::staff::staff_server::StaffServer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::Connected;
use tonic::{Request, Status};

use crate::domain::{StaffUser, Symbol};
use crate::node::{Node, WakeReceiver};
use crate::transport::dispatch::Dispatcher;
use crate::transport::peer_api::PeerApi;
use crate::transport::staff_api::StaffApi;

/// Largest staff API message (an import batch or report).
pub const STAFF_MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Who is on the other end of a connection, as read from its certificate at handshake.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub identity: Identity,
    pub remote: SocketAddr,
    /// For a partner: the fingerprint of the CA its chain was verified against.
    pub ca_fingerprint: Option<String>,
}

/// What certificate rotation replaces: the certificate presented to callers, and the one
/// presented when dialing partners.
#[derive(Clone)]
pub struct OwnIdentity {
    pub server: Arc<rota_certs::tls::SwappableCert>,
    pub channels: Arc<crate::transport::channels::Channels>,
}

/// The authenticated partner making a peer RPC.
#[derive(Clone, Debug)]
pub struct AuthedPartner(pub Symbol);

/// A TLS connection with its identity, holding one slot of the connection cap.
pub struct ServerIo {
    inner: TlsStream<TcpStream>,
    info: PeerInfo,
    _permit: OwnedSemaphorePermit,
}

impl Connected for ServerIo {
    type ConnectInfo = PeerInfo;
    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for ServerIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ServerIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn peer_info<T>(req: &Request<T>) -> Result<PeerInfo, Status> {
    req.extensions().get::<PeerInfo>().cloned().ok_or_else(|| Status::unauthenticated("no client certificate"))
}

/// Per-partner rate limiter for peer RPCs.
pub type PartnerLimiter = governor::DefaultKeyedRateLimiter<Symbol>;

/// A limiter allowing each partner `rps` peer RPCs a second, with bursts of `burst`.
pub fn partner_limiter(rps: u32, burst: u32) -> Arc<PartnerLimiter> {
    let nz = |v: u32| std::num::NonZeroU32::new(v).unwrap_or(std::num::NonZeroU32::MIN);
    Arc::new(governor::RateLimiter::keyed(governor::Quota::per_second(nz(rps)).allow_burst(nz(burst))))
}

/// Peer API gate: partner nodes only, still active, still with the CA they connected with,
/// and within their rate limit.
pub fn peer_gate(
    node: Arc<Node>,
    limiter: Arc<PartnerLimiter>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let info = peer_info(&req)?;
        let Identity::Node(sym) = &info.identity else {
            return Err(Status::permission_denied("the peer API accepts partner nodes only, not staff certificates"));
        };
        match node.directory.active(sym) {
            Some(e) if Some(&e.fingerprint) == info.ca_fingerprint.as_ref() => {}
            _ => {
                tracing::warn!(partner = %sym, remote = %info.remote, "refused: partner is not active");
                return Err(Status::permission_denied(format!(
                    "partner {sym} is not an active partner of {}",
                    node.symbol()
                )));
            }
        }
        if limiter.check_key(sym).is_err() {
            tracing::warn!(partner = %sym, "refused: rate limit");
            return Err(Status::resource_exhausted(format!(
                "partner {sym} is over its limit of {} requests a second; slow down and retry",
                node.config.limits.partner_rps
            )));
        }
        req.extensions_mut().insert(AuthedPartner(sym.clone()));
        Ok(req)
    }
}

/// Staff API gate: this institution's staff certificates only.
pub fn staff_gate(node: Arc<Node>) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let info = peer_info(&req)?;
        match &info.identity {
            Identity::Staff { institution, user } if institution == node.symbol() => {
                req.extensions_mut().insert(user.clone());
                Ok(req)
            }
            _ => Err(Status::permission_denied(format!(
                "the staff API accepts staff certificates of {} only",
                node.symbol()
            ))),
        }
    }
}

/// Serve `node` on `listener` until `shutdown` resolves, delivering its outbox meanwhile.
pub async fn serve(
    node: Arc<Node>,
    wake_rx: WakeReceiver,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let cfg = &node.config;
    let ca_pem = std::fs::read_to_string(cfg.ca_cert_path())?;
    let ca_der = rota_certs::tls::certs_from_pem(&ca_pem)?.remove(0);
    let node_cert = std::fs::read_to_string(cfg.node_cert_path())?;
    let node_key = rota_certs::files::read_secret(&cfg.node_key_path())?;
    let verifier = Arc::new(InboundVerifier::new(node.symbol().clone(), &ca_der, node.directory.clone())?);
    let own_cert = rota_certs::tls::SwappableCert::new(&node_cert, &node_key)?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config(own_cert.clone(), verifier)?));

    let channels = crate::transport::channels::Channels::new(node.clone(), &node_cert, &node_key);
    node.set_locator(Arc::new(crate::transport::channels::PeerLocator(channels.clone())));
    let channels_for_staff = channels.clone();
    let dispatcher = Dispatcher::start(node.clone(), channels, wake_rx);

    let (conn_tx, conn_rx) = mpsc::channel::<std::io::Result<ServerIo>>(64);
    let accept_task = tokio::spawn(accept_loop(node.clone(), listener, acceptor, conn_tx));

    let max = cfg.limits.max_message_bytes;
    let peer =
        PeerServer::new(PeerApi::new(node.clone())).max_decoding_message_size(max).max_encoding_message_size(max);
    let staff =
        // The staff API carries import batches and reports from our own staff: a larger
        // ceiling than the peer API's.
        StaffServer::new(StaffApi::new(node.clone(), OwnIdentity { server: own_cert, channels: channels_for_staff }))
            .max_decoding_message_size(STAFF_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(STAFF_MAX_MESSAGE_BYTES);
    let result = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(InterceptedService::new(
            peer,
            peer_gate(node.clone(), partner_limiter(cfg.limits.partner_rps, cfg.limits.partner_burst)),
        ))
        .add_service(InterceptedService::new(staff, staff_gate(node.clone())))
        .serve_with_incoming_shutdown(ReceiverStream::new(conn_rx), shutdown)
        .await;
    accept_task.abort();
    dispatcher.stop().await;
    node.store.close().await;
    tracing::info!(symbol = %node.symbol(), "node stopped");
    Ok(result?)
}

async fn accept_loop(
    node: Arc<Node>,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<std::io::Result<ServerIo>>,
) {
    let limits = node.config.limits.clone();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%remote, max = limits.max_connections, "connection refused: connection cap reached");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        let node = node.clone();
        let timeout = limits.handshake_timeout;
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "handshake timed out");
                    return;
                }
            };
            let Some(identity) = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| Identity::from_cert_der(c).ok())
            else {
                return;
            };
            let ca_fingerprint = match &identity {
                Identity::Node(sym) => node.directory.get(sym).map(|e| e.fingerprint),
                Identity::Staff { .. } => None,
            };
            tracing::debug!(%remote, %identity, "connection accepted");
            let _ = tx
                .send(Ok(ServerIo { inner: tls, info: PeerInfo { identity, remote, ca_fingerprint }, _permit: permit }))
                .await;
        });
    }
}

/// The staff user making a staff RPC.
pub fn staff_user<T>(req: &Request<T>) -> Result<StaffUser, Status> {
    req.extensions().get::<StaffUser>().cloned().ok_or_else(|| Status::permission_denied("staff certificate required"))
}

/// The partner making a peer RPC.
pub fn partner<T>(req: &Request<T>) -> Result<Symbol, Status> {
    req.extensions()
        .get::<AuthedPartner>()
        .map(|p| p.0.clone())
        .ok_or_else(|| Status::permission_denied("partner certificate required"))
}
