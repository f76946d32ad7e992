//! The book's whole journey and the races around it, with real nodes (DESIGN §6).

use chrono::Utc;
use rota_proto::staff as spb;
use rota_tests::{Link, PATIENCE, eventually, partner_up, request_isbn, start_node, start_on_one_clock};

const ISBN: &str = "0914520407";

fn lend(id: &str, action: &str) -> spb::LendingActionRequest {
    spb::LendingActionRequest { id: id.into(), action: action.into(), ..Default::default() }
}

/// What the worklist of `node` says to do about request `id`, if it lists it.
async fn todo_action(node: &mut rota_tests::TestNode, id: &str) -> Option<String> {
    let items = node.staff.todo(spb::Empty {}).await.unwrap().into_inner().items;
    items.into_iter().find(|t| t.id == id).map(|t| t.action)
}

fn events(tl: &[spb::TimelineEvent]) -> Vec<&str> {
    tl.iter().map(|e| e.event.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_journey_to_completed_on_both_sides() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.add_item("UVA-1", "Glad reunion", ISBN, "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&id, "will_supply").await;
    assert_eq!(todo_action(&mut uva, &id).await.as_deref(), Some("pull the item from the shelf and ship it"));
    assert_eq!(todo_action(&mut dgw, &id).await, None, "nothing for the borrower to do yet");

    // The lender's pick list shows the item; shipping sets the due date from the agreement (28 days).
    let picks = uva.staff.pick_list(spb::Empty {}).await.unwrap().into_inner().requests;
    assert_eq!(picks.iter().map(|p| p.item_barcode.as_str()).collect::<Vec<_>>(), ["UVA-1"]);
    let shipped = uva.lend_act(lend(&id, "ship")).await.unwrap();
    let due = (Utc::now().date_naive() + chrono::Duration::days(28)).to_string();
    assert_eq!((shipped.state.as_str(), shipped.due_date.as_str()), ("shipped", due.as_str()));
    assert_eq!(uva.item_status("UVA-1").await, "on_loan");
    let b = dgw.wait_state(&id, "shipped").await;
    assert_eq!((b.due_date.as_str(), b.supplier_item.as_str()), (due.as_str(), "UVA-1"));
    assert_eq!(todo_action(&mut dgw, &id).await.as_deref(), Some("receive the item when it arrives"));

    // A wrong barcode on arrival is refused and names both barcodes.
    let e = dgw
        .staff
        .borrowing_action(spb::BorrowingActionRequest {
            id: id.clone(),
            action: "receive".into(),
            barcode: "X-9".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(e.message().contains("X-9") && e.message().contains("UVA-1"), "{}", e.message());
    dgw.staff
        .borrowing_action(spb::BorrowingActionRequest {
            id: id.clone(),
            action: "receive".into(),
            barcode: "UVA-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dgw.borrow_act(&id, "loan").await.unwrap().state, "loaned_to_patron");
    // An action that makes no sense now is refused, naming the state.
    let e = dgw.borrow_act(&id, "receive").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("loaned_to_patron"), "{}", e.message());
    assert_eq!(dgw.borrow_act(&id, "return").await.unwrap().state, "returned_by_patron");
    assert_eq!(dgw.borrow_act(&id, "ship-return").await.unwrap().state, "return_shipped");
    uva.wait_lending(&id, "return_shipped").await;
    let todo = uva.staff.todo(spb::Empty {}).await.unwrap().into_inner().items;
    assert!(todo.iter().any(|t| t.id == id && t.action.contains("check in")), "{todo:?}");
    assert_eq!(uva.lend_act(lend(&id, "check-in")).await.unwrap().state, "completed");
    assert_eq!(uva.item_status("UVA-1").await, "available");
    let done = dgw.wait_state(&id, "completed").await;
    assert_eq!(todo_action(&mut dgw, &id).await, None);
    assert_eq!(todo_action(&mut uva, &id).await, None);

    assert_eq!(
        events(&done.timeline),
        [
            "created",
            "located",
            "request_sent",
            "answer_received",
            "answer_received",
            "received",
            "loaned",
            "returned",
            "return_shipped",
            "answer_received"
        ]
    );
    let l = uva.lending(&id).await.unwrap();
    assert_eq!(
        events(&l.timeline),
        [
            "request_received",
            "reserved",
            "answer_sent",
            "answer_sent",
            "borrower_received",
            "notification",
            "notification",
            "return_shipped",
            "checked_in",
            "answer_sent"
        ]
    );
    // The node's own acts are the node's; staff acts name the staff member.
    assert_eq!(l.timeline[1].actor, "node");
    assert_eq!(l.timeline[3].actor, "staff:admin");
    // Timelines never go backwards in time.
    for tl in [&done.timeline, &l.timeline] {
        assert!(tl.windows(2).all(|w| w[0].at_unix_ms <= w[1].at_unix_ms));
    }

    // Statistics: one request to UVA, filled, shipped and received.
    let stats = dgw.staff.stats(spb::StatsRequest::default()).await.unwrap().into_inner();
    let uva_row = stats.partners.iter().find(|p| p.partner == "UVA").unwrap();
    assert_eq!((uva_row.requests, uva_row.filled, uva_row.borrowed, uva_row.fill_rate), (1, 1, 1, 1.0));
    assert!(uva_row.created_to_shipped_s > 0.0);
    let lent = uva.staff.stats(spb::StatsRequest { partner: "DGW".into() }).await.unwrap().into_inner();
    assert_eq!(lent.partners[0].lent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_shipment_releases_the_item() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.add_item("UVA-1", "Glad reunion", ISBN, "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&id, "will_supply").await;
    assert_eq!(dgw.borrow_act(&id, "cancel").await.unwrap().state, "cancel_pending");
    dgw.wait_state(&id, "cancelled").await;
    uva.wait_lending(&id, "cancelled").await;
    assert_eq!(uva.item_status("UVA-1").await, "available");
    // Shipping a cancelled request is refused.
    assert!(uva.lend_act(lend(&id, "ship")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_that_crosses_a_shipment_is_answered_no_and_the_item_comes_back() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    // UVA reaches DGW through a link the test cuts, so UVA's "shipped" is held back while
    // DGW, still believing the copy is on UVA's shelf, cancels.
    let to_dgw = Link::to(&dgw).await;
    dgw.add_partner(&mut uva, "p2p", 100).await;
    uva.add_partner_via(&mut dgw, &to_dgw, "p2p").await;
    uva.add_item("UVA-1", "Glad reunion", ISBN, "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&id, "will_supply").await;

    to_dgw.cut().await;
    uva.lend_act(lend(&id, "ship")).await.unwrap();
    assert_eq!(uva.pending_to("DGW").await, 1, "the shipment notice waits in UVA's outbox");
    // DGW still believes the item is on the shelf and cancels.
    assert_eq!(dgw.borrow_act(&id, "cancel").await.unwrap().state, "cancel_pending");
    let l = uva.wait_lending(&id, "shipped").await;
    let cancel_seen = rota_tests::eventually("UVA to answer the cancel", rota_tests::PATIENCE, || {
        let mut u = uva.staff.clone();
        let id = id.clone();
        async move {
            let l = u.get_lending(spb::IdRequest { id }).await.ok()?.into_inner();
            l.timeline.iter().any(|e| e.event == "cancel_received").then_some(l)
        }
    })
    .await;
    assert_eq!(cancel_seen.state, "shipped", "{:?}", l.timeline);
    assert_eq!(dgw.request(&id).await.state, "cancel_pending", "DGW has heard nothing of the shipment yet");
    to_dgw.heal();
    // Once UVA's messages arrive, DGW is shipped and knows the cancel was refused.
    let b = dgw.wait_state(&id, "shipped").await;
    assert!(events(&b.timeline).contains(&"cancel_refused"), "{:#?}", b.timeline);
    // The worklist says what to do with an item that comes after all.
    let todo = dgw.staff.todo(spb::Empty {}).await.unwrap().into_inner().items;
    let t = todo.iter().find(|t| t.id == id).expect("the request is on the worklist");
    assert_eq!(t.action, "you cancelled, but the lender had shipped: receive the item and ship it back");
    // The item comes back by the normal return path.
    dgw.borrow_act(&id, "receive").await.unwrap();
    dgw.borrow_act(&id, "ship-return").await.unwrap();
    uva.wait_lending(&id, "return_shipped").await;
    uva.lend_act(lend(&id, "check-in")).await.unwrap();
    dgw.wait_state(&id, "completed").await;
    assert_eq!(uva.item_status("UVA-1").await, "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_answered_yes_and_no_and_a_recall() {
    let mut dgw = start_node("DGW").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.add_item("UVA-1", "Glad reunion", ISBN, "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&id, "will_supply").await;
    uva.lend_act(lend(&id, "ship")).await.unwrap();
    dgw.wait_state(&id, "shipped").await;
    dgw.borrow_act(&id, "receive").await.unwrap();
    dgw.borrow_act(&id, "loan").await.unwrap();

    // Renewal: no. The due date stays.
    let first_due = dgw.staff.get_request(spb::IdRequest { id: id.clone() }).await.unwrap().into_inner().due_date;
    assert_eq!(dgw.borrow_act(&id, "renew").await.unwrap().state, "renew_requested");
    uva.wait_renewal_request(&id).await;
    uva.lend_act(spb::LendingActionRequest { answer: "no".into(), ..lend(&id, "renew-answer") }).await.unwrap();
    let b = dgw.wait_state(&id, "loaned_to_patron").await;
    assert_eq!(b.due_date, first_due);
    assert!(events(&b.timeline).contains(&"renewal_refused"));

    // Renewal: yes, with a new due date. A refusal does not use up the agreement's one renewal.
    dgw.borrow_act(&id, "renew").await.unwrap();
    uva.wait_renewal_request(&id).await;
    let new_due = (Utc::now().date_naive() + chrono::Duration::days(60)).to_string();
    let l = uva
        .lend_act(spb::LendingActionRequest { answer: "yes".into(), due: new_due.clone(), ..lend(&id, "renew-answer") })
        .await
        .unwrap();
    assert_eq!((l.due_date.as_str(), l.renew_pending, l.renewals), (new_due.as_str(), false, 1));
    let b = dgw.wait_state(&id, "loaned_to_patron").await;
    assert_eq!(b.due_date, new_due);

    // The agreement allows one renewal, so the lender's node refuses a second by itself and
    // says why; staff have nothing to answer.
    dgw.borrow_act(&id, "renew").await.unwrap();
    let b = eventually("the second renewal refused", PATIENCE, || {
        let mut dgw = dgw.staff.clone();
        let id = id.clone();
        async move {
            let b = dgw.get_request(spb::IdRequest { id }).await.ok()?.into_inner();
            let refusals = b.timeline.iter().filter(|e| e.event == "renewal_refused").count();
            (b.state == "loaned_to_patron" && refusals == 2).then_some(b)
        }
    })
    .await;
    assert_eq!(b.due_date, new_due);
    let refusal = b.timeline.iter().rev().find(|e| e.event == "renewal_refused").unwrap();
    assert!(refusal.detail.contains("allows 1 renewal and 1 has been granted"), "{refusal:#?}");
    let l = uva.staff.get_lending(spb::IdRequest { id: id.clone() }).await.unwrap().into_inner();
    assert_eq!((l.state.as_str(), l.renew_pending, l.renewals), ("shipped", false, 1));

    // A recall while the patron has it.
    assert_eq!(uva.lend_act(lend(&id, "recall")).await.unwrap().state, "recalled");
    dgw.wait_state(&id, "recalled").await;
    dgw.borrow_act(&id, "return").await.unwrap();
    dgw.borrow_act(&id, "ship-return").await.unwrap();
    uva.wait_lending(&id, "return_shipped").await;
    uva.lend_act(lend(&id, "check-in")).await.unwrap();
    dgw.wait_state(&id, "completed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_offers_accepted_and_declined() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    aaa.add_item("A-1", "Glad reunion", ISBN, "available").await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;

    // Declined: AAA offers library use only; DGW declines; the rota rolls on to UVA.
    let first = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&first, "will_supply").await;
    let cond = spb::LendingActionRequest {
        code: "LibraryUseOnly".into(),
        note: "reading room only".into(),
        ..lend(&first, "condition")
    };
    assert_eq!(aaa.lend_act(cond).await.unwrap().state, "conditional");
    dgw.wait_state(&first, "conditional").await;
    dgw.borrow_act(&first, "decline").await.unwrap();
    let b = dgw.wait_state(&first, "will_supply").await;
    assert_eq!(b.supplier, "UVA");
    aaa.wait_lending(&first, "cancelled").await;
    assert_eq!(aaa.item_status("A-1").await, "available");

    // Accepted: the second request goes to AAA again, which offers conditions; DGW accepts.
    let second = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&second, "will_supply").await;
    aaa.lend_act(spb::LendingActionRequest { code: "LibraryUseOnly".into(), ..lend(&second, "condition") })
        .await
        .unwrap();
    dgw.wait_state(&second, "conditional").await;
    assert_eq!(todo_action(&mut dgw, &second).await.as_deref(), Some("accept or decline the lender's conditions"));
    assert_eq!(dgw.borrow_act(&second, "accept").await.unwrap().state, "will_supply");
    aaa.wait_lending(&second, "will_supply").await;
    assert_eq!(dgw.request(&second).await.supplier, "AAA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_an_unreachable_lender_expires_and_rolls_and_is_withdrawn() {
    let mut dgw = start_node("DGW").await;
    let mut aaa = start_node("AAA").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    aaa.add_item("A-1", "Glad reunion", ISBN, "available").await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    dgw.staff
        .set_agreement(spb::SetAgreementRequest {
            partner: "AAA".into(),
            expiry_seconds: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();

    // AAA is down: it cannot answer within its 1 s window.
    let stopped = aaa.stop().await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    let b = dgw.wait_state(&id, "will_supply").await;
    assert_eq!(b.supplier, "UVA");
    assert_eq!((b.rota[0].outcome.as_str(), b.rota[0].reason.as_str()), ("skipped", "expired"));
    assert!(events(&b.timeline).contains(&"expired"));

    // The request to AAA was withdrawn from DGW's outbox: when AAA comes back it never
    // hears of it, so it cannot reserve or ship a copy for it. Two lenders never both ship.
    let p = dgw.staff.get_partner(spb::SymbolRequest { symbol: "AAA".into() }).await.unwrap().into_inner();
    assert_eq!(p.pending_messages, 0);
    let mut aaa = stopped.start().await;
    assert!(aaa.lending(&id).await.is_none());
    assert_eq!(aaa.item_status("A-1").await, "available");
    assert_eq!(dgw.request(&id).await.supplier, "UVA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_fires_from_the_due_date_on_both_sides() {
    let (clock, [mut dgw, mut uva]) = start_on_one_clock(["DGW", "UVA"]).await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&id, "will_supply").await;
    uva.lend_act(lend(&id, "ship")).await.unwrap();
    dgw.wait_state(&id, "shipped").await;
    dgw.borrow_act(&id, "receive").await.unwrap();
    dgw.borrow_act(&id, "loan").await.unwrap();

    clock.advance(chrono::Duration::days(30));
    uva.wait_lending(&id, "overdue").await;
    dgw.wait_state(&id, "overdue").await;
    // Both sides' timers fire, and the lender also tells the borrower: DGW's timeline shows
    // UVA's Overdue notice, whichever came first.
    let b = dgw
        .wait_request(&id, "DGW to record UVA's Overdue notice", |r| {
            r.timeline.iter().any(|e| e.actor == "partner:UVA" && e.detail.contains("Overdue"))
        })
        .await;
    assert_eq!(b.state, "overdue", "{:#?}", b.timeline);
    let todo = dgw.staff.todo(spb::Empty {}).await.unwrap().into_inner().items;
    assert!(todo.iter().any(|t| t.id == id && t.state == "overdue"), "{todo:?}");
    // Renewing an overdue loan: the lender's worklist asks for an answer.
    dgw.borrow_act(&id, "renew").await.unwrap();
    uva.wait_renewal_request(&id).await;
    let todo = uva.staff.todo(spb::Empty {}).await.unwrap().into_inner().items;
    let t = todo.iter().find(|t| t.id == id).expect("the request is on UVA's worklist");
    assert_eq!((t.state.as_str(), t.action.as_str()), ("overdue", "answer the renewal request"));
    let l =
        uva.lend_act(spb::LendingActionRequest { answer: "yes".into(), ..lend(&id, "renew-answer") }).await.unwrap();
    assert_eq!(l.state, "shipped");
    dgw.wait_state(&id, "loaned_to_patron").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_requests_for_the_last_copy_one_copy_reserved_once() {
    let mut dgw = start_node("DGW").await;
    let mut dgu = start_node("DGU").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    partner_up(&mut dgu, &mut uva, "p2p", "p2p").await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    let (a, b) =
        tokio::join!(request_isbn(&mut dgw, "Glad reunion", ISBN), request_isbn(&mut dgu, "Glad reunion", ISBN));
    let ra = rota_tests::eventually("DGW's request to settle", rota_tests::PATIENCE, || {
        let mut s = dgw.staff.clone();
        let id = a.clone();
        async move {
            let r = s.get_request(spb::IdRequest { id }).await.ok()?.into_inner();
            matches!(r.state.as_str(), "will_supply" | "unfilled").then_some(r)
        }
    })
    .await;
    let rb = rota_tests::eventually("DGU's request to settle", rota_tests::PATIENCE, || {
        let mut s = dgu.staff.clone();
        let id = b.clone();
        async move {
            let r = s.get_request(spb::IdRequest { id }).await.ok()?.into_inner();
            matches!(r.state.as_str(), "will_supply" | "unfilled").then_some(r)
        }
    })
    .await;
    let mut states = [ra.state.as_str(), rb.state.as_str()];
    states.sort();
    assert_eq!(states, ["unfilled", "will_supply"]);
    let loser = if ra.state == "unfilled" { &ra } else { &rb };
    assert_eq!(loser.rota[0].reason, "NotOnShelf");
    let list = uva.staff.list_lending(spb::ListRequest::default()).await.unwrap().into_inner().requests;
    assert_eq!(list.iter().filter(|l| l.item_barcode == "U-1" && l.state == "will_supply").count(), 1);

    // Lists filter by state, on both sides.
    let winner = if ra.state == "will_supply" { &ra } else { &rb };
    let lending = |status: &str| spb::ListRequest { status: status.into(), limit: 0 };
    let ids = |l: Vec<spb::LendingRequest>| l.into_iter().map(|r| r.id).collect::<Vec<String>>();
    let supplying = uva.staff.list_lending(lending("will_supply")).await.unwrap().into_inner().requests;
    assert_eq!(ids(supplying), [winner.id.as_str()]);
    let refused = uva.staff.list_lending(lending("unfilled")).await.unwrap().into_inner().requests;
    assert_eq!(ids(refused), [loser.id.as_str()]);
    assert!(uva.staff.list_lending(lending("shipped")).await.unwrap().into_inner().requests.is_empty());
    let mine = dgw.staff.list_requests(lending(&ra.state)).await.unwrap().into_inner().requests;
    assert_eq!(mine.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [a.as_str()]);
    let other = if ra.state == "unfilled" { "will_supply" } else { "unfilled" };
    assert!(dgw.staff.list_requests(lending(other)).await.unwrap().into_inner().requests.is_empty());
    let e = dgw.staff.list_requests(lending("on_the_shelf")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("status"), "the error names the field: {}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_that_fell_due_while_the_node_was_down_fires_on_start() {
    let (clock, [mut dgw, mut uva]) = start_on_one_clock(["DGW", "UVA"]).await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    uva.add_item("U-1", "Glad reunion", ISBN, "available").await;
    let id = request_isbn(&mut dgw, "Glad reunion", ISBN).await;
    dgw.wait_state(&id, "will_supply").await;
    uva.lend_act(lend(&id, "ship")).await.unwrap();
    dgw.wait_state(&id, "shipped").await;

    // UVA is down while the due date passes; on start its first timer check fires.
    let stopped = uva.stop().await;
    clock.advance(chrono::Duration::days(40));
    let mut uva = stopped.start().await;
    uva.wait_lending(&id, "overdue").await;
    dgw.wait_state(&id, "overdue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pick_list_walks_the_stacks_and_stats_time_each_leg() {
    let (clock, [mut dgw, mut aaa, mut uva]) = start_on_one_clock(["DGW", "AAA", "UVA"]).await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    // (barcode, ISBN, location, call number). AAA holds every book, all out on loan, so
    // it is asked first and says no.
    let books = [
        ("U-3", "9780306406157", "Stacks", "QA76 .K5"),
        ("U-1", "9780198526636", "Annex", "PS3545.H16"),
        ("U-2", "9780262033848", "Stacks", "QA9 .A1"),
    ];
    let mut ids = vec![];
    for (barcode, isbn, location, call) in books {
        let item = spb::Item {
            barcode: barcode.into(),
            title: format!("Book {barcode}"),
            isbn: isbn.into(),
            location: location.into(),
            call_number: call.into(),
            ..Default::default()
        };
        uva.staff.add_item(item).await.unwrap();
        aaa.add_item(&format!("A{barcode}"), "Book", isbn, "on_loan").await;
        let id = request_isbn(&mut dgw, &format!("Book {barcode}"), isbn).await;
        assert_eq!(dgw.wait_state(&id, "will_supply").await.supplier, "UVA");
        ids.push(id);
    }
    let (r3, r1, r2) = (ids[0].clone(), ids[1].clone(), ids[2].clone());

    // One walk: the Annex first, then the Stacks in call-number order (QA9 before QA76).
    let picks = uva.staff.pick_list(spb::Empty {}).await.unwrap().into_inner().requests;
    let order: Vec<&str> = picks.iter().map(|p| p.item_barcode.as_str()).collect();
    assert_eq!(order, ["U-1", "U-2", "U-3"]);

    // U-3's spine is broken: UVA says no after all, and DGW's rota is exhausted.
    let rejected = uva
        .lend_act(spb::LendingActionRequest {
            reason: "PoorCondition".into(),
            note: "spine broken".into(),
            ..lend(&r3, "reject")
        })
        .await
        .unwrap();
    assert_eq!(rejected.state, "unfilled");
    assert_eq!(uva.item_status("U-3").await, "available");
    let b = dgw.wait_state(&r3, "unfilled").await;
    assert_eq!((b.rota[1].partner.as_str(), b.rota[1].reason.as_str()), ("UVA", "PoorCondition"));
    assert_eq!(
        todo_action(&mut dgw, &r3).await.as_deref(),
        Some("no lender could supply it: tell the patron or try elsewhere")
    );

    // U-1 ships an hour after the requests, U-2 three hours after; each arrives two hours
    // and one hour after shipping.
    clock.advance(chrono::Duration::hours(1));
    uva.lend_act(lend(&r1, "ship")).await.unwrap();
    dgw.wait_state(&r1, "shipped").await;
    clock.advance(chrono::Duration::hours(2));
    uva.lend_act(lend(&r2, "ship")).await.unwrap();
    dgw.wait_state(&r2, "shipped").await;
    dgw.borrow_act(&r1, "receive").await.unwrap();
    clock.advance(chrono::Duration::hours(1));
    dgw.borrow_act(&r2, "receive").await.unwrap();
    // The patron keeps U-1 for ten days; U-2 is lost.
    dgw.borrow_act(&r1, "loan").await.unwrap();
    assert_eq!(dgw.borrow_act(&r2, "lost").await.unwrap().state, "lost");
    let l = uva.wait_lending(&r2, "lost").await;
    assert!(l.timeline.iter().any(|e| e.event == "lost"), "{l:#?}");
    assert_eq!(uva.item_status("U-2").await, "missing");
    clock.advance(chrono::Duration::days(10));
    dgw.borrow_act(&r1, "return").await.unwrap();

    let stats = dgw.staff.stats(spb::StatsRequest::default()).await.unwrap().into_inner();
    let row = |p: &str| stats.partners.iter().find(|s| s.partner == p).unwrap().clone();
    let (a, u, all) = (row("AAA"), row("UVA"), stats.overall.unwrap());
    assert_eq!((a.requests, a.filled, a.fill_rate), (3, 0, 0.0));
    assert_eq!((u.requests, u.filled, u.borrowed), (3, 2, 2));
    assert!((u.fill_rate - 2.0 / 3.0).abs() < 1e-9, "{u:?}");
    assert_eq!((all.requests, all.filled, all.borrowed), (6, 2, 2));
    // Medians in seconds: request to shipping 1 h and 3 h; shipping to arrival 2 h and 1 h;
    // loan to return 10 days.
    assert_eq!((u.created_to_shipped_s, u.shipped_to_received_s), (7200.0, 5400.0));
    assert_eq!(u.loaned_to_returned_s, 864_000.0);
    assert_eq!(all.loaned_to_returned_s, 864_000.0);
    // One partner only.
    let only = dgw.staff.stats(spb::StatsRequest { partner: "UVA".into() }).await.unwrap().into_inner();
    assert_eq!(only.partners.iter().map(|s| s.partner.as_str()).collect::<Vec<_>>(), ["UVA"]);
    // The lender counts what it lent.
    let lent = uva.staff.stats(spb::StatsRequest::default()).await.unwrap().into_inner();
    assert_eq!(lent.partners.iter().find(|s| s.partner == "DGW").unwrap().lent, 2);
}
