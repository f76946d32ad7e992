//! The two request state machines (DESIGN §6), as pure functions:
//! `(state, event) → Result<Step, Illegal>`. A step is the next state plus the messages to
//! emit and the effects to apply; storage applies all of it in one transaction.
//!
//! Names follow Alma's, so staff recognise them. The legal transitions are listed in
//! [`BORROWING_TRANSITIONS`] and [`LENDING_TRANSITIONS`]; a test walks both tables.

use chrono::NaiveDate;
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
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BorrowingView {
    pub state: BorrowingState,
    /// The lenders, in rota order.
    pub rota: Vec<Symbol>,
    /// Index of the lender being asked; `rota.len()` once exhausted.
    pub position: usize,
    /// The due date the lender set when it shipped (or renewed).
    pub due: Option<NaiveDate>,
    /// The state to go back to when a renewal is answered.
    pub resume: Option<BorrowingState>,
    /// The lender's item id (its barcode), from its WillSupply.
    pub supplier_item: Option<String>,
}

// The state enums are declared by `named_enum!`, which cannot take `#[default]`.
#[allow(clippy::derivable_impls)]
impl Default for BorrowingState {
    fn default() -> Self {
        BorrowingState::Created
    }
}

impl BorrowingView {
    pub fn current_lender(&self) -> Option<&Symbol> {
        self.rota.get(self.position)
    }

    /// Whether an answer from `from` is one the request is waiting for: `from` is the
    /// current lender and the request is still in that lender's hands. Any other answer is
    /// late, and only recorded (a late WillSupply also gets a Cancel).
    pub fn answer_is_current(&self, from: &Symbol) -> bool {
        use BorrowingState as S;
        self.current_lender() == Some(from)
            && !matches!(self.state, S::Created | S::Locating | S::Unfilled | S::Cancelled | S::Completed)
    }
}

/// What borrowing staff do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowingAction {
    /// The item has arrived (optionally checking the lender's barcode).
    Receive {
        barcode: Option<String>,
    },
    /// The item goes out to the patron.
    Loan,
    /// The patron has returned it.
    Return,
    /// The item is on its way back to the lender.
    ShipReturn,
    Cancel {
        reason: String,
    },
    Renew,
    /// Accept a conditional offer.
    Accept,
    /// Decline a conditional offer: the rota rolls on.
    Decline,
    Lost,
}

impl BorrowingAction {
    pub fn name(&self) -> &'static str {
        match self {
            BorrowingAction::Receive { .. } => "receive",
            BorrowingAction::Loan => "loan",
            BorrowingAction::Return => "return",
            BorrowingAction::ShipReturn => "ship-return",
            BorrowingAction::Cancel { .. } => "cancel",
            BorrowingAction::Renew => "renew",
            BorrowingAction::Accept => "accept",
            BorrowingAction::Decline => "decline",
            BorrowingAction::Lost => "lost",
        }
    }
}

/// Things that happen to a borrowing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowingEvent {
    /// The node is asking the candidate lenders whether they hold it (Locate).
    StartLocating,
    /// The rota is fixed: start asking.
    Submit,
    /// A lender's SupplierMessage arrived.
    Answer { from: Symbol, body: SupplierBody },
    /// A staff action.
    Staff(BorrowingAction),
    /// Timer: the current lender has not answered within the agreement's expiry window.
    /// `request_delivered` says whether that lender has confirmed receiving our Request.
    Expire { request_delivered: bool },
    /// Timer: the due date has passed.
    DuePassed,
}

impl BorrowingEvent {
    /// The event's name in the transition table.
    pub fn label(&self) -> String {
        match self {
            BorrowingEvent::StartLocating => "locate".into(),
            BorrowingEvent::Submit => "submit".into(),
            BorrowingEvent::Answer { body, .. }
                if body.reason == ReasonForMessage::CancelResponse && body.status == SupplierStatus::Loaned =>
            {
                "answer Loaned (cancel refused)".into()
            }
            BorrowingEvent::Answer { body, .. } => format!("answer {}", body.status),
            BorrowingEvent::Staff(a) => format!("staff {}", a.name()),
            BorrowingEvent::Expire { request_delivered: false } => "timer expiry, lender unreachable".into(),
            BorrowingEvent::Expire { request_delivered: true } => "timer expiry".into(),
            BorrowingEvent::DuePassed => "timer due date".into(),
        }
    }
}

/// A message the borrower must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowerOut {
    /// Send the request (citation, note) to this lender.
    Request { to: Symbol },
    /// Send a RequesterMessage.
    Action { to: Symbol, action: RequesterAction, note: String, answer: Option<bool> },
}

/// Changes to the request's own record beyond its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BorrowingEffect {
    Slot {
        index: usize,
        outcome: SlotOutcome,
        reason: Option<String>,
    },
    Supplier(Symbol),
    /// A lender was asked now (starts its expiry window).
    Asked,
    /// Take back this request's undelivered messages to a lender that never got them.
    Withdraw(Symbol),
}

/// The result of one borrowing transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BorrowingStep {
    pub state: BorrowingState,
    pub position: usize,
    pub due: Option<NaiveDate>,
    pub resume: Option<BorrowingState>,
    pub supplier_item: Option<String>,
    pub out: Vec<BorrowerOut>,
    pub effects: Vec<BorrowingEffect>,
    pub notes: Vec<Note>,
}

impl BorrowingStep {
    /// What the step sends and does beyond its state, as the transition tables list it:
    /// the messages to lenders, and taking back messages a lender never got. Empty for
    /// a step that only changes the state.
    pub fn does(&self) -> String {
        let mut parts: Vec<String> = self
            .out
            .iter()
            .map(|o| match o {
                BorrowerOut::Request { .. } => "send Request".to_owned(),
                BorrowerOut::Action { action, answer, .. } => match answer {
                    Some(true) => format!("send {action} (yes)"),
                    Some(false) => format!("send {action} (no)"),
                    None => format!("send {action}"),
                },
            })
            .collect();
        if self.effects.iter().any(|e| matches!(e, BorrowingEffect::Withdraw(_))) {
            parts.push("withdraw unsent messages".to_owned());
        }
        parts.join(", ")
    }
}

