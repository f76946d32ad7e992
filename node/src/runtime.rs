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
    timers: JoinHandle<()>,
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
        let timers = tokio::spawn(run_timers(node.clone()));
        tracing::info!(symbol = %node.symbol(), %addr, "node listening");
        Ok(RunningNode { node, addr, stop: Some(stop), task, timers })
    }

    /// Stop accepting, finish in-flight calls, stop the dispatcher and close the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        // A tick cut short rolls back its transaction: nothing half-applied.
        self.timers.abort();
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

/// Fire due timers every `timer_tick`, starting at once (so timers that fell due while the
/// node was down fire on start).
async fn run_timers(node: Arc<Node>) {
    let mut every = tokio::time::interval(node.config.timer_tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match node.tick().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(fired = n, "timers fired"),
            Err(e) => tracing::warn!(error = %e, "timer check failed"),
        }
    }
}
