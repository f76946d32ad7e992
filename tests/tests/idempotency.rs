//! Exactly-once effect over at-least-once delivery (DESIGN §4 receiving rules).

use rota_proto::peer::{self as pb};
use rota_proto::staff as spb;
use rota_tests::{partner_up, start_node};

fn envelope(message_id: &str, request_id: &str, sequence: u64, note: &str) -> pb::Envelope {
    pb::Envelope {
        message_id: message_id.into(),
        request_id: request_id.into(),
        sequence,
        sent_at_unix_ms: 1_800_000_000_000,
        body: Some(pb::envelope::Body::Request(pb::Request {
            citation: Some(pb::Citation {
                title: "Glad reunion".into(),
                isbn: "0914520407".into(),
                ..Default::default()
            }),
            service_type: pb::ServiceType::Loan as i32,
            need_before: String::new(),
            note: note.into(),
        })),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_message_changes_nothing_and_gets_the_same_confirmation() {
    let mut lender = start_node("UVA").await;
    let mut borrower = start_node("DGW").await;
    partner_up(&mut lender, &mut borrower, "p2p", "p2p").await;
    lender.add_item("UVA-1", "Glad reunion", "0914520407", "available").await;
    lender.add_item("UVA-2", "Glad reunion", "0914520407", "available").await;

    let mut peer = borrower.peer_client_to(&lender).await.unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let first = peer.deliver(envelope(&id, "DGW-900", 1, "please")).await.unwrap().into_inner();
    assert_eq!(first.status, pb::ConfirmationStatus::Accepted as i32, "{first:?}");
    let timeline_len = lender.lending("DGW-900").await.unwrap().timeline.len();

    let second = peer.deliver(envelope(&id, "DGW-900", 1, "please")).await.unwrap().into_inner();
    assert_eq!(second, first, "a redelivery gets the very same confirmation");
    let l = lender.lending("DGW-900").await.unwrap();
    assert_eq!(l.timeline.len(), timeline_len, "nothing changed");
    let list = lender.staff.list_lending(spb::ListRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.requests.len(), 1);
    let reserved = lender
        .staff
        .search_items(spb::SearchItemsRequest { query: "Glad".into(), limit: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reserved.items.iter().filter(|i| i.status == "reserved").count(), 1, "only one copy reserved");

    // The same message_id with a different payload is refused.
    let changed = peer.deliver(envelope(&id, "DGW-900", 1, "a different note")).await.unwrap().into_inner();
    assert_eq!(changed.status, pb::ConfirmationStatus::Error as i32);
    assert_eq!(changed.error_type, pb::ErrorType::DuplicateMessageId as i32);
    assert_eq!(lender.lending("DGW-900").await.unwrap().timeline.len(), timeline_len);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_gaps_wait_and_stray_ids_are_refused() {
    let mut lender = start_node("UVA").await;
    let mut borrower = start_node("DGW").await;
    partner_up(&mut lender, &mut borrower, "p2p", "p2p").await;
    let mut peer = borrower.peer_client_to(&lender).await.unwrap();

    lender.add_item("UVA-1", "Glad reunion", "0914520407", "available").await;
    let cancel = |message_id: &str, sequence: u64| pb::Envelope {
        body: Some(pb::envelope::Body::Requester(pb::RequesterMessage {
            action: pb::RequesterAction::Cancel as i32,
            note: String::new(),
            answer: pb::YesNo::Unspecified as i32,
        })),
        ..envelope(message_id, "DGW-901", sequence, "")
    };

    // Sequence 2 (a cancel) before 1 (the request): retry later, and nothing is recorded.
    let cancel_id = uuid::Uuid::new_v4().to_string();
    let early = peer.deliver(cancel(&cancel_id, 2)).await.unwrap().into_inner();
    assert_eq!(early.status, pb::ConfirmationStatus::RetryLater as i32, "{early:?}");
    assert!(early.error_value.contains("expected sequence 1"), "{early:?}");
    assert!(lender.lending("DGW-901").await.is_none());
    // Redelivered in order, both are applied: the copy is promised, then released.
    let first = peer.deliver(envelope(&uuid::Uuid::new_v4().to_string(), "DGW-901", 1, "")).await.unwrap().into_inner();
    assert_eq!(first.status, pb::ConfirmationStatus::Accepted as i32, "{first:?}");
    assert_eq!(lender.lending("DGW-901").await.unwrap().state, "will_supply");
    assert_eq!(lender.item_status("UVA-1").await, "reserved");
    let second = peer.deliver(cancel(&cancel_id, 2)).await.unwrap().into_inner();
    assert_eq!(second.status, pb::ConfirmationStatus::Accepted as i32, "{second:?}");
    assert_eq!(lender.lending("DGW-901").await.unwrap().state, "cancelled");
    assert_eq!(lender.item_status("UVA-1").await, "available");
    // A new message that reuses a sequence number already received is refused.
    let reused = peer.deliver(cancel(&uuid::Uuid::new_v4().to_string(), 2)).await.unwrap().into_inner();
    assert_eq!(reused.status, pb::ConfirmationStatus::Error as i32, "{reused:?}");
    assert_eq!(reused.error_type, pb::ErrorType::BadlyFormedMessage as i32, "{reused:?}");
    assert!(reused.error_value.contains("sequence 2 of request DGW-901 was already used"), "{reused:?}");

    // A borrower may only speak for its own request ids.
    let stray = peer.deliver(envelope(&uuid::Uuid::new_v4().to_string(), "UVA-5", 1, "")).await.unwrap().into_inner();
    assert_eq!(stray.status, pb::ConfirmationStatus::Error as i32);
    assert!(stray.error_value.contains("DGW-"), "{stray:?}");

    // Wire validation names the field.
    let mut bad = envelope(&uuid::Uuid::new_v4().to_string(), "DGW-902", 1, "");
    if let Some(pb::envelope::Body::Request(r)) = &mut bad.body {
        r.citation.as_mut().unwrap().isbn = "0874669951".into();
    }
    let e = peer.deliver(bad).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().starts_with("request.citation.isbn"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locate_answers_from_holdings_and_agreement_and_oversized_messages_are_refused() {
    let mut lender = start_node("UVA").await;
    let mut borrower = start_node("DGW").await;
    partner_up(&mut lender, &mut borrower, "p2p", "p2p").await;
    lender.add_item("UVA-1", "Glad reunion", "0914520407", "available").await;
    lender.add_item("UVA-2", "Glad reunion", "9780914520405", "available").await;
    let mut peer = borrower.peer_client_to(&lender).await.unwrap();
    let locate = |isbn: &str| pb::LocateRequest {
        citation: Some(pb::Citation { title: "Glad reunion".into(), isbn: isbn.into(), ..Default::default() }),
    };
    let yes = peer.locate(locate("0914520407")).await.unwrap().into_inner();
    assert!(yes.available);
    assert_eq!(yes.copies, 2);
    let no = peer.locate(locate("9780198526636")).await.unwrap().into_inner();
    assert!(!no.available);
    assert_eq!(no.reason, pb::ReasonUnfilled::NotHeld as i32);
    // Locate is read-only: nothing was reserved.
    let item = lender.staff.get_item(spb::BarcodeRequest { barcode: "UVA-1".into() }).await.unwrap().into_inner();
    assert_eq!(item.status, "available");
    // The agreement is part of the answer.
    lender
        .staff
        .set_agreement(spb::SetAgreementRequest { partner: "DGW".into(), lend: Some(false), ..Default::default() })
        .await
        .unwrap();
    let policy = peer.locate(locate("0914520407")).await.unwrap().into_inner();
    assert_eq!((policy.available, policy.reason), (false, pb::ReasonUnfilled::PolicyProblem as i32));

    // A message over the 256 KiB limit is refused with a clear status.
    let big = envelope(&uuid::Uuid::new_v4().to_string(), "DGW-903", 1, &"x".repeat(300 * 1024));
    let e = peer.deliver(big).await.unwrap_err();
    assert!(matches!(e.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted), "{e:?}");
    assert!(e.message().contains("message length too large"), "{}", e.message());
    // Normal traffic goes on, on the same connection.
    let again = peer.locate(locate("0914520407")).await.unwrap().into_inner();
    assert_eq!((again.available, again.reason), (false, pb::ReasonUnfilled::PolicyProblem as i32));
}