/// Legal borrowing transitions: (from, event, to, what the step sends and does, as
/// [`BorrowingStep::does`] words it). Answers come from the current lender; `*` rows are
/// answers from a lender the request has moved past, which never change the state. Where a
/// transition rolls to the next lender, both outcomes are listed.
pub const BORROWING_TRANSITIONS: &[(&str, &str, &str, &str)] = &[
    ("created", "locate", "locating", ""),
    ("created", "submit", "sent", "send Request"),
    ("created", "submit", "unfilled", ""),
    ("locating", "submit", "sent", "send Request"),
    ("locating", "submit", "unfilled", ""),
    ("sent", "answer ExpectToSupply", "sent", ""),
    ("sent", "answer WillSupply", "will_supply", ""),
    ("will_supply", "answer WillSupply", "will_supply", ""),
    ("sent", "answer RetryPossible", "conditional", ""),
    ("will_supply", "answer RetryPossible", "conditional", ""),
    ("sent", "answer Unfilled", "sent", "send Request"),
    ("sent", "answer Unfilled", "unfilled", ""),
    ("conditional", "answer Unfilled", "sent", "send Request"),
    ("conditional", "answer Unfilled", "unfilled", ""),
    ("will_supply", "answer Unfilled", "sent", "send Request"),
    ("will_supply", "answer Unfilled", "unfilled", ""),
    ("sent", "answer Cancelled", "sent", "send Request"),
    ("sent", "answer Cancelled", "unfilled", ""),
    ("conditional", "answer Cancelled", "sent", "send Request"),
    ("conditional", "answer Cancelled", "unfilled", ""),
    ("will_supply", "answer Cancelled", "sent", "send Request"),
    ("will_supply", "answer Cancelled", "unfilled", ""),
    ("cancel_pending", "answer Cancelled", "cancelled", ""),
    ("cancel_pending", "answer Unfilled", "cancelled", ""),
    ("will_supply", "answer Loaned", "shipped", ""),
    ("cancel_pending", "answer Loaned", "shipped", ""),
    ("shipped", "answer Loaned", "shipped", ""),
    ("received", "answer Loaned", "received", ""),
    ("loaned_to_patron", "answer Loaned", "loaned_to_patron", ""),
    ("will_supply", "answer Loaned (cancel refused)", "shipped", ""),
    ("cancel_pending", "answer Loaned (cancel refused)", "shipped", ""),
    ("shipped", "answer Loaned (cancel refused)", "shipped", ""),
    ("received", "answer Loaned (cancel refused)", "received", ""),
    ("loaned_to_patron", "answer Loaned (cancel refused)", "loaned_to_patron", ""),
    ("returned_by_patron", "answer Loaned (cancel refused)", "returned_by_patron", ""),
    ("return_shipped", "answer Loaned (cancel refused)", "return_shipped", ""),
    ("overdue", "answer Loaned (cancel refused)", "overdue", ""),
    ("recalled", "answer Loaned (cancel refused)", "recalled", ""),
    ("renew_requested", "answer Loaned (cancel refused)", "renew_requested", ""),
    ("lost", "answer Loaned (cancel refused)", "lost", ""),
    ("renew_requested", "answer Loaned", "received", ""),
    ("renew_requested", "answer Loaned", "loaned_to_patron", ""),
    ("renew_requested", "answer Loaned", "overdue", ""),
    ("renew_requested", "answer Loaned", "recalled", ""),
    ("shipped", "answer Overdue", "overdue", ""),
    ("received", "answer Overdue", "overdue", ""),
    ("loaned_to_patron", "answer Overdue", "overdue", ""),
    ("overdue", "answer Overdue", "overdue", ""),
    ("returned_by_patron", "answer Overdue", "returned_by_patron", ""),
    ("return_shipped", "answer Overdue", "return_shipped", ""),
    ("shipped", "answer Recalled", "recalled", ""),
    ("received", "answer Recalled", "recalled", ""),
    ("loaned_to_patron", "answer Recalled", "recalled", ""),
    ("overdue", "answer Recalled", "recalled", ""),
    ("renew_requested", "answer Recalled", "recalled", ""),
    ("return_shipped", "answer LoanCompleted", "completed", ""),
    ("lost", "answer LoanCompleted", "completed", ""),
    ("lost", "answer CompletedWithoutReturn", "lost", ""),
    ("sent", "staff cancel", "cancel_pending", "send Cancel"),
    ("conditional", "staff cancel", "cancel_pending", "send Cancel"),
    ("will_supply", "staff cancel", "cancel_pending", "send Cancel"),
    ("unfilled", "staff cancel", "cancelled", ""),
    ("conditional", "staff accept", "will_supply", "send Notification (yes)"),
    ("conditional", "staff decline", "sent", "send Cancel, send Request"),
    ("conditional", "staff decline", "unfilled", "send Cancel"),
    ("shipped", "staff receive", "received", "send Received"),
    ("received", "staff loan", "loaned_to_patron", "send Notification"),
    ("loaned_to_patron", "staff return", "returned_by_patron", "send Notification"),
    ("overdue", "staff return", "returned_by_patron", "send Notification"),
    ("recalled", "staff return", "returned_by_patron", "send Notification"),
    ("received", "staff ship-return", "return_shipped", "send ShippedReturn"),
    ("returned_by_patron", "staff ship-return", "return_shipped", "send ShippedReturn"),
    ("recalled", "staff ship-return", "return_shipped", "send ShippedReturn"),
    ("overdue", "staff ship-return", "return_shipped", "send ShippedReturn"),
    ("received", "staff renew", "renew_requested", "send Renew"),
    ("loaned_to_patron", "staff renew", "renew_requested", "send Renew"),
    ("overdue", "staff renew", "renew_requested", "send Renew"),
    ("received", "staff lost", "lost", "send Lost"),
    ("loaned_to_patron", "staff lost", "lost", "send Lost"),
    ("returned_by_patron", "staff lost", "lost", "send Lost"),
    ("overdue", "staff lost", "lost", "send Lost"),
    ("recalled", "staff lost", "lost", "send Lost"),
    ("return_shipped", "staff lost", "lost", "send Lost"),
    ("sent", "timer expiry", "sent", "send Cancel, send Request"),
    ("sent", "timer expiry", "unfilled", "send Cancel"),
    ("sent", "timer expiry, lender unreachable", "sent", "send Request, withdraw unsent messages"),
    ("sent", "timer expiry, lender unreachable", "unfilled", "withdraw unsent messages"),
    ("conditional", "timer expiry", "sent", "send Cancel, send Request"),
    ("conditional", "timer expiry", "unfilled", "send Cancel"),
    ("conditional", "timer expiry, lender unreachable", "sent", "send Cancel, send Request"),
    ("conditional", "timer expiry, lender unreachable", "unfilled", "send Cancel"),
    ("shipped", "timer due date", "overdue", ""),
    ("received", "timer due date", "overdue", ""),
    ("loaned_to_patron", "timer due date", "overdue", ""),
    ("*", "late answer WillSupply: Cancel sent", "*", "send Cancel"),
    ("*", "late answer: recorded", "*", ""),
];

/// The transition tables as Markdown, for `docs/STATES.md`.
pub fn state_tables_markdown() -> String {
    let mut out = String::from(
        "# Request states\n\n\
         Generated from `node/src/machine.rs` by the test `machine::tests::states_doc_is_current`\n\
         (`ROTA_BLESS=1 cargo test -p rota-node --lib states_doc` rewrites it). Do not edit by hand.\n\n\
         Each side has one state machine. A row is a legal transition: the state before, what\n\
         happened (`answer X` is a message from the lender, `borrower X` one from the borrower,\n\
         `staff …` a staff command, `timer …` the node's own clock), the state after, and what the\n\
         step sends to the other library and does to the copy on the shelf. Each row is checked\n\
         against the state machine by a test, message and copy included. Where a transition can\n\
         roll the rota on, both outcomes are listed. Anything not listed is refused with an error\n\
         that names the current state.\n",
    );
    for (title, all, table) in [
        ("Borrowing side", BorrowingState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(), BORROWING_TRANSITIONS),
        ("Lending side", LendingState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(), LENDING_TRANSITIONS),
    ] {
        out.push_str(&format!(
            "\n## {title}\n\nStates: {}.\n\n| from | event | to | sends and does |\n|---|---|---|---|\n",
            all.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        ));
        for (a, b, c, d) in table {
            out.push_str(&format!("| `{a}` | {b} | `{c}` | {} |\n", if d.is_empty() { "—" } else { d }));
        }
    }
    out
}

