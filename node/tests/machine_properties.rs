//! A bounded property test of the two state machines together.
//!
//! Each run simulates one borrower with two requests and three lenders with one copy each.
//! Messages travel per conversation in order (as the outbox guarantees) but conversations
//! interleave at random; staff actions and timers fire at random, illegal ones are refused
//! as the node refuses them. Every run is seeded, so a failure names its seed.
//!
//! Delivery is at least once, as on a real network: a message can be processed while its
//! confirmation is lost, so the sender still counts it undelivered (its expiry timer may
//! withdraw it) and sends it again later, when the receiver's de-duplication answers with
//! the first confirmation. Each confirmation carries the receiver's `sent_through`, and a
//! lender ships only when its conversation is settled, as `Store::conversation_settled`
//! decides on the node.
//!
//! Invariants checked after every step: every transition taken is a row of the published
//! table; no request is shipped by two lenders; a copy is reserved or lent for at most one
//! request; timelines move forward (the rota position never goes back, and a request that
//! ended never changes again). When everything goes quiet: the borrower's and the supplying
//! lender's views agree, and every other lender holds nothing for the request.

use std::collections::{BTreeMap, VecDeque};

use chrono::NaiveDate;
use rota_node::domain::{ReasonUnfilled, RequesterAction, Symbol};
use rota_node::machine::{
    BORROWING_TRANSITIONS, BorrowerOut, BorrowingAction, BorrowingEvent, BorrowingState as B, BorrowingView, Decision,
    LENDING_TRANSITIONS, LendingAction, LendingEvent, LendingState as L, LendingView, borrowing_step, lending_step,
};
use rota_node::message::SupplierBody;

const LENDERS: [&str; 3] = ["AA", "BB", "CC"];
const REQUESTS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Copy {
    Available,
    Reserved(usize),
    OnLoan(usize),
    Missing,
}

#[derive(Clone)]
enum Msg {
    ToLender { action: RequesterAction, answer: Option<bool>, request: bool },
    ToBorrower(SupplierBody),
}

