//! Crash consistency with real `rota-node` processes: many requests in flight across three
//! nodes, nodes killed with SIGKILL at seeded random points and restarted, then the network
//! settles and both sides must agree — nothing lost, nothing duplicated.
//!
//! Each request is scripted along one *way* through its life (see [`WAYS`]). Every staff
//! action of the script is retried, with a bounded wait, until the timeline shows it was
//! taken from the state the script meant; an action that never succeeds fails the test and
//! names the request, its way and the action. At the end each request must be in the final
//! state its way leads to, on the borrower and on the supplying lender, every step the
//! script took must be in the timelines, and consecutive timeline states must be rows of
//! the published transition tables (`rota_node::machine`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rota_certs::profile::{LoadedProfile, Profile};
use rota_node::machine::{BORROWING_TRANSITIONS, LENDING_TRANSITIONS};
use rota_proto::staff::{self as spb, staff_client::StaffClient};
use rota_tests::{bin_dir, eventually};
use tonic::transport::Channel;

const REQUESTS: usize = 200;
/// How many times a node is killed in each of the four rounds of lifecycle work.
const KILLS_PER_ROUND: usize = 8;

struct Proc {
    symbol: &'static str,
    data: PathBuf,
    /// Behind a lock so that a node can be killed while a staff action to it is in flight.
    child: Mutex<Option<Child>>,
}

impl Proc {
    fn init(root: &Path, symbol: &'static str) -> Proc {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = root.join(symbol.to_lowercase());
        let out = Command::new(bin_dir().join("rota-node"))
            .args(["init", "--data-dir"])
            .arg(&data)
            .args(["--symbol", symbol, "--name", symbol, "--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", &format!("https://127.0.0.1:{port}")])
            .output()
            .unwrap();
        assert!(out.status.success());
        // Fast retries and timers, so the network settles quickly after each crash.
        let cfg = data.join("config.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(
            &cfg,
            text.replace("backoff_initial_ms = 500", "backoff_initial_ms = 50")
                .replace("backoff_max_ms = 300000", "backoff_max_ms = 1000"),
        )
        .unwrap();
        Proc { symbol, data, child: Mutex::new(None) }
    }

    fn start(&self) {
        let child = Command::new(bin_dir().join("rota-node"))
            .args(["run", "--data-dir"])
            .arg(&self.data)
            .env("ROTA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        *self.child.lock().unwrap() = Some(child);
    }

    fn kill(&self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill(); // SIGKILL: no shutdown, no flush
            let _ = c.wait();
        }
    }