/// Decide one borrowing event.
pub fn borrowing_step(view: &BorrowingView, event: &BorrowingEvent) -> Result<BorrowingStep, Illegal> {
    use BorrowingState as S;
    let illegal = || Illegal { state: view.state.to_string(), event: event.label() };
    let mut step = BorrowingStep {
        state: view.state,
        position: view.position,
        due: view.due,
        resume: view.resume,
        supplier_item: view.supplier_item.clone(),
        out: vec![],
        effects: vec![],
        notes: vec![],
    };
    let lender = view.current_lender().cloned();
    let tell = |step: &mut BorrowingStep, action: RequesterAction, note: &str, answer: Option<bool>| {
        if let Some(to) = &lender {
            step.out.push(BorrowerOut::Action { to: to.clone(), action, note: note.to_owned(), answer });
        }
    };
    match event {
        BorrowingEvent::StartLocating => {
            if view.state != S::Created {
                return Err(illegal());
            }
            step.state = S::Locating;
        }
        BorrowingEvent::Submit => {
            if !matches!(view.state, S::Created | S::Locating) {
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
            if !view.answer_is_current(from) {
                if !view.rota.contains(from) {
                    return Err(illegal());
                }
                step.notes.push(Note::new("answer_received", format!("late answer: {}", body.summary()), Some(from)));
                if body.status == SupplierStatus::WillSupply {
                    step.out.push(BorrowerOut::Action {
                        to: from.clone(),
                        action: RequesterAction::Cancel,
                        note: "the request has moved on to another lender".into(),
                        answer: None,
                    });
                    step.notes.push(Note::new(
                        "cancel_sent",
                        "late WillSupply: cancel sent so the item is released",
                        Some(from),
                    ));
                }
                return Ok(step);
            }
            step.notes.push(Note::new("answer_received", body.summary(), Some(from)));
            use SupplierStatus as St;
            match (view.state, body.status) {
                (S::Sent, St::ExpectToSupply) => {}
                (S::Sent, St::WillSupply) => {
                    step.state = S::WillSupply;
                    step.effects.push(BorrowingEffect::Slot {
                        index: view.position,
                        outcome: SlotOutcome::Supplying,
                        reason: None,
                    });
                    step.effects.push(BorrowingEffect::Supplier(from.clone()));
                    if !body.item_id.is_empty() {
                        step.supplier_item = Some(body.item_id.clone());
                    }
                }
                (S::WillSupply, St::WillSupply) => {
                    if !body.item_id.is_empty() {
                        step.supplier_item = Some(body.item_id.clone());
                    }
                }
                (S::Sent | S::WillSupply, St::RetryPossible) => {
                    step.state = S::Conditional;
                    if !body.condition.is_empty() {
                        step.notes.push(Note::new(
                            "conditions",
                            format!("conditions: {} {}", body.condition, body.note).trim_end().to_owned(),
                            Some(from),
                        ));
                    }
                }
                (S::Sent | S::Conditional | S::WillSupply, St::Unfilled | St::Cancelled) => {
                    let reason = body.reason_unfilled.map(|r| r.to_string()).or_else(|| Some(body.status.to_string()));
                    roll(&mut step, view, SlotOutcome::Unfilled, reason, &format!("{from} cannot supply"));
                }
                (S::CancelPending, St::Cancelled | St::Unfilled) => {
                    step.state = S::Cancelled;
                    step.effects.push(BorrowingEffect::Slot {
                        index: view.position,
                        outcome: SlotOutcome::Skipped,
                        reason: Some("cancelled".into()),
                    });
                }
                (S::WillSupply | S::CancelPending, St::Loaned) => {
                    if view.state == S::CancelPending {
                        step.notes.push(Note::new(
                            "cancel_refused",
                            "the item was already shipped: receive it and return it",
                            Some(from),
                        ));
                    }
                    step.state = S::Shipped;
                    step.due = body.due_date.or(view.due);
                }
                (
                    S::Shipped
                    | S::Received
                    | S::LoanedToPatron
                    | S::ReturnedByPatron
                    | S::ReturnShipped
                    | S::Overdue
                    | S::Recalled
                    | S::RenewRequested
                    | S::Lost,
                    St::Loaned,
                ) if body.reason == ReasonForMessage::CancelResponse => {
                    step.notes.push(Note::new("cancel_refused", "the lender had already shipped the item", Some(from)));
                }
                (S::Shipped | S::Received | S::LoanedToPatron, St::Loaned) => {}
                (S::RenewRequested, St::Loaned) if body.reason == ReasonForMessage::RenewResponse => {
                    let back = view.resume.unwrap_or(S::LoanedToPatron);
                    match body.answer {
                        Some(true) => {
                            step.due = body.due_date.or(view.due);
                            step.state = if back == S::Overdue { S::LoanedToPatron } else { back };
                            step.notes.push(Note::new(
                                "renewed",
                                format!("renewal granted, due {}", date_or_unknown(step.due)),
                                Some(from),
                            ));
                        }
                        _ => {
                            step.state = back;
                            let why = if body.note.is_empty() {
                                "the lender refused the renewal".to_owned()
                            } else {
                                format!("the lender refused the renewal: {}", body.note)
                            };
                            step.notes.push(Note::new("renewal_refused", why, Some(from)));
                        }
                    }
                    step.resume = None;
                }
                (S::Shipped | S::Received | S::LoanedToPatron | S::Overdue, St::Overdue) => step.state = S::Overdue,
                // The patron has already brought it back: the notice crossed the return.
                (S::ReturnedByPatron | S::ReturnShipped, St::Overdue) => {}
                (S::Shipped | S::Received | S::LoanedToPatron | S::Overdue | S::RenewRequested, St::Recalled) => {
                    step.state = S::Recalled;
                    step.resume = None;
                }
                (S::ReturnShipped, St::LoanCompleted) => step.state = S::Completed,
                // Reported lost on its way back, but the lender checked it in: it turned up.
                (S::Lost, St::LoanCompleted) => {
                    step.state = S::Completed;
                    step.notes.push(Note::new(
                        "found",
                        "the lender checked the item in: it was not lost after all",
                        Some(from),
                    ));
                }
                (S::Lost, St::CompletedWithoutReturn) => {}
                _ => return Err(illegal()),
            }
        }
        BorrowingEvent::Staff(action) => {
            use BorrowingAction as A;
            match (view.state, action) {
                (S::Sent | S::Conditional | S::WillSupply, A::Cancel { reason }) => {
                    step.state = S::CancelPending;
                    tell(&mut step, RequesterAction::Cancel, reason, None);
                    step.notes.push(Note::new("cancel_sent", format!("cancel requested: {reason}"), lender.as_ref()));
                }
                (S::Unfilled, A::Cancel { reason }) => {
                    step.state = S::Cancelled;
                    step.notes.push(Note::new("cancelled", format!("cancelled: {reason}"), None));
                }
                (S::Conditional, A::Accept) => {
                    step.state = S::WillSupply;
                    step.effects.push(BorrowingEffect::Slot {
                        index: view.position,
                        outcome: SlotOutcome::Supplying,
                        reason: None,
                    });
                    if let Some(l) = &lender {
                        step.effects.push(BorrowingEffect::Supplier(l.clone()));
                    }
                    tell(&mut step, RequesterAction::Notification, "conditions accepted", Some(true));
                    step.notes.push(Note::new("conditions_accepted", "conditions accepted", lender.as_ref()));
                }
                (S::Conditional, A::Decline) => {
                    tell(&mut step, RequesterAction::Cancel, "conditions declined", None);
                    step.notes.push(Note::new("cancel_sent", "conditions declined", lender.as_ref()));
                    roll(
                        &mut step,
                        view,
                        SlotOutcome::Unfilled,
                        Some("conditions declined".into()),
                        "conditions declined",
                    );
                }
                (S::Shipped, A::Receive { barcode }) => {
                    if let (Some(got), Some(sent)) = (barcode, &view.supplier_item)
                        && got != sent
                    {
                        return Err(Illegal {
                            state: view.state.to_string(),
                            event: format!("receive of barcode {got} (the lender sent {sent})"),
                        });
                    }
                    step.state = S::Received;
                    tell(&mut step, RequesterAction::Received, "item received", None);
                    step.notes.push(Note::new("received", "item received", lender.as_ref()));
                }
                (S::Received, A::Loan) => {
                    step.state = S::LoanedToPatron;
                    tell(&mut step, RequesterAction::Notification, "loaned to the patron", None);
                    step.notes.push(Note::new(
                        "loaned",
                        format!("loaned to the patron, due {}", date_or_unknown(view.due)),
                        None,
                    ));
                }
                (S::LoanedToPatron | S::Overdue | S::Recalled, A::Return) => {
                    step.state = S::ReturnedByPatron;
                    tell(&mut step, RequesterAction::Notification, "returned by the patron", None);
                    step.notes.push(Note::new("returned", "returned by the patron", None));
                }
                (S::Received | S::ReturnedByPatron | S::Recalled | S::Overdue, A::ShipReturn) => {
                    step.state = S::ReturnShipped;
                    tell(&mut step, RequesterAction::ShippedReturn, "item shipped back", None);
                    step.notes.push(Note::new("return_shipped", "item shipped back to the lender", lender.as_ref()));
                }
                (S::Received | S::LoanedToPatron | S::Overdue, A::Renew) => {
                    step.state = S::RenewRequested;
                    step.resume = Some(view.state);
                    tell(&mut step, RequesterAction::Renew, "renewal requested", None);
                    step.notes.push(Note::new("renew_requested", "renewal requested", lender.as_ref()));
                }
                (
                    S::Received | S::LoanedToPatron | S::ReturnedByPatron | S::Overdue | S::Recalled | S::ReturnShipped,
                    A::Lost,
                ) => {
                    step.state = S::Lost;
                    tell(&mut step, RequesterAction::Lost, "item lost", None);
                    step.notes.push(Note::new("lost", "item reported lost", lender.as_ref()));
                }
                _ => return Err(illegal()),
            }
        }
        // Rolling past a lender must never let two lenders ship. A lender that never got our
        // Request cannot ship: the Request is withdrawn from the outbox and the rota rolls.
        // A lender with a conditional offer cannot ship until we accept: it is cancelled and
        // the rota rolls. A lender that got the Request but whose answer has not reached us
        // gets a Cancel and the rota rolls: it cannot ship before that Cancel reaches it,
        // because a lender ships only once its conversation with us is settled (its answer
        // confirmed, and everything we queued to it by then received; see
        // `Store::conversation_settled`).
        BorrowingEvent::Expire { request_delivered } => match (view.state, request_delivered) {
            (S::Sent, true) => {
                tell(&mut step, RequesterAction::Cancel, "no answer within the expiry window", None);
                step.notes.push(Note::new(
                    "expired",
                    "the lender did not answer within the expiry window: cancel sent",
                    lender.as_ref(),
                ));
                roll(&mut step, view, SlotOutcome::Skipped, Some("expired".into()), "no answer in time");
            }
            (S::Sent, false) => {
                if let Some(l) = &lender {
                    step.effects.push(BorrowingEffect::Withdraw(l.clone()));
                }
                step.notes.push(Note::new(
                    "expired",
                    "the lender could not be reached within the expiry window: request withdrawn",
                    lender.as_ref(),
                ));
                roll(&mut step, view, SlotOutcome::Skipped, Some("expired".into()), "lender unreachable");
            }
            (S::Conditional, _) => {
                tell(&mut step, RequesterAction::Cancel, "conditions not answered within the expiry window", None);
                step.notes.push(Note::new(
                    "expired",
                    "the conditional offer was not answered within the expiry window: cancel sent",
                    lender.as_ref(),
                ));
                roll(&mut step, view, SlotOutcome::Skipped, Some("expired".into()), "conditions not answered in time");
            }
            _ => return Err(illegal()),
        },
        BorrowingEvent::DuePassed => match view.state {
            S::Shipped | S::Received | S::LoanedToPatron => {
                step.state = S::Overdue;
                step.notes.push(Note::new(
                    "overdue",
                    format!("due date {} has passed", date_or_unknown(view.due)),
                    None,
                ));
            }
            _ => return Err(illegal()),
        },
    }
    Ok(step)
}

fn date_or_unknown(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "unknown".to_owned(), |d| d.to_string())
}

