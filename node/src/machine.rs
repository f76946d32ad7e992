//! The two request state machines (DESIGN §6), as pure functions:
//! `(state, event) → Result<Step, Illegal>`. A step is the next state plus the messages to
//! emit and the effects to apply; storage applies all of it in one transaction.
//!
//! Names follow Alma's, so staff recognise them. The legal transitions are listed in
//! [`BORROWING_TRANSITIONS`] and [`LENDING_TRANSITIONS`]; a test walks both tables.

use serde::{Deserialize, Serialize};

use crate::domain::{ReasonForMessage, ReasonUnfilled, RequesterAction, SupplierStatus, Symbol, named_enum};
use crate::message::SupplierBody;

named_enum!(
    /// A borrowing request's state (the borrower's side).
    BorrowingState {
        Created = "created",
        Locating = "locating",
        Sent = "sent",
        WillSupply = "will_supply",
        Conditional = "conditional",
        Shipped = "shipped",
        Received = "received",
        LoanedToPatron = "loaned_to_patron",
        ReturnedByPatron = "returned_by_patron",
        ReturnShipped = "return_shipped",
        Completed = "completed",
        Unfilled = "unfilled",
        CancelPending = "cancel_pending",
        Cancelled = "cancelled",
        RenewRequested = "renew_requested",
        Overdue = "overdue",
        Recalled = "recalled",
        Lost = "lost",
    }
);

named_enum!(
    /// A lending request's state (the lender's side).
    LendingState {
        Received = "received",
        WillSupply = "will_supply",
        Shipped = "shipped",
        ReturnShipped = "return_shipped",
        CheckedIn = "checked_in",
        Completed = "completed",
        Unfilled = "unfilled",
        Conditional = "conditional",
        CancelRequested = "cancel_requested",
        Cancelled = "cancelled",
        Expired = "expired",
        Overdue = "overdue",
        Recalled = "recalled",
        Lost = "lost",
    }
);

named_enum!(
    /// What became of one lender in a request's rota.
    SlotOutcome {
        Pending = "pending",
        Current = "current",
        Unfilled = "unfilled",
        Supplying = "supplying",
        Skipped = "skipped",
    }
);

/// An event that is not legal in the current state. Names both.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event} is not allowed while the request is {state}")]
pub struct Illegal {
    pub state: String,
    pub event: String,
}

/// A timeline entry the step asks storage to record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub event: &'static str,
    pub detail: String,
    pub partner: Option<Symbol>,
}

impl Note {
    fn new(event: &'static str, detail: impl Into<String>, partner: Option<&Symbol>) -> Self {
        Note { event, detail: detail.into(), partner: partner.cloned() }
    }
}

// ---------------------------------------------------------------------------------------
// Borrowing side

/// The borrowing side's view of a request: enough to decide any event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BorrowingView {
    pub state: BorrowingState,
    /// The lenders, in rota order.
    pub rota: Vec<Symbol>,
    /// Index of the lender being asked; `rota.len()` once exhausted.
    pub position: usize,
}

impl BorrowingView {
    pub fn current_lender(&self) -> Option<&Symbol> {
        self.rota.get(self.position)
    }

    /// Whether an answer from `from` is one the request is waiting for: `from` is the
    /// current lender and the request is still in that lender's hands. Any other answer is
    /// late, and only recorded (a late WillSupply also gets a Cancel).
    pub fn answer_is_current(&self, from: &Symbol) -> bool {
        self.current_lender() == Some(from)
            && matches!(self.state, BorrowingState::Sent | BorrowingState::Conditional | BorrowingState::WillSupply)
    }
}

/// Things that happen to a borrowing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowingEvent {
    /// Staff created the request and its rota is fixed: start asking.
    Submit,
    /// A lender's SupplierMessage arrived.
    Answer { from: Symbol, body: SupplierBody },
}

impl BorrowingEvent {
    fn name(&self) -> String {
        match self {
            BorrowingEvent::Submit => "submit".into(),
            BorrowingEvent::Answer { from, body } => format!("{} from {from}", body.status),
        }
    }
}

/// A message the borrower must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowerOut {
    /// Send the request (citation, note) to this lender.
    Request { to: Symbol },
    /// Send a RequesterMessage.
    Action { to: Symbol, action: RequesterAction, note: String },
}

