//! A request rolls past an Unfilled consortium lender to a peer-to-peer lender that
//! supplies, and the borrower's and lenders' timelines agree.

use rota_proto::staff as spb;
use rota_tests::{partner_up, start_node};

const ISBN: &str = "0914520407"; // Glad reunion, a real LoC record
const ISBN13: &str = "9780914520405";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolls_from_consortium_to_p2p_and_timelines_agree() {
    let mut dgw = start_node("DGW").await;
    let mut dgu = start_node("DGU").await;
    let mut uva = start_node("UVA").await;
    partner_up(&mut dgw, &mut dgu, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut uva, "p2p", "p2p").await;
    // DGU holds the book but its copy is out on loan; UVA holds one copy on the shelf
    // (entered as ISBN-10). A fourth partner, AAA, does not hold it at all and is dropped
    // by Locate before anything is sent.
    dgu.add_item("DGU-1", "Glad reunion", ISBN, "on_loan").await;
    let mut aaa = start_node("AAA").await;
    partner_up(&mut dgw, &mut aaa, "consortium", "consortium").await;
    aaa.add_item("AAA-1", "Some other book", "9780198526636", "available").await;
    uva.add_item("UVA-1", "Glad reunion", ISBN, "available").await;

    let created = dgw
        .staff
        .create_request(spb::CreateRequestRequest {
            citation: Some(spb::Citation { title: "Glad reunion".into(), isbn: ISBN.into(), ..Default::default() }),
            patron_id: "P-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "DGW-1");
    let rota: Vec<_> = created.rota.iter().map(|e| (e.partner.as_str(), e.tier.as_str())).collect();
    assert_eq!(rota, [("DGU", "consortium"), ("UVA", "p2p")]);

    let done = dgw.wait_state(&created.id, "will_supply").await;
    assert_eq!(done.supplier, "UVA");
    assert_eq!(done.rota[0].outcome, "unfilled");
    assert_eq!(done.rota[0].reason, "NotOnShelf");
    assert!(aaa.lending(&created.id).await.is_none(), "AAA was never asked");
    let located = done.timeline.iter().find(|e| e.event == "located").unwrap();
    assert!(located.detail.contains("AAA (consortium) left out: NotHeld"), "{}", located.detail);
    assert_eq!(done.rota[1].outcome, "supplying");

    // The borrower heard exactly what each lender says it answered.
    let answers_at_borrower: Vec<(String, String)> = done
        .timeline
        .iter()
        .filter(|e| e.event == "answer_received")
        .map(|e| (e.partner.clone(), e.detail.clone()))
        .collect();
    assert_eq!(answers_at_borrower.len(), 2, "{:#?}", done.timeline);
    for (lender, node) in [("DGU", &mut dgu), ("UVA", &mut uva)] {
        let l = node.lending(&created.id).await.expect("lender has the request");
        assert_eq!(l.borrower, "DGW");
        let sent: Vec<&spb::TimelineEvent> = l.timeline.iter().filter(|e| e.event == "answer_sent").collect();
        assert_eq!(sent.len(), 1, "{lender}: {:#?}", l.timeline);
        let (_, heard) = answers_at_borrower.iter().find(|(p, _)| p == lender).unwrap();
        assert!(
            sent[0].detail.starts_with(heard.as_str()),
            "{lender} said {:?}, borrower heard {heard:?}",
            sent[0].detail
        );
        assert_eq!(l.timeline[0].event, "request_received");
        assert_eq!(l.timeline[0].actor, "partner:DGW");
    }
    let uva_lending = uva.lending(&created.id).await.unwrap();
    assert_eq!((uva_lending.state.as_str(), uva_lending.item_barcode.as_str()), ("will_supply", "UVA-1"));
    assert_eq!(dgu.lending(&created.id).await.unwrap().reason_unfilled, "NotOnShelf");

    // The item is reserved and on UVA's lending list; the citation was normalised.
    let item = uva.staff.get_item(spb::BarcodeRequest { barcode: "UVA-1".into() }).await.unwrap().into_inner();
    assert_eq!((item.status.as_str(), item.isbn.as_str()), ("reserved", ISBN13));
    let list = uva.staff.list_lending(spb::ListRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.requests.len(), 1);
    assert_eq!(list.requests[0].item_call_number, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reason_is_reported_and_an_exhausted_rota_ends_unfilled() {
    let mut dgw = start_node("DGW").await;
    let mut a = start_node("AAA").await;
    let mut b = start_node("BBB").await;
    let mut c = start_node("CCC").await;
    partner_up(&mut dgw, &mut a, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut b, "consortium", "consortium").await;
    partner_up(&mut dgw, &mut c, "p2p", "p2p").await;
    // AAA: on loan. BBB: library use only. CCC: available, but lends nothing to DGW.
    a.add_item("A1", "Glad reunion", ISBN, "on_loan").await;
    b.staff
        .add_item(spb::Item {
            barcode: "B1".into(),
            title: "Glad reunion".into(),
            isbn: ISBN.into(),
            policy: "library_use_only".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.add_item("C1", "Glad reunion", ISBN, "available").await;
    c.staff
        .set_agreement(spb::SetAgreementRequest { partner: "DGW".into(), lend: Some(false), ..Default::default() })
        .await
        .unwrap();

    let r = dgw
        .staff
        .create_request(spb::CreateRequestRequest {
            citation: Some(spb::Citation { title: "Glad reunion".into(), isbn: ISBN.into(), ..Default::default() }),
            patron_id: "P-2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let done = dgw.wait_state(&r.id, "unfilled").await;
    // BBB's copy never circulates: Locate drops it. AAA and CCC are asked and say why not.
    let reasons: Vec<(&str, &str)> = done.rota.iter().map(|e| (e.partner.as_str(), e.reason.as_str())).collect();
    assert_eq!(reasons, [("AAA", "NotOnShelf"), ("CCC", "PolicyProblem")]);
    assert!(b.lending(&r.id).await.is_none());
    assert_eq!(done.timeline.last().unwrap().event, "unfilled");
    // Nothing was reserved anywhere.
    let item = c.staff.get_item(spb::BarcodeRequest { barcode: "C1".into() }).await.unwrap().into_inner();
    assert_eq!(item.status, "available");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_no_lenders_is_unfilled_at_once() {
    let mut dgw = start_node("DGW").await;
    let r = dgw
        .staff
        .create_request(spb::CreateRequestRequest {
            citation: Some(spb::Citation { title: "Anything".into(), ..Default::default() }),
            patron_id: "P-3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.state, "unfilled");
    assert!(r.rota.is_empty());
}
