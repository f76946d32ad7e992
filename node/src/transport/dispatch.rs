//! The outbox dispatcher: one worker and one long-lived HTTP/2 channel per partner.
//!
//! A worker delivers its partner's due messages oldest first, never overtaking an earlier
//! undelivered message of the same request. A transport failure or a "retry later" backs
//! the message off exponentially with jitter, up to the configured cap. A confirmation —
//! accepted or error — ends the message's delivery; an error is kept on the row and in the
//! log. Because messages are committed before they are sent and marked only after a
//! confirmation, a restart re-sends at most what was unconfirmed, and the receiver's
//! de-duplication makes that harmless.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rota_proto::peer::peer_client::PeerClient;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::domain::Symbol;
use crate::message::Confirmation;
use crate::node::{Node, WakeReceiver};
use crate::transport::channels::Channels;
use crate::transport::convert::{confirmation_from_proto, envelope_to_proto};

/// How long an idle worker sleeps before looking again without being woken.
const IDLE_POLL: Duration = Duration::from_secs(30);

/// Handle to the running dispatcher.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Dispatcher {
    pub fn start(node: Arc<Node>, channels: Arc<Channels>, mut wake_rx: WakeReceiver) -> Dispatcher {
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut workers: HashMap<Symbol, (Arc<Notify>, JoinHandle<()>)> = HashMap::new();
            let spawn = |sym: Symbol, workers: &mut HashMap<Symbol, (Arc<Notify>, JoinHandle<()>)>| {
                let entry = workers.entry(sym.clone()).or_insert_with(|| {
                    let notify = Arc::new(Notify::new());
                    let w =
                        Worker { node: node.clone(), partner: sym, notify: notify.clone(), channels: channels.clone() };
                    (notify, tokio::spawn(w.run(stop_rx.clone())))
                });
                entry.0.notify_one();
            };
            // Messages left over from before a restart.
            if let Ok(pending) = node.store.partners_with_pending().await {
                for p in pending.iter().filter_map(|p| Symbol::parse(p).ok()) {
                    spawn(p, &mut workers);
                }
            }
            let mut stop_rx2 = stop_rx.clone();
            loop {
                tokio::select! {
                    _ = stop_rx2.changed() => break,
                    sym = wake_rx.recv() => match sym {
                        Some(sym) => spawn(sym, &mut workers),
                        None => break,
                    },
                }
            }
            for (_, (_, h)) in workers {
                let _ = h.await;
            }
        });
        Dispatcher { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

struct Worker {
    node: Arc<Node>,
    partner: Symbol,
    notify: Arc<Notify>,
    channels: Arc<Channels>,
}

enum Outcome {
    /// Nothing more is due now.
    Idle,
    /// Stop this round (failure): try again when woken or due.
    Backoff,
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let _ = self.round().await;
            let now = self.node.clock.now();
            let wait = match self.node.store.next_due(self.partner.as_str()).await {
                Ok(Some(t)) => (t - now).to_std().unwrap_or(Duration::ZERO).min(IDLE_POLL),
                _ => IDLE_POLL,
            };
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            }
        }
    }

    fn backoff(&self, attempts: i64) -> chrono::Duration {
        let p = &self.node.config.outbox;
        let exp = p.backoff_initial.saturating_mul(1u32 << attempts.clamp(0, 20) as u32).min(p.backoff_max);
        // Full jitter in [exp/2, exp].
        let jitter = exp.mul_f64(0.5 + fastrand::f64() * 0.5);
        chrono::Duration::from_std(jitter).unwrap_or(chrono::Duration::seconds(1))
    }

    async fn round(&mut self) -> anyhow::Result<Outcome> {
        loop {
            let Some(channel) = self.channels.get(&self.partner) else {
                return Ok(Outcome::Backoff); // suspended or removed: hold the messages
            };
            let now = self.node.clock.now();
            let due = self.node.store.due_outbox(self.partner.as_str(), now, 32).await?;
            if due.is_empty() {
                return Ok(Outcome::Idle);
            }
            for row in due {
                let mut client = PeerClient::new(channel.clone());
                let env = envelope_to_proto(&row.envelope);
                let span = tracing::info_span!("send", partner = %self.partner, request = %row.envelope.request_id, seq = row.envelope.sequence);
                let sent = client.deliver(env).instrument(span.clone()).await;
                match sent {
                    Ok(resp) => match confirmation_from_proto(resp.into_inner()) {
                        Ok(Confirmation::Accepted { sent_through, .. }) => {
                            self.node
                                .store
                                .mark_delivered(row.id, "accepted", sent_through, self.node.clock.now())
                                .await?;
                            tracing::debug!(parent: &span, "delivered");
                        }
                        Ok(Confirmation::RetryLater { reason }) => {
                            let next = self.node.clock.now() + self.backoff(row.attempts);
                            self.node.store.mark_retry(row.id, &format!("retry later: {reason}"), next).await?;
                            return Ok(Outcome::Backoff);
                        }
                        Ok(Confirmation::Error { kind, detail }) => {
                            let outcome =
                                format!("refused: {kind:?}: {}", detail.chars().take(300).collect::<String>());
                            tracing::warn!(parent: &span, %outcome, "partner refused message");
                            self.node.store.mark_delivered(row.id, &outcome, 0, self.node.clock.now()).await?;
                        }
                        Err(e) => {
                            // Not a confirmation we can trust: keep the message and try again.
                            let next = self.node.clock.now() + self.backoff(row.attempts);
                            let err = format!("malformed confirmation: {e}");
                            tracing::warn!(parent: &span, error = %err, "partner sent a malformed confirmation");
                            self.node.store.mark_retry(row.id, &err, next).await?;
                            return Ok(Outcome::Backoff);
                        }
                    },
                    Err(status) => {
                        let next = self.node.clock.now() + self.backoff(row.attempts);
                        let err =
                            format!("{:?}: {}", status.code(), status.message().chars().take(300).collect::<String>());
                        tracing::info!(parent: &span, error = %err, attempts = row.attempts + 1, "delivery failed; will retry");
                        self.node.store.mark_retry(row.id, &err, next).await?;
                        return Ok(Outcome::Backoff);
                    }
                }
            }
        }
    }
}
