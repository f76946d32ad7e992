//! Running a node in this process: used by `rota-node run` and by the tests, so both
//! start nodes with the same code.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::node::Node;

/// A node serving in this process.
pub struct RunningNode {
    pub node: Arc<Node>,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningNode {
    /// Load `data_dir`'s configuration and serve on its `listen` address.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let config = Config::load(data_dir)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        Self::start_with(config, listener, Arc::new(SystemClock)).await
    }

    /// Serve on an already-bound listener with the given clock.
    pub async fn start_with(config: Config, listener: TcpListener, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let (node, wake_rx) = Node::open(config, clock).await?;
        let addr = listener.local_addr()?;
        let (stop, stop_rx) = oneshot::channel::<()>();
        let n = node.clone();
        let task = tokio::spawn(async move {
            crate::transport::serve(n, wake_rx, listener, async {
                let _ = stop_rx.await;
            })
            .await
        });
        tracing::info!(symbol = %node.symbol(), %addr, "node listening");
        Ok(RunningNode { node, addr, stop: Some(stop), task })
    }

    /// Stop accepting, finish in-flight calls, stop the dispatcher and close the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await?
    }

    /// Wait until the server ends by itself (an error), or forever.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.task).await?
    }
}
