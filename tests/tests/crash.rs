//! Crash consistency with real `rota-node` processes: many requests in flight across three
//! nodes, nodes killed with SIGKILL at seeded random points and restarted, then the network
//! settles and both sides must agree — nothing lost, nothing duplicated.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rota_certs::profile::Profile;
use rota_proto::staff::{self as spb, staff_client::StaffClient};
use rota_tests::{bin_dir, eventually};
use tonic::transport::Channel;

const REQUESTS: usize = 200;

struct Proc {
    symbol: &'static str,
    data: PathBuf,
    child: Option<Child>,
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
        Proc { symbol, data, child: None }
    }

    fn start(&mut self) {
        let child = Command::new(bin_dir().join("rota-node"))
            .args(["run", "--data-dir"])
            .arg(&self.data)
            .env("ROTA_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing() {
    let seed: u64 = std::env::var("ROTA_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let mut rng = fastrand::Rng::with_seed(seed);
    let root = tempfile::tempdir().unwrap();
    let mut nodes = [Proc::init(root.path(), "DGW"), Proc::init(root.path(), "AAA"), Proc::init(root.path(), "UVA")];
    for n in nodes.iter_mut() {
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

    let mut ids = vec![];
    let mut dgw = nodes[0].staff().await;
    for i in 0..REQUESTS {
        let c =
            spb::Citation { title: format!("Book {i}"), lccn: format!("{:08}", 10_000_000 + i), ..Default::default() };
        let r = dgw
            .create_request(spb::CreateRequestRequest {
                citation: Some(c),
                patron_id: format!("P-{i}"),
                ..Default::default()
            })
            .await
            .unwrap();
        ids.push(r.into_inner().id);
        // Crash somebody now and then while requests are being created and answered.
        if rng.u8(..40) == 0 {
            let victim = rng.usize(1..3); // a lender; the borrower is crashed below
            nodes[victim].kill();
            nodes[victim].start();
        }
    }
    // Several rounds of lifecycle work. In each, one node is killed at a random point and
    // restarted at once while the work goes on: the borrower in the first round, a lender in
    // the second, anyone after that.
    let mut killed = vec![];
    for round in 0..4 {
        let victim = match round {
            0 => 0,
            1 => rng.usize(1..3),
            _ => rng.usize(..3),
        };
        let kill_at = rng.usize(..REQUESTS / 4);
        killed.push((nodes[victim].symbol, kill_at));
        let mut staffs = [nodes[0].staff().await, nodes[1].staff().await, nodes[2].staff().await];
        for (k, id) in ids.iter().enumerate() {
            if k % 4 != round {
                continue;
            }
            if k / 4 == kill_at {
                nodes[victim].kill();
                nodes[victim].start();
            }
            // Move each request a different distance along its life: the lender ships, the
            // borrower receives, lends, gets it back and sends it home, the lender checks in.
            // Each request goes a different way along its life (k % 9):
            // 0 stays promised; 1 shipped; 2 received; 3 with the patron; 4 shipped home;
            // 5 checked in; 6 renewed; 7 recalled and returned; 8 a conditional offer accepted.
            let way = k % 9;
            let lend = |action: &str| spb::LendingActionRequest {
                id: id.clone(),
                action: action.into(),
                ..Default::default()
            };
            let borrow = |action: &str| spb::BorrowingActionRequest {
                id: id.clone(),
                action: action.into(),
                ..Default::default()
            };
            // Bounded polling: an action waits (at most 0.5 s) for the message that enables it.
            macro_rules! until_ok {
                ($call:expr) => {
                    for _ in 0..50 {
                        if $call.await.is_ok() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
            }
            if way == 8 {
                for st in staffs.iter_mut().skip(1) {
                    let cond = spb::LendingActionRequest { code: "LibraryUseOnly".into(), ..lend("condition") };
                    let _ = st.lending_action(cond).await;
                }
                until_ok!(staffs[0].borrowing_action(borrow("accept")));
            }
            if (1..8).contains(&way) {
                for st in staffs.iter_mut().skip(1) {
                    let _ = st.lending_action(lend("ship")).await;
                }
            }
            if way == 7 {
                for st in staffs.iter_mut().skip(1) {
                    let _ = st.lending_action(lend("recall")).await;
                }
                until_ok!(staffs[0].borrowing_action(borrow("receive")));
                until_ok!(staffs[0].borrowing_action(borrow("ship-return")));
            }
            if (2..7).contains(&way) {
                until_ok!(staffs[0].borrowing_action(borrow("receive")));
            }
            if (3..7).contains(&way) {
                until_ok!(staffs[0].borrowing_action(borrow("loan")));
            }
            if way == 6 {
                until_ok!(staffs[0].borrowing_action(borrow("renew")));
                for st in staffs.iter_mut().skip(1) {
                    until_ok!(
                        st.lending_action(spb::LendingActionRequest { answer: "yes".into(), ..lend("renew-answer") })
                    );
                }
            }
            if (4..6).contains(&way) {
                until_ok!(staffs[0].borrowing_action(borrow("return")));
                until_ok!(staffs[0].borrowing_action(borrow("ship-return")));
            }
            if way == 5 {
                for st in staffs.iter_mut().skip(1) {
                    until_ok!(st.lending_action(lend("check-in")));
                }
            }
            if k % 37 == 0 {
                let _ = staffs[0]
                    .borrowing_action(spb::BorrowingActionRequest {
                        id: id.clone(),
                        action: "cancel".into(),
                        ..Default::default()
                    })
                    .await;
            }
        }
    }

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

    // Every request converged, and borrower and lenders agree.
    let borrowed = staffs[0]
        .list_requests(spb::ListRequest { status: String::new(), limit: 10_000 })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(borrowed.len(), REQUESTS, "a request was lost or duplicated");
    let mut reserved_by: std::collections::HashMap<String, String> = Default::default();
    let mut held = std::collections::HashMap::<(&str, String), u64>::new();
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for r in &borrowed {
        *states.entry(r.state.clone()).or_default() += 1;
        let full = staffs[0].get_request(spb::IdRequest { id: r.id.clone() }).await.unwrap().into_inner();
        assert!(
            full.timeline.windows(2).all(|w| w[0].at_unix_ms <= w[1].at_unix_ms),
            "{}: timeline out of order",
            r.id
        );
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
    }
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
    for n in &nodes {
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
    // The run covered the lifecycle, not just the first answer.
    assert!(states.len() >= 6, "states reached: {states:?}");
    eprintln!("seed {seed}: killed {killed:?}; final states {states:?}; messages {outbox:?}");
}