fn ask(step: &mut BorrowingStep, view: &BorrowingView, index: usize) {
    let to = view.rota[index].clone();
    step.state = BorrowingState::Sent;
    step.position = index;
    step.supplier_item = None;
    step.effects.push(BorrowingEffect::Slot { index, outcome: SlotOutcome::Current, reason: None });
    step.effects.push(BorrowingEffect::Asked);
    step.notes.push(Note::new(
        "request_sent",
        format!("asked {to}, lender {} of {}", index + 1, view.rota.len()),
        Some(&to),
    ));
    step.out.push(BorrowerOut::Request { to });
}

/// The current lender is done with (`outcome`): ask the next, or end unfilled.
fn roll(step: &mut BorrowingStep, view: &BorrowingView, outcome: SlotOutcome, reason: Option<String>, why: &str) {
    step.effects.push(BorrowingEffect::Slot { index: view.position, outcome, reason });
    let next = view.position + 1;
    if next < view.rota.len() {
        step.notes.push(Note::new("rolled", format!("{why}; trying {}", view.rota[next]), view.current_lender()));
        ask(step, view, next);
    } else {
        step.state = BorrowingState::Unfilled;
        step.position = view.rota.len();
        step.notes.push(Note::new("unfilled", "every lender in the rota was asked; none can supply", None));
    }
}

// ---------------------------------------------------------------------------------------
// Lending side

/// What the lender's automatic check concluded for a new request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Supply { barcode: String },
    Unfilled { reason: ReasonUnfilled, note: String },
}

/// What lending staff do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LendingAction {
    Ship { due: NaiveDate, note: String },
    CheckIn,
    Reject { reason: ReasonUnfilled, note: String },
    Condition { code: String, note: String },
    RenewAnswer { yes: bool, due: Option<NaiveDate> },
    Recall { note: String },
}

impl LendingAction {
    pub fn name(&self) -> &'static str {
        match self {
            LendingAction::Ship { .. } => "ship",
            LendingAction::CheckIn => "check-in",
            LendingAction::Reject { .. } => "reject",
            LendingAction::Condition { .. } => "condition",
            LendingAction::RenewAnswer { .. } => "renew-answer",
            LendingAction::Recall { .. } => "recall",
        }
    }
}

/// Things that happen to a lending request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LendingEvent {
    /// The automatic check of a newly received request.
    Decide(Decision),
    /// A RequesterMessage from the borrower.
    Requester {
        action: RequesterAction,
        note: String,
        answer: Option<bool>,
    },
    Staff(LendingAction),
    /// Timer: a conditional offer went unanswered past the expiry window.
    Expire,
    /// Timer: the due date has passed.
    DuePassed,
}

impl LendingEvent {
    /// The event's name in the transition table.
    pub fn label(&self) -> String {
        match self {
            LendingEvent::Decide(Decision::Supply { .. }) => "decision WillSupply".into(),
            LendingEvent::Decide(Decision::Unfilled { .. }) => "decision Unfilled".into(),
            LendingEvent::Requester { action, answer, .. } => match (action, answer) {
                (RequesterAction::Notification, Some(true)) => "borrower accepts conditions".into(),
                _ => format!("borrower {action}"),
            },
            LendingEvent::Staff(a) => format!("staff {}", a.name()),
            LendingEvent::Expire => "timer expiry".into(),
            LendingEvent::DuePassed => "timer due date".into(),
        }
    }
}

/// Changes to holdings a lending transition asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LendingEffect {
    /// available → reserved.
    Reserve { barcode: String },
    /// reserved → available.
    Release { barcode: String },
    /// reserved → on_loan.
    Lend { barcode: String },
    /// on_loan → available.
    Return { barcode: String },
    /// on_loan → missing.
    Missing { barcode: String },
}

impl LendingStep {
    /// What the step sends and does to the copy, as the transition tables list it. Empty
    /// for a step that only changes the state.
    pub fn does(&self) -> String {
        let mut parts: Vec<String> = self
            .out
            .iter()
            .map(|b| match b.answer {
                Some(true) => format!("send {} (yes)", b.status),
                Some(false) => format!("send {} (no)", b.status),
                None => format!("send {}", b.status),
            })
            .collect();
        parts.extend(self.effects.iter().map(|e| {
            match e {
                LendingEffect::Reserve { .. } => "reserve the copy",
                LendingEffect::Release { .. } => "copy back on the shelf",
                LendingEffect::Lend { .. } => "copy on loan",
                LendingEffect::Return { .. } => "copy back on the shelf",
                LendingEffect::Missing { .. } => "copy missing",
            }
            .to_owned()
        }));
        parts.join(", ")
    }
}

