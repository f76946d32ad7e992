//! Test harness for Rota's end-to-end tests: real nodes over real mutual TLS on
//! 127.0.0.1, with ephemeral ports and certificates generated per test.
//!
//! Logs are silent unless `TEST_LOG` is set (to an env-filter, e.g. `TEST_LOG=debug`).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rota_certs::profile::{LoadedProfile, Profile};
use rota_node::clock::{Clock, SystemClock};
use rota_node::config::Config;
use rota_node::runtime::RunningNode;
use rota_proto::peer::peer_client::PeerClient;
use rota_proto::staff::staff_client::StaffClient;
use rota_proto::staff::{self as spb};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// How long an eventual condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Wait until `check` returns `Some`, polling, for at most `patience`. Panics with `what`.
pub async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {patience:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test that needs what this machine lacks (root, iproute2, mount) returns early with a
/// `skipped:` line, except under CI (`CI` set), where `.ci/run` provides those and a skip
/// would hide a test that did not run: there it fails.
pub fn skip_unless_ci(why: &str) {
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false") {
        panic!("this test must run in CI, but {why}");
    }
    eprintln!("skipped: {why}");
}

/// Once per test process: the crypto provider and, with TEST_LOG, logging.
pub fn setup() {
    rota_certs::install_crypto_provider();
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A node running in this process.
pub struct TestNode {
    pub symbol: String,
    pub data_dir: PathBuf,
    pub url: String,
    pub profile_path: PathBuf,
    pub profile: LoadedProfile,
    pub running: RunningNode,
    pub staff: StaffClient<Channel>,
    /// Keeps the temporary directory alive as long as the node.
    pub dir: Arc<TempDir>,
    pub clock: Arc<dyn Clock>,
}

/// Initialise a node in a fresh temporary directory (not started).
pub async fn init_node(root: &Path, symbol: &str) -> (PathBuf, TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let data_dir = root.join(symbol.to_lowercase());
    let url = format!("https://127.0.0.1:{port}");
    rota_node::init::init(&rota_node::init::InitOptions {
        data_dir: data_dir.clone(),
        symbol: symbol.into(),
        name: format!("{symbol} Test Library"),
        listen: format!("127.0.0.1:{port}"),
        public_url: url.clone(),
    })
    .await
    .unwrap();
    (data_dir, listener, url)
}

/// Start a node called `symbol` on an ephemeral port, with its own CA.
pub async fn start_node(symbol: &str) -> TestNode {
    start_node_with(symbol, NodeOptions::default()).await
}

/// How a test node differs from the defaults.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub clock: Arc<dyn Clock>,
    /// Lines replacing keys in config.toml, e.g. `("tick_ms = 1000", "tick_ms = 20")`.
    pub config_edits: Vec<(&'static str, &'static str)>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { clock: Arc::new(SystemClock), config_edits: vec![("tick_ms = 1000", "tick_ms = 25")] }
    }
}

fn edit_config(data_dir: &Path, edits: &[(&str, &str)]) {
    let path = data_dir.join("config.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "config.toml has no {from:?}:\n{text}");
        text = text.replace(from, to);
    }
    std::fs::write(&path, text).unwrap();
}

/// Start a node with options.
pub async fn start_node_with(symbol: &str, opts: NodeOptions) -> TestNode {
    setup();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (data_dir, listener, url) = init_node(dir.path(), symbol).await;
    edit_config(&data_dir, &opts.config_edits);
    let config = Config::load(&data_dir).unwrap();
    let clock = opts.clock.clone();
    let running = RunningNode::start_with(config, listener, clock.clone()).await.unwrap();
    let profile_path = data_dir.join("profiles/admin/profile.toml");
    let profile = Profile::load(&profile_path).unwrap();
    let staff = staff_client(&profile).await;
    TestNode { symbol: symbol.into(), data_dir, url, profile_path, profile, running, staff, dir, clock }
}

/// A staff client for a profile.
pub async fn staff_client(p: &LoadedProfile) -> StaffClient<Channel> {
    let ch =
        rota_proto::channel::connect(&p.node_url, p.client_config().unwrap(), Duration::from_secs(30)).await.unwrap();
    StaffClient::new(ch)
}