/// Changes to the request's own record beyond its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowingEffect {
    Slot { index: usize, outcome: SlotOutcome, reason: Option<String> },
    Supplier(Symbol),
}

/// The result of one borrowing transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BorrowingStep {
    pub state: BorrowingState,
    pub position: usize,
    pub out: Vec<BorrowerOut>,
    pub effects: Vec<BorrowingEffect>,
    pub notes: Vec<Note>,
}

/// Legal borrowing transitions: (from, event kind, to). `*` marks "any state"; a late
/// answer from a lender that is not current never changes the state.
pub const BORROWING_TRANSITIONS: &[(&str, &str, &str)] = &[
    ("created", "submit (rota empty)", "unfilled"),
    ("created", "submit", "sent"),
    ("sent", "ExpectToSupply from current lender", "sent"),
    ("sent", "WillSupply from current lender", "will_supply"),
    ("sent", "RetryPossible from current lender", "conditional"),
    ("sent", "Unfilled from current lender, more lenders", "sent"),
    ("sent", "Unfilled from current lender, rota exhausted", "unfilled"),
    ("*", "WillSupply from a lender not current (late): Cancel sent", "*"),
    ("*", "other answer from a lender not current: recorded", "*"),
];

/// Decide one borrowing event.
pub fn borrowing_step(view: &BorrowingView, event: &BorrowingEvent) -> Result<BorrowingStep, Illegal> {
    use BorrowingState as S;
    let illegal = || Illegal { state: view.state.to_string(), event: event.name() };
    let mut step =
        BorrowingStep { state: view.state, position: view.position, out: vec![], effects: vec![], notes: vec![] };
    match event {
        BorrowingEvent::Submit => {
            if view.state != S::Created {
                return Err(illegal());
            }
            if view.rota.is_empty() {
                step.state = S::Unfilled;
                step.position = 0;
                step.notes.push(Note::new(
                    "unfilled",
                    "no lender to ask: no active partner has a borrowing agreement",
                    None,
                ));
            } else {
                ask(&mut step, view, 0);
            }
        }
        BorrowingEvent::Answer { from, body } => {
            let is_current =
                view.current_lender() == Some(from) && matches!(view.state, S::Sent | S::Conditional | S::WillSupply);
            if !is_current {
                if !view.rota.contains(from) {
                    return Err(illegal());
                }
                step.notes.push(Note::new("answer_received", format!("late answer: {}", body.summary()), Some(from)));
                if body.status == SupplierStatus::WillSupply {
                    step.out.push(BorrowerOut::Action {
                        to: from.clone(),
                        action: RequesterAction::Cancel,
                        note: "the request has moved on to another lender".into(),
                    });
                    step.notes.push(Note::new(
                        "cancel_sent",
                        "late WillSupply: cancel sent so the item is released",
                        Some(from),
                    ));
                }
                return Ok(step);
            }
            if view.state != S::Sent {
                return Err(illegal());
            }
            step.notes.push(Note::new("answer_received", body.summary(), Some(from)));
            match body.status {
                SupplierStatus::ExpectToSupply => {}
                SupplierStatus::WillSupply => {
                    step.state = S::WillSupply;
                    step.effects.push(BorrowingEffect::Slot {
                        index: view.position,
                        outcome: SlotOutcome::Supplying,
                        reason: None,
                    });
                    step.effects.push(BorrowingEffect::Supplier(from.clone()));
                }
                SupplierStatus::RetryPossible => {
                    step.state = S::Conditional;
                }
                SupplierStatus::Unfilled => {
                    let reason = body.reason_unfilled.map(|r| r.to_string());
                    step.effects.push(BorrowingEffect::Slot {
                        index: view.position,
                        outcome: SlotOutcome::Unfilled,
                        reason,
                    });
                    let next = view.position + 1;
                    if next < view.rota.len() {
                        step.notes.push(Note::new(
                            "rolled",
                            format!("{from} cannot supply; trying {}", view.rota[next]),
                            Some(from),
                        ));
                        ask(&mut step, view, next);
                    } else {
                        step.state = S::Unfilled;
                        step.position = view.rota.len();
                        step.notes.push(Note::new(
                            "unfilled",
                            "every lender in the rota was asked; none can supply",
                            None,
                        ));
                    }
                }
                _ => return Err(illegal()),
            }
        }
    }
    Ok(step)
}