/// The result of one lending transition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LendingStep {
    pub state: LendingState,
    pub item_barcode: Option<String>,
    pub reason_unfilled: Option<ReasonUnfilled>,
    pub due: Option<NaiveDate>,
    pub renew_pending: bool,
    /// Renewals granted so far on this loan.
    pub renewals: u32,
    pub out: Vec<SupplierBody>,
    pub effects: Vec<LendingEffect>,
    pub notes: Vec<Note>,
}

/// The lending side's view of a request.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct LendingView {
    pub state: LendingState,
    pub item_barcode: Option<String>,
    pub due: Option<NaiveDate>,
    pub renew_pending: bool,
    /// Renewals granted so far on this loan.
    pub renewals: u32,
    /// How many renewals the agreement with the borrower allows; `None` when the caller did
    /// not look the agreement up (then renewals are not counted against it).
    pub renewal_limit: Option<u32>,
}

#[allow(clippy::derivable_impls)]
impl Default for LendingState {
    fn default() -> Self {
        LendingState::Received
    }
}

/// Why a renewal is refused once the agreement's renewals are used up.
fn renewals_used_up(limit: u32, granted: u32) -> String {
    let allows = match limit {
        0 => "allows no renewals".to_owned(),
        1 => "allows 1 renewal".to_owned(),
        n => format!("allows {n} renewals"),
    };
    format!("the lending agreement {allows} and {granted} {} been granted", if granted == 1 { "has" } else { "have" })
}

/// Legal lending transitions: (from, event, to, what the step sends and does to the copy,
/// as [`LendingStep::does`] words it).
pub const LENDING_TRANSITIONS: &[(&str, &str, &str, &str)] = &[
    ("received", "decision WillSupply", "will_supply", "send WillSupply, reserve the copy"),
    ("received", "decision Unfilled", "unfilled", "send Unfilled"),
    ("received", "borrower Cancel", "cancelled", "send Cancelled (yes)"),
    ("will_supply", "borrower Cancel", "cancelled", "send Cancelled (yes), copy back on the shelf"),
    ("conditional", "borrower Cancel", "cancelled", "send Cancelled (yes), copy back on the shelf"),
    ("unfilled", "borrower Cancel", "unfilled", ""),
    ("cancelled", "borrower Cancel", "cancelled", ""),
    ("expired", "borrower Cancel", "expired", ""),
    ("shipped", "borrower Cancel", "shipped", "send Loaned (no)"),
    ("overdue", "borrower Cancel", "overdue", "send Loaned (no)"),
    ("recalled", "borrower Cancel", "recalled", "send Loaned (no)"),
    ("will_supply", "staff reject", "unfilled", "send Unfilled, copy back on the shelf"),
    ("will_supply", "staff condition", "conditional", "send RetryPossible"),
    ("conditional", "borrower accepts conditions", "will_supply", "send WillSupply"),
    ("will_supply", "staff ship", "shipped", "send Loaned, copy on loan"),
    ("shipped", "borrower Received", "shipped", ""),
    ("overdue", "borrower Received", "overdue", ""),
    ("recalled", "borrower Received", "recalled", ""),
    ("shipped", "borrower Notification", "shipped", ""),
    ("overdue", "borrower Notification", "overdue", ""),
    ("recalled", "borrower Notification", "recalled", ""),
    ("shipped", "borrower Renew", "shipped", ""),
    ("overdue", "borrower Renew", "overdue", ""),
    ("shipped", "borrower Renew", "shipped", "send Loaned (no)"),
    ("overdue", "borrower Renew", "overdue", "send Loaned (no)"),
    ("shipped", "staff renew-answer", "shipped", "send Loaned (no)"),
    ("shipped", "staff renew-answer", "shipped", "send Loaned (yes)"),
    ("overdue", "staff renew-answer", "shipped", "send Loaned (yes)"),
    ("overdue", "staff renew-answer", "overdue", "send Loaned (no)"),
    ("shipped", "staff recall", "recalled", "send Recalled"),
    ("overdue", "staff recall", "recalled", "send Recalled"),
    ("shipped", "borrower ShippedReturn", "return_shipped", ""),
    ("overdue", "borrower ShippedReturn", "return_shipped", ""),
    ("recalled", "borrower ShippedReturn", "return_shipped", ""),
    ("return_shipped", "staff check-in", "completed", "send LoanCompleted, copy back on the shelf"),
    ("shipped", "borrower Lost", "lost", "send CompletedWithoutReturn, copy missing"),
    ("overdue", "borrower Lost", "lost", "send CompletedWithoutReturn, copy missing"),
    ("recalled", "borrower Lost", "lost", "send CompletedWithoutReturn, copy missing"),
    ("return_shipped", "borrower Lost", "lost", "send CompletedWithoutReturn, copy missing"),
    ("conditional", "timer expiry", "expired", "send Cancelled, copy back on the shelf"),
    ("will_supply", "timer expiry", "expired", "send Unfilled, copy back on the shelf"),
    ("shipped", "timer due date", "overdue", "send Overdue"),
];

