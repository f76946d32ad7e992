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

/// The lender's automatic check runs in order: is it held, is a copy lendable and on the
/// shelf, does the agreement allow it. The first check that fails gives the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lender_checks_holdings_then_copies_then_the_agreement() {
    use rota_proto::peer as pb;
    let mut uva = start_node("UVA").await;
    let mut dgw = start_node("DGW").await;
    partner_up(&mut uva, &mut dgw, "p2p", "p2p").await;
    let item = |barcode: &str, isbn: &str, policy: &str, status: &str, format: &str| spb::Item {
        barcode: barcode.into(),
        title: "Some book".into(),
        isbn: isbn.into(),
        policy: policy.into(),
        status: status.into(),
        format: format.into(),
        ..Default::default()
    };
    for i in [
        item("U-REF", "9780198526636", "library_use_only", "available", "book"),
        item("U-OUT", "9780306406157", "lendable", "on_loan", "book"),
        item("U-OK", ISBN13, "lendable", "available", "book"),
        item("U-DVD", "9780262033848", "lendable", "available", "dvd"),
    ] {
        uva.staff.add_item(i).await.unwrap();
    }
    let mut peer = dgw.peer_client_to(&uva).await.unwrap();
    let reasons = |peer: &mut rota_proto::peer::peer_client::PeerClient<tonic::transport::Channel>| {
        let mut peer = peer.clone();
        async move {
            let mut out = vec![];
            for isbn in ["9781566199094", "9780198526636", "9780306406157", ISBN13, "9780262033848"] {
                let format = if isbn == "9780262033848" { "dvd" } else { "book" };
                let c = pb::Citation {
                    title: "Some book".into(),
                    isbn: isbn.into(),
                    format: format.into(),
                    ..Default::default()
                };
                let a = peer.locate(pb::LocateRequest { citation: Some(c) }).await.unwrap().into_inner();
                out.push(if a.available {
                    "available".to_owned()
                } else {
                    pb::ReasonUnfilled::try_from(a.reason).unwrap().as_str_name().to_owned()
                });
            }
            out
        }
    };
    // With an agreement that lends everything.
    assert_eq!(
        reasons(&mut peer).await,
        [
            "REASON_UNFILLED_NOT_HELD",
            "REASON_UNFILLED_NON_CIRCULATING",
            "REASON_UNFILLED_NOT_ON_SHELF",
            "available",
            "available"
        ]
    );
    // Books only, at most one outstanding: a request for the DVD is a policy problem, the
    // book still lends.
    uva.staff
        .set_agreement(spb::SetAgreementRequest {
            partner: "DGW".into(),
            formats: vec!["book".into()],
            set_formats: true,
            max_outstanding: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let got = reasons(&mut peer).await;
    assert_eq!((got[3].as_str(), got[4].as_str()), ("available", "REASON_UNFILLED_POLICY_PROBLEM"));
    // One book reserved for DGW reaches the maximum: now the book is a policy problem too,
    // and the decision says why.
    let r = dgw
        .staff
        .create_request(spb::CreateRequestRequest {
            citation: Some(spb::Citation { title: "Some book".into(), isbn: ISBN13.into(), ..Default::default() }),
            patron_id: "P-3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    dgw.wait_state(&r.id, "will_supply").await;
    let got = reasons(&mut peer).await;
    assert_eq!(got[2], "REASON_UNFILLED_NOT_ON_SHELF", "copies are checked before the agreement");
    assert_eq!(got[3], "REASON_UNFILLED_NOT_ON_SHELF", "the only book copy is now reserved");
    // With no lending at all, what is not held is still NotHeld, and a reference copy still
    // NonCirculating: the agreement is checked last.
    uva.staff
        .set_agreement(spb::SetAgreementRequest { partner: "DGW".into(), lend: Some(false), ..Default::default() })
        .await
        .unwrap();
    let got = reasons(&mut peer).await;
    assert_eq!(
        got,
        [
            "REASON_UNFILLED_NOT_HELD",
            "REASON_UNFILLED_NON_CIRCULATING",
            "REASON_UNFILLED_NOT_ON_SHELF",
            "REASON_UNFILLED_NOT_ON_SHELF",
            "REASON_UNFILLED_POLICY_PROBLEM"
        ]
    );
}
