//! Only partners with exchanged certificates get in (DESIGN §2), and roles stay separate.

use std::time::Duration;

use rota_certs::{CaBundle, Symbol};
use rota_proto::peer::peer_client::PeerClient;
use rota_proto::peer::{self as pb};
use rota_proto::staff as spb;
use rota_tests::{PATIENCE, TestNode, eventually, partner_up, start_node};
use tonic::Code;

fn hello(symbol: &str) -> pb::HelloRequest {
    pb::HelloRequest { protocol_version: rota_proto::PROTOCOL_VERSION.into(), symbol: symbol.into(), agreement: None }
}

/// Dial `target`'s peer API with an arbitrary certificate, trusting `target`'s CA.
async fn dial_as(
    target: &TestNode,
    cert_pem: &str,
    key_pem: &str,
) -> Result<PeerClient<tonic::transport::Channel>, String> {
    let tls =
        rota_certs::tls::client_config(Symbol::parse(&target.symbol).unwrap(), &target.ca_der(), cert_pem, key_pem)
            .unwrap();
    rota_proto::channel::connect(&target.url, tls, Duration::from_secs(10))
        .await
        .map(PeerClient::new)
        .map_err(|e| format!("{e:?}"))
}

async fn refused(target: &TestNode, cert_pem: &str, key_pem: &str, symbol: &str) -> bool {
    match dial_as(target, cert_pem, key_pem).await {
        Err(_) => true,
        Ok(mut c) => c.hello(hello(symbol)).await.is_err(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let target = start_node("DGW").await;
    let sym = Symbol::parse("EVIL").unwrap();
    let ca = CaBundle::generate(&sym, "Nobody").unwrap();
    let cert = ca.issue_node(&sym, &["127.0.0.1".into()]).unwrap();
    assert!(refused(&target, &cert.cert_pem, &cert.key_pem, "EVIL").await);
    // Even claiming to be the node itself, with a CA the node never saw.
    let me = Symbol::parse("DGW").unwrap();
    let fake = CaBundle::generate(&me, "Impostor").unwrap().issue_node(&me, &[]).unwrap();
    assert!(refused(&target, &fake.cert_pem, &fake.key_pem, "DGW").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partners_ca_cannot_vouch_for_another_partner() {
    let mut target = start_node("DGW").await;
    let mut a = start_node("AAA").await;
    let mut b = start_node("BBB").await;
    partner_up(&mut target, &mut a, "consortium", "consortium").await;
    partner_up(&mut target, &mut b, "p2p", "p2p").await;
    // A genuine certificate from A works.
    let mut ok = a.peer_client_to(&target).await.unwrap();
    ok.hello(hello("AAA")).await.unwrap();
    // A signs a certificate naming B in its SAN with A's own CA: refused.
    let a_ca = CaBundle::from_pem(&a.read("tls/ca.pem"), &a.read("tls/ca.key")).unwrap();
    let forged = a_ca.issue_node(&Symbol::parse("BBB").unwrap(), &["127.0.0.1".into()]).unwrap();
    assert!(refused(&target, &forged.cert_pem, &forged.key_pem, "BBB").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_and_removed_partners_are_refused_without_a_restart() {
    let mut target = start_node("DGW").await;
    let mut a = start_node("AAA").await;
    partner_up(&mut target, &mut a, "consortium", "consortium").await;
    let mut open = a.peer_client_to(&target).await.unwrap();
    open.hello(hello("AAA")).await.unwrap();

    target
        .staff
        .set_partner_status(spb::SetPartnerStatusRequest { symbol: "AAA".into(), status: "suspended".into() })
        .await
        .unwrap();
    // On the connection that is already open: the next RPC is refused.
    let e = open.hello(hello("AAA")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // A new connection is refused at the handshake.
    assert!(refused(&target, &a.read("tls/node.pem"), &a.read("tls/node.key"), "AAA").await);

    target
        .staff
        .set_partner_status(spb::SetPartnerStatusRequest { symbol: "AAA".into(), status: "active".into() })
        .await
        .unwrap();
    let mut again = a.peer_client_to(&target).await.unwrap();
    again.hello(hello("AAA")).await.unwrap();
    open.hello(hello("AAA")).await.unwrap();

    target.staff.remove_partner(spb::SymbolRequest { symbol: "AAA".into() }).await.unwrap();
    assert_eq!(open.hello(hello("AAA")).await.unwrap_err().code(), Code::PermissionDenied);
    assert!(refused(&target, &a.read("tls/node.pem"), &a.read("tls/node.key"), "AAA").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_and_peer_roles_are_separate() {
    let mut target = start_node("DGW").await;
    let mut a = start_node("AAA").await;
    partner_up(&mut target, &mut a, "consortium", "consortium").await;

    // A staff certificate of DGW cannot call DGW's peer API.
    let p = &target.profile;
    let mut as_staff = dial_as(&target, &p.cert_pem, &p.key_pem).await.unwrap();
    let e = as_staff.hello(hello("DGW")).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // A partner's node certificate cannot call DGW's staff API.
    let tls = rota_certs::tls::client_config(
        Symbol::parse("DGW").unwrap(),
        &target.ca_der(),
        &a.read("tls/node.pem"),
        &a.read("tls/node.key"),
    )
    .unwrap();
    let ch = rota_proto::channel::connect(&target.url, tls, Duration::from_secs(10)).await.unwrap();
    let mut staff_as_partner = spb::staff_client::StaffClient::new(ch);
    let e = staff_as_partner.list_partners(spb::Empty {}).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // A's staff certificate (another institution's staff) cannot reach DGW's staff API.
    let ap = &a.profile;
    let tls =
        rota_certs::tls::client_config(Symbol::parse("DGW").unwrap(), &target.ca_der(), &ap.cert_pem, &ap.key_pem)
            .unwrap();
    let refused_staff = match rota_proto::channel::connect(&target.url, tls, Duration::from_secs(10)).await {
        Err(_) => true,
        Ok(ch) => spb::staff_client::StaffClient::new(ch).list_partners(spb::Empty {}).await.is_err(),
    };
    assert!(refused_staff);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_are_checked_before_a_partner_is_added() {
    let mut target = start_node("DGW").await;
    let mut a = start_node("AAA").await;
    let card = a.staff.export_card(spb::Empty {}).await.unwrap().into_inner();
    let add = |fp: &str| spb::AddPartnerRequest {
        card_text: card.text.clone(),
        tier: "p2p".into(),
        priority: 1,
        expected_fingerprint: fp.into(),
    };
    let wrong = format!("SHA256:{}", "0".repeat(64));
    let e = target.staff.add_partner(add(&wrong)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("fingerprint") && e.message().contains(&card.fingerprint), "{}", e.message());
    target.staff.add_partner(add(&card.fingerprint)).await.unwrap();
    let e = target.staff.add_partner(add("")).await.unwrap_err();
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    assert!(e.message().contains("AAA"));
    let e = target.staff.add_partner(spb::AddPartnerRequest { tier: "gold".into(), ..add("") }).await.unwrap_err();
    assert!(e.message().contains("tier"), "{}", e.message());
    // The partner shows up, without a restart, and can call in.
    let mut c = a.peer_client_to(&target).await.unwrap();
    eventually("partner can call", PATIENCE, || {
        let mut c = c.clone();
        async move { c.hello(hello("AAA")).await.ok() }
    })
    .await;
    c.hello(hello("AAA")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_others_can_read_stops_the_node() {
    use std::os::unix::fs::PermissionsExt;
    rota_tests::setup();
    let dir = tempfile::tempdir().unwrap();
    let (data_dir, listener, _) = rota_tests::init_node(dir.path(), "DGW").await;
    drop(listener);
    for key in ["tls/node.key", "tls/ca.key"] {
        let path = data_dir.join(key);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{key} is written 0600");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let config = rota_node::config::Config::load(&data_dir).unwrap();
        let err = rota_node::Node::open(config, std::sync::Arc::new(rota_node::clock::SystemClock))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600") && err.contains(key), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// `rota partner check`: Hello over the real partner channel, with both agreements compared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_check_says_hello_and_finds_agreements_that_do_not_fit() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    let check = |node: &TestNode, sym: &str| {
        let mut s = node.staff.clone();
        let sym = sym.to_owned();
        async move { s.check_partner(spb::SymbolRequest { symbol: sym }).await.unwrap().into_inner() }
    };
    // DGW has UVA's card, but UVA does not have DGW's yet: UVA refuses the handshake.
    dgw.add_partner(&mut uva, "p2p", 100).await;
    let c = check(&dgw, "UVA").await;
    assert!(!c.reachable && c.error.starts_with("UVA at https://127.0.0.1:"), "{c:?}");
    assert!(c.problems.is_empty() && c.theirs.is_none(), "{c:?}");

    // UVA adds DGW but sets no agreement.
    uva.add_card(&mut dgw, "p2p", 100).await;
    let c = check(&dgw, "UVA").await;
    assert!(c.reachable, "{c:?}");
    assert_eq!((c.protocol_version.as_str(), c.name.as_str()), (rota_proto::PROTOCOL_VERSION, "UVA Test Library"));
    assert_eq!(c.problems, ["UVA has not set an agreement with you yet: it neither lends to you nor asks you"]);
    assert!(!c.theirs.unwrap().configured);

    // UVA borrows from DGW but lends nothing: each side sees the mismatch from its own end.
    uva.staff
        .set_agreement(spb::SetAgreementRequest {
            partner: "DGW".into(),
            lend: Some(false),
            borrow: Some(true),
            loan_days: Some(21),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = check(&dgw, "UVA").await;
    let theirs = c.theirs.clone().unwrap();
    assert_eq!((theirs.lend, theirs.borrow, theirs.loan_days), (false, true, 21));
    assert_eq!(
        c.problems,
        ["you borrow from UVA, but it does not lend to you: it will answer your requests Unfilled (PolicyProblem)"]
    );
    let c = check(&uva, "DGW").await;
    assert_eq!(
        c.problems,
        ["DGW borrows from you, but you do not lend to it: your node answers its requests Unfilled (PolicyProblem)"]
    );
    // Once the terms fit, there is nothing to report.
    uva.staff
        .set_agreement(spb::SetAgreementRequest { partner: "DGW".into(), lend: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert!(check(&dgw, "UVA").await.problems.is_empty());
    assert!(check(&uva, "DGW").await.problems.is_empty());

    // A suspended partner is not dialled at all; an unknown one is an error naming it.
    dgw.staff
        .set_partner_status(spb::SetPartnerStatusRequest { symbol: "UVA".into(), status: "suspended".into() })
        .await
        .unwrap();
    let c = check(&dgw, "UVA").await;
    assert!(!c.reachable && c.error.contains("suspended"), "{c:?}");
    let e = dgw.staff.check_partner(spb::SymbolRequest { symbol: "XYZ".into() }).await.unwrap_err();
    assert!(e.message().contains("XYZ"), "{e:?}");
}

/// A Hello whose agreement breaks the bounds is refused, naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_with_impossible_terms_is_refused_by_field() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    let mut peer = uva.peer_client_to(&dgw).await.unwrap();
    let view = pb::AgreementView {
        configured: true,
        lend: true,
        borrow: true,
        loan_days: 28,
        renewals: 1,
        max_outstanding: 50,
        formats: vec!["book".into()],
        expiry_seconds: 86_400,
    };
    let ok = peer.hello(pb::HelloRequest { agreement: Some(view.clone()), ..hello("UVA") }).await.unwrap();
    assert_eq!(ok.into_inner().symbol, "DGW");
    for (bad, field) in [
        (pb::AgreementView { loan_days: 0, ..view.clone() }, "agreement.loan_days"),
        (pb::AgreementView { formats: vec!["Not A Format!".into()], ..view.clone() }, "agreement.formats"),
        (pb::AgreementView { expiry_seconds: u64::MAX, ..view.clone() }, "agreement.expiry_seconds"),
    ] {
        let e = peer.hello(pb::HelloRequest { agreement: Some(bad), ..hello("UVA") }).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    let e = peer.hello(pb::HelloRequest { protocol_version: "x".repeat(100), ..hello("UVA") }).await.unwrap_err();
    assert!(e.message().starts_with("protocol_version"), "{}", e.message());
}