struct World {
    rng: fastrand::Rng,
    borrowing: Vec<BorrowingView>,
    lending: BTreeMap<(usize, usize), LendingView>,
    copies: [Copy; 3],
    /// (request, lender, direction: true = to lender) → messages in order, not yet confirmed.
    wire: BTreeMap<(usize, usize, bool), VecDeque<Msg>>,
    /// Conversations whose head message was processed but whose confirmation was lost:
    /// the `sent_through` the receiver will confirm with when it comes again.
    unconfirmed: BTreeMap<(usize, usize, bool), u64>,
    /// Messages queued so far in each conversation (the sender's last sequence).
    sent: BTreeMap<(usize, usize, bool), u64>,
    /// Messages processed so far in each conversation (the receiver's last sequence).
    received: BTreeMap<(usize, usize, bool), u64>,
    /// (request, lender) → the highest `sent_through` the borrower has confirmed to it.
    announced: BTreeMap<(usize, usize), u64>,
    today: NaiveDate,
}

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn lender_index(s: &Symbol) -> usize {
    LENDERS.iter().position(|l| *l == s.as_str()).unwrap()
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut borrowing = vec![];
        for _ in 0..REQUESTS {
            let mut rota: Vec<Symbol> = LENDERS.iter().map(|l| sym(l)).collect();
            rng.shuffle(&mut rota);
            borrowing.push(BorrowingView { rota, ..Default::default() });
        }
        World {
            rng,
            borrowing,
            lending: BTreeMap::new(),
            copies: [Copy::Available; 3],
            wire: BTreeMap::new(),
            unconfirmed: BTreeMap::new(),
            sent: BTreeMap::new(),
            received: BTreeMap::new(),
            announced: BTreeMap::new(),
            today: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        }
    }

    fn enqueue(&mut self, key: (usize, usize, bool), msg: Msg) {
        self.wire.entry(key).or_default().push_back(msg);
        *self.sent.entry(key).or_default() += 1;
    }

    /// A lender may ship only when its conversation with the borrower is settled.
    fn settled(&self, r: usize, l: usize) -> bool {
        self.wire.get(&(r, l, false)).is_none_or(VecDeque::is_empty)
            && self.received.get(&(r, l, true)).copied().unwrap_or(0)
                >= self.announced.get(&(r, l)).copied().unwrap_or(0)
    }

    fn borrower(&mut self, r: usize, e: BorrowingEvent) {
        let before = self.borrowing[r].clone();
        let Ok(step) = borrowing_step(&before, &e) else { return };
        let late = matches!(&e, BorrowingEvent::Answer { from, .. } if !before.answer_is_current(from));
        assert!(
            (late && step.state == before.state)
                || in_table(
                    BORROWING_TRANSITIONS,
                    before.state.as_str(),
                    &e.label(),
                    step.state.as_str(),
                    &step.does()
                ),
            "borrowing {:?} --{}--> {:?} ({}) is not in the table",
            before.state,
            e.label(),
            step.state,
            step.does()
        );
        assert!(!borrowing_ended(before.state) || step.state == before.state, "ended request {r} moved: {e:?}");
        assert!(step.position >= before.position, "request {r}: rota position went back");
        for eff in &step.effects {
            if let rota_node::machine::BorrowingEffect::Withdraw(l) = eff {
                // The node deletes the unconfirmed messages from its outbox: any the lender
                // processed without its confirmation reaching us are withdrawn too.
                let key = (r, lender_index(l), true);
                self.wire.remove(&key);
                self.unconfirmed.remove(&key);
            }
        }
        let v = &mut self.borrowing[r];
        v.state = step.state;
        v.position = step.position;
        v.due = step.due;
        v.resume = step.resume;
        v.supplier_item = step.supplier_item;
        for out in step.out {
            let (to, msg) = match out {
                BorrowerOut::Request { to } => {
                    (to, Msg::ToLender { action: RequesterAction::Notification, answer: None, request: true })
                }
                BorrowerOut::Action { to, action, answer, .. } => {
                    (to, Msg::ToLender { action, answer, request: false })
                }
            };
            self.enqueue((r, lender_index(&to), true), msg);
        }
    }

    fn lender(&mut self, r: usize, l: usize, e: LendingEvent) {
        let Some(view) = self.lending.get(&(r, l)).cloned() else { return };
        if matches!(e, LendingEvent::Staff(LendingAction::Ship { .. })) && !self.settled(r, l) {
            return; // refused by the node: wait for the conversation to settle
        }
        let Ok(step) = lending_step(&view, &e) else { return };
        assert!(
            in_table(LENDING_TRANSITIONS, view.state.as_str(), &e.label(), step.state.as_str(), &step.does()),
            "lending {:?} --{}--> {:?} ({}) is not in the table",
            view.state,
            e.label(),
            step.state,
            step.does()
        );
        assert!(!lending_ended(view.state) || step.state == view.state, "ended lending {r}/{l} moved: {e:?}");
        // Apply holdings effects exactly as the node does: each must find the copy as expected.
        use rota_node::machine::LendingEffect as E;
        for eff in &step.effects {
            let c = &mut self.copies[l];
            match eff {
                E::Reserve { .. } => {
                    assert_eq!(*c, Copy::Available, "reserving a copy that is {c:?}");
                    *c = Copy::Reserved(r);
                }
                E::Release { .. } => {
                    assert_eq!(*c, Copy::Reserved(r));
                    *c = Copy::Available;
                }
                E::Lend { .. } => {
                    assert_eq!(*c, Copy::Reserved(r));
                    *c = Copy::OnLoan(r);
                }
                E::Return { .. } => {
                    assert_eq!(*c, Copy::OnLoan(r));
                    *c = Copy::Available;
                }
                E::Missing { .. } => {
                    assert_eq!(*c, Copy::OnLoan(r));
                    *c = Copy::Missing;
                }
            }
        }
        let v = self.lending.get_mut(&(r, l)).unwrap();
        v.state = step.state;
        v.item_barcode = step.item_barcode;
        v.due = step.due;
        v.renew_pending = step.renew_pending;
        v.renewals = step.renewals;
        for body in step.out {
            self.enqueue((r, l, false), Msg::ToBorrower(body));
        }
    }

    /// Deliver the head of one conversation. The receiver processes it (unless it did
    /// before) and confirms; with `lose`, the confirmation is lost on the way back.
    fn deliver(&mut self, key: (usize, usize, bool), lose: bool) {
        let (r, l, to_lender) = key;
        let reverse = (r, l, !to_lender);
        let sent_through = match self.unconfirmed.remove(&key) {
            // Processed before: the receiver answers with its first confirmation.
            Some(st) => st,
            None => {
                let Some(msg) = self.wire.get(&key).and_then(|q| q.front()).cloned() else { return };
                *self.received.entry(key).or_default() += 1;
                self.process(key, msg);
                self.sent.get(&reverse).copied().unwrap_or(0)
            }
        };
        if lose {
            self.unconfirmed.insert(key, sent_through);
            return;
        }
        self.wire.get_mut(&key).and_then(VecDeque::pop_front);
        if !to_lender {
            let a = self.announced.entry((r, l)).or_default();
            *a = (*a).max(sent_through);
        }
    }

    fn process(&mut self, key: (usize, usize, bool), msg: Msg) {
        let (r, l, _) = key;
        match msg {
            Msg::ToLender { request: true, .. } => {
                if self.lending.contains_key(&(r, l)) {
                    return; // refused: already received
                }
                // Each loan is under an agreement that allows 0, 1 or 2 renewals.
                let limit = self.rng.u32(0..=2);
                self.lending.insert((r, l), LendingView { renewal_limit: Some(limit), ..Default::default() });
                let decision = match self.copies[l] {
                    Copy::Available => Decision::Supply { barcode: format!("{}-1", LENDERS[l]) },
                    _ => Decision::Unfilled { reason: ReasonUnfilled::NotOnShelf, note: String::new() },
                };
                self.lender(r, l, LendingEvent::Decide(decision));
            }
            Msg::ToLender { action, answer, .. } => {
                self.lender(r, l, LendingEvent::Requester { action, note: String::new(), answer })
            }
            Msg::ToBorrower(body) => self.borrower(r, BorrowingEvent::Answer { from: sym(LENDERS[l]), body }),
        }
    }

    fn random_step(&mut self) {
        let r = self.rng.usize(..REQUESTS);
        let l = self.rng.usize(..LENDERS.len());
        match self.rng.u8(..10) {
            0..=3 => {
                let keys: Vec<_> = self.wire.iter().filter(|(_, q)| !q.is_empty()).map(|(k, _)| *k).collect();
                if !keys.is_empty() {
                    let k = keys[self.rng.usize(..keys.len())];
                    let lose = self.rng.u8(..5) == 0;
                    self.deliver(k, lose);
                }
            }
            4..=5 => {
                use BorrowingAction as A;
                let a = match self.rng.u8(..9) {
                    0 => A::Receive { barcode: None },
                    1 => A::Loan,
                    2 => A::Return,
                    3 => A::ShipReturn,
                    4 => A::Cancel { reason: String::new() },
                    5 => A::Renew,
                    6 => A::Accept,
                    7 => A::Decline,
                    _ => A::Lost,
                };
                self.borrower(r, BorrowingEvent::Staff(a));
            }
            6..=7 => {
                use LendingAction as A;
                let due = self.today + chrono::Duration::days(self.rng.i64(1..40));
                let a = match self.rng.u8(..6) {
                    0 => A::Ship { due, note: String::new() },
                    1 => A::CheckIn,
                    2 => A::Reject { reason: ReasonUnfilled::NotOnShelf, note: String::new() },
                    3 => A::Condition { code: "LibraryUseOnly".into(), note: String::new() },
                    4 => A::RenewAnswer { yes: self.rng.bool(), due: Some(due) },
                    _ => A::Recall { note: String::new() },
                };
                self.lender(r, l, LendingEvent::Staff(a));
            }
            8 => {
                let e = if self.rng.bool() {
                    // As the node decides it: has the current lender confirmed everything we sent?
                    let b = &self.borrowing[r];
                    let delivered = b
                        .rota
                        .get(b.position)
                        .is_none_or(|l| self.wire.get(&(r, lender_index(l), true)).is_none_or(VecDeque::is_empty));
                    BorrowingEvent::Expire { request_delivered: delivered }
                } else {
                    BorrowingEvent::DuePassed
                };
                self.borrower(r, e);
            }
            _ => {
                let e = if self.rng.bool() { LendingEvent::Expire } else { LendingEvent::DuePassed };
                self.lender(r, l, e);
            }
        }
        self.check_always();
    }

    fn check_always(&self) {
        for r in 0..REQUESTS {
            let shipping: Vec<usize> = (0..LENDERS.len())
                .filter(|&l| {
                    self.lending.get(&(r, l)).is_some_and(|v| {
                        matches!(
                            v.state,
                            L::Shipped | L::Overdue | L::Recalled | L::ReturnShipped | L::Completed | L::Lost
                        )
                    })
                })
                .collect();
            assert!(shipping.len() <= 1, "request {r} shipped by lenders {shipping:?}");
        }
        for ((r, l), v) in &self.lending {
            let limit = v.renewal_limit.unwrap_or(u32::MAX);
            assert!(v.renewals <= limit, "request {r} at lender {l}: {} renewals granted, limit {limit}", v.renewals);
        }
        for (l, c) in self.copies.iter().enumerate() {
            if let Copy::Reserved(r) | Copy::OnLoan(r) = c {
                let v = &self.lending[&(*r, l)];
                assert!(
                    matches!(
                        v.state,
                        L::WillSupply | L::Conditional | L::Shipped | L::Overdue | L::Recalled | L::ReturnShipped
                    ),
                    "copy {l} is {c:?} but its request is {:?}",
                    v.state
                );
            }
        }
    }

    fn quiesce(&mut self) {
        for _ in 0..10_000 {
            let Some(k) = self.wire.iter().find(|(_, q)| !q.is_empty()).map(|(k, _)| *k) else { return };
            self.deliver(k, false);
            self.check_always();
        }
        panic!("messages never stopped");
    }

    fn check_agreement(&self, seed: u64) {
        for r in 0..REQUESTS {
            let b = &self.borrowing[r];
            let current = b.rota.get(b.position).map(lender_index);
            for l in 0..LENDERS.len() {
                let Some(lv) = self.lending.get(&(r, l)) else { continue };
                let ls = lv.state;
                if Some(l) != current {
                    assert!(
                        matches!(ls, L::Unfilled | L::Cancelled | L::Expired),
                        "seed {seed}: request {r}: lender {l} left behind in {ls:?}"
                    );
                    continue;
                }
                let ok = match b.state {
                    B::WillSupply => ls == L::WillSupply,
                    B::Conditional => ls == L::Conditional,
                    B::Shipped | B::Received | B::LoanedToPatron | B::ReturnedByPatron | B::Overdue | B::Recalled => {
                        matches!(ls, L::Shipped | L::Overdue | L::Recalled)
                    }
                    B::RenewRequested => matches!(ls, L::Shipped | L::Overdue) && lv.renew_pending,
                    B::ReturnShipped => ls == L::ReturnShipped,
                    B::Completed => ls == L::Completed,
                    B::Lost => ls == L::Lost,
                    B::Cancelled | B::Unfilled => matches!(ls, L::Unfilled | L::Cancelled | L::Expired),
                    other => panic!("seed {seed}: request {r} is {other:?} with nothing in flight"),
                };
                assert!(ok, "seed {seed}: request {r}: borrower {:?} but lender {ls:?}", b.state);
            }
        }
    }
}

