//! Trust, isolation and limits against real nodes over real mTLS (issue: trust and failure).
//! These come on top of tests/tests/trust.rs.

use std::time::Duration;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use rota_certs::Symbol;
use rota_proto::peer::peer_client::PeerClient;
use rota_proto::peer::{self as pb};
use rota_proto::staff as spb;
use rota_tests::{NodeOptions, PATIENCE, TestNode, eventually, partner_up, request_isbn, start_node, start_node_with};
use tonic::Code;

fn hello(symbol: &str) -> pb::HelloRequest {
    pb::HelloRequest { protocol_version: rota_proto::PROTOCOL_VERSION.into(), symbol: symbol.into(), agreement: None }
}

/// Whether `target` refuses a peer call made with this certificate and key.
async fn refused(target: &TestNode, cert_pem: &str, key_pem: &str, symbol: &str) -> bool {
    let tls =
        rota_certs::tls::client_config(Symbol::parse(&target.symbol).unwrap(), &target.ca_der(), cert_pem, key_pem)
            .unwrap();
    match rota_proto::channel::connect(&target.url, tls, Duration::from_secs(10)).await {
        Err(_) => true,
        Ok(ch) => PeerClient::new(ch).hello(hello(symbol)).await.is_err(),
    }
}

/// A node certificate for `symbol` signed by `node`'s CA, shaped by `tweak`.
fn cert_from(node: &TestNode, symbol: &str, tweak: impl FnOnce(&mut CertificateParams)) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let ca_key = KeyPair::from_pem(&node.read("tls/ca.key")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&node.read("tls/ca.pem"), ca_key).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, format!("Rota node {symbol}"));
    p.subject_alt_names = vec![
        SanType::URI(format!("urn:rota:inst:{symbol}").try_into().unwrap()),
        SanType::IpAddress("127.0.0.1".parse().unwrap()),
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    tweak(&mut p);
    (p.signed_by(&key, &issuer).unwrap().pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_the_node_must_refuse() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    let now = time::OffsetDateTime::now_utc();

    // A control: a fresh certificate from AAA's CA is accepted, so each refusal below is
    // down to the one thing that differs.
    let (ok_cert, ok_key) = cert_from(&aaa, "AAA", |_| {});
    assert!(!refused(&dgw, &ok_cert, &ok_key, "AAA").await);

    let (c, k) = cert_from(&aaa, "AAA", |p| {
        p.not_before = now - time::Duration::days(30);
        p.not_after = now - time::Duration::days(1);
    });
    assert!(refused(&dgw, &c, &k, "AAA").await, "expired");
    let (c, k) = cert_from(&aaa, "AAA", |p| {
        p.not_before = now + time::Duration::days(1);
        p.not_after = now + time::Duration::days(30);
    });
    assert!(refused(&dgw, &c, &k, "AAA").await, "not yet valid");
    let (c, k) = cert_from(&aaa, "AAA", |p| p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]);
    assert!(refused(&dgw, &c, &k, "AAA").await, "no clientAuth EKU");

    // A self-signed leaf that names AAA.
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.subject_alt_names = vec![SanType::URI("urn:rota:inst:AAA".to_string().try_into().unwrap())];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let selfsigned = p.self_signed(&key).unwrap();
    assert!(refused(&dgw, &selfsigned.pem(), &key.serialize_pem(), "AAA").await, "self-signed leaf");

    // A staff certificate of a partner institution, on the peer API.
    assert!(refused(&dgw, &aaa.profile.cert_pem, &aaa.profile.key_pem, "AAA").await, "partner staff certificate");
    // And the genuine node certificate still works.
    assert!(!refused(&dgw, &aaa.read("tls/node.pem"), &aaa.read("tls/node.key"), "AAA").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_cannot_read_or_act_on_requests_it_is_not_party_to() {
    let mut dgw = start_node("DGW").await;
    let mut bbb = start_node("BBB").await;
    let mut ccc = start_node("CCC").await;
    partner_up(&mut dgw, &mut bbb, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut ccc, "p2p", "p2p").await;
    partner_up(&mut bbb, &mut ccc, "p2p", "p2p").await;
    bbb.add_item("B-1", "Glad reunion", "0914520407", "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", "0914520407").await;
    dgw.wait_state(&id, "will_supply").await;

    let envelope = |request_id: &str, body: pb::envelope::Body| pb::Envelope {
        message_id: uuid::Uuid::new_v4().to_string(),
        request_id: request_id.into(),
        sequence: 1,
        sent_at_unix_ms: 1_800_000_000_000,
        body: Some(body),
    };
    let fake_yes = pb::envelope::Body::Supplier(pb::SupplierMessage {
        reason: pb::ReasonForMessage::StatusChange as i32,
        status: pb::SupplierStatus::Loaned as i32,
        ..Default::default()
    });
    let cancel = pb::envelope::Body::Requester(pb::RequesterMessage {
        action: pb::RequesterAction::Cancel as i32,
        ..Default::default()
    });

    // CCC tells DGW it shipped DGW's request: CCC is not in that request's dealings.
    let mut to_dgw = ccc.peer_client_to(&dgw).await.unwrap();
    let c = to_dgw.deliver(envelope(&id, fake_yes)).await.unwrap().into_inner();
    assert_eq!(
        (c.status, c.error_type),
        (pb::ConfirmationStatus::Error as i32, pb::ErrorType::UnrecognisedRequestId as i32),
        "{c:?}"
    );
    // CCC tries to cancel BBB's lending of DGW's request, using DGW's request id.
    let mut to_bbb = ccc.peer_client_to(&bbb).await.unwrap();
    let c = to_bbb.deliver(envelope(&id, cancel.clone())).await.unwrap().into_inner();
    assert_eq!(c.status, pb::ConfirmationStatus::Error as i32, "{c:?}");
    // ...or with an id of its own form that names nothing.
    let c = to_bbb.deliver(envelope("CCC-1", cancel)).await.unwrap().into_inner();
    assert_eq!(c.error_type, pb::ErrorType::UnrecognisedRequestId as i32, "{c:?}");
    // Nothing moved.
    assert_eq!(dgw.request(&id).await.state, "will_supply");
    assert_eq!(bbb.lending(&id).await.unwrap().state, "will_supply");
    assert_eq!(bbb.item_status("B-1").await, "reserved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_connections_than_the_cap_are_refused_and_normal_traffic_goes_on() {
    let opts = NodeOptions {
        config_edits: vec![("tick_ms = 1000", "tick_ms = 25"), ("max_connections = 512", "max_connections = 3")],
        ..Default::default()
    };
    let mut dgw = start_node_with("DGW", opts).await; // its staff client holds one connection
    let mut idle = vec![];
    for _ in 0..2 {
        idle.push(tokio::net::TcpStream::connect(dgw.running.addr).await.unwrap());
    }
    // Wait until the node has counted both, then one more is closed at once.
    let over = eventually("a connection over the cap to be closed", PATIENCE, || {
        let addr = dgw.running.addr;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            let mut buf = [0u8; 1];
            match tokio::time::timeout(Duration::from_millis(500), tokio::io::AsyncReadExt::read(&mut s, &mut buf))
                .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => Some(()),
                _ => None,
            }
        }
    })
    .await;
    let () = over;
    // The staff connection that was already open keeps working.
    dgw.staff.node_info(spb::Empty {}).await.unwrap();
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_over_its_rate_limit_gets_resource_exhausted_and_others_are_unharmed() {
    let opts = NodeOptions {
        config_edits: vec![
            ("tick_ms = 1000", "tick_ms = 25"),
            ("partner_rps = 100", "partner_rps = 2"),
            ("partner_burst = 200", "partner_burst = 5"),
        ],
        ..Default::default()
    };
    let mut dgw = start_node_with("DGW", opts).await;
    let mut aaa = start_node("AAA").await;
    let mut bbb = start_node("BBB").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    partner_up(&mut dgw, &mut bbb, "p2p", "p2p").await;
    let mut a = aaa.peer_client_to(&dgw).await.unwrap();
    let mut exhausted = None;
    for _ in 0..20 {
        if let Err(e) = a.hello(hello("AAA")).await {
            exhausted = Some(e);
            break;
        }
    }
    let e = exhausted.expect("20 calls at once should exceed a burst of 5");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("AAA"), "{}", e.message());
    // BBB has its own allowance.
    bbb.peer_client_to(&dgw).await.unwrap().hello(hello("BBB")).await.unwrap();
    // AAA recovers once it slows down.
    eventually("AAA to be allowed again", PATIENCE, || {
        let mut a = a.clone();
        async move { a.hello(hello("AAA")).await.ok() }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_values_are_validated_and_the_field_is_named() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    let mut p = aaa.peer_client_to(&dgw).await.unwrap();
    let e = p.hello(hello("BBB")).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().starts_with("symbol"), "{e:?}");
    let e = p.locate(pb::LocateRequest { citation: None }).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().starts_with("citation"), "{e:?}");
    let e = p
        .locate(pb::LocateRequest { citation: Some(pb::Citation { title: "x".repeat(3000), ..Default::default() }) })
        .await
        .unwrap_err();
    assert!(e.message().starts_with("citation.title"), "{e:?}");
    let bad_date = pb::Envelope {
        message_id: uuid::Uuid::new_v4().to_string(),
        request_id: "AAA-1".into(),
        sequence: 1,
        sent_at_unix_ms: 1_800_000_000_000,
        body: Some(pb::envelope::Body::Request(pb::Request {
            citation: Some(pb::Citation { title: "Glad reunion".into(), ..Default::default() }),
            service_type: pb::ServiceType::Loan as i32,
            need_before: "2026-13-40".into(),
            note: String::new(),
        })),
    };
    let e = p.deliver(bad_date).await.unwrap_err();
    assert!(e.code() == Code::InvalidArgument && e.message().starts_with("request.need_before"), "{e:?}");
    let bad_status = pb::Envelope {
        message_id: uuid::Uuid::new_v4().to_string(),
        request_id: "DGW-1".into(),
        sequence: 1,
        sent_at_unix_ms: 1_800_000_000_000,
        body: Some(pb::envelope::Body::Supplier(pb::SupplierMessage { reason: 1, status: 42, ..Default::default() })),
    };
    let e = p.deliver(bad_status).await.unwrap_err();
    assert!(e.message().starts_with("supplier.status"), "{e:?}");
}

/// The certificate `target` presents to a caller that is `caller`'s node.
async fn presented_cert(target: &TestNode, caller: &TestNode) -> Vec<u8> {
    let mut cfg = rota_certs::tls::client_config(
        Symbol::parse(&target.symbol).unwrap(),
        &target.ca_der(),
        &caller.read("tls/node.pem"),
        &caller.read("tls/node.key"),
    )
    .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(target.running.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_certificate_rotates_without_a_restart_and_partners_do_nothing() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    aaa.add_item("A-1", "Glad reunion", "0914520407", "available").await;
    let mut open = aaa.peer_client_to(&dgw).await.unwrap();
    open.hello(hello("AAA")).await.unwrap();
    let before = presented_cert(&dgw, &aaa).await;

    let info = dgw.staff.rotate_certificate(spb::Empty {}).await.unwrap().into_inner();
    let after = presented_cert(&dgw, &aaa).await;
    assert_ne!(before, after, "the node still presents its old certificate");
    assert_eq!(info.fingerprint, rota_certs::fingerprint_of_der(&after));
    let on_disk = rota_certs::tls::certs_from_pem(&dgw.read("tls/node.pem")).unwrap().remove(0).to_vec();
    assert_eq!(after, on_disk);
    // Partners do nothing: the open connection and new ones both work.
    open.hello(hello("AAA")).await.unwrap();
    aaa.peer_client_to(&dgw).await.unwrap().hello(hello("AAA")).await.unwrap();
    // DGW dials out with its new certificate too: a request to AAA goes through.
    let id = request_isbn(&mut dgw, "Glad reunion", "0914520407").await;
    assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "AAA");
    // And after a restart the node keeps the new certificate.
    let dgw = dgw.restart().await;
    assert_eq!(presented_cert(&dgw, &aaa).await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_cut_short_by_a_crash_is_finished_at_start() {
    use std::sync::Arc;
    let mut aaa = start_node("AAA").await;
    rota_tests::setup();
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, listener, url) = rota_tests::init_node(dir.path(), "DGW").await;
    // A rotation wrote both new files, then the node died before moving them into place.
    let ca = rota_certs::CaBundle::from_pem(
        &std::fs::read_to_string(data_dir.join("tls/ca.pem")).unwrap(),
        &std::fs::read_to_string(data_dir.join("tls/ca.key")).unwrap(),
    )
    .unwrap();
    let new = ca.issue_node(&Symbol::parse("DGW").unwrap(), &["127.0.0.1".into()]).unwrap();
    rota_certs::files::write_secret(&data_dir.join("tls/node.key.next"), new.key_pem.as_bytes()).unwrap();
    rota_certs::files::write_public(&data_dir.join("tls/node.pem.next"), new.cert_pem.as_bytes()).unwrap();
    let config = rota_node::config::Config::load(&data_dir).unwrap();
    let running =
        rota_node::runtime::RunningNode::start_with(config, listener, Arc::new(rota_node::clock::SystemClock))
            .await
            .unwrap();
    assert!(!data_dir.join("tls/node.pem.next").exists() && !data_dir.join("tls/node.key.next").exists());
    assert_eq!(std::fs::read_to_string(data_dir.join("tls/node.pem")).unwrap(), new.cert_pem);
    // The node serves with the new pair: a partner of DGW connects and sees it.
    let profile = rota_certs::profile::Profile::load(&data_dir.join("profiles/admin/profile.toml")).unwrap();
    let mut dgw_staff = rota_tests::staff_client(&profile).await;
    let card = aaa.staff.export_card(spb::Empty {}).await.unwrap().into_inner();
    dgw_staff
        .add_partner(spb::AddPartnerRequest {
            card_text: card.text,
            tier: "p2p".into(),
            priority: 1,
            expected_fingerprint: card.fingerprint,
        })
        .await
        .unwrap();
    let dgw_card = dgw_staff.export_card(spb::Empty {}).await.unwrap().into_inner();
    aaa.staff
        .add_partner(spb::AddPartnerRequest {
            card_text: dgw_card.text,
            tier: "p2p".into(),
            priority: 1,
            expected_fingerprint: dgw_card.fingerprint,
        })
        .await
        .unwrap();
    let tls = rota_certs::tls::client_config(
        Symbol::parse("DGW").unwrap(),
        &rota_certs::tls::certs_from_pem(&std::fs::read_to_string(data_dir.join("tls/ca.pem")).unwrap()).unwrap()[0],
        &aaa.read("tls/node.pem"),
        &aaa.read("tls/node.key"),
    )
    .unwrap();
    let ch = rota_proto::channel::connect(&url, tls, Duration::from_secs(10)).await.unwrap();
    PeerClient::new(ch).hello(hello("AAA")).await.unwrap();
    running.stop().await.unwrap();
}
