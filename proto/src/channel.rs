//! Client channels over Rota's own rustls configuration.
//!
//! tonic's built-in TLS trusts a fixed root set. Rota needs a different trust decision per
//! partner (DESIGN §2), so channels are built over a connector that runs the rustls
//! handshake with a caller-supplied [`rustls::ClientConfig`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

/// Errors building or using a channel.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connect (TCP plus TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A tower connector: TCP, then TLS with the given configuration, with the URL's host as
/// the server name.
#[derive(Clone)]
pub struct TlsConnect {
    tls: TlsConnector,
}

impl TlsConnect {
    pub fn new(config: rustls::ClientConfig) -> Self {
        TlsConnect { tls: TlsConnector::from(Arc::new(config)) }
    }
}

impl tower::Service<Uri> for TlsConnect {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("URL has no host")?.trim_start_matches('[').trim_end_matches(']').to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from(host)?;
            let stream = tls.connect(name, tcp).await?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// A lazily connecting HTTP/2 channel to `url` (`https://host:port`). It reconnects by
/// itself after a failure, so one channel serves a partner for the node's lifetime.
pub fn lazy_channel(url: &str, config: rustls::ClientConfig, request_timeout: Duration) -> Result<Channel, BoxError> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_with_connector_lazy(TlsConnect::new(config)))
}

/// Connect now, failing fast if the node is unreachable or refuses us.
pub async fn connect(url: &str, config: rustls::ClientConfig, request_timeout: Duration) -> Result<Channel, BoxError> {
    let endpoint = Endpoint::from_shared(url.to_owned())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout)
        .tcp_nodelay(true);
    Ok(endpoint.connect_with_connector(TlsConnect::new(config)).await?)
}
