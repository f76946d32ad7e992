//! The transactional outbox: messages to a partner that is down wait, back off, and are
//! delivered once it is back; nothing is lost or duplicated across a restart.

use std::sync::Arc;
use std::time::Duration;

use rota_node::clock::SystemClock;
use rota_node::config::Config;
use rota_node::runtime::RunningNode;
use rota_proto::staff as spb;
use rota_tests::{PATIENCE, eventually, partner_up, start_node};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_for_a_partner_that_is_down_and_are_delivered_once() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.add_item("UVA-1", "Glad reunion", "0914520407", "available").await;

    // UVA goes down.
    let stopped = uva.stop().await;

    let r = dgw
        .staff
        .create_request(spb::CreateRequestRequest {
            citation: Some(spb::Citation {
                title: "Glad reunion".into(),
                isbn: "0914520407".into(),
                ..Default::default()
            }),
            patron_id: "P-9".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state, "sent");
    // The message waits in the outbox, with the delivery error visible to staff.
    let p = eventually("a failed delivery attempt to be recorded", PATIENCE, || {
        let mut s = dgw.staff.clone();
        async move {
            let p = s.get_partner(spb::SymbolRequest { symbol: "UVA".into() }).await.ok()?.into_inner();
            (!p.last_delivery_error.is_empty()).then_some(p)
        }
    })
    .await;
    assert_eq!(p.pending_messages, 1);

    // UVA comes back on the same address: the request goes through, once.
    let mut uva = stopped.start().await;
    let done = dgw.wait_state(&r.id, "will_supply").await;
    assert_eq!(done.supplier, "UVA");
    let p = dgw.staff.get_partner(spb::SymbolRequest { symbol: "UVA".into() }).await.unwrap().into_inner();
    assert_eq!(p.pending_messages, 0);
    let list = uva.staff.list_lending(spb::ListRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.requests.len(), 1);
    let l = uva.lending(&r.id).await.unwrap();
    assert_eq!(l.timeline.iter().filter(|e| e.event == "request_received").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    rota_tests::setup();
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, listener, _) = rota_tests::init_node(dir.path(), "DGW").await;
    let cfg_path = data_dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(text.contains("handshake_timeout_ms = 5000"), "{text}");
    std::fs::write(&cfg_path, text.replace("handshake_timeout_ms = 5000", "handshake_timeout_ms = 300")).unwrap();
    let running =
        RunningNode::start_with(Config::load(&data_dir).unwrap(), listener, Arc::new(SystemClock)).await.unwrap();
    let mut tcp = TcpStream::connect(running.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    // The server closes the connection; it does not wait for us forever.
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("server kept a silent connection open");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(started.elapsed() >= Duration::from_millis(250), "closed before the timeout: {:?}", started.elapsed());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_to_a_dead_partner_back_off() {
    // Backoff from 50 ms doubling to a 400 ms cap, with jitter between half and all of it.
    let opts = rota_tests::NodeOptions {
        config_edits: vec![
            ("tick_ms = 1000", "tick_ms = 25"),
            ("backoff_initial_ms = 500", "backoff_initial_ms = 50"),
            ("backoff_max_ms = 300000", "backoff_max_ms = 400"),
        ],
        ..Default::default()
    };
    let mut dgw = rota_tests::start_node_with("DGW", opts).await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    let _down = uva.stop().await;
    let started = std::time::Instant::now();
    rota_tests::request_isbn(&mut dgw, "Glad reunion", "0914520407").await;
    let p = eventually("eight delivery attempts", PATIENCE, || {
        let mut s = dgw.staff.clone();
        async move {
            let p = s.get_partner(spb::SymbolRequest { symbol: "UVA".into() }).await.ok()?.into_inner();
            (p.delivery_attempts >= 8).then_some(p)
        }
    })
    .await;
    let elapsed = started.elapsed();
    // Without backoff, eight attempts at a closed port take milliseconds. With it, the waits
    // between them are at least 25 + 50 + 100 + 200 × 4 = 975 ms.
    assert!(elapsed >= Duration::from_millis(975), "8 attempts in {elapsed:?}: the outbox is not backing off");
    let rate = p.delivery_attempts as f64 / elapsed.as_secs_f64();
    eprintln!(
        "retries to a dead partner: {} attempts in {elapsed:?} ({rate:.1}/s overall; with the 400 ms cap and jitter, at most 5/s once capped)",
        p.delivery_attempts
    );
    assert_eq!(p.pending_messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partner_gets_one_long_lived_channel_for_locate_and_messages() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    // Every call DGW makes to UVA goes through a relay that counts connections.
    let to_uva = rota_tests::Link::to(&uva).await;
    dgw.add_partner_via(&mut uva, &to_uva, "p2p").await;
    uva.add_partner(&mut dgw, "p2p", 100).await;
    for i in 0..3 {
        uva.add_item(&format!("UVA-{i}"), "Glad reunion", "0914520407", "available").await;
    }
    // Three requests, each with a Locate, a Request and a Received message to UVA.
    for _ in 0..3 {
        let id = rota_tests::request_isbn(&mut dgw, "Glad reunion", "0914520407").await;
        dgw.wait_state(&id, "will_supply").await;
        uva.lend_act(spb::LendingActionRequest { id: id.clone(), action: "ship".into(), ..Default::default() })
            .await
            .unwrap();
        dgw.wait_state(&id, "shipped").await;
        dgw.borrow_act(&id, "receive").await.unwrap();
        uva.wait_lending(&id, "shipped").await;
        rota_tests::eventually("DGW's outbox to UVA to drain", PATIENCE, || {
            let mut s = dgw.staff.clone();
            async move {
                let p = s.get_partner(spb::SymbolRequest { symbol: "UVA".into() }).await.ok()?.into_inner();
                (p.pending_messages == 0).then_some(())
            }
        })
        .await;
    }
    assert_eq!(to_uva.connections(), 1, "nine calls to UVA share one connection");
}
