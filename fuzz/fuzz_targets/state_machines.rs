//! Arbitrary event sequences through both state machines: no panic, and every transition
//! taken is a row of the published transition table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rota_node::domain::{ReasonForMessage, ReasonUnfilled, RequesterAction, SupplierStatus, Symbol};
use rota_node::machine::*;
use rota_node::message::SupplierBody;

fn in_table(table: &[(&str, &str, &str, &str)], from: &str, event: &str, to: &str) -> bool {
    table.iter().any(|(a, b, c, _)| *a == from && *b == event && *c == to)
}

fuzz_target!(|data: &[u8]| {
    let rota: Vec<Symbol> = ["AA", "BB", "CC"].iter().map(|s| Symbol::parse(s).unwrap()).collect();
    let mut b = BorrowingView { rota: rota.clone(), ..Default::default() };
    // The agreement allows 0, 1 or 2 renewals, or is not looked up at all.
    let renewal_limit = data.first().and_then(|b| (b % 4 < 3).then_some(u32::from(b % 4)));
    let mut l = LendingView { renewal_limit, ..Default::default() };
    let due = chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
    for chunk in data.chunks(2) {
        let (k, v) = (chunk[0], *chunk.get(1).unwrap_or(&0));
        if k % 2 == 0 {
            let from = rota[usize::from(v) % 3].clone();
            let e = match k / 2 % 8 {
                0 => BorrowingEvent::Submit,
                1 => BorrowingEvent::StartLocating,
                2 => BorrowingEvent::Expire { request_delivered: v % 2 == 0 },
                3 => BorrowingEvent::DuePassed,
                4 | 5 => {
                    let st = SupplierStatus::ALL[usize::from(v) % SupplierStatus::ALL.len()];
                    let reason = ReasonForMessage::ALL[usize::from(v / 16) % ReasonForMessage::ALL.len()];
                    let mut body = SupplierBody::new(reason, st);
                    body.reason_unfilled = Some(ReasonUnfilled::NotHeld);
                    body.answer = Some(v % 3 == 0);
                    BorrowingEvent::Answer { from, body }
                }
                _ => BorrowingEvent::Staff(match v % 9 {
                    0 => BorrowingAction::Receive { barcode: None },
                    1 => BorrowingAction::Loan,
                    2 => BorrowingAction::Return,
                    3 => BorrowingAction::ShipReturn,
                    4 => BorrowingAction::Cancel { reason: String::new() },
                    5 => BorrowingAction::Renew,
                    6 => BorrowingAction::Accept,
                    7 => BorrowingAction::Decline,
                    _ => BorrowingAction::Lost,
                }),
            };
            if let Ok(step) = borrowing_step(&b, &e) {
                let late = matches!(&e, BorrowingEvent::Answer { from, .. } if !b.answer_is_current(from));
                if late {
                    assert_eq!(step.state, b.state);
                } else {
                    assert!(in_table(BORROWING_TRANSITIONS, b.state.as_str(), &e.label(), step.state.as_str()), "{:?} {} {:?}", b.state, e.label(), step.state);
                }
                assert!(step.position <= b.rota.len());
                b = BorrowingView { state: step.state, rota: b.rota.clone(), position: step.position, due: step.due, resume: step.resume, supplier_item: step.supplier_item };
            }
        } else {
            let e = match k / 2 % 6 {
                0 => LendingEvent::Decide(if v % 2 == 0 { Decision::Supply { barcode: "b".into() } } else { Decision::Unfilled { reason: ReasonUnfilled::NotOnShelf, note: String::new() } }),
                1 => LendingEvent::Requester { action: RequesterAction::ALL[usize::from(v) % RequesterAction::ALL.len()], note: String::new(), answer: if v % 3 == 0 { Some(true) } else { None } },
                2 => LendingEvent::Expire,
                3 => LendingEvent::DuePassed,
                _ => LendingEvent::Staff(match v % 7 {
                    0 => LendingAction::Ship { due, note: String::new() },
                    1 => LendingAction::CheckIn,
                    2 => LendingAction::Reject { reason: ReasonUnfilled::NotOnShelf, note: String::new() },
                    3 => LendingAction::Condition { code: "X".into(), note: String::new() },
                    4 => LendingAction::RenewAnswer { yes: true, due: Some(due) },
                    5 => LendingAction::RenewAnswer { yes: false, due: None },
                    _ => LendingAction::Recall { note: String::new() },
                }),
            };
            if let Ok(step) = lending_step(&l, &e) {
                assert!(in_table(LENDING_TRANSITIONS, l.state.as_str(), &e.label(), step.state.as_str()), "{:?} {} {:?}", l.state, e.label(), step.state);
                assert!(step.renewals <= l.renewal_limit.unwrap_or(u32::MAX), "renewals past the agreement's limit");
                l = LendingView { state: step.state, item_barcode: step.item_barcode, due: step.due, renew_pending: step.renew_pending, renewals: step.renewals, renewal_limit: l.renewal_limit };
            }
        }
    }
});