impl TestNode {
    /// Stop the node (its data stays).
    pub async fn stop(self) -> StoppedNode {
        let TestNode { symbol, data_dir, url, running, dir, clock, .. } = self;
        let addr = running.addr;
        running.stop().await.unwrap();
        StoppedNode { symbol, data_dir, url, addr, dir, clock }
    }

    /// Stop and start again on the same address and data directory.
    pub async fn restart(self) -> TestNode {
        self.stop().await.start().await
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.data_dir.join(rel)).unwrap()
    }

    /// This node's CA certificate (DER).
    pub fn ca_der(&self) -> Vec<u8> {
        rota_certs::tls::certs_from_pem(&self.read("tls/ca.pem")).unwrap()[0].to_vec()
    }

    /// A peer-API client that dials `other` as this node, presenting this node's certificate.
    pub async fn peer_client_to(&self, other: &TestNode) -> Result<PeerClient<Channel>, String> {
        let tls = rota_certs::tls::client_config(
            rota_certs::Symbol::parse(&other.symbol).unwrap(),
            &other.ca_der(),
            &self.read("tls/node.pem"),
            &self.read("tls/node.key"),
        )
        .unwrap();
        rota_proto::channel::connect(&other.url, tls, Duration::from_secs(10))
            .await
            .map(PeerClient::new)
            .map_err(|e| format!("{e:?}"))
    }

    /// Add `other` as a partner of this node with `tier`, and set a two-way agreement.
    pub async fn add_partner(&mut self, other: &mut TestNode, tier: &str, priority: u32) {
        self.add_partner_at(other, None, tier, priority).await;
    }

    /// Add `other` from its card, reached at `endpoint` instead of the card's own when one is
    /// given, with `tier` and `priority`, and set a two-way agreement.
    async fn add_partner_at(&mut self, other: &mut TestNode, endpoint: Option<&str>, tier: &str, priority: u32) {
        self.add_card_at(other, endpoint, tier, priority).await;
        self.staff
            .set_agreement(spb::SetAgreementRequest {
                partner: other.symbol.clone(),
                lend: Some(true),
                borrow: Some(true),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    pub async fn add_item(&mut self, barcode: &str, title: &str, isbn: &str, status: &str) {
        self.staff
            .add_item(spb::Item {
                barcode: barcode.into(),
                title: title.into(),
                isbn: isbn.into(),
                status: status.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    pub async fn request(&mut self, id: &str) -> spb::BorrowingRequest {
        self.staff.get_request(spb::IdRequest { id: id.into() }).await.unwrap().into_inner()
    }

    pub async fn lending(&mut self, id: &str) -> Option<spb::LendingRequest> {
        self.staff.get_lending(spb::IdRequest { id: id.into() }).await.ok().map(|r| r.into_inner())
    }

    /// Wait until borrowing request `id` reaches `state`.
    pub async fn wait_state(&mut self, id: &str, state: &str) -> spb::BorrowingRequest {
        self.wait_request(id, &format!("request {id} to be {state}"), |r| r.state == state).await
    }

    /// Wait until borrowing request `id` satisfies `ok`; `what` names the wait if it fails.
    pub async fn wait_request(
        &mut self,
        id: &str,
        what: &str,
        ok: impl Fn(&spb::BorrowingRequest) -> bool,
    ) -> spb::BorrowingRequest {
        let staff = self.staff.clone();
        let ok = &ok;
        eventually(what, PATIENCE, || {
            let mut s = staff.clone();
            let id = id.to_owned();
            async move {
                let r = s.get_request(spb::IdRequest { id }).await.ok()?.into_inner();
                ok(&r).then_some(r)
            }
        })
        .await
    }
}

/// Start nodes that share one [`ManualClock`], set to now: time moves for all of them when
/// the test advances it.
pub async fn start_on_one_clock<const N: usize>(
    symbols: [&str; N],
) -> (Arc<rota_node::clock::ManualClock>, [TestNode; N]) {
    let clock = Arc::new(rota_node::clock::ManualClock::new(chrono::Utc::now()));
    let mut nodes = Vec::with_capacity(N);
    for symbol in symbols {
        nodes.push(start_node_with(symbol, NodeOptions { clock: clock.clone(), ..Default::default() }).await);
    }
    let nodes: [TestNode; N] = nodes.try_into().unwrap_or_else(|_| unreachable!("one node per symbol"));
    (clock, nodes)
}

/// Make two nodes partners of each other, each giving the other `tier`.
pub async fn partner_up(a: &mut TestNode, b: &mut TestNode, tier_at_a: &str, tier_at_b: &str) {
    a.add_partner(b, tier_at_a, 100).await;
    b.add_partner(a, tier_at_b, 100).await;
}

/// The directory holding the workspace's built binaries (`rota`, `rota-node`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test-binary>
    let dir = exe.parent().and_then(Path::parent).unwrap().to_owned();
    for b in ["rota", "rota-node"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run the tests with `cargo nextest run --workspace` (or `cargo test --workspace`), which builds it",
            dir.join(b).display()
        );
    }
    dir
}

/// A node that was stopped and can be started again.
pub struct StoppedNode {
    pub symbol: String,
    pub data_dir: PathBuf,
    pub url: String,
    pub addr: std::net::SocketAddr,
    dir: Arc<TempDir>,
    clock: Arc<dyn Clock>,
}

impl StoppedNode {
    pub fn edit_config(&self, edits: &[(&str, &str)]) {
        edit_config(&self.data_dir, edits);
    }

    pub async fn start(self) -> TestNode {
        let StoppedNode { symbol, data_dir, url, addr, dir, clock } = self;
        let listener = TcpListener::bind(addr).await.unwrap();
        let running = RunningNode::start_with(Config::load(&data_dir).unwrap(), listener, clock.clone()).await.unwrap();
        let profile_path = data_dir.join("profiles/admin/profile.toml");
        let profile = Profile::load(&profile_path).unwrap();
        let staff = staff_client(&profile).await;
        TestNode { symbol, data_dir, url, profile_path, profile, running, staff, dir, clock }
    }
}

/// Create a request for `isbn` at `node` and return its id.
pub async fn request_isbn(node: &mut TestNode, title: &str, isbn: &str) -> String {
    node.staff
        .create_request(spb::CreateRequestRequest {
            citation: Some(spb::Citation { title: title.into(), isbn: isbn.into(), ..Default::default() }),
            patron_id: "P-100".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

impl TestNode {
    /// Run a borrowing action.
    pub async fn borrow_act(&mut self, id: &str, action: &str) -> Result<spb::BorrowingRequest, tonic::Status> {
        self.staff
            .borrowing_action(spb::BorrowingActionRequest {
                id: id.into(),
                action: action.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Run a lending action.
    pub async fn lend_act(&mut self, req: spb::LendingActionRequest) -> Result<spb::LendingRequest, tonic::Status> {
        self.staff.lending_action(req).await.map(|r| r.into_inner())
    }

    /// Wait until lending request `id` reaches `state`.
    pub async fn wait_lending(&mut self, id: &str, state: &str) -> spb::LendingRequest {
        let staff = self.staff.clone();
        eventually(&format!("lending request {id} to be {state}"), PATIENCE, || {
            let mut s = staff.clone();
            let id = id.to_owned();
            let state = state.to_owned();
            async move {
                let r = s.get_lending(spb::IdRequest { id }).await.ok()?.into_inner();
                (r.state == state).then_some(r)
            }
        })
        .await
    }

    /// Wait until lending request `id` has a renewal request waiting for an answer.
    pub async fn wait_renewal_request(&mut self, id: &str) -> spb::LendingRequest {
        let staff = self.staff.clone();
        eventually(&format!("a renewal request on {id}"), PATIENCE, || {
            let mut s = staff.clone();
            let id = id.to_owned();
            async move {
                let r = s.get_lending(spb::IdRequest { id }).await.ok()?.into_inner();
                r.renew_pending.then_some(r)
            }
        })
        .await
    }

    pub async fn item_status(&mut self, barcode: &str) -> String {
        self.staff.get_item(spb::BarcodeRequest { barcode: barcode.into() }).await.unwrap().into_inner().status
    }
}

/// A TCP relay on 127.0.0.1 in front of a node, which a test can cut, stall and heal: a
/// one-way network fault. Give a partner the relay's URL instead of the node's (with
/// [`TestNode::add_partner_via`]) and only that partner's calls to the node go through it.
/// Cutting drops every relayed connection at once and refuses new ones until healed.
/// Stalling does the same, except that new connections are accepted and then hang, as
/// behind a dead firewall, until the link is healed or dropped.
pub struct Link {
    pub url: String,
    state: tokio::sync::watch::Sender<LinkState>,
    task: tokio::task::JoinHandle<()>,
    /// Relayed connections still open.
    live: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections relayed so far.
    relayed: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Open,
    Cut,
    Stalled,
}

impl Link {
    /// A relay to `target`, open.
    pub async fn to(target: &TestNode) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let to = target.running.addr;
        let (state, watch) = tokio::sync::watch::channel(LinkState::Open);
        let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = live.clone();
        let relayed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let relayed_count = relayed.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let mut changed = watch.clone();
                match *watch.borrow() {
                    LinkState::Cut => continue, // the connection is dropped at once
                    LinkState::Stalled => {
                        // Hold the connection, silent, until the link changes.
                        tokio::spawn(async move {
                            let _held = inbound;
                            let _ = changed.wait_for(|s| *s != LinkState::Stalled).await;
                        });
                        continue;
                    }
                    LinkState::Open => {}
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                relayed_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let counter = counter.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = changed.wait_for(|s| *s != LinkState::Open) => {}
                        }
                    }
                    drop(inbound);
                    counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        Link { url, state, task, live, relayed }
    }

    /// How many connections the link has relayed since it was made.
    pub fn connections(&self) -> usize {
        self.relayed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cut the link, and return once every connection it relayed is closed, so that
    /// nothing sent after this call can slip through.
    pub async fn cut(&self) {
        self.state.send_replace(LinkState::Cut);
        let live = self.live.clone();
        eventually("the link's open connections to close", PATIENCE, || {
            let n = live.load(std::sync::atomic::Ordering::SeqCst);
            async move { (n == 0).then_some(()) }
        })
        .await;
    }

    pub fn stall(&self) {
        self.state.send_replace(LinkState::Stalled);
    }

    pub fn heal(&self) {
        self.state.send_replace(LinkState::Open);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestNode {
    /// Add `other` from its card, checking its fingerprint, but set no agreement yet.
    pub async fn add_card(&mut self, other: &mut TestNode, tier: &str, priority: u32) {
        self.add_card_at(other, None, tier, priority).await;
    }

    async fn add_card_at(&mut self, other: &mut TestNode, endpoint: Option<&str>, tier: &str, priority: u32) {
        let card = other.staff.export_card(spb::Empty {}).await.unwrap().into_inner();
        let card_text = match endpoint {
            None => card.text,
            Some(url) => {
                let text: String = card
                    .text
                    .lines()
                    .map(|l| if l.starts_with("endpoint: ") { format!("endpoint: {url}\n") } else { format!("{l}\n") })
                    .collect();
                assert_ne!(text, card.text, "the card names an endpoint");
                text
            }
        };
        self.staff
            .add_partner(spb::AddPartnerRequest {
                card_text,
                tier: tier.into(),
                priority,
                expected_fingerprint: card.fingerprint,
            })
            .await
            .unwrap();
    }

    /// Like [`TestNode::add_partner`], but this node reaches `other` through `link`.
    pub async fn add_partner_via(&mut self, other: &mut TestNode, link: &Link, tier: &str) {
        self.add_partner_at(other, Some(&link.url), tier, 100).await;
    }

    /// How many messages to `partner` wait in this node's outbox.
    pub async fn pending_to(&mut self, partner: &str) -> u64 {
        self.staff
            .get_partner(spb::SymbolRequest { symbol: partner.into() })
            .await
            .unwrap()
            .into_inner()
            .pending_messages
    }
}
