//! The rota engine with real nodes: locate, closures, load, strategies, preview and the
//! self-ownership check (DESIGN §5).

use rota_proto::staff as spb;
use rota_tests::{NodeOptions, TestNode, partner_up, request_isbn, start_node, start_node_with};

const ISBN: &str = "0914520407";

fn citation() -> spb::Citation {
    spb::Citation { title: "Glad reunion".into(), isbn: ISBN.into(), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_shows_locate_results_and_sends_nothing() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    let mut bbb = start_node("BBB").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut bbb, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    bbb.add_item("B-1", "Glad reunion", ISBN, "on_loan").await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;

    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    assert_eq!(p.strategy, "priority");
    let rows: Vec<(&str, bool, &str, &str)> =
        p.entries.iter().map(|e| (e.partner.as_str(), e.included, e.locate.as_str(), e.reason.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("BBB", true, "not_available", "NotOnShelf"),
            ("UVA", true, "available", ""),
            ("AAA", false, "not_available", "NotHeld")
        ]
    );
    assert!(p.local_copies.is_empty());
    // Nothing was sent.
    for n in [&mut aaa, &mut bbb, &mut uva] {
        assert!(n.staff.list_lending(spb::ListRequest::default()).await.unwrap().into_inner().requests.is_empty());
    }
    assert!(dgw.staff.list_requests(spb::ListRequest::default()).await.unwrap().into_inner().requests.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_copy_on_the_shelf_is_named_unless_forced() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    dgw.staff
        .add_item(spb::Item {
            barcode: "DGW-39001".into(),
            title: "Glad reunion".into(),
            isbn: ISBN.into(),
            location: "Gelman Stacks".into(),
            call_number: "BS571 .C495".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    let req = spb::CreateRequestRequest { citation: Some(citation()), patron_id: "P-1".into(), ..Default::default() };
    let e = dgw.staff.create_request(req.clone()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("DGW-39001") && e.message().contains("Gelman Stacks"), "{}", e.message());
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    assert_eq!(p.local_copies, ["DGW-39001"]);
    let r = dgw.staff.create_request(spb::CreateRequestRequest { force: true, ..req }).await.unwrap().into_inner();
    dgw.wait_state(&r.id, "will_supply").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_and_fully_loaded_partners_are_skipped() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    let mut bbb = start_node("BBB").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut bbb, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    for n in [&mut aaa, &mut bbb, &mut uva] {
        let sym = n.symbol.clone();
        n.add_item(&format!("{sym}-1"), "Glad reunion", ISBN, "available").await;
        n.add_item(&format!("{sym}-2"), "Glad reunion", ISBN, "available").await;
    }
    // AAA is closed over today.
    let today = chrono::Utc::now().date_naive();
    let closed = dgw
        .staff
        .close_partner(spb::ClosePartnerRequest {
            symbol: "AAA".into(),
            from: (today - chrono::Duration::days(1)).to_string(),
            to: (today + chrono::Duration::days(3)).to_string(),
            note: "winter break".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.closures.len(), 1);
    // BBB may have at most one loan outstanding to us.
    dgw.staff
        .set_agreement(spb::SetAgreementRequest {
            partner: "BBB".into(),
            max_outstanding: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();

    let first = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    let r = dgw.wait_state(&first, "will_supply").await;
    assert_eq!(r.supplier, "BBB", "AAA is closed, so BBB is first");
    let second = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    let r = dgw.wait_state(&second, "will_supply").await;
    assert_eq!(r.supplier, "UVA", "BBB is at its maximum outstanding");
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    let left_out: Vec<(&str, &str)> =
        p.entries.iter().filter(|e| !e.included).map(|e| (e.partner.as_str(), e.reason.as_str())).collect();
    assert!(left_out.iter().any(|(p, r)| *p == "AAA" && r.starts_with("closed from")), "{left_out:?}");
    assert!(left_out.iter().any(|(p, r)| *p == "BBB" && r.contains("maximum of 1")), "{left_out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_lender_is_asked_last_in_its_tier() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    let mut bbb = start_node("BBB").await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut bbb, "consortium", "consortium").await;
    // AAA would be first by priority; BBB second.
    dgw.staff.remove_partner(spb::SymbolRequest { symbol: "BBB".into() }).await.unwrap();
    dgw.add_partner(&mut bbb, "consortium", 200).await;
    bbb.add_item("B-1", "Glad reunion", ISBN, "available").await;
    let _aaa_down = aaa.stop().await;
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    let order: Vec<(&str, &str)> =
        p.entries.iter().filter(|e| e.included).map(|e| (e.partner.as_str(), e.locate.as_str())).collect();
    assert_eq!(order, [("BBB", "available"), ("AAA", "unreachable")]);
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "BBB");
}

/// DGW ordering its rota by `strategy`, with AAA and BBB as p2p partners.
async fn borrower_with_two_lenders(strategy: &str) -> (TestNode, TestNode, TestNode) {
    let edit = match strategy {
        "balance" => "strategy = \"balance\"",
        "performance" => "strategy = \"performance\"",
        other => panic!("no strategy {other}"),
    };
    let opts = NodeOptions {
        config_edits: vec![("tick_ms = 1000", "tick_ms = 25"), ("strategy = \"priority\"", edit)],
        ..Default::default()
    };
    let mut dgw = start_node_with("DGW", opts).await;
    let mut aaa = start_node("AAA").await;
    let mut bbb = start_node("BBB").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    partner_up(&mut dgw, &mut bbb, "p2p", "p2p").await;
    (dgw, aaa, bbb)
}

/// The strategy a preview used, and the lenders it would ask, in order.
async fn preview_order(dgw: &mut TestNode) -> (String, Vec<String>) {
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    (p.strategy, p.entries.into_iter().filter(|e| e.included).map(|e| e.partner).collect())
}

/// `lender` ships request `id`, and the borrower sees it.
async fn ship(lender: &mut TestNode, dgw: &mut TestNode, id: &str) {
    lender
        .lend_act(spb::LendingActionRequest { id: id.into(), action: "ship".into(), ..Default::default() })
        .await
        .unwrap();
    dgw.wait_state(id, "shipped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_asks_the_lender_we_have_burdened_least_first() {
    let (mut dgw, mut aaa, mut bbb) = borrower_with_two_lenders("balance").await;
    for n in [&mut aaa, &mut bbb] {
        let sym = n.symbol.clone();
        for i in 0..3 {
            n.add_item(&format!("{sym}-{i}"), "Glad reunion", ISBN, "available").await;
        }
    }
    // By priority (equal) and symbol, AAA is first. AAA lends to us once...
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "AAA");
    ship(&mut aaa, &mut dgw, &id).await;
    // ...so with `balance`, BBB (which has lent us nothing) is asked first next time.
    assert_eq!(preview_order(&mut dgw).await, ("balance".to_owned(), vec!["BBB".to_owned(), "AAA".to_owned()]));
    let next = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    assert_eq!(dgw.wait_state(&next, "will_supply").await.supplier, "BBB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn performance_asks_the_lender_that_fills_most_first() {
    let (mut dgw, mut aaa, mut bbb) = borrower_with_two_lenders("performance").await;
    // AAA holds the book, but its copy is out: it stays in the rota (NotOnShelf) and says no.
    aaa.add_item("AAA-0", "Glad reunion", ISBN, "on_loan").await;
    bbb.add_item("BBB-0", "Glad reunion", ISBN, "available").await;
    bbb.add_item("BBB-1", "Glad reunion", ISBN, "available").await;
    // With no history, ties go by priority (equal) and symbol: AAA is asked first.
    let order = |a: &str, b: &str| ("performance".to_owned(), vec![a.to_owned(), b.to_owned()]);
    assert_eq!(preview_order(&mut dgw).await, order("AAA", "BBB"));
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "BBB");
    ship(&mut bbb, &mut dgw, &id).await;
    // AAA has filled none of one request, BBB one of one: BBB now comes first.
    assert_eq!(preview_order(&mut dgw).await, order("BBB", "AAA"));
    let next = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    let b = dgw.wait_state(&next, "will_supply").await;
    assert_eq!(b.supplier, "BBB");
    assert!(b.rota.iter().all(|e| e.partner != "AAA" || e.outcome == "pending"), "AAA was not asked: {:?}", b.rota);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_identifiers_title_and_author_match_across_case_diacritics_and_subtitles() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.staff
        .add_item(spb::Item {
            barcode: "U-77".into(),
            title: "Mémoires d'outre-tombe : édition critique".into(),
            author: "Chateaubriand, François-René".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = spb::Citation {
        title: "The MEMOIRES D'OUTRE TOMBE".into(),
        author: "chateaubriand".into(),
        ..Default::default()
    };
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(c.clone()) }).await.unwrap().into_inner();
    assert_eq!((p.entries[0].partner.as_str(), p.entries[0].locate.as_str()), ("UVA", "available"), "{p:?}");
    let other = spb::Citation { title: "Mémoires d'outre-tombe".into(), author: "Hugo".into(), ..Default::default() };
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(other) }).await.unwrap().into_inner();
    assert_eq!(p.entries[0].reason, "NotHeld", "a different author is a different work: {p:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rota_goes_by_tier_then_priority_and_leaves_out_partners_we_cannot_ask() {
    let mut dgw = start_node("DGW").await;
    // (symbol, tier at DGW, priority at DGW)
    let lenders = [
        ("ZZZ", "consortium", 10),
        ("AAA", "consortium", 50),
        ("LLL", "last_resort", 1),
        ("MMM", "p2p", 90),
        ("SSS", "consortium", 1),
        ("NNN", "p2p", 1),
    ];
    let mut up = vec![];
    for (sym, tier, priority) in lenders {
        let mut n = start_node(sym).await;
        dgw.add_partner(&mut n, tier, priority).await;
        n.add_partner(&mut dgw, "p2p", 100).await;
        n.add_item(&format!("{sym}-1"), "Glad reunion", ISBN, "available").await;
        up.push(n);
    }
    // SSS is suspended; we do not borrow from NNN.
    dgw.staff
        .set_partner_status(spb::SetPartnerStatusRequest { symbol: "SSS".into(), status: "suspended".into() })
        .await
        .unwrap();
    dgw.staff
        .set_agreement(spb::SetAgreementRequest { partner: "NNN".into(), borrow: Some(false), ..Default::default() })
        .await
        .unwrap();

    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    let order: Vec<&str> = p.entries.iter().filter(|e| e.included).map(|e| e.partner.as_str()).collect();
    // Consortium by priority (ZZZ 10 before AAA 50, whatever the symbols), then p2p, then
    // the last resort, however low its priority number.
    assert_eq!(order, ["ZZZ", "AAA", "MMM", "LLL"], "{p:?}");
    assert!(p.entries.iter().all(|e| e.partner != "SSS" || !e.included), "{p:?}");
    assert!(p.entries.iter().all(|e| e.partner != "NNN" || !e.included), "{p:?}");
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    let b = dgw.wait_state(&id, "will_supply").await;
    assert_eq!(b.supplier, "ZZZ");
    let rota: Vec<&str> = b.rota.iter().map(|e| e.partner.as_str()).collect();
    assert_eq!(rota, ["ZZZ", "AAA", "MMM", "LLL"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lender_that_hangs_is_given_up_on_after_the_locate_timeout_and_asked_last() {
    let opts = NodeOptions {
        config_edits: vec![("tick_ms = 1000", "tick_ms = 25"), ("locate_timeout_ms = 3000", "locate_timeout_ms = 400")],
        ..Default::default()
    };
    let mut dgw = start_node_with("DGW", opts).await;
    let mut hhh = start_node("HHH").await;
    let mut bbb = start_node("BBB").await;
    let to_hhh = rota_tests::Link::to(&hhh).await;
    dgw.add_partner_via(&mut hhh, &to_hhh, "consortium").await;
    hhh.add_partner(&mut dgw, "p2p", 100).await;
    dgw.add_partner(&mut bbb, "consortium", 200).await;
    bbb.add_partner(&mut dgw, "p2p", 100).await;
    hhh.add_item("H-1", "Glad reunion", ISBN, "available").await;
    bbb.add_item("B-1", "Glad reunion", ISBN, "available").await;

    // HHH accepts connections and then says nothing, as behind a broken firewall.
    to_hhh.stall();
    let started = std::time::Instant::now();
    let p = dgw.staff.preview(spb::PreviewRequest { citation: Some(citation()) }).await.unwrap().into_inner();
    let took = started.elapsed();
    let order: Vec<(&str, &str)> =
        p.entries.iter().filter(|e| e.included).map(|e| (e.partner.as_str(), e.locate.as_str())).collect();
    // HHH comes first by priority, but it did not answer in time: it is kept, last.
    assert_eq!(order, [("BBB", "available"), ("HHH", "unreachable")], "{p:?}");
    // Both were asked at once, and the hang cost one timeout, not a TCP or TLS timeout.
    assert!(took >= std::time::Duration::from_millis(350), "gave up before the timeout: {took:?}");
    assert!(took < std::time::Duration::from_secs(3), "locate waited past its timeout: {took:?}");
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "BBB");
}