/// Decide one lending event.
pub fn lending_step(view: &LendingView, event: &LendingEvent) -> Result<LendingStep, Illegal> {
    use LendingState as S;
    use SupplierStatus as St;
    let illegal = || Illegal { state: view.state.to_string(), event: event.label() };
    let mut step = LendingStep {
        state: view.state,
        item_barcode: view.item_barcode.clone(),
        reason_unfilled: None,
        due: view.due,
        renew_pending: view.renew_pending,
        renewals: view.renewals,
        out: vec![],
        effects: vec![],
        notes: vec![],
    };
    let barcode = view.item_barcode.clone().unwrap_or_default();
    let send =
        |step: &mut LendingStep, reason: ReasonForMessage, status: SupplierStatus, f: &dyn Fn(&mut SupplierBody)| {
            let mut body = SupplierBody::new(reason, status);
            f(&mut body);
            step.notes.push(Note::new("answer_sent", body.summary(), None));
            step.out.push(body);
        };
    match (view.state, event) {
        (S::Received, LendingEvent::Decide(Decision::Supply { barcode })) => {
            step.state = S::WillSupply;
            step.item_barcode = Some(barcode.clone());
            step.effects.push(LendingEffect::Reserve { barcode: barcode.clone() });
            step.notes.push(Note::new("reserved", format!("item {barcode} reserved and on the pick list"), None));
            send(&mut step, ReasonForMessage::RequestResponse, St::WillSupply, &|b| b.item_id = barcode.clone());
        }
        (S::Received, LendingEvent::Decide(Decision::Unfilled { reason, note })) => {
            step.state = S::Unfilled;
            step.reason_unfilled = Some(*reason);
            step.notes.push(Note::new("decided", note.clone(), None));
            send(&mut step, ReasonForMessage::RequestResponse, St::Unfilled, &|b| {
                b.reason_unfilled = Some(*reason);
                b.note = note.clone();
            });
        }
        (
            S::Received | S::WillSupply | S::Conditional,
            LendingEvent::Requester { action: RequesterAction::Cancel, note, .. },
        ) => {
            step.state = S::Cancelled;
            step.notes.push(Note::new("cancel_received", format!("borrower cancelled: {note}"), None));
            if matches!(view.state, S::WillSupply | S::Conditional) && view.item_barcode.is_some() {
                step.effects.push(LendingEffect::Release { barcode: barcode.clone() });
                step.notes.push(Note::new("released", format!("item {barcode} back on the shelf"), None));
            }
            send(&mut step, ReasonForMessage::CancelResponse, St::Cancelled, &|b| b.answer = Some(true));
        }
        (S::Unfilled | S::Cancelled | S::Expired, LendingEvent::Requester { action: RequesterAction::Cancel, .. }) => {
            step.notes.push(Note::new("cancel_received", "borrower cancelled; nothing to release", None));
        }
        (S::Shipped | S::Overdue | S::Recalled, LendingEvent::Requester { action: RequesterAction::Cancel, .. }) => {
            step.notes.push(Note::new(
                "cancel_received",
                "borrower asked to cancel, but the item has shipped: it comes back by the normal return",
                None,
            ));
            send(&mut step, ReasonForMessage::CancelResponse, St::Loaned, &|b| {
                b.answer = Some(false);
                b.due_date = view.due;
                b.note = "already shipped".into();
            });
        }
        (S::WillSupply, LendingEvent::Staff(LendingAction::Reject { reason, note })) => {
            step.state = S::Unfilled;
            step.reason_unfilled = Some(*reason);
            step.effects.push(LendingEffect::Release { barcode: barcode.clone() });
            send(&mut step, ReasonForMessage::StatusChange, St::Unfilled, &|b| {
                b.reason_unfilled = Some(*reason);
                b.note = note.clone();
            });
        }
        (S::WillSupply, LendingEvent::Staff(LendingAction::Condition { code, note })) => {
            step.state = S::Conditional;
            send(&mut step, ReasonForMessage::StatusChange, St::RetryPossible, &|b| {
                b.condition = code.clone();
                b.note = note.clone();
            });
        }
        (S::Conditional, LendingEvent::Requester { action: RequesterAction::Notification, answer: Some(true), .. }) => {
            step.state = S::WillSupply;
            step.notes.push(Note::new("conditions_accepted", "the borrower accepted the conditions", None));
            send(&mut step, ReasonForMessage::StatusChange, St::WillSupply, &|b| b.item_id = barcode.clone());
        }
        (S::WillSupply, LendingEvent::Staff(LendingAction::Ship { due, note })) => {
            step.state = S::Shipped;
            step.due = Some(*due);
            step.effects.push(LendingEffect::Lend { barcode: barcode.clone() });
            send(&mut step, ReasonForMessage::StatusChange, St::Loaned, &|b| {
                b.due_date = Some(*due);
                b.item_id = barcode.clone();
                b.note = note.clone();
            });
        }
        (S::Shipped | S::Overdue | S::Recalled, LendingEvent::Requester { action: RequesterAction::Received, .. }) => {
            step.notes.push(Note::new("borrower_received", "the borrower received the item", None));
        }
        (
            S::Shipped | S::Overdue | S::Recalled,
            LendingEvent::Requester { action: RequesterAction::Notification, note, answer: None | Some(false) },
        ) => {
            step.notes.push(Note::new("notification", format!("borrower: {note}"), None));
        }
        (S::Shipped | S::Overdue, LendingEvent::Requester { action: RequesterAction::Renew, .. }) => {
            step.notes.push(Note::new("renew_requested", "the borrower asks for a renewal", None));
            match view.renewal_limit {
                // The agreement's renewals are used up: the node answers no by itself.
                Some(limit) if view.renewals >= limit => {
                    step.renew_pending = false;
                    let why = renewals_used_up(limit, view.renewals);
                    step.notes.push(Note::new("renewal_refused", why.clone(), None));
                    let d = step.due;
                    send(&mut step, ReasonForMessage::RenewResponse, St::Loaned, &|b| {
                        b.answer = Some(false);
                        b.due_date = d;
                        b.note = why.clone();
                    });
                }
                _ => step.renew_pending = true,
            }
        }
        (S::Shipped | S::Overdue, LendingEvent::Staff(LendingAction::RenewAnswer { yes, due })) => {
            if !view.renew_pending {
                return Err(Illegal {
                    state: view.state.to_string(),
                    event: "a renewal answer with no renewal requested".into(),
                });
            }
            if let Some(limit) = view.renewal_limit.filter(|l| *yes && view.renewals >= *l) {
                return Err(Illegal {
                    state: view.state.to_string(),
                    event: format!(
                        "granting a renewal ({}; answer no, or raise the limit with `rota agreement set --renewals`)",
                        renewals_used_up(limit, view.renewals)
                    ),
                });
            }
            step.renew_pending = false;
            if *yes {
                step.due = due.or(view.due);
                step.state = S::Shipped;
                step.renewals = view.renewals + 1;
            }
            let d = step.due;
            send(&mut step, ReasonForMessage::RenewResponse, St::Loaned, &|b| {
                b.answer = Some(*yes);
                b.due_date = d;
            });
        }
        (S::Shipped | S::Overdue, LendingEvent::Staff(LendingAction::Recall { note })) => {
            step.state = S::Recalled;
            step.renew_pending = false;
            send(&mut step, ReasonForMessage::StatusChange, St::Recalled, &|b| b.note = note.clone());
        }
        (
            S::Shipped | S::Overdue | S::Recalled,
            LendingEvent::Requester { action: RequesterAction::ShippedReturn, .. },
        ) => {
            step.state = S::ReturnShipped;
            step.renew_pending = false;
            step.notes.push(Note::new("return_shipped", "the borrower shipped the item back", None));
        }
        (S::ReturnShipped, LendingEvent::Staff(LendingAction::CheckIn)) => {
            step.state = S::Completed;
            step.effects.push(LendingEffect::Return { barcode: barcode.clone() });
            step.notes.push(Note::new("checked_in", format!("item {barcode} checked in and back on the shelf"), None));
            send(&mut step, ReasonForMessage::StatusChange, St::LoanCompleted, &|_| {});
        }
        (
            S::Shipped | S::Overdue | S::Recalled | S::ReturnShipped,
            LendingEvent::Requester { action: RequesterAction::Lost, .. },
        ) => {
            step.state = S::Lost;
            step.effects.push(LendingEffect::Missing { barcode: barcode.clone() });
            step.notes.push(Note::new(
                "lost",
                format!("the borrower reports item {barcode} lost; it is marked missing"),
                None,
            ));
            send(&mut step, ReasonForMessage::StatusChange, St::CompletedWithoutReturn, &|_| {});
        }
        // Promised but not shipped within the expiry window: the copy goes back on the shelf
        // and the borrower moves on. Safe against a second shipment, since this lender
        // cannot ship once expired.
        (S::WillSupply, LendingEvent::Expire) => {
            step.state = S::Expired;
            step.reason_unfilled = Some(ReasonUnfilled::NotAvailableForIll);
            step.effects.push(LendingEffect::Release { barcode: barcode.clone() });
            step.notes.push(Note::new(
                "expired",
                format!("not shipped within the expiry window; item {barcode} back on the shelf"),
                None,
            ));
            send(&mut step, ReasonForMessage::StatusChange, St::Unfilled, &|b| {
                b.reason_unfilled = Some(ReasonUnfilled::NotAvailableForIll);
                b.note = "not shipped within the expiry window".into();
            });
        }
        (S::Conditional, LendingEvent::Expire) => {
            step.state = S::Expired;
            step.effects.push(LendingEffect::Release { barcode: barcode.clone() });
            step.notes.push(Note::new("expired", "the conditions were not answered in time; item released", None));
            send(&mut step, ReasonForMessage::StatusChange, St::Cancelled, &|b| {
                b.note = "conditional offer expired".into()
            });
        }
        (S::Shipped, LendingEvent::DuePassed) => {
            step.state = S::Overdue;
            step.notes.push(Note::new("overdue", format!("due date {} has passed", date_or_unknown(view.due)), None));
            send(&mut step, ReasonForMessage::StatusChange, St::Overdue, &|b| b.due_date = view.due);
        }
        _ => return Err(illegal()),
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    fn answer(from: &str, status: SupplierStatus, reason: Option<ReasonUnfilled>) -> BorrowingEvent {
        let mut body = SupplierBody::new(ReasonForMessage::RequestResponse, status);
        body.reason_unfilled = reason;
        body.answer = Some(true);
        BorrowingEvent::Answer { from: sym(from), body }
    }

    fn view(state: BorrowingState, position: usize) -> BorrowingView {
        BorrowingView { state, rota: vec![sym("AA"), sym("BB")], position, ..Default::default() }
    }

    fn borrowing_events(from: &str) -> Vec<BorrowingEvent> {
        use BorrowingAction as A;
        let mut v = vec![
            BorrowingEvent::StartLocating,
            BorrowingEvent::Submit,
            BorrowingEvent::Expire { request_delivered: true },
            BorrowingEvent::Expire { request_delivered: false },
            BorrowingEvent::DuePassed,
        ];
        for st in SupplierStatus::ALL {
            v.push(answer(from, *st, Some(ReasonUnfilled::NotHeld)));
        }
        for (reason, answer) in [
            (ReasonForMessage::RenewResponse, true),
            (ReasonForMessage::RenewResponse, false),
            (ReasonForMessage::CancelResponse, false),
        ] {
            let mut body = SupplierBody::new(reason, SupplierStatus::Loaned);
            body.answer = Some(answer);
            v.push(BorrowingEvent::Answer { from: sym(from), body });
        }
        for a in [
            A::Receive { barcode: None },
            A::Loan,
            A::Return,
            A::ShipReturn,
            A::Cancel { reason: "x".into() },
            A::Renew,
            A::Accept,
            A::Decline,
            A::Lost,
        ] {
            v.push(BorrowingEvent::Staff(a));
        }
        v
    }

    #[test]
    fn submit_sends_to_first_lender_or_ends_unfilled() {
        let s = borrowing_step(&view(BorrowingState::Created, 0), &BorrowingEvent::Submit).unwrap();
        assert_eq!(s.state, BorrowingState::Sent);
        assert_eq!(s.out, vec![BorrowerOut::Request { to: sym("AA") }]);
        let empty = BorrowingView::default();
        assert_eq!(borrowing_step(&empty, &BorrowingEvent::Submit).unwrap().state, BorrowingState::Unfilled);
        assert!(borrowing_step(&view(BorrowingState::Sent, 0), &BorrowingEvent::Submit).is_err());
    }

    #[test]
    fn unfilled_rolls_then_exhausts() {
        let s = borrowing_step(
            &view(BorrowingState::Sent, 0),
            &answer("AA", SupplierStatus::Unfilled, Some(ReasonUnfilled::NotHeld)),
        )
        .unwrap();
        assert_eq!((s.state, s.position), (BorrowingState::Sent, 1));
        assert_eq!(s.out, vec![BorrowerOut::Request { to: sym("BB") }]);
        let s = borrowing_step(&view(BorrowingState::Sent, 1), &answer("BB", SupplierStatus::Unfilled, None)).unwrap();
        assert_eq!((s.state, s.position), (BorrowingState::Unfilled, 2));
        assert!(s.out.is_empty());
    }

    #[test]
    fn late_will_supply_gets_a_cancel_and_strangers_are_refused() {
        let s = borrowing_step(&view(BorrowingState::WillSupply, 1), &answer("AA", SupplierStatus::WillSupply, None))
            .unwrap();
        assert_eq!(s.state, BorrowingState::WillSupply);
        assert!(
            matches!(&s.out[..], [BorrowerOut::Action { to, action: RequesterAction::Cancel, .. }] if *to == sym("AA"))
        );
        assert!(
            borrowing_step(&view(BorrowingState::Sent, 0), &answer("CC", SupplierStatus::WillSupply, None)).is_err()
        );
    }

    #[test]
    fn expiry_withdraws_from_an_unreachable_lender_and_cancels_one_that_did_not_answer() {
        let s = borrowing_step(&view(BorrowingState::Sent, 0), &BorrowingEvent::Expire { request_delivered: false })
            .unwrap();
        assert_eq!((s.state, s.position), (BorrowingState::Sent, 1));
        assert!(s.effects.contains(&BorrowingEffect::Withdraw(sym("AA"))));
        assert_eq!(s.out, vec![BorrowerOut::Request { to: sym("BB") }]);
        // AA has our Request but its answer has not come: AA is told to cancel, and the rota
        // rolls. (AA cannot ship before the Cancel reaches it: see conversation_settled.)
        let s = borrowing_step(&view(BorrowingState::Sent, 0), &BorrowingEvent::Expire { request_delivered: true })
            .unwrap();
        assert_eq!((s.state, s.position), (BorrowingState::Sent, 1));
        assert!(!s.effects.contains(&BorrowingEffect::Withdraw(sym("AA"))));
        assert!(
            matches!(&s.out[..], [BorrowerOut::Action { to, action: RequesterAction::Cancel, .. }, BorrowerOut::Request { to: next }] if *to == sym("AA") && *next == sym("BB")),
            "{:?}",
            s.out
        );
        // A conditional offer not answered in time is cancelled, and the rota rolls.
        let s =
            borrowing_step(&view(BorrowingState::Conditional, 0), &BorrowingEvent::Expire { request_delivered: true })
                .unwrap();
        assert!(
            matches!(&s.out[0], BorrowerOut::Action { to, action: RequesterAction::Cancel, .. } if *to == sym("AA"))
        );
        assert_eq!(s.out[1], BorrowerOut::Request { to: sym("BB") });
    }

    #[test]
    fn receive_checks_the_barcode() {
        let v = BorrowingView { supplier_item: Some("B-1".into()), ..view(BorrowingState::Shipped, 0) };
        let e = borrowing_step(&v, &BorrowingEvent::Staff(BorrowingAction::Receive { barcode: Some("B-2".into()) }))
            .unwrap_err();
        assert!(e.to_string().contains("B-2") && e.to_string().contains("B-1"), "{e}");
        assert!(
            borrowing_step(&v, &BorrowingEvent::Staff(BorrowingAction::Receive { barcode: Some("B-1".into()) }))
                .is_ok()
        );
    }

    /// Every transition the function allows is a row of the table, and every row happens.
    #[test]
    fn borrowing_table_matches_the_function() {
        let mut seen = BTreeSet::new();
        for &state in BorrowingState::ALL {
            for rota in [vec![], vec![sym("AA")], vec![sym("AA"), sym("BB")]] {
                for position in 0..=rota.len() {
                    for resume in [
                        None,
                        Some(BorrowingState::Received),
                        Some(BorrowingState::LoanedToPatron),
                        Some(BorrowingState::Overdue),
                        Some(BorrowingState::Recalled),
                    ] {
                        let v = BorrowingView { state, rota: rota.clone(), position, resume, ..Default::default() };
                        // Past locating, a live request is always in some lender's hands.
                        let settled = matches!(
                            state,
                            BorrowingState::Created
                                | BorrowingState::Locating
                                | BorrowingState::Unfilled
                                | BorrowingState::Cancelled
                                | BorrowingState::Completed
                        );
                        if !settled && v.current_lender().is_none() {
                            continue;
                        }
                        for from in ["AA", "BB"] {
                            for e in borrowing_events(from) {
                                let Ok(step) = borrowing_step(&v, &e) else { continue };
                                let late =
                                    matches!(&e, BorrowingEvent::Answer { from, .. } if !v.answer_is_current(from));
                                if late {
                                    assert_eq!(step.state, state, "a late answer never changes the state");
                                    let label = if step.out.is_empty() {
                                        "late answer: recorded"
                                    } else {
                                        "late answer WillSupply: Cancel sent"
                                    };
                                    seen.insert(("*".to_owned(), label.to_owned(), "*".to_owned(), step.does()));
                                } else {
                                    seen.insert((state.to_string(), e.label(), step.state.to_string(), step.does()));
                                }
                            }
                        }
                    }
                }
            }
        }
        let table: BTreeSet<_> = BORROWING_TRANSITIONS
            .iter()
            .map(|(a, b, c, d)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned(), (*d).to_owned()))
            .collect();
        let extra: Vec<_> = seen.difference(&table).collect();
        let missing: Vec<_> = table.difference(&seen).collect();
        assert!(extra.is_empty() && missing.is_empty(), "not in the table: {extra:#?}\nnever happens: {missing:#?}");
    }

    fn lending_events() -> Vec<LendingEvent> {
        use LendingAction as A;
        let mut v = vec![
            LendingEvent::Decide(Decision::Supply { barcode: "b".into() }),
            LendingEvent::Decide(Decision::Unfilled { reason: ReasonUnfilled::NotHeld, note: String::new() }),
            LendingEvent::Expire,
            LendingEvent::DuePassed,
            LendingEvent::Requester { action: RequesterAction::Notification, note: String::new(), answer: Some(true) },
        ];
        for a in RequesterAction::ALL {
            v.push(LendingEvent::Requester { action: *a, note: String::new(), answer: None });
        }
        let due = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        for a in [
            A::Ship { due, note: String::new() },
            A::CheckIn,
            A::Reject { reason: ReasonUnfilled::NotOnShelf, note: String::new() },
            A::Condition { code: "LibraryUseOnly".into(), note: String::new() },
            A::RenewAnswer { yes: true, due: Some(due) },
            A::RenewAnswer { yes: false, due: None },
            A::Recall { note: String::new() },
        ] {
            v.push(LendingEvent::Staff(a));
        }
        v
    }

    #[test]
    fn lending_table_matches_the_function() {
        let mut seen = BTreeSet::new();
        for &state in LendingState::ALL {
            for renew_pending in [false, true] {
                // The agreement's renewals not looked up, or used up.
                for renewal_limit in [None, Some(0)] {
                    let v = LendingView {
                        state,
                        item_barcode: Some("b".into()),
                        renew_pending,
                        renewal_limit,
                        ..Default::default()
                    };
                    for e in lending_events() {
                        if let Ok(step) = lending_step(&v, &e) {
                            seen.insert((state.to_string(), e.label(), step.state.to_string(), step.does()));
                        }
                    }
                }
            }
        }
        let table: BTreeSet<_> = LENDING_TRANSITIONS
            .iter()
            .map(|(a, b, c, d)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned(), (*d).to_owned()))
            .collect();
        let extra: Vec<_> = seen.difference(&table).collect();
        let missing: Vec<_> = table.difference(&seen).collect();
        assert!(extra.is_empty() && missing.is_empty(), "not in the table: {extra:#?}\nnever happens: {missing:#?}");
    }

    #[test]
    fn lending_supply_reserves_ship_lends_and_check_in_returns() {
        let v = LendingView::default();
        let s = lending_step(&v, &LendingEvent::Decide(Decision::Supply { barcode: "39001".into() })).unwrap();
        assert_eq!(s.effects, vec![LendingEffect::Reserve { barcode: "39001".into() }]);
        let v =
            LendingView { state: LendingState::WillSupply, item_barcode: Some("39001".into()), ..Default::default() };
        let due = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        let s = lending_step(&v, &LendingEvent::Staff(LendingAction::Ship { due, note: String::new() })).unwrap();
        assert_eq!((s.state, s.due), (LendingState::Shipped, Some(due)));
        assert_eq!(s.out[0].status, SupplierStatus::Loaned);
        let v = LendingView { state: LendingState::Shipped, ..v };
        let s = lending_step(
            &v,
            &LendingEvent::Requester { action: RequesterAction::Cancel, note: String::new(), answer: None },
        )
        .unwrap();
        assert_eq!(s.state, LendingState::Shipped, "a cancel that crosses a shipment is answered no");
        assert_eq!(s.out[0].answer, Some(false));
        let e = lending_step(&v, &LendingEvent::Decide(Decision::Supply { barcode: "x".into() })).unwrap_err();
        assert_eq!(e.to_string(), "decision WillSupply is not allowed while the request is shipped");
    }

    #[test]
    fn a_promised_copy_not_shipped_in_time_expires_and_goes_back_on_the_shelf() {
        let v =
            LendingView { state: LendingState::WillSupply, item_barcode: Some("39001".into()), ..Default::default() };
        let s = lending_step(&v, &LendingEvent::Expire).unwrap();
        assert_eq!(s.state, LendingState::Expired);
        assert_eq!(s.effects, vec![LendingEffect::Release { barcode: "39001".into() }]);
        assert_eq!(
            (s.out[0].status, s.out[0].reason_unfilled),
            (SupplierStatus::Unfilled, Some(ReasonUnfilled::NotAvailableForIll))
        );
        // The borrower rolls on when it hears.
        let b = borrowing_step(
            &view(BorrowingState::WillSupply, 0),
            &BorrowingEvent::Answer { from: sym("AA"), body: s.out[0].clone() },
        )
        .unwrap();
        assert_eq!((b.state, b.position), (BorrowingState::Sent, 1));
        // An expired request cannot ship.
        let v = LendingView { state: LendingState::Expired, ..v };
        let due = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        assert!(lending_step(&v, &LendingEvent::Staff(LendingAction::Ship { due, note: String::new() })).is_err());
    }

    #[test]
    fn renewals_are_counted_against_the_agreement() {
        let renew = LendingEvent::Requester { action: RequesterAction::Renew, note: String::new(), answer: None };
        let due = NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        let later = NaiveDate::from_ymd_opt(2030, 2, 1).unwrap();
        let v = LendingView {
            state: LendingState::Shipped,
            item_barcode: Some("39001".into()),
            due: Some(due),
            renewal_limit: Some(1),
            ..Default::default()
        };
        // Within the limit the request waits for staff, and a yes counts.
        let s = lending_step(&v, &renew).unwrap();
        assert!(s.renew_pending && s.out.is_empty());
        let v = LendingView { renew_pending: true, ..v };
        let yes = LendingEvent::Staff(LendingAction::RenewAnswer { yes: true, due: Some(later) });
        let s = lending_step(&v, &yes).unwrap();
        assert_eq!((s.renewals, s.due, s.renew_pending), (1, Some(later), false));
        // A no does not count.
        let no = LendingEvent::Staff(LendingAction::RenewAnswer { yes: false, due: None });
        assert_eq!(lending_step(&v, &no).unwrap().renewals, 0);
        // At the limit the node answers no by itself, keeps the due date and says why.
        let v = LendingView { renewals: 1, renew_pending: false, due: Some(later), ..v };
        let s = lending_step(&v, &renew).unwrap();
        assert!(!s.renew_pending);
        assert_eq!((s.out.len(), s.out[0].answer, s.out[0].due_date), (1, Some(false), Some(later)));
        assert_eq!(s.out[0].note, "the lending agreement allows 1 renewal and 1 has been granted");
        // A limit lowered while a renewal waits: staff cannot grant it, but can refuse it.
        let v = LendingView { renew_pending: true, renewal_limit: Some(0), renewals: 0, ..v };
        let e = lending_step(&v, &yes).unwrap_err();
        assert!(e.to_string().contains("allows no renewals and 0 have been granted"), "{e}");
        assert!(lending_step(&v, &no).is_ok());
        // Without the agreement looked up, renewals are not limited.
        let v = LendingView { renewal_limit: None, renewals: 5, renew_pending: false, ..v };
        assert!(lending_step(&v, &renew).unwrap().renew_pending);
    }

    /// docs/STATES.md is generated from the tables above and must not drift.
    #[test]
    fn states_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/STATES.md");
        let want = state_tables_markdown();
        if std::env::var_os("ROTA_BLESS").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/STATES.md is out of date: run ROTA_BLESS=1 cargo test -p rota-node --lib states_doc"
        );
    }
}