fn in_table(table: &[(&str, &str, &str, &str)], from: &str, event: &str, to: &str, does: &str) -> bool {
    table.iter().any(|(f, e, t, d)| *f == from && *e == event && *t == to && *d == does)
}

/// States a borrowing request never leaves. (Staff may still close an `unfilled` one.)
fn borrowing_ended(s: B) -> bool {
    matches!(s, B::Completed | B::Cancelled)
}

fn lending_ended(s: L) -> bool {
    matches!(s, L::Completed | L::Cancelled | L::Unfilled | L::Expired)
}

#[test]
fn random_event_sequences_keep_both_sides_consistent() {
    let runs: u64 = std::env::var("ROTA_PROPTEST_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    for seed in 0..runs {
        let _guard = SeedGuard(seed);
        let mut w = World::new(seed);
        for r in 0..REQUESTS {
            w.borrower(r, BorrowingEvent::Submit);
        }
        let steps = 20 + w.rng.usize(..120);
        for _ in 0..steps {
            w.random_step();
        }
        w.quiesce();
        w.check_agreement(seed);
    }
}

/// Names the seed of a failing run, whichever check fails.
struct SeedGuard(u64);

impl Drop for SeedGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("failing seed: {} (replay it by starting the loop there)", self.0);
        }
    }
}
