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