fn ask(step: &mut BorrowingStep, view: &BorrowingView, index: usize) {
    let to = view.rota[index].clone();
    step.state = BorrowingState::Sent;
    step.position = index;
    step.effects.push(BorrowingEffect::Slot { index, outcome: SlotOutcome::Current, reason: None });
    step.notes.push(Note::new(
        "request_sent",
        format!("asked {to}, lender {} of {}", index + 1, view.rota.len()),
        Some(&to),
    ));
    step.out.push(BorrowerOut::Request { to });
}

// ---------------------------------------------------------------------------------------
// Lending side

/// What the lender's automatic check concluded for a new request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Supply { barcode: String },
    Unfilled { reason: ReasonUnfilled, note: String },
}

/// Things that happen to a lending request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LendingEvent {
    /// The automatic check of a newly received request.
    Decide(Decision),
    /// A RequesterMessage from the borrower.
    Requester { action: RequesterAction, note: String },
}

impl LendingEvent {
    fn name(&self) -> String {
        match self {
            LendingEvent::Decide(Decision::Supply { .. }) => "decision WillSupply".into(),
            LendingEvent::Decide(Decision::Unfilled { reason, .. }) => format!("decision Unfilled ({reason})"),
            LendingEvent::Requester { action, .. } => format!("{action} from the borrower"),
        }
    }
}

/// Changes to holdings a lending transition asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LendingEffect {
    /// Reserve this item for the request (it must be available).
    Reserve { barcode: String },
    /// Put a reserved item back on the shelf.
    Release { barcode: String },
}

/// The result of one lending transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LendingStep {
    pub state: LendingState,
    pub item_barcode: Option<String>,
    pub reason_unfilled: Option<ReasonUnfilled>,
    pub out: Vec<SupplierBody>,
    pub effects: Vec<LendingEffect>,
    pub notes: Vec<Note>,
}

/// The lending side's view of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LendingView {
    pub state: LendingState,
    pub item_barcode: Option<String>,
}

/// Legal lending transitions: (from, event, to).
pub const LENDING_TRANSITIONS: &[(&str, &str, &str)] = &[
    ("received", "decision WillSupply", "will_supply"),
    ("received", "decision Unfilled", "unfilled"),
    ("received", "Cancel from the borrower", "cancelled"),
    ("will_supply", "Cancel from the borrower", "cancelled"),
    ("unfilled", "Cancel from the borrower", "unfilled"),
    ("cancelled", "Cancel from the borrower", "cancelled"),
];

