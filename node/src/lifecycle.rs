//! The book's journey after "will supply": staff actions on both sides, the timers
//! (expiry and overdue), and the worklists and statistics staff use to run the service.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Actor, FieldError, ReasonUnfilled, StaffUser, Symbol, check_text};
use crate::error::{NodeError, Result};
use crate::machine::{
    BorrowingAction, BorrowingEvent, BorrowingState, LendingAction, LendingEvent, LendingState, borrowing_step,
    lending_step,
};
use crate::node::Node;
use crate::store::{BorrowingRecord, LendingRecord, Settled, Store};

/// How long `rota lending ship` waits for the borrower's node to confirm our answer before
/// it gives up and says so. On a working link that takes milliseconds.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Why a shipment has to wait, in staff's words.
fn not_settled(id: &str, borrower: &Symbol, settled: Settled) -> String {
    let why = match settled {
        Settled::Unconfirmed(n) => format!(
            "{borrower} has not confirmed our answer yet ({n} message{} waiting in the outbox; its node may be unreachable: see `rota partner show {borrower}`)",
            if n == 1 { "" } else { "s" }
        ),
        Settled::Awaiting { announced, received } => format!(
            "{borrower} has sent messages about this request that have not reached us yet (through number {announced}; we have {received})"
        ),
        Settled::Yes => String::new(),
    };
    format!(
        "cannot ship {id} yet: {why}. The item stays reserved; ship it once they are delivered. If {borrower} has moved on to another lender, a cancel is on its way and the item goes back on the shelf by itself"
    )
}

/// A lending action as staff enter it; the node fills in defaults from the agreement.
#[derive(Clone, Debug)]
pub enum LendingInput {
    Ship { due: Option<NaiveDate>, note: String },
    CheckIn,
    Reject { reason: ReasonUnfilled, note: String },
    Condition { code: String, note: String },
    RenewAnswer { yes: bool, due: Option<NaiveDate> },
    Recall { note: String },
}

/// One line of the worklist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TodoItem {
    pub side: &'static str,
    pub id: String,
    pub state: String,
    pub action: &'static str,
    pub title: String,
    pub partner: String,
    pub since: DateTime<Utc>,
}

/// Figures for one partner (or all, with `partner: None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartnerStats {
    pub partner: Option<String>,
    pub requests: u64,
    pub filled: u64,
    pub created_to_shipped_s: Vec<f64>,
    pub shipped_to_received_s: Vec<f64>,
    pub loaned_to_returned_s: Vec<f64>,
    pub lent: u64,
    pub borrowed: u64,
}

impl PartnerStats {
    pub fn fill_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.filled as f64 / self.requests as f64 }
    }
}

/// One piece of a call number, for shelf order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShelfToken {
    /// A whole number: an LC class number (the 76 of QA76) or a Dewey class (813). Dewey
    /// numbers shelve before LC letters.
    Whole(u64),
    /// Letters, lowercased. A cutter shelves before a decimal of the class number
    /// (QA76 .C5 before QA76.9).
    Text(String),
    /// Digits read as a decimal fraction: after a point (QA76.9, 813.54) or in a cutter
    /// (.C495 shelves before .C5).
    Fraction(String),
}

/// A sort key that puts call numbers in the order they stand on the shelf, for Library of
/// Congress and Dewey numbers alike: letters compare as letters ignoring case, a class number
/// compares as a number (QA9 before QA76), and cutters and decimals compare digit by digit
/// (.C495 before .C5, M49 before M5, 813.5 before 813.54). Spaces and punctuation only
/// separate pieces.
pub fn shelf_key(call: &str) -> Vec<ShelfToken> {
    let mut out = vec![];
    let chars: Vec<char> = call.chars().collect();
    let mut i = 0;
    // Inside a cutter: from letters that follow the class, until the next space.
    let mut in_cutter = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() {
            let start = i;
            while i < chars.len() && chars[i].is_alphabetic() {
                i += 1;
            }
            // Letters after the class (LC's .C495, Dewey's M5) begin a cutter.
            if !out.is_empty() {
                in_cutter = true;
            }
            out.push(ShelfToken::Text(chars[start..i].iter().collect::<String>().to_lowercase()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            let after_point = start > 0 && chars[start - 1] == '.';
            if after_point || in_cutter {
                out.push(ShelfToken::Fraction(digits.trim_end_matches('0').to_owned()));
            } else {
                out.push(ShelfToken::Whole(digits.parse().unwrap_or(u64::MAX)));
            }
        } else {
            if c.is_whitespace() {
                in_cutter = false;
            }
            i += 1;
        }
    }
    out
}

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 }
}