    async fn staff(&self) -> StaffClient<Channel> {
        let p = Profile::load(&self.data.join("profiles/admin/profile.toml")).unwrap();
        eventually(&format!("{} to accept staff", self.symbol), Duration::from_secs(30), || {
            let p = p.clone();
            async move {
                let ch = rota_proto::channel::connect(&p.node_url, p.client_config().ok()?, Duration::from_secs(10))
                    .await
                    .ok()?;
                let mut c = StaffClient::new(ch);
                c.node_info(spb::Empty {}).await.ok()?;
                Some(c)
            }
        })
        .await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn partner(a: &Proc, b: &Proc, tier: &str) {
    let mut sa = a.staff().await;
    let mut sb = b.staff().await;
    let card = sb.export_card(spb::Empty {}).await.unwrap().into_inner();
    sa.add_partner(spb::AddPartnerRequest {
        card_text: card.text,
        tier: tier.into(),
        priority: 100,
        expected_fingerprint: card.fingerprint,
    })
    .await
    .unwrap();
    sa.set_agreement(spb::SetAgreementRequest {
        partner: b.symbol.into(),
        lend: Some(true),
        borrow: Some(true),
        max_outstanding: Some(10_000),
        ..Default::default()
    })
    .await
    .unwrap();
}

fn rows(prefix: &str, n: usize, status: impl Fn(usize) -> &'static str) -> Vec<spb::ImportMessage> {
    let rows: Vec<spb::ImportRow> = (0..n)
        .map(|i| spb::ImportRow {
            source: format!("row {i}"),
            item: Some(spb::Item {
                barcode: format!("{prefix}-{i}"),
                title: format!("Book {i}"),
                lccn: format!("{:08}", 10_000_000 + i),
                status: status(i).into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    let mut msgs =
        vec![spb::ImportMessage { body: Some(spb::import_message::Body::Start(spb::ImportStart::default())) }];
    msgs.push(spb::ImportMessage { body: Some(spb::import_message::Body::Batch(spb::ImportBatch { rows })) });
    msgs
}

/// How long one scripted step may take. The node that takes it may be down or restarting,
/// and the message that enables it may wait in an outbox behind a crash; on a working link
/// a step takes milliseconds.
const STEP_PATIENCE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

/// Which node takes a step: the borrower, or the lender that supplies the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Borrower,
    Supplier,
}

/// One staff action of a script.
#[derive(Clone, Copy, Debug)]
struct Step {
    who: Who,
    action: &'static str,
    /// The state the script takes the action from: it waits for it, and acts only there.
    from: &'static str,
    /// The lender must have a renewal request waiting as well.
    renew_pending: bool,
    /// The timeline entry (event, state) the action leaves, right after an entry in `from`.
    mark: (&'static str, &'static str),
    /// The mark's actor is the staff user (a cancel is noted as the node's own act).
    by_staff: bool,
    /// States in which the action is refused because the race it is part of went the other
    /// way, as the protocol allows: then the step is not taken, and the script goes on.
    overtaken_in: &'static [&'static str],
    /// Try the action at once, before looking at the state: right for an action the node
    /// allows only from `from` among the states the request can be in at that point, so it
    /// cannot take another path (the mark, checked on success, shows where it was taken).
    eager: bool,
}

const fn step(who: Who, action: &'static str, from: &'static str, mark: (&'static str, &'static str)) -> Step {
    Step { who, action, from, renew_pending: false, mark, by_staff: true, overtaken_in: &[], eager: false }
}

const SHIP: Step = step(Who::Supplier, "ship", "will_supply", ("answer_sent", "shipped"));
const CONDITION: Step = step(Who::Supplier, "condition", "will_supply", ("answer_sent", "conditional"));
const ACCEPT: Step = step(Who::Borrower, "accept", "conditional", ("conditions_accepted", "will_supply"));
const RECEIVE: Step = step(Who::Borrower, "receive", "shipped", ("received", "received"));
const LOAN: Step = step(Who::Borrower, "loan", "received", ("loaned", "loaned_to_patron"));
const RENEW: Step = step(Who::Borrower, "renew", "loaned_to_patron", ("renew_requested", "renew_requested"));
const RENEW_YES: Step =
    Step { renew_pending: true, ..step(Who::Supplier, "renew-answer", "shipped", ("answer_sent", "shipped")) };
const RECALL: Step = step(Who::Supplier, "recall", "shipped", ("answer_sent", "recalled"));
const RETURN: Step = step(Who::Borrower, "return", "loaned_to_patron", ("returned", "returned_by_patron"));
const RETURN_RECALLED: Step = step(Who::Borrower, "return", "recalled", ("returned", "returned_by_patron"));
const SHIP_RETURN: Step =
    step(Who::Borrower, "ship-return", "returned_by_patron", ("return_shipped", "return_shipped"));
const CHECK_IN: Step = step(Who::Supplier, "check-in", "return_shipped", ("checked_in", "completed"));
const CANCEL: Step =
    Step { by_staff: false, ..step(Who::Borrower, "cancel", "will_supply", ("cancel_sent", "cancel_pending")) };
/// The lender ships while the borrower cancels, both at once. Three outcomes are legal: the
/// Cancel reaches the lender first (the lender is cancelled, and cannot ship), the cancel
/// crosses the shipment (the lender refuses it and the loan goes on), or the shipment
/// reaches the borrower first (staff cannot cancel any more). The lender is in will_supply
/// or cancelled, the borrower in will_supply or shipped, and each action is legal only in
/// the first, so both are tried at once.
const SHIP_RACING: Step = Step { overtaken_in: &["cancelled"], eager: true, ..SHIP };
const CANCEL_RACING: Step = Step { overtaken_in: &["shipped"], eager: true, ..CANCEL };

/// A way through a request's life: the staff actions, and the states the borrower and the
/// supplying lender end in.
struct Way {
    name: &'static str,
    steps: &'static [Step],
    borrower: &'static str,
    lender: &'static str,
    /// The two steps are taken at the same time, and if the first is overtaken the request
    /// ends in these states (borrower, lender) instead.
    race: Option<(&'static str, &'static str)>,
}

impl Way {
    const fn new(name: &'static str, steps: &'static [Step], borrower: &'static str, lender: &'static str) -> Way {
        Way { name, steps, borrower, lender, race: None }
    }
}

const WAYS: [Way; 11] = [
    Way::new("promised", &[], "will_supply", "will_supply"),
    Way::new("shipped", &[SHIP], "shipped", "shipped"),
    Way::new("received", &[SHIP, RECEIVE], "received", "shipped"),
    Way::new("with the patron", &[SHIP, RECEIVE, LOAN], "loaned_to_patron", "shipped"),
    Way::new("shipped home", &[SHIP, RECEIVE, LOAN, RETURN, SHIP_RETURN], "return_shipped", "return_shipped"),
    Way::new("checked in", &[SHIP, RECEIVE, LOAN, RETURN, SHIP_RETURN, CHECK_IN], "completed", "completed"),
    Way::new("renewed", &[SHIP, RECEIVE, LOAN, RENEW, RENEW_YES], "loaned_to_patron", "shipped"),
    Way::new(
        "recalled and returned",
        &[SHIP, RECEIVE, LOAN, RECALL, RETURN_RECALLED, SHIP_RETURN],
        "return_shipped",
        "return_shipped",
    ),
    Way::new("conditional offer accepted, then shipped", &[CONDITION, ACCEPT, SHIP], "shipped", "shipped"),
    Way::new("promised, then cancelled", &[CANCEL], "cancelled", "cancelled"),
    Way {
        race: Some(("cancelled", "cancelled")),
        ..Way::new("shipped and cancelled at once", &[SHIP_RACING, CANCEL_RACING], "shipped", "shipped")
    },
];

/// The way request `k` takes: k % 9 picks one of the first nine, and every fourth of the
/// promised and of the shipped ones is cancelled as well (ways 9 and 10).
fn way_of(k: usize) -> usize {
    match (k % 9, (k / 9) % 4) {
        (0, 0) => 9,
        (1, 0) => 10,
        (w, _) => w,
    }
}

const LENDERS: [&str; 3] = ["", "AAA", "UVA"];

/// A request, the way it was scripted for, and what the script did.
struct Scripted {
    id: String,
    way: usize,
    /// Index of the supplying lender in `nodes` (1 or 2), once the borrower knew it.
    supplier: usize,
    /// Steps the script took (not overtaken), by index into the way's steps.
    taken: Vec<usize>,
}

impl Scripted {
    fn label(&self) -> String {
        format!("{} (way {}: {})", self.id, self.way, WAYS[self.way].name)
    }

    /// The states (borrower, supplying lender) the request must end in.
    fn end(&self) -> (&'static str, &'static str) {
        let way = &WAYS[self.way];
        match way.race {
            Some(end) if !self.taken.contains(&0) => end,
            _ => (way.borrower, way.lender),
        }
    }
}

/// Whether `timeline` shows `step` taken from the state the script meant.
fn marked(timeline: &[spb::TimelineEvent], step: &Step) -> bool {
    timeline.windows(2).any(|w| {
        w[0].state == step.from
            && w[1].event == step.mark.0
            && w[1].state == step.mark.1
            && (!step.by_staff || w[1].actor.starts_with("staff:"))
    })
}

/// The first gap in a timeline: every note carries the state after its step, and every step
/// that changes the state leaves a note, so each change of state between consecutive
/// entries must be a row of the published table. Consecutive entries in one state pass (a
/// step may leave several notes, and self-loops leave one), so a step that returned to the
/// state it left and lost its note would not show here; the scripted steps are checked by
/// their own entries (`marked`).
fn gap(timeline: &[spb::TimelineEvent], first: &str, now: &str, table: &[(&str, &str, &str, &str)]) -> Option<String> {
    let (Some(start), Some(end)) = (timeline.first(), timeline.last()) else {
        return Some("empty timeline".into());
    };
    if start.state != first {
        return Some(format!("starts in {} ({}), not {first}", start.state, start.event));
    }
    if end.state != now {
        return Some(format!("ends in {} ({}), but the request is {now}", end.state, end.event));
    }
    timeline
        .windows(2)
        .find(|w| w[0].state != w[1].state && !table.iter().any(|(f, _, t, _)| *f == w[0].state && *t == w[1].state))
        .map(|w| format!("{} -> {} ({}: {}) is no row of the table", w[0].state, w[1].state, w[1].event, w[1].detail))
}

/// What a scripted step needs to know of a request on one node.
struct Snapshot {
    state: String,
    supplier: String,
    renew_pending: bool,
    timeline: Vec<spb::TimelineEvent>,
}

/// Staff connections to the three nodes, made again after a node is killed.
#[derive(Clone)]
struct Staffs {
    profiles: Vec<LoadedProfile>,
    clients: Vec<Option<StaffClient<Channel>>>,
    /// Actions that failed and were tried again, and actions found done in the timeline
    /// after a failed try (committed, but the reply was lost to a crash).
    retried: Arc<AtomicUsize>,
    found_done: Arc<AtomicUsize>,
    nodes: Arc<[Proc; 3]>,
    /// Kill this node (and restart it) this long after sending it the next action.
    armed: Option<(usize, Duration)>,
    /// The kills made, in order.
    kills: Arc<Mutex<Vec<String>>>,
    /// The slowest steps, for the summary.
    slow: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Staffs {
    fn new(nodes: Arc<[Proc; 3]>) -> Staffs {
        Staffs {
            profiles: nodes
                .iter()
                .map(|n| Profile::load(&n.data.join("profiles/admin/profile.toml")).unwrap())
                .collect(),
            clients: vec![None, None, None],
            retried: Arc::default(),
            found_done: Arc::default(),
            nodes,
            armed: None,
            kills: Arc::default(),
            slow: Arc::default(),
        }
    }

    async fn client(&mut self, node: usize) -> Result<StaffClient<Channel>, String> {
        if self.clients[node].is_none() {
            let p = &self.profiles[node];
            let config = p.client_config().map_err(|e| e.to_string())?;
            let ch = rota_proto::channel::connect(&p.node_url, config, Duration::from_secs(10))
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            self.clients[node] = Some(StaffClient::new(ch));
        }
        Ok(self.clients[node].clone().unwrap())
    }

    /// Describe a failed call, and drop the connection if the node may have gone.
    fn failed(&mut self, node: usize, e: tonic::Status) -> String {
        use tonic::Code;
        if matches!(e.code(), Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded) {
            self.clients[node] = None;
        }
        format!("{:?}: {}", e.code(), e.message())
    }

    async fn snapshot(&mut self, node: usize, id: &str) -> Result<Snapshot, String> {
        let mut c = self.client(node).await?;
        let got = if node == 0 {
            c.get_request(spb::IdRequest { id: id.into() }).await.map(|r| {
                let r = r.into_inner();
                Snapshot { state: r.state, supplier: r.supplier, renew_pending: false, timeline: r.timeline }
            })
        } else {
            c.get_lending(spb::IdRequest { id: id.into() }).await.map(|r| {
                let r = r.into_inner();
                Snapshot {
                    state: r.state,
                    supplier: String::new(),
                    renew_pending: r.renew_pending,
                    timeline: r.timeline,
                }
            })
        };
        got.map_err(|e| self.failed(node, e))
    }

    /// Take the action; on success, the request's timeline as the reply gives it.
    async fn act(&mut self, node: usize, id: &str, step: &Step) -> Result<Vec<spb::TimelineEvent>, String> {
        let mut c = self.client(node).await?;
        let done = if node == 0 {
            let req = spb::BorrowingActionRequest { id: id.into(), action: step.action.into(), ..Default::default() };
            c.borrowing_action(req).await.map(|r| r.into_inner().timeline)
        } else {
            let mut req = spb::LendingActionRequest { id: id.into(), action: step.action.into(), ..Default::default() };
            match step.action {
                "condition" => req.code = "LibraryUseOnly".into(),
                "renew-answer" => req.answer = "yes".into(),
                _ => {}
            }
            c.lending_action(req).await.map(|r| r.into_inner().timeline)
        };
        done.map_err(|e| self.failed(node, e))
    }

    /// Wait until the borrower has a supplier's promise for the request, and return which
    /// lender it is (1 or 2).
    async fn supplier(&mut self, req: &Scripted) -> usize {
        let deadline = tokio::time::Instant::now() + STEP_PATIENCE;
        loop {
            let seen = match self.snapshot(0, &req.id).await {
                Ok(s) if s.state == "will_supply" => {
                    return LENDERS.iter().position(|l| !l.is_empty() && *l == s.supplier).unwrap_or_else(|| {
                        panic!("{}: will_supply from an unknown supplier {:?}", req.label(), s.supplier)
                    });
                }
                Ok(s) => format!("in {}", s.state),
                Err(e) => e,
            };
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: no lender promised it within {STEP_PATIENCE:?}; last seen {seen}",
                req.label()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Take one scripted step, retrying until the timeline shows it taken. Returns false if
    /// the step was overtaken (see [`Step::overtaken_in`]). Fails the test, naming the
    /// request, its way and the action, if the step does not succeed in time.
    async fn take(&mut self, req: &Scripted, step: &Step) -> bool {
        let started = tokio::time::Instant::now();
        let taken = self.take_timed(req, step).await;
        let mut slow = self.slow.lock().unwrap();
        slow.push((started.elapsed(), format!("{} of {}", step.action, req.id)));
        slow.sort_by_key(|s| std::cmp::Reverse(s.0));
        slow.truncate(3);
        taken
    }

    async fn take_timed(&mut self, req: &Scripted, step: &Step) -> bool {
        let node = match step.who {
            Who::Borrower => 0,
            Who::Supplier => req.supplier,
        };
        let deadline = tokio::time::Instant::now() + STEP_PATIENCE;
        let mut seen = String::from("nothing (node unreachable)");
        let mut last_error = String::from(NEVER_TRIED);
        let mut ready = step.eager;
        let mut tried = false;
        loop {
            if ready {
                tried = true;
                let result = match self.armed.filter(|(victim, _)| *victim == node) {
                    // SIGKILL the node while it handles the action: before it commits, or after
                    // it commits but before the reply is out, or after.
                    Some((victim, after)) => {
                        self.armed = None;
                        let nodes = self.nodes.clone();
                        let kill = async move {
                            tokio::time::sleep(after).await;
                            nodes[victim].kill();
                            nodes[victim].start();
                        };
                        let (result, ()) = tokio::join!(self.act(node, &req.id, step), kill);
                        self.kills.lock().unwrap().push(format!(
                            "{} {}us into {} of {} ({})",
                            node_name(victim),
                            after.as_micros(),
                            step.action,
                            req.id,
                            if result.is_ok() { "reply came" } else { "reply lost" }
                        ));
                        result
                    }
                    None => self.act(node, &req.id, step).await,
                };
                match result {
                    Ok(timeline) => {
                        assert!(
                            marked(&timeline, step),
                            "{}: {} at {} succeeded but the timeline does not show it taken from {}: {timeline:#?}",
                            req.label(),
                            step.action,
                            node_name(node),
                            step.from,
                        );
                        return true;
                    }
                    Err(e) => {
                        self.retried.fetch_add(1, Ordering::Relaxed);
                        last_error = e;
                    }
                }
                tokio::time::sleep(POLL).await;
            }
            match self.snapshot(node, &req.id).await {
                // Done already: the action committed but the reply was lost to a crash.
                Ok(s) if marked(&s.timeline, step) => {
                    if tried {
                        self.found_done.fetch_add(1, Ordering::Relaxed);
                    }
                    return true;
                }
                Ok(s) if step.overtaken_in.contains(&s.state.as_str()) => return false,
                Ok(s) => {
                    seen = format!("{}{}", s.state, if s.renew_pending { " with a renewal pending" } else { "" });
                    ready = s.state == step.from && (s.renew_pending || !step.renew_pending);
                }
                Err(e) => {
                    last_error = e;
                    ready = false;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {} at {} (from {}) did not succeed within {STEP_PATIENCE:?}; last seen in {seen}; last error: {last_error}",
                req.label(),
                step.action,
                node_name(node),
                step.from,
            );
            if !ready {
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Take a request along its way.
async fn run_script(staffs: &mut Staffs, req: &mut Scripted) {
    req.supplier = staffs.supplier(req).await;
    let way = &WAYS[req.way];
    if way.race.is_some() {
        let mut other = Staffs { armed: None, ..staffs.clone() };
        let (first, second) = tokio::join!(staffs.take(req, &way.steps[0]), other.take(req, &way.steps[1]));
        assert!(first || second, "{}: both racing steps overtaken", req.label());
        req.taken.extend([first.then_some(0), second.then_some(1)].into_iter().flatten());
        return;
    }
    for (i, step) in way.steps.iter().enumerate() {
        if staffs.take(req, step).await {
            req.taken.push(i);
        }
    }
}

const NEVER_TRIED: &str = "none: the action was never tried";

fn node_name(node: usize) -> &'static str {
    ["DGW", "AAA", "UVA"][node]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let seed: u64 = std::env::var("ROTA_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let mut rng = fastrand::Rng::with_seed(seed);
    let root = tempfile::tempdir().unwrap();
    let nodes =
        Arc::new([Proc::init(root.path(), "DGW"), Proc::init(root.path(), "AAA"), Proc::init(root.path(), "UVA")]);
    for n in nodes.iter() {
        n.start();
    }
    partner(&nodes[0], &nodes[1], "consortium").await;
    partner(&nodes[1], &nodes[0], "consortium").await;
    partner(&nodes[0], &nodes[2], "p2p").await;
    partner(&nodes[2], &nodes[0], "p2p").await;
    // AAA holds every book but a third are out on loan; UVA holds all of them on the shelf.
    nodes[1]
        .staff()
        .await
        .import(tokio_stream::iter(rows("AAA", REQUESTS, |i| if i % 3 == 0 { "on_loan" } else { "available" })))
        .await
        .unwrap();
    nodes[2].staff().await.import(tokio_stream::iter(rows("UVA", REQUESTS, |_| "available"))).await.unwrap();

    let started = tokio::time::Instant::now();
    let mut scripted = vec![];
    let mut dgw = nodes[0].staff().await;
    for k in 0..REQUESTS {
        let c =
            spb::Citation { title: format!("Book {k}"), lccn: format!("{:08}", 10_000_000 + k), ..Default::default() };
        let r = dgw
            .create_request(spb::CreateRequestRequest {
                citation: Some(c),
                patron_id: format!("P-{k}"),
                ..Default::default()
            })
            .await
            .unwrap();
        scripted.push(Scripted { id: r.into_inner().id, way: way_of(k), supplier: 0, taken: vec![] });
        // Crash somebody now and then while requests are being created and answered.
        if rng.u8(..40) == 0 {
            let victim = rng.usize(1..3); // a lender; the borrower is crashed below
            nodes[victim].kill();
            nodes[victim].start();
        }
    }
    drop(dgw);
    let created = started.elapsed();
    // Several rounds of lifecycle work. In each, nodes are killed at random points and
    // restarted at once while the work goes on: the borrower in the first round, a lender in
    // the second, anyone after that. A kill is armed at a seeded request and lands a seeded
    // few milliseconds after the next staff action sent to that node, so it hits the action
    // before, while or after the node commits it. Each request is taken along its way (see
    // `WAYS`), step by step; each step waits for the state it is taken from and is retried
    // until its timeline shows it, through the crashes.
    let mut staffs = Staffs::new(nodes.clone());
    let kill_now = |staffs: &Staffs, victim: usize, why: &str| {
        nodes[victim].kill();
        nodes[victim].start();
        staffs.kills.lock().unwrap().push(format!("{} {why}", node_name(victim)));
    };
    for round in 0..4 {
        let kills: Vec<(usize, usize, Duration)> = (0..KILLS_PER_ROUND)
            .map(|_| {
                let victim = match round {
                    0 => 0,
                    1 => rng.usize(1..3),
                    _ => rng.usize(..3),
                };
                (rng.usize(..REQUESTS / 4), victim, Duration::from_micros(rng.u64(..8_000)))
            })
            .collect();
        for (k, req) in scripted.iter_mut().enumerate() {
            if k % 4 != round {
                continue;
            }
            if let Some(&(_, victim, after)) = kills.iter().find(|(at, ..)| *at == k / 4)
                && let Some((earlier, _)) = staffs.armed.replace((victim, after))
            {
                kill_now(&staffs, earlier, &format!("before {} (no action reached it since armed)", req.id));
            }
            run_script(&mut staffs, req).await;
        }
        if let Some((victim, _)) = staffs.armed.take() {
            kill_now(&staffs, victim, &format!("at the end of round {round} (no action reached it since armed)"));
        }
    }
    let (retried, found_done) = (staffs.retried.load(Ordering::Relaxed), staffs.found_done.load(Ordering::Relaxed));
    let scripts_done = started.elapsed();
    let killed = std::mem::take(&mut *staffs.kills.lock().unwrap());
    let slowest = std::mem::take(&mut *staffs.slow.lock().unwrap());
    drop(staffs);

    // Let the network settle: every outbox empty everywhere, nothing waiting on a partner.
    let mut staffs = [nodes[0].staff().await, nodes[1].staff().await, nodes[2].staff().await];
    eventually("the network to settle", Duration::from_secs(120), || {
        let mut s = staffs.clone();
        async move {
            for st in s.iter_mut() {
                for p in st.list_partners(spb::Empty {}).await.ok()?.into_inner().partners {
                    if p.pending_messages > 0 {
                        return None;
                    }
                }
            }
            let busy = s[0]
                .list_requests(spb::ListRequest { status: String::new(), limit: 10_000 })
                .await
                .ok()?
                .into_inner()
                .requests;
            busy.iter()
                .all(|r| !matches!(r.state.as_str(), "created" | "locating" | "sent" | "cancel_pending"))
                .then_some(())
        }
    })
    .await;

    let settled = started.elapsed();
    // Every request converged, and borrower and lenders agree.
    let borrowed = staffs[0]
        .list_requests(spb::ListRequest { status: String::new(), limit: 10_000 })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(borrowed.len(), REQUESTS, "a request was lost or duplicated");
    let by_id: std::collections::HashMap<&str, &Scripted> = scripted.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut reserved_by: std::collections::HashMap<String, String> = Default::default();
    let mut held = std::collections::HashMap::<(&str, String), u64>::new();
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    // What the scripts demand, collected so that a failure lists every offender.
    let mut wrong_end = vec![];
    let mut gaps = vec![];
    let mut unrecorded = vec![];
    for r in &borrowed {
        *states.entry(r.state.clone()).or_default() += 1;
        let s = by_id.get(r.id.as_str()).unwrap_or_else(|| panic!("{}: a request nobody placed", r.id));
        let way = &WAYS[s.way];
        let full = staffs[0].get_request(spb::IdRequest { id: r.id.clone() }).await.unwrap().into_inner();
        assert!(
            full.timeline.windows(2).all(|w| w[0].at_unix_ms <= w[1].at_unix_ms),
            "{}: timeline out of order",
            r.id
        );
        if let Some(g) = gap(&full.timeline, "created", &full.state, BORROWING_TRANSITIONS) {
            gaps.push(format!("{} at DGW: {g}", s.label()));
        }
        let mut supplied = None;
        let mut shippers = vec![];
        for (lender, k) in [("AAA", 1), ("UVA", 2)] {
            let Ok(l) = staffs[k].get_lending(spb::IdRequest { id: r.id.clone() }).await else {
                assert_ne!(r.supplier, lender, "{}: {lender} supplies it but has no record of it", r.id);
                continue;
            };
            let l = l.into_inner();
            assert!(
                l.timeline.windows(2).all(|w| w[0].at_unix_ms <= w[1].at_unix_ms),
                "{} at {lender}: timeline out of order",
                r.id
            );
            if let Some(g) = gap(&l.timeline, "received", &l.state, LENDING_TRANSITIONS) {
                gaps.push(format!("{} at {lender}: {g}", s.label()));
            }
            assert_eq!(l.timeline.first().map(|e| e.event.as_str()), Some("request_received"), "{} at {lender}", r.id);
            *held.entry((lender, l.state.clone())).or_default() += 1;
            assert_eq!(
                l.timeline.iter().filter(|e| e.event == "request_received").count(),
                1,
                "{} at {lender}: received twice",
                r.id
            );
            if matches!(l.state.as_str(), "shipped" | "overdue" | "recalled" | "return_shipped" | "completed" | "lost")
            {
                shippers.push(lender);
            }
            if matches!(l.state.as_str(), "will_supply" | "shipped" | "return_shipped")
                && !l.item_barcode.is_empty()
                && let Some(other) = reserved_by.insert(l.item_barcode.clone(), r.id.clone())
            {
                panic!("item {} is held for both {other} and {}", l.item_barcode, r.id);
            }
            if r.supplier == lender {
                let agree = match r.state.as_str() {
                    "will_supply" => l.state == "will_supply",
                    "conditional" => l.state == "conditional",
                    "shipped" | "received" | "loaned_to_patron" | "returned_by_patron" => l.state == "shipped",
                    "renew_requested" => l.state == "shipped" && l.renew_pending,
                    "recalled" => l.state == "recalled",
                    "return_shipped" => l.state == "return_shipped",
                    "completed" => l.state == "completed",
                    "cancelled" => matches!(l.state.as_str(), "cancelled" | "unfilled"),
                    "lost" => l.state == "lost",
                    other => panic!("{}: borrower {other} with supplier {lender}", r.id),
                };
                assert!(agree, "{}: borrower {} but {lender} {}", r.id, r.state, l.state);
                supplied = Some(l);
            } else {
                assert!(
                    matches!(l.state.as_str(), "unfilled" | "cancelled" | "expired"),
                    "{}: {lender} left in {}",
                    r.id,
                    l.state
                );
            }
        }
        assert!(shippers.len() <= 1, "{} shipped by {shippers:?}", r.id);
        // The end its way leads to, with the supplier the script worked with.
        let (end_borrower, end_lender) = s.end();
        let lender = LENDERS[s.supplier];
        let lender_state = supplied.as_ref().map_or("no record", |l| l.state.as_str());
        let renewed = supplied.as_ref().is_some_and(|l| l.renewals == 1 && !l.renew_pending);
        if r.state != end_borrower
            || r.supplier != lender
            || lender_state != end_lender
            || (way.steps.iter().any(|st| st.action == "renew-answer") && !renewed)
        {
            wrong_end.push(format!(
                "{}: DGW {} (expected {}), supplier {:?} (the script's {lender}) {lender_state} (expected {}){}",
                s.label(),
                r.state,
                end_borrower,
                r.supplier,
                end_lender,
                supplied.as_ref().map_or(String::new(), |l| format!(", renewals {}", l.renewals)),
            ));
        }
        // Every step the script took is in the timelines, from the state it was taken in.
        for &i in &s.taken {
            let step = &way.steps[i];
            let timeline = match step.who {
                Who::Borrower => &full.timeline,
                Who::Supplier => match &supplied {
                    Some(l) => &l.timeline,
                    None => continue, // reported above
                },
            };
            if !marked(timeline, step) {
                unrecorded.push(format!("{}: {} from {}", s.label(), step.action, step.from));
            }
        }
    }
    assert!(
        wrong_end.is_empty(),
        "{} requests did not end where their way leads:\n{}",
        wrong_end.len(),
        wrong_end.join("\n")
    );
    assert!(gaps.is_empty(), "{} timelines have gaps:\n{}", gaps.len(), gaps.join("\n"));
    assert!(
        unrecorded.is_empty(),
        "{} steps the script took are missing from the timelines:\n{}",
        unrecorded.len(),
        unrecorded.join("\n")
    );
    // Each lender's shelf matches its requests: a copy is reserved exactly when a request
    // holds it promised, on loan exactly when it is out (AAA's own loans aside).
    for (lender, k, own_loans) in [("AAA", 1, REQUESTS.div_ceil(3) as u64), ("UVA", 2, 0)] {
        let stats = staffs[k].holdings_stats(spb::Empty {}).await.unwrap().into_inner();
        let count = |s: &str| stats.by_status.iter().find(|c| c.key == s).map_or(0, |c| c.count);
        let with = |states: &[&str]| {
            states.iter().map(|s| held.get(&(lender, (*s).to_owned())).copied().unwrap_or(0)).sum::<u64>()
        };
        assert_eq!(count("reserved"), with(&["will_supply", "conditional"]), "{lender}: reserved copies");
        assert_eq!(
            count("on_loan"),
            own_loans + with(&["shipped", "overdue", "recalled", "return_shipped"]),
            "{lender}: copies on loan"
        );
    }
    // Every message was delivered exactly once in effect: each node's outbox is confirmed and
    // accepted, and for every pair of nodes the messages one sent are exactly those the other
    // recorded in its inbox.
    drop(staffs);
    let mut outbox = std::collections::HashMap::new();
    let mut inbox = std::collections::HashMap::new();
    for n in nodes.iter() {
        let db = format!("sqlite://{}?mode=ro", n.data.join("rota.db").display());
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        let refused: Vec<(String, String)> = sqlx::query_as(
            "SELECT request_id, COALESCE(outcome, 'undelivered') FROM outbox WHERE outcome IS NOT 'accepted'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(refused.is_empty(), "{}: messages not accepted: {refused:?}", n.symbol);
        for (peer, sent) in sqlx::query_as::<_, (String, i64)>("SELECT partner, COUNT(*) FROM outbox GROUP BY partner")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            outbox.insert((n.symbol.to_owned(), peer), sent);
        }
        for (peer, got) in sqlx::query_as::<_, (String, i64)>("SELECT sender, COUNT(*) FROM inbox GROUP BY sender")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            inbox.insert((peer, n.symbol.to_owned()), got);
        }
        pool.close().await;
    }
    assert!(outbox.values().sum::<i64>() > 4 * REQUESTS as i64, "{outbox:?}");
    assert_eq!(outbox, inbox, "messages sent (left) and received (right), by (sender, receiver)");
    // How the races between a shipment and a cancel went.
    let raced = |taken: &[usize]| scripted.iter().filter(|s| s.way == 10 && s.taken == taken).count();
    let races = format!(
        "cancel first {}, cancel crossed the shipment {}, shipment first {}",
        raced(&[1]),
        raced(&[0, 1]),
        raced(&[0])
    );
    eprintln!(
        "seed {seed}: killed {killed:#?}; final states {states:?}; races {races}; actions retried {retried}, \
         found done after a failed try {found_done}; slowest steps {slowest:?}; \
         created by {created:?}, scripts done by {scripts_done:?}, settled by {settled:?}; messages {outbox:?}"
    );
}
