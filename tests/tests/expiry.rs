//! Expiry on both sides, and why rolling on never lets two lenders ship: real nodes over
//! real mutual TLS, with each direction of a partnership through a relay the test cuts
//! and heals, and a shared manual clock.

use rota_proto::staff as spb;
use rota_tests::{Link, PATIENCE, TestNode, eventually, partner_up, request_isbn, start_on_one_clock};

const ISBN: &str = "9780306406157";

fn lend(id: &str, action: &str) -> spb::LendingActionRequest {
    spb::LendingActionRequest { id: id.into(), action: action.into(), ..Default::default() }
}

async fn expiry(node: &mut TestNode, partner: &str, seconds: u64) {
    node.staff
        .set_agreement(spb::SetAgreementRequest {
            partner: partner.into(),
            expiry_seconds: Some(seconds),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Wait until `node` has no message for `partner` waiting in its outbox.
async fn drained(node: &mut TestNode, partner: &str) {
    let staff = node.staff.clone();
    eventually(&format!("{}'s outbox to {partner} to drain", node.symbol), PATIENCE, || {
        let mut s = staff.clone();
        async move {
            let p = s.get_partner(spb::SymbolRequest { symbol: partner.into() }).await.ok()?.into_inner();
            (p.pending_messages == 0).then_some(())
        }
    })
    .await;
}

const DAY: i64 = 86_400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lender_whose_answer_cannot_reach_us_gets_a_cancel_and_cannot_ship() {
    let (clock, [mut dgw, mut uva, mut aaa]) = start_on_one_clock(["DGW", "UVA", "AAA"]).await;
    // DGW reaches UVA, and UVA reaches DGW, each through a link of its own.
    let to_uva = Link::to(&uva).await;
    let to_dgw = Link::to(&dgw).await;
    dgw.add_partner_via(&mut uva, &to_uva, "consortium").await;
    uva.add_partner_via(&mut dgw, &to_dgw, "consortium").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    expiry(&mut dgw, "UVA", DAY as u64).await;
    expiry(&mut uva, "DGW", 30 * DAY as u64).await; // UVA's own expiry stays out of this test
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    aaa.add_item("A-1", "Glad reunion", ISBN, "available").await;

    // UVA gets the request and promises its copy, but its answer cannot reach DGW.
    to_dgw.cut().await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    uva.wait_lending(&id, "will_supply").await;
    assert_eq!(dgw.request(&id).await.state, "sent");
    assert_eq!(uva.pending_to("DGW").await, 1);

    // UVA cannot ship while DGW has not confirmed the promise: DGW may have moved on.
    let e = uva.lend_act(lend(&id, "ship")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("DGW has not confirmed our answer yet"), "{}", e.message());
    assert_eq!(uva.item_status("U-1").await, "reserved");

    // The expiry window passes with no answer, while DGW's link to UVA is cut too: DGW
    // queues a Cancel for UVA and rolls on to AAA, which supplies.
    to_uva.cut().await;
    clock.advance(chrono::Duration::seconds(DAY + 60));
    let b = dgw.wait_state(&id, "will_supply").await;
    assert_eq!(b.supplier, "AAA");
    assert_eq!((b.rota[0].partner.as_str(), b.rota[0].outcome.as_str()), ("UVA", "skipped"));
    assert!(b.timeline.iter().any(|e| e.event == "expired" && e.detail.contains("cancel sent")), "{:#?}", b.timeline);
    assert_eq!(dgw.pending_to("UVA").await, 1, "the Cancel waits for the link");

    // UVA's link heals first: its late promise reaches DGW, which confirms it but has a
    // Cancel on the way. UVA still may not ship, because DGW's confirmation says so.
    to_dgw.heal();
    clock.advance(chrono::Duration::minutes(10)); // past every retry backoff
    drained(&mut uva, "DGW").await;
    let e = uva.lend_act(lend(&id, "ship")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("have not reached us yet"), "{}", e.message());
    let b = dgw.request(&id).await;
    assert_eq!((b.state.as_str(), b.supplier.as_str()), ("will_supply", "AAA"), "a late promise changes nothing");
    assert!(b.timeline.iter().any(|e| e.event == "cancel_sent"), "{:#?}", b.timeline);

    // DGW's link heals: the Cancel arrives and UVA's copy goes back on the shelf.
    to_uva.heal();
    clock.advance(chrono::Duration::minutes(10));
    uva.wait_lending(&id, "cancelled").await;
    assert_eq!(uva.item_status("U-1").await, "available");
    drained(&mut dgw, "UVA").await;
    let e = uva.lend_act(lend(&id, "ship")).await.unwrap_err();
    assert!(e.message().contains("cancelled"), "{}", e.message());

    // Only AAA ships.
    aaa.lend_act(lend(&id, "ship")).await.unwrap();
    let b = dgw.wait_state(&id, "shipped").await;
    assert_eq!(b.supplier, "AAA");
    assert_eq!(uva.lending(&id).await.unwrap().state, "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promised_copy_not_shipped_within_the_window_goes_back_on_the_shelf() {
    let (clock, [mut dgw, mut uva, mut aaa]) = start_on_one_clock(["DGW", "UVA", "AAA"]).await;
    partner_up(&mut dgw, &mut uva, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut aaa, "p2p", "p2p").await;
    expiry(&mut uva, "DGW", 2 * DAY as u64).await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    aaa.add_item("A-1", "Glad reunion", ISBN, "available").await;

    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "UVA");
    // A day later UVA has still not shipped: nothing happens yet.
    clock.advance(chrono::Duration::seconds(DAY));
    uva.staff.pick_list(spb::Empty {}).await.unwrap();
    assert_eq!(uva.lending(&id).await.unwrap().state, "will_supply");

    // Past UVA's two-day window its node gives the copy back and tells DGW, which rolls on.
    clock.advance(chrono::Duration::seconds(DAY + 60));
    let l = uva.wait_lending(&id, "expired").await;
    assert!(l.timeline.iter().any(|e| e.event == "expired" && e.detail.contains("U-1 back on the shelf")), "{l:#?}");
    assert_eq!(uva.item_status("U-1").await, "available");
    // DGW was already `will_supply` (from UVA): wait for the promise to come from AAA.
    let b = dgw.wait_request(&id, "DGW to roll on to AAA", |r| r.state == "will_supply" && r.supplier == "AAA").await;
    assert_eq!(
        (b.rota[0].partner.as_str(), b.rota[0].outcome.as_str(), b.rota[0].reason.as_str()),
        ("UVA", "unfilled", "NotAvailableForILL")
    );
    let picks = uva.staff.pick_list(spb::Empty {}).await.unwrap().into_inner().requests;
    assert!(picks.is_empty(), "{picks:?}");
}