impl Node {
    fn today(&self) -> NaiveDate {
        self.clock.now().date_naive()
    }

    /// Apply a staff action to a borrowing request.
    pub async fn borrowing_action(&self, by: &StaffUser, id: &str, action: BorrowingAction) -> Result<BorrowingRecord> {
        if let BorrowingAction::Cancel { reason } = &action {
            check_text("reason", reason, 500, false)?;
        }
        if let BorrowingAction::Receive { barcode: Some(b) } = &action {
            check_text("barcode", b, 64, true)?;
        }
        self.borrowing_event(id, BorrowingEvent::Staff(action), &Actor::Staff(by.to_string())).await?;
        self.store.borrowing_read(id).await?.ok_or_else(|| NodeError::NotFound(format!("no borrowing request {id:?}")))
    }

    /// Apply one event to a borrowing request in its own transaction.
    async fn borrowing_event(&self, id: &str, event: BorrowingEvent, cause: &Actor) -> Result<()> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let rec = Store::borrowing(&mut tx, id)
            .await?
            .ok_or_else(|| NodeError::NotFound(format!("no borrowing request {id:?}")))?;
        let step = borrowing_step(&rec.view(), &event)?;
        let mut wake = vec![];
        self.apply_borrowing(&mut tx, &rec, step, cause, now, &mut wake).await?;
        tx.commit().await?;
        for p in &wake {
            self.wake(p);
        }
        Ok(())
    }

    /// Apply a staff action to a lending request. Due dates default to the agreement's
    /// loan period from today (ship) or from the current due date (renewal).
    pub async fn lending_action(&self, by: &StaffUser, id: &str, input: LendingInput) -> Result<LendingRecord> {
        let today = self.today();
        let rec = self
            .store
            .lending_read(id)
            .await?
            .ok_or_else(|| NodeError::NotFound(format!("no lending request {id:?}")))?;
        let loan_days = i64::from(self.store.agreement(&rec.borrower).await?.loan_days);
        let future = |field: &str, d: NaiveDate| -> Result<NaiveDate> {
            if d < today {
                return Err(FieldError::new(field, format!("{d} is in the past")).into());
            }
            Ok(d)
        };
        let action = match input {
            LendingInput::Ship { due, note } => LendingAction::Ship {
                due: match due {
                    Some(d) => future("due", d)?,
                    None => today + chrono::Duration::days(loan_days),
                },
                note: check_text("note", &note, 1000, false)?,
            },
            LendingInput::CheckIn => LendingAction::CheckIn,
            LendingInput::Reject { reason, note } => {
                LendingAction::Reject { reason, note: check_text("note", &note, 1000, false)? }
            }
            LendingInput::Condition { code, note } => {
                let code = check_text("code", &code, 64, true)?;
                LendingAction::Condition { code, note: check_text("note", &note, 1000, false)? }
            }
            LendingInput::RenewAnswer { yes, due } => LendingAction::RenewAnswer {
                yes,
                due: match (yes, due) {
                    (false, _) => None,
                    (true, Some(d)) => Some(future("due", d)?),
                    (true, None) => Some(rec.due.unwrap_or(today).max(today) + chrono::Duration::days(loan_days)),
                },
            },
            LendingInput::Recall { note } => LendingAction::Recall { note: check_text("note", &note, 1000, false)? },
        };
        self.lending_event(id, LendingEvent::Staff(action), &Actor::Staff(by.to_string())).await?;
        self.store.lending_read(id).await?.ok_or_else(|| NodeError::NotFound(format!("no lending request {id:?}")))
    }

    async fn lending_event(&self, id: &str, event: LendingEvent, cause: &Actor) -> Result<()> {
        let ship = matches!(event, LendingEvent::Staff(LendingAction::Ship { .. }));
        let give_up = tokio::time::Instant::now() + SETTLE_WAIT;
        let (mut tx, rec, now) = loop {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            let rec = Store::lending(&mut tx, id)
                .await?
                .ok_or_else(|| NodeError::NotFound(format!("no lending request {id:?}")))?;
            // Two lenders must never ship one request. We ship only once the borrower has
            // confirmed everything we told it and we have everything it told us it sent: a
            // borrower that moved on while our answer was delayed has a Cancel on the way.
            let settled = if ship && rec.state == LendingState::WillSupply {
                Store::conversation_settled(&mut tx, &rec.borrower, id).await?
            } else {
                Settled::Yes
            };
            if settled == Settled::Yes {
                break (tx, rec, now);
            }
            drop(tx);
            if tokio::time::Instant::now() >= give_up {
                return Err(NodeError::Precondition(not_settled(id, &rec.borrower, settled)));
            }
            tokio::time::sleep(SETTLE_POLL).await;
        };
        let view = rec.view_under(&crate::store::agreement_in(&mut tx, &rec.borrower).await?);
        let step = lending_step(&view, &event)?;
        let mut wake = vec![];
        self.apply_lending(&mut tx, &rec, step, cause, now, &mut wake).await?;
        tx.commit().await?;
        for p in &wake {
            self.wake(p);
        }
        Ok(())
    }

    // ===================================================================================
    // Timers

    /// Fire every timer that is due now: unanswered requests past their lender's expiry
    /// window, stale conditional offers, and loans past their due date. A timer that fell
    /// due while the node was down fires on the first tick after start. Returns how many
    /// fired.
    pub async fn tick(&self) -> Result<usize> {
        let now = self.clock.now();
        let today = now.date_naive();
        let mut fired = 0;
        // Requests the node was locating when it stopped (or whose locate failed).
        for rec in self.store.borrowing_in(&[BorrowingState::Locating]).await? {
            if now >= rec.updated_at + chrono::Duration::from_std(self.config.locate_timeout * 4).unwrap_or_default() {
                match self.locate_and_submit(&rec.id, &Actor::Node).await {
                    Ok(()) => fired += 1,
                    Err(e) => tracing::warn!(request = %rec.id, error = %e, "could not finish locating"),
                }
            }
        }
        for rec in self.store.borrowing_in(&[BorrowingState::Sent, BorrowingState::Conditional]).await? {
            let (Some(lender), Some(asked)) = (rec.rota.get(rec.position), rec.asked_at) else { continue };
            let window = self.store.agreement(&lender.partner).await?.expiry_seconds;
            if now >= asked + chrono::Duration::seconds(window as i64) {
                fired += self.fire_expiry(&rec.id, &lender.partner).await;
            }
        }
        for rec in self
            .store
            .borrowing_in(&[BorrowingState::Shipped, BorrowingState::Received, BorrowingState::LoanedToPatron])
            .await?
        {
            if rec.due.is_some_and(|d| d < today) {
                fired += self.fire_borrowing(&rec.id, BorrowingEvent::DuePassed).await;
            }
        }
        // Our own stale requests: conditional offers nobody answered, and copies promised but
        // not shipped, each within the expiry window of our agreement with the borrower.
        for rec in self.store.lending_in(&[LendingState::Conditional, LendingState::WillSupply]).await? {
            let window = self.store.agreement(&rec.borrower).await?.expiry_seconds;
            if now >= rec.updated_at + chrono::Duration::seconds(window as i64) {
                fired += self.fire_lending(&rec.id, LendingEvent::Expire).await;
            }
        }
        for rec in self.store.lending_in(&[LendingState::Shipped]).await? {
            if rec.due.is_some_and(|d| d < today) {
                fired += self.fire_lending(&rec.id, LendingEvent::DuePassed).await;
            }
        }
        Ok(fired)
    }

    /// The expiry timer, decided in one transaction with the outbox state it depends on:
    /// whether the lender has confirmed our Request.
    async fn fire_expiry(&self, id: &str, lender: &Symbol) -> usize {
        let result: Result<bool> = async {
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            let Some(rec) = Store::borrowing(&mut tx, id).await? else { return Ok(false) };
            let delivered = Store::all_delivered(&mut tx, lender, id).await?;
            let Ok(step) = borrowing_step(&rec.view(), &BorrowingEvent::Expire { request_delivered: delivered }) else {
                return Ok(false);
            };
            let mut wake = vec![];
            self.apply_borrowing(&mut tx, &rec, step, &Actor::Node, now, &mut wake).await?;
            tx.commit().await?;
            for p in &wake {
                self.wake(p);
            }
            Ok(true)
        }
        .await;
        match result {
            Ok(fired) => usize::from(fired),
            Err(err) => {
                tracing::warn!(request = %id, error = %err, "expiry timer failed");
                0
            }
        }
    }

    async fn fire_borrowing(&self, id: &str, e: BorrowingEvent) -> usize {
        match self.borrowing_event(id, e, &Actor::Node).await {
            Ok(()) => 1,
            // Raced with a message or a staff action: the state moved on; nothing to do.
            Err(NodeError::Illegal(_)) => 0,
            Err(err) => {
                tracing::warn!(request = %id, error = %err, "timer failed");
                0
            }
        }
    }

    async fn fire_lending(&self, id: &str, e: LendingEvent) -> usize {
        match self.lending_event(id, e, &Actor::Node).await {
            Ok(()) => 1,
            Err(NodeError::Illegal(_)) => 0,
            Err(err) => {
                tracing::warn!(request = %id, error = %err, "timer failed");
                0
            }
        }
    }

    // ===================================================================================
    // Worklists

    /// What to pull from the shelf: lending requests the node said yes to, with their
    /// items, sorted by location, then call number in shelf order ([`shelf_key`]), then
    /// barcode: one walk through the stacks.
    pub async fn pick_list(&self) -> Result<Vec<(LendingRecord, Option<crate::domain::Item>)>> {
        let mut v = self.lending_requests(Some(LendingState::WillSupply), 10_000).await?;
        v.sort_by_cached_key(|(r, i)| match i {
            Some(i) => (i.location.to_lowercase(), shelf_key(&i.call_number), i.barcode.clone()),
            None => (String::new(), vec![], r.item_barcode.clone().unwrap_or_default()),
        });
        Ok(v)
    }

    /// Everything that needs a person, oldest first.
    pub async fn todo(&self) -> Result<Vec<TodoItem>> {
        use BorrowingState as B;
        use LendingState as L;
        let mut out = vec![];
        for r in self
            .store
            .borrowing_in(&[
                B::Shipped,
                B::Received,
                B::Overdue,
                B::Unfilled,
                B::Conditional,
                B::Recalled,
                B::ReturnedByPatron,
            ])
            .await?
        {
            // A cancel the lender refused because it had already shipped: the item comes
            // anyway, and goes straight back.
            let cancel_refused = matches!(r.state, B::Shipped | B::Received)
                && self.store.timeline("borrowing", &r.id).await?.iter().any(|e| e.event == "cancel_refused");
            let action = match r.state {
                B::Shipped if cancel_refused => {
                    "you cancelled, but the lender had shipped: receive the item and ship it back"
                }
                B::Received if cancel_refused => "you cancelled, but the lender had shipped: ship it back",
                B::Shipped => "receive the item when it arrives",
                B::Received => "lend it to the patron",
                B::Overdue => "get the item back from the patron: it is overdue",
                B::Unfilled => "no lender could supply it: tell the patron or try elsewhere",
                B::Conditional => "accept or decline the lender's conditions",
                B::Recalled => "the lender recalled it: get it back and ship it",
                _ => "ship the item back to the lender",
            };
            let partner = r.supplier.clone().or_else(|| r.rota.get(r.position).map(|e| e.partner.clone()));
            out.push(TodoItem {
                side: "borrowing",
                id: r.id.clone(),
                state: r.state.to_string(),
                action,
                title: r.citation.title.clone(),
                partner: partner.map(|p| p.to_string()).unwrap_or_default(),
                since: r.updated_at,
            });
        }
        for r in self.store.lending_in(&[L::WillSupply, L::ReturnShipped, L::Overdue, L::Shipped]).await? {
            let action = match r.state {
                L::WillSupply => "pull the item from the shelf and ship it",
                L::ReturnShipped => "check in the returned item",
                // A renewal request waits for an answer, overdue or not.
                _ if r.renew_pending => "answer the renewal request",
                L::Overdue => "the loan is overdue: chase the borrower or recall it",
                _ => continue,
            };
            out.push(TodoItem {
                side: "lending",
                id: r.id.clone(),
                state: r.state.to_string(),
                action,
                title: r.citation.title.clone(),
                partner: r.borrower.to_string(),
                since: r.updated_at,
            });
        }
        out.sort_by_key(|t| t.since);
        Ok(out)
    }

    /// Fill rate, turnaround medians and lent/borrowed counts per partner and overall.
    pub async fn stats(&self, only: Option<&Symbol>) -> Result<(Vec<PartnerStats>, PartnerStats)> {
        let times = self.store.first_state_times("borrowing").await?;
        let at = |id: &str, state: &str| times.get(&(id.to_owned(), state.to_owned())).copied();
        let secs = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
            (Some(a), Some(b)) if b >= a => Some((b - a).num_milliseconds() as f64 / 1000.0),
            _ => None,
        };
        let mut per: HashMap<String, PartnerStats> = HashMap::new();
        let mut all = PartnerStats::default();
        for r in self.store.list_borrowing(None, 1_000_000).await? {
            for e in r.rota.iter().filter(|e| e.outcome != crate::machine::SlotOutcome::Pending) {
                let s = per.entry(e.partner.to_string()).or_default();
                s.requests += 1;
                all.requests += 1;
                if e.outcome == crate::machine::SlotOutcome::Supplying {
                    s.filled += 1;
                    all.filled += 1;
                }
            }
            let Some(sup) = &r.supplier else { continue };
            let shipped = at(&r.id, "shipped");
            let s = per.entry(sup.to_string()).or_default();
            if shipped.is_some() {
                s.borrowed += 1;
                all.borrowed += 1;
            }
            let samples = [
                secs(Some(r.created_at), shipped),
                secs(shipped, at(&r.id, "received")),
                secs(at(&r.id, "loaned_to_patron"), at(&r.id, "returned_by_patron")),
            ];
            for (i, v) in samples.into_iter().enumerate() {
                if let Some(v) = v {
                    for t in [&mut *s, &mut all] {
                        [&mut t.created_to_shipped_s, &mut t.shipped_to_received_s, &mut t.loaned_to_returned_s][i]
                            .push(v);
                    }
                }
            }
        }
        let lent_times = self.store.first_state_times("lending").await?;
        for r in self.store.list_lending(None, 1_000_000).await? {
            if lent_times.contains_key(&(r.id.clone(), "shipped".to_owned())) {
                per.entry(r.borrower.to_string()).or_default().lent += 1;
                all.lent += 1;
            }
        }
        let mut rows: Vec<PartnerStats> = per
            .into_iter()
            .filter(|(p, _)| only.is_none_or(|o| o.as_str() == p))
            .map(|(p, mut s)| {
                s.partner = Some(p);
                s
            })
            .collect();
        rows.sort_by(|a, b| a.partner.cmp(&b.partner));
        Ok((rows, all))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_numbers_sort_in_shelf_order() {
        let mut v = [
            "QA76 .K5 1990",
            "QA9 .A1",
            "qa76.9 .C65",
            "QA76 .C5",
            "QA76 .C495",
            "PS3545.H16",
            "813.54 M5",
            "813.5 B2",
            "813.54 M49",
            "",
        ];
        v.sort_by_key(|c| super::shelf_key(c));
        assert_eq!(
            v,
            [
                "",
                "813.5 B2",
                "813.54 M49",
                "813.54 M5",
                "PS3545.H16",
                "QA9 .A1",
                "QA76 .C495",
                "QA76 .C5",
                "QA76 .K5 1990",
                "qa76.9 .C65",
            ]
        );
    }

    #[test]
    fn medians() {
        assert_eq!(super::median(&[]), 0.0);
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
