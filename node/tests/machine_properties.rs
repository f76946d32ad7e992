//! A bounded property test of the two state machines together.
//!
//! Each run simulates one borrower with two requests and three lenders with one copy each.
//! Messages travel per conversation in order (as the outbox guarantees) but conversations
//! interleave at random; staff actions and timers fire at random, illegal ones are refused
//! as the node refuses them. Every run is seeded, so a failure names its seed.
//!
//! Invariants checked after every step: no request is shipped by two lenders, a copy is
//! reserved or lent for at most one request, timelines move forward. When everything goes
//! quiet: the borrower's and the supplying lender's views agree, and every other lender
//! holds nothing for the request.

use std::collections::{BTreeMap, VecDeque};

use chrono::NaiveDate;
use rota_node::domain::{ReasonUnfilled, RequesterAction, Symbol};
use rota_node::machine::{
    BorrowerOut, BorrowingAction, BorrowingEvent, BorrowingState as B, BorrowingView, Decision, LendingAction,
    LendingEvent, LendingState as L, LendingView, borrowing_step, lending_step,
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

enum Msg {
    ToLender { action: RequesterAction, answer: Option<bool>, request: bool },
    ToBorrower(SupplierBody),
}

struct World {
    rng: fastrand::Rng,
    borrowing: Vec<BorrowingView>,
    lending: BTreeMap<(usize, usize), LendingView>,
    copies: [Copy; 3],
    /// (request, lender, direction: true = to lender) → messages in order.
    wire: BTreeMap<(usize, usize, bool), VecDeque<Msg>>,
    clock: u64,
    last_event_at: Vec<u64>,
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
            clock: 0,
            last_event_at: vec![0; REQUESTS],
            today: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        }
    }

    fn tick(&mut self, r: usize) {
        self.clock += 1;
        assert!(self.clock >= self.last_event_at[r], "timeline went backwards");
        self.last_event_at[r] = self.clock;
    }

    fn borrower(&mut self, r: usize, e: BorrowingEvent) {
        let Ok(step) = borrowing_step(&self.borrowing[r], &e) else { return };
        self.tick(r);
        for eff in &step.effects {
            if let rota_node::machine::BorrowingEffect::Withdraw(l) = eff {
                // The node deletes the undelivered messages from its outbox.
                self.wire.remove(&(r, lender_index(l), true));
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
            self.wire.entry((r, lender_index(&to), true)).or_default().push_back(msg);
        }
    }

    fn lender(&mut self, r: usize, l: usize, e: LendingEvent) {
        let Some(view) = self.lending.get(&(r, l)).cloned() else { return };
        let Ok(step) = lending_step(&view, &e) else { return };
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
        self.tick(r);
        let v = self.lending.get_mut(&(r, l)).unwrap();
        v.state = step.state;
        v.item_barcode = step.item_barcode;
        v.due = step.due;
        v.renew_pending = step.renew_pending;
        v.renewals = step.renewals;
        for body in step.out {
            self.wire.entry((r, l, false)).or_default().push_back(Msg::ToBorrower(body));
        }
    }

    /// Deliver the head of one conversation.
    fn deliver(&mut self, key: (usize, usize, bool)) {
        let Some(msg) = self.wire.get_mut(&key).and_then(VecDeque::pop_front) else { return };
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
                    self.deliver(k);
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
            self.deliver(k);
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