/// Decide one lending event.
pub fn lending_step(view: &LendingView, event: &LendingEvent) -> Result<LendingStep, Illegal> {
    use LendingState as S;
    let illegal = || Illegal { state: view.state.to_string(), event: event.name() };
    let mut step = LendingStep {
        state: view.state,
        item_barcode: view.item_barcode.clone(),
        reason_unfilled: None,
        out: vec![],
        effects: vec![],
        notes: vec![],
    };
    match (view.state, event) {
        (S::Received, LendingEvent::Decide(Decision::Supply { barcode })) => {
            step.state = S::WillSupply;
            step.item_barcode = Some(barcode.clone());
            step.effects.push(LendingEffect::Reserve { barcode: barcode.clone() });
            let mut body = SupplierBody::new(ReasonForMessage::RequestResponse, SupplierStatus::WillSupply);
            body.item_id = barcode.clone();
            step.notes.push(Note::new(
                "answer_sent",
                format!("{} — item reserved and on the pick list", body.summary()),
                None,
            ));
            step.out.push(body);
        }
        (S::Received, LendingEvent::Decide(Decision::Unfilled { reason, note })) => {
            step.state = S::Unfilled;
            step.reason_unfilled = Some(*reason);
            let mut body = SupplierBody::new(ReasonForMessage::RequestResponse, SupplierStatus::Unfilled);
            body.reason_unfilled = Some(*reason);
            body.note = note.clone();
            step.notes.push(Note::new("answer_sent", format!("{} — {note}", body.summary()), None));
            step.out.push(body);
        }
        (S::Received | S::WillSupply, LendingEvent::Requester { action: RequesterAction::Cancel, note }) => {
            step.state = S::Cancelled;
            if view.state == S::WillSupply
                && let Some(b) = &view.item_barcode
            {
                step.effects.push(LendingEffect::Release { barcode: b.clone() });
            }
            step.notes.push(Note::new("cancel_received", format!("borrower cancelled: {note}"), None));
            let mut body = SupplierBody::new(ReasonForMessage::CancelResponse, SupplierStatus::Cancelled);
            body.answer = Some(true);
            step.notes.push(Note::new("answer_sent", format!("{} — item released", body.summary()), None));
            step.out.push(body);
        }
        (S::Unfilled | S::Cancelled, LendingEvent::Requester { action: RequesterAction::Cancel, .. }) => {
            step.notes.push(Note::new("cancel_received", "borrower cancelled; nothing to release", None));
        }
        _ => return Err(illegal()),
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn answer(from: &str, status: SupplierStatus, reason: Option<ReasonUnfilled>) -> BorrowingEvent {
        let mut body = SupplierBody::new(ReasonForMessage::RequestResponse, status);
        body.reason_unfilled = reason;
        BorrowingEvent::Answer { from: sym(from), body }
    }

    fn view(state: BorrowingState, position: usize) -> BorrowingView {
        BorrowingView { state, rota: vec![sym("AA"), sym("BB")], position }
    }

    #[test]
    fn submit_sends_to_first_lender_or_ends_unfilled() {
        let s = borrowing_step(&view(BorrowingState::Created, 0), &BorrowingEvent::Submit).unwrap();
        assert_eq!(s.state, BorrowingState::Sent);
        assert_eq!(s.out, vec![BorrowerOut::Request { to: sym("AA") }]);
        let empty = BorrowingView { state: BorrowingState::Created, rota: vec![], position: 0 };
        assert_eq!(borrowing_step(&empty, &BorrowingEvent::Submit).unwrap().state, BorrowingState::Unfilled);
        assert!(borrowing_step(&view(BorrowingState::Sent, 0), &BorrowingEvent::Submit).is_err());
    }

    #[test]
    fn unfilled_rolls_then_exhausts() {
        let v = view(BorrowingState::Sent, 0);
        let s = borrowing_step(&v, &answer("AA", SupplierStatus::Unfilled, Some(ReasonUnfilled::NotHeld))).unwrap();
        assert_eq!((s.state, s.position), (BorrowingState::Sent, 1));
        assert_eq!(s.out, vec![BorrowerOut::Request { to: sym("BB") }]);
        let s = borrowing_step(&view(BorrowingState::Sent, 1), &answer("BB", SupplierStatus::Unfilled, None)).unwrap();
        assert_eq!((s.state, s.position), (BorrowingState::Unfilled, 2));
        assert!(s.out.is_empty());
    }

    #[test]
    fn will_supply_from_current_and_late() {
        let s =
            borrowing_step(&view(BorrowingState::Sent, 1), &answer("BB", SupplierStatus::WillSupply, None)).unwrap();
        assert_eq!(s.state, BorrowingState::WillSupply);
        assert!(s.effects.contains(&BorrowingEffect::Supplier(sym("BB"))));
        // AA answers WillSupply after the rota moved on to BB: AA gets a Cancel.
        let s = borrowing_step(&view(BorrowingState::WillSupply, 1), &answer("AA", SupplierStatus::WillSupply, None))
            .unwrap();
        assert_eq!(s.state, BorrowingState::WillSupply);
        assert!(
            matches!(&s.out[..], [BorrowerOut::Action { to, action: RequesterAction::Cancel, .. }] if *to == sym("AA"))
        );
        // A stranger to the rota is refused.
        assert!(
            borrowing_step(&view(BorrowingState::Sent, 0), &answer("CC", SupplierStatus::WillSupply, None)).is_err()
        );
    }

    #[test]
    fn lending_supply_reserves_and_cancel_releases() {
        let v = LendingView { state: LendingState::Received, item_barcode: None };
        let s = lending_step(&v, &LendingEvent::Decide(Decision::Supply { barcode: "39001".into() })).unwrap();
        assert_eq!(s.state, LendingState::WillSupply);
        assert_eq!(s.effects, vec![LendingEffect::Reserve { barcode: "39001".into() }]);
        let v = LendingView { state: LendingState::WillSupply, item_barcode: Some("39001".into()) };
        let s = lending_step(&v, &LendingEvent::Requester { action: RequesterAction::Cancel, note: String::new() })
            .unwrap();
        assert_eq!(s.state, LendingState::Cancelled);
        assert_eq!(s.effects, vec![LendingEffect::Release { barcode: "39001".into() }]);
        let e = lending_step(&v, &LendingEvent::Decide(Decision::Supply { barcode: "x".into() })).unwrap_err();
        assert_eq!(e.to_string(), "decision WillSupply is not allowed while the request is will_supply");
    }

    /// Every row of the lending table is reachable, and nothing outside it is.
    #[test]
    fn lending_table_matches_the_function() {
        let events = [
            LendingEvent::Decide(Decision::Supply { barcode: "b".into() }),
            LendingEvent::Decide(Decision::Unfilled { reason: ReasonUnfilled::NotHeld, note: String::new() }),
            LendingEvent::Requester { action: RequesterAction::Cancel, note: String::new() },
        ];
        let mut seen = vec![];
        for &state in LendingState::ALL {
            for e in &events {
                let v = LendingView { state, item_barcode: Some("b".into()) };
                if let Ok(s) = lending_step(&v, e) {
                    seen.push((state.as_str().to_owned(), e.name(), s.state.as_str().to_owned()));
                }
            }
        }
        let table: Vec<_> =
            LENDING_TRANSITIONS.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect();
        for row in &seen {
            assert!(
                table.iter().any(|t| t.0 == row.0 && row.1.starts_with(&t.1) && t.2 == row.2),
                "transition {row:?} is not in the table"
            );
        }
        for t in &table {
            assert!(
                seen.iter().any(|row| t.0 == row.0 && row.1.starts_with(&t.1) && t.2 == row.2),
                "table row {t:?} is unreachable"
            );
        }
    }

    /// Every row of the borrowing table is reachable, and nothing outside it is.
    #[test]
    fn borrowing_table_matches_the_function() {
        let events = |from: &str| {
            let mut v = vec![("submit".to_owned(), BorrowingEvent::Submit)];
            for st in [
                SupplierStatus::ExpectToSupply,
                SupplierStatus::WillSupply,
                SupplierStatus::RetryPossible,
                SupplierStatus::Unfilled,
                SupplierStatus::Loaned,
            ] {
                v.push((format!("{st} from {from}"), answer(from, st, Some(ReasonUnfilled::NotHeld))));
            }
            v
        };
        let describe = |view: &BorrowingView, name: &str, from_current: bool| -> String {
            if name == "submit" {
                return if view.rota.is_empty() { "submit (rota empty)".into() } else { "submit".into() };
            }
            let status = name.split(' ').next().unwrap_or_default();
            if !from_current {
                return if status == "WillSupply" {
                    "WillSupply from a lender not current (late): Cancel sent".into()
                } else {
                    "other answer from a lender not current: recorded".into()
                };
            }
            match status {
                "Unfilled" if view.position + 1 < view.rota.len() => {
                    "Unfilled from current lender, more lenders".into()
                }
                "Unfilled" => "Unfilled from current lender, rota exhausted".into(),
                s => format!("{s} from current lender"),
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        for &state in BorrowingState::ALL {
            for rota in [vec![], vec![sym("AA")], vec![sym("AA"), sym("BB")]] {
                for position in 0..=rota.len() {
                    let view = BorrowingView { state, rota: rota.clone(), position };
                    for from in ["AA", "BB"] {
                        for (name, e) in events(from) {
                            if let Ok(step) = borrowing_step(&view, &e) {
                                let current = view.answer_is_current(&sym(from));
                                let d = describe(&view, &name, current);
                                let late = d.contains("not current");
                                let (a, c) = if late {
                                    ("*".to_owned(), "*".to_owned())
                                } else {
                                    (state.to_string(), step.state.to_string())
                                };
                                if late {
                                    assert_eq!(step.state, state, "a late answer never changes the state");
                                }
                                seen.insert((a, d, c));
                            }
                        }
                    }
                }
            }
        }
        let table: std::collections::BTreeSet<_> =
            BORROWING_TRANSITIONS.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect();
        assert_eq!(seen, table);
    }
}
