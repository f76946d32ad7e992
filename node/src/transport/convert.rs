//! Protobuf ↔ domain conversions. Inbound messages are destructured field by field, so a
//! new field in a `.proto` breaks the build here until it is handled; every value is
//! validated and a refusal names the field (`request.citation.isbn: …`).

use chrono::{DateTime, NaiveDate, Utc};
use rota_proto::peer as pb;
use rota_proto::staff as spb;
use uuid::Uuid;

use crate::domain::{
    Agreement, Citation, FieldError, Item, RawCitation, RawItem, ReasonForMessage, ReasonUnfilled, RequesterAction,
    SupplierStatus, Symbol, check_date, check_format, check_text,
};
use crate::message::{Body, Confirmation, ConfirmationError, Envelope, RequestBody, RequesterBody, SupplierBody};
use crate::node::{HelloAnswer, LocateAnswer, PartnerView};
use crate::store::{BorrowingRecord, LendingRecord, TimelineEntry, ms};

/// Largest sequence number accepted.
pub const MAX_SEQUENCE: u64 = 1_000_000;

fn date_string(d: Option<NaiveDate>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

// -- peer: citations -----------------------------------------------------------------------

pub fn citation_from_proto(c: pb::Citation) -> Result<Citation, FieldError> {
    let pb::Citation { title, author, isbn, issn, oclc, lccn, format, publisher, year } = c;
    Citation::parse(RawCitation {
        title: &title,
        author: &author,
        isbn: &isbn,
        issn: &issn,
        oclc: &oclc,
        lccn: &lccn,
        format: &format,
        publisher: &publisher,
        year: &year,
    })
}

pub fn citation_to_proto(c: &Citation) -> pb::Citation {
    pb::Citation {
        title: c.title.clone(),
        author: c.author.clone(),
        isbn: c.isbn.clone().unwrap_or_default(),
        issn: c.issn.clone().unwrap_or_default(),
        oclc: c.oclc.clone().unwrap_or_default(),
        lccn: c.lccn.clone().unwrap_or_default(),
        format: c.format.clone(),
        publisher: c.publisher.clone(),
        year: c.year.clone(),
    }
}

// -- peer: enums ---------------------------------------------------------------------------

fn enum_field<P: TryFrom<i32>>(field: &str, v: i32) -> Result<P, FieldError> {
    P::try_from(v).map_err(|_| FieldError::new(field, format!("{v} is not a known value")))
}

fn reason_from_proto(field: &str, v: i32) -> Result<Option<ReasonUnfilled>, FieldError> {
    use pb::ReasonUnfilled as P;
    Ok(match enum_field::<P>(field, v)? {
        P::Unspecified => None,
        P::NotHeld => Some(ReasonUnfilled::NotHeld),
        P::NotOnShelf => Some(ReasonUnfilled::NotOnShelf),
        P::NonCirculating => Some(ReasonUnfilled::NonCirculating),
        P::NotAvailableForIll => Some(ReasonUnfilled::NotAvailableForIll),
        P::PolicyProblem => Some(ReasonUnfilled::PolicyProblem),
        P::PoorCondition => Some(ReasonUnfilled::PoorCondition),
    })
}

pub fn reason_to_proto(r: Option<ReasonUnfilled>) -> pb::ReasonUnfilled {
    use pb::ReasonUnfilled as P;
    match r {
        None => P::Unspecified,
        Some(ReasonUnfilled::NotHeld) => P::NotHeld,
        Some(ReasonUnfilled::NotOnShelf) => P::NotOnShelf,
        Some(ReasonUnfilled::NonCirculating) => P::NonCirculating,
        Some(ReasonUnfilled::NotAvailableForIll) => P::NotAvailableForIll,
        Some(ReasonUnfilled::PolicyProblem) => P::PolicyProblem,
        Some(ReasonUnfilled::PoorCondition) => P::PoorCondition,
    }
}

fn status_from_proto(v: i32) -> Result<SupplierStatus, FieldError> {
    use pb::SupplierStatus as P;
    Ok(match enum_field::<P>("supplier.status", v)? {
        P::Unspecified => return Err(FieldError::new("supplier.status", "is required")),
        P::ExpectToSupply => SupplierStatus::ExpectToSupply,
        P::WillSupply => SupplierStatus::WillSupply,
        P::Loaned => SupplierStatus::Loaned,
        P::Overdue => SupplierStatus::Overdue,
        P::Recalled => SupplierStatus::Recalled,
        P::RetryPossible => SupplierStatus::RetryPossible,
        P::Unfilled => SupplierStatus::Unfilled,
        P::LoanCompleted => SupplierStatus::LoanCompleted,
        P::CompletedWithoutReturn => SupplierStatus::CompletedWithoutReturn,
        P::Cancelled => SupplierStatus::Cancelled,
    })
}

fn status_to_proto(s: SupplierStatus) -> pb::SupplierStatus {
    use pb::SupplierStatus as P;
    match s {
        SupplierStatus::ExpectToSupply => P::ExpectToSupply,
        SupplierStatus::WillSupply => P::WillSupply,
        SupplierStatus::Loaned => P::Loaned,
        SupplierStatus::Overdue => P::Overdue,
        SupplierStatus::Recalled => P::Recalled,
        SupplierStatus::RetryPossible => P::RetryPossible,
        SupplierStatus::Unfilled => P::Unfilled,
        SupplierStatus::LoanCompleted => P::LoanCompleted,
        SupplierStatus::CompletedWithoutReturn => P::CompletedWithoutReturn,
        SupplierStatus::Cancelled => P::Cancelled,
    }
}

fn reason_for_message_from_proto(v: i32) -> Result<ReasonForMessage, FieldError> {
    use pb::ReasonForMessage as P;
    Ok(match enum_field::<P>("supplier.reason", v)? {
        P::Unspecified => return Err(FieldError::new("supplier.reason", "is required")),
        P::RequestResponse => ReasonForMessage::RequestResponse,
        P::StatusChange => ReasonForMessage::StatusChange,
        P::CancelResponse => ReasonForMessage::CancelResponse,
        P::RenewResponse => ReasonForMessage::RenewResponse,
        P::Notification => ReasonForMessage::Notification,
    })
}

fn reason_for_message_to_proto(r: ReasonForMessage) -> pb::ReasonForMessage {
    use pb::ReasonForMessage as P;
    match r {
        ReasonForMessage::RequestResponse => P::RequestResponse,
        ReasonForMessage::StatusChange => P::StatusChange,
        ReasonForMessage::CancelResponse => P::CancelResponse,
        ReasonForMessage::RenewResponse => P::RenewResponse,
        ReasonForMessage::Notification => P::Notification,
    }
}

fn action_from_proto(v: i32) -> Result<RequesterAction, FieldError> {
    use pb::RequesterAction as P;
    Ok(match enum_field::<P>("requester.action", v)? {
        P::Unspecified => return Err(FieldError::new("requester.action", "is required")),
        P::Received => RequesterAction::Received,
        P::ShippedReturn => RequesterAction::ShippedReturn,
        P::Cancel => RequesterAction::Cancel,
        P::Renew => RequesterAction::Renew,
        P::Lost => RequesterAction::Lost,
        P::StatusRequest => RequesterAction::StatusRequest,
        P::Notification => RequesterAction::Notification,
    })
}

fn action_to_proto(a: RequesterAction) -> pb::RequesterAction {
    use pb::RequesterAction as P;
    match a {
        RequesterAction::Received => P::Received,
        RequesterAction::ShippedReturn => P::ShippedReturn,
        RequesterAction::Cancel => P::Cancel,
        RequesterAction::Renew => P::Renew,
        RequesterAction::Lost => P::Lost,
        RequesterAction::StatusRequest => P::StatusRequest,
        RequesterAction::Notification => P::Notification,
    }
}

fn yes_no_from_proto(field: &str, v: i32) -> Result<Option<bool>, FieldError> {
    Ok(match enum_field::<pb::YesNo>(field, v)? {
        pb::YesNo::Unspecified => None,
        pb::YesNo::Yes => Some(true),
        pb::YesNo::No => Some(false),
    })
}

fn yes_no_to_proto(v: Option<bool>) -> pb::YesNo {
    match v {
        None => pb::YesNo::Unspecified,
        Some(true) => pb::YesNo::Yes,
        Some(false) => pb::YesNo::No,
    }
}

// -- peer: envelopes -------------------------------------------------------------------------

/// Check a request id: `<SYMBOL>-<n>`, at most 40 characters.
pub fn check_request_id(field: &str, id: &str) -> Result<String, FieldError> {
    let ok = id.len() <= 40
        && id.rsplit_once('-').is_some_and(|(sym, n)| {
            rota_certs::Symbol::parse(sym).is_ok()
                && !n.is_empty()
                && n.len() <= 12
                && n.bytes().all(|b| b.is_ascii_digit())
        });
    if ok {
        Ok(id.to_owned())
    } else {
        Err(FieldError::new(
            field,
            format!("{:?} is not a request id like DGW-17", id.chars().take(48).collect::<String>()),
        ))
    }
}

pub fn envelope_from_proto(e: pb::Envelope) -> Result<Envelope, FieldError> {
    let pb::Envelope { message_id, request_id, sequence, sent_at_unix_ms, body } = e;
    let message_id = Uuid::parse_str(&message_id).map_err(|_| {
        FieldError::new("message_id", format!("{:?} is not a UUID", message_id.chars().take(48).collect::<String>()))
    })?;
    let request_id = check_request_id("request_id", &request_id)?;
    if sequence == 0 || sequence > MAX_SEQUENCE {
        return Err(FieldError::new("sequence", format!("{sequence} is outside 1..={MAX_SEQUENCE}")));
    }
    let sent_at = plausible_time(sent_at_unix_ms)
        .ok_or_else(|| FieldError::new("sent_at_unix_ms", format!("{sent_at_unix_ms} is not a plausible time")))?;
    let body = match body.ok_or_else(|| FieldError::new("body", "is required (request, supplier or requester)"))? {
        pb::envelope::Body::Request(r) => {
            let pb::Request { citation, service_type, need_before, note } = r;
            let citation =
                citation_from_proto(citation.ok_or_else(|| FieldError::new("request.citation", "is required"))?)
                    .map_err(|e| e.within("request.citation"))?;
            match enum_field::<pb::ServiceType>("request.service_type", service_type)? {
                pb::ServiceType::Loan => {}
                other => {
                    return Err(FieldError::new(
                        "request.service_type",
                        format!("{} is not supported: Rota lends physical items", other.as_str_name()),
                    ));
                }
            }
            Body::Request(RequestBody {
                citation,
                need_before: check_date("request.need_before", &need_before)?,
                note: check_text("request.note", &note, 2000, false)?,
            })
        }
        pb::envelope::Body::Supplier(s) => {
            let pb::SupplierMessage { reason, status, reason_unfilled, due_date, item_id, answer, condition, note } = s;
            let status = status_from_proto(status)?;
            let reason_unfilled = reason_from_proto("supplier.reason_unfilled", reason_unfilled)?;
            if status == SupplierStatus::Unfilled && reason_unfilled.is_none() {
                return Err(FieldError::new("supplier.reason_unfilled", "is required when status is Unfilled"));
            }
            Body::Supplier(SupplierBody {
                reason: reason_for_message_from_proto(reason)?,
                status,
                reason_unfilled,
                due_date: check_date("supplier.due_date", &due_date)?,
                item_id: check_text("supplier.item_id", &item_id, 64, false)?,
                answer: yes_no_from_proto("supplier.answer", answer)?,
                condition: check_text("supplier.condition", &condition, 200, false)?,
                note: check_text("supplier.note", &note, 2000, false)?,
            })
        }
        pb::envelope::Body::Requester(r) => {
            let pb::RequesterMessage { action, note, answer } = r;
            Body::Requester(RequesterBody {
                action: action_from_proto(action)?,
                note: check_text("requester.note", &note, 2000, false)?,
                answer: yes_no_from_proto("requester.answer", answer)?,
            })
        }
    };
    Ok(Envelope { message_id, request_id, sequence, sent_at, body })
}

pub fn envelope_to_proto(e: &Envelope) -> pb::Envelope {
    let body = match &e.body {
        Body::Request(r) => pb::envelope::Body::Request(pb::Request {
            citation: Some(citation_to_proto(&r.citation)),
            service_type: pb::ServiceType::Loan as i32,
            need_before: date_string(r.need_before),
            note: r.note.clone(),
        }),
        Body::Supplier(s) => pb::envelope::Body::Supplier(pb::SupplierMessage {
            reason: reason_for_message_to_proto(s.reason) as i32,
            status: status_to_proto(s.status) as i32,
            reason_unfilled: reason_to_proto(s.reason_unfilled) as i32,
            due_date: date_string(s.due_date),
            item_id: s.item_id.clone(),
            answer: yes_no_to_proto(s.answer) as i32,
            condition: s.condition.clone(),
            note: s.note.clone(),
        }),
        Body::Requester(r) => pb::envelope::Body::Requester(pb::RequesterMessage {
            action: action_to_proto(r.action) as i32,
            note: r.note.clone(),
            answer: yes_no_to_proto(r.answer) as i32,
        }),
    };
    pb::Envelope {
        message_id: e.message_id.to_string(),
        request_id: e.request_id.clone(),
        sequence: e.sequence,
        sent_at_unix_ms: e.sent_at.timestamp_millis(),
        body: Some(body),
    }
}

/// A partner's confirmation of a message we delivered: checked like any other value from
/// the wire, so that an unknown status, an impossible sequence or an oversized or
/// control-laden error text never reaches the outbox, the ship gate or a staff screen.
pub fn confirmation_from_proto(c: pb::Confirmation) -> Result<Confirmation, FieldError> {
    use pb::{ConfirmationStatus as S, ErrorType as T};
    let pb::Confirmation { status, error_type, error_value, received_at_unix_ms, sent_through } = c;
    let text = |v: &str| check_text("confirmation.error_value", v, 1000, false);
    match enum_field::<S>("confirmation.status", status)? {
        S::Accepted => {
            if sent_through > MAX_SEQUENCE {
                return Err(FieldError::new(
                    "confirmation.sent_through",
                    format!("{sent_through} is outside 0..={MAX_SEQUENCE}"),
                ));
            }
            let received_at = plausible_time(received_at_unix_ms)
                .ok_or_else(|| FieldError::new("confirmation.received_at_unix_ms", "is not a plausible time"))?;
            Ok(Confirmation::Accepted { received_at, sent_through })
        }
        S::RetryLater => Ok(Confirmation::RetryLater { reason: text(&error_value)? }),
        S::Error => {
            let kind = match enum_field::<T>("confirmation.error_type", error_type)? {
                T::Unspecified => {
                    return Err(FieldError::new("confirmation.error_type", "is required with status Error"));
                }
                T::BadlyFormedMessage => ConfirmationError::BadlyFormedMessage,
                T::UnrecognisedDataValue => ConfirmationError::UnrecognisedDataValue,
                T::UnsupportedAction => ConfirmationError::UnsupportedAction,
                T::UnrecognisedRequestId => ConfirmationError::UnrecognisedRequestId,
                T::DuplicateMessageId => ConfirmationError::DuplicateMessageId,
                T::IllegalInState => ConfirmationError::IllegalInState,
            };
            Ok(Confirmation::Error { kind, detail: text(&error_value)? })
        }
        S::Unspecified => Err(FieldError::new("confirmation.status", "is required")),
    }
}

/// A time from the wire, if it lies between 2000-01-01 and 2200-01-01.
fn plausible_time(unix_ms: i64) -> Option<DateTime<Utc>> {
    (946_684_800_000..=7_258_118_400_000).contains(&unix_ms).then(|| DateTime::from_timestamp_millis(unix_ms)).flatten()
}

pub fn confirmation_to_proto(c: &Confirmation) -> pb::Confirmation {
    use pb::{ConfirmationStatus as S, ErrorType as T};
    match c {
        Confirmation::Accepted { received_at, sent_through } => pb::Confirmation {
            status: S::Accepted as i32,
            error_type: T::Unspecified as i32,
            error_value: String::new(),
            received_at_unix_ms: received_at.timestamp_millis(),
            sent_through: *sent_through,
        },
        Confirmation::RetryLater { reason } => pb::Confirmation {
            status: S::RetryLater as i32,
            error_type: T::Unspecified as i32,
            error_value: reason.clone(),
            received_at_unix_ms: 0,
            sent_through: 0,
        },
        Confirmation::Error { kind, detail } => pb::Confirmation {
            status: S::Error as i32,
            error_type: match kind {
                ConfirmationError::BadlyFormedMessage => T::BadlyFormedMessage,
                ConfirmationError::UnrecognisedDataValue => T::UnrecognisedDataValue,
                ConfirmationError::UnsupportedAction => T::UnsupportedAction,
                ConfirmationError::UnrecognisedRequestId => T::UnrecognisedRequestId,
                ConfirmationError::DuplicateMessageId => T::DuplicateMessageId,
                ConfirmationError::IllegalInState => T::IllegalInState,
            } as i32,
            error_value: detail.clone(),
            received_at_unix_ms: 0,
            sent_through: 0,
        },
    }
}

pub fn locate_to_proto(a: &LocateAnswer) -> pb::LocateResponse {
    pb::LocateResponse { available: a.available, reason: reason_to_proto(a.reason) as i32, copies: a.copies }
}

pub fn locate_from_proto(r: &pb::LocateResponse) -> LocateAnswer {
    LocateAnswer {
        available: r.available,
        reason: reason_from_proto("reason", r.reason).ok().flatten(),
        copies: r.copies.min(10_000),
    }
}

/// One side's view of an agreement, as Hello carries it: checked like any wire value, with
/// the bounds staff are held to when they set an agreement.
pub fn agreement_from_view(v: pb::AgreementView) -> Result<Agreement, FieldError> {
    let pb::AgreementView { configured, lend, borrow, loan_days, renewals, max_outstanding, formats, expiry_seconds } =
        v;
    let range = |field: &str, n: u64, lo: u64, hi: u64| {
        if (lo..=hi).contains(&n) { Ok(()) } else { Err(FieldError::new(field, format!("{n} is outside {lo}..={hi}"))) }
    };
    range("loan_days", loan_days.into(), 1, 365)?;
    range("renewals", renewals.into(), 0, 20)?;
    range("max_outstanding", max_outstanding.into(), 1, 100_000)?;
    range("expiry_seconds", expiry_seconds, 1, 90 * 86_400)?;
    if formats.len() > 64 {
        return Err(FieldError::new("formats", format!("{} formats is more than 64", formats.len())));
    }
    let formats = formats.iter().map(|f| check_format("formats", f)).collect::<Result<_, _>>()?;
    Ok(Agreement { configured, lend, borrow, loan_days, renewals, max_outstanding, formats, expiry_seconds })
}

/// A partner's Hello: the protocol version and name it gives, and its terms with us. The
/// symbol must be the partner's own.
pub fn hello_from_proto(r: pb::HelloResponse, partner: &Symbol) -> Result<HelloAnswer, FieldError> {
    let pb::HelloResponse { protocol_version, symbol, name, agreement } = r;
    if symbol != partner.as_str() {
        return Err(FieldError::new(
            "symbol",
            format!("{:?} is not {partner}", symbol.chars().take(32).collect::<String>()),
        ));
    }
    Ok(HelloAnswer {
        protocol_version: check_text("protocol_version", &protocol_version, 32, true)?,
        name: check_text("name", &name, 200, true)?,
        agreement: agreement_from_view(agreement.ok_or_else(|| FieldError::new("agreement", "is required"))?)
            .map_err(|e| e.within("agreement"))?,
    })
}

pub fn staff_partner_check(
    partner: &Symbol,
    ours: &Agreement,
    answer: &Result<(HelloAnswer, u32), String>,
    problems: Vec<String>,
) -> spb::PartnerCheck {
    let (reachable, error, version, name, rtt, theirs) = match answer {
        Ok((h, ms)) => (true, String::new(), h.protocol_version.clone(), h.name.clone(), *ms, Some(&h.agreement)),
        Err(e) => (false, e.clone(), String::new(), String::new(), 0, None),
    };
    spb::PartnerCheck {
        partner: partner.to_string(),
        reachable,
        error,
        protocol_version: version,
        name,
        round_trip_ms: rtt,
        ours: Some(staff_agreement(partner.as_str(), ours)),
        theirs: theirs.map(|a| staff_agreement(partner.as_str(), a)),
        problems,
    }
}

pub fn agreement_view(a: &Agreement) -> pb::AgreementView {
    pb::AgreementView {
        configured: a.configured,
        lend: a.lend,
        borrow: a.borrow,
        loan_days: a.loan_days,
        renewals: a.renewals,
        max_outstanding: a.max_outstanding,
        formats: a.formats.clone(),
        expiry_seconds: a.expiry_seconds,
    }
}

// -- staff -----------------------------------------------------------------------------------

pub fn staff_citation_from_proto(c: spb::Citation) -> Result<Citation, FieldError> {
    let spb::Citation { title, author, isbn, issn, oclc, lccn, format } = c;
    Citation::parse(RawCitation {
        title: &title,
        author: &author,
        isbn: &isbn,
        issn: &issn,
        oclc: &oclc,
        lccn: &lccn,
        format: &format,
        publisher: "",
        year: "",
    })
}

pub fn staff_citation_to_proto(c: &Citation) -> spb::Citation {
    spb::Citation {
        title: c.title.clone(),
        author: c.author.clone(),
        isbn: c.isbn.clone().unwrap_or_default(),
        issn: c.issn.clone().unwrap_or_default(),
        oclc: c.oclc.clone().unwrap_or_default(),
        lccn: c.lccn.clone().unwrap_or_default(),
        format: c.format.clone(),
    }
}

pub fn item_from_proto(i: spb::Item) -> Result<Item, FieldError> {
    let spb::Item {
        barcode,
        title,
        author,
        publisher,
        year,
        isbn,
        issn,
        oclc,
        lccn,
        format,
        location,
        call_number,
        policy,
        status,
        updated_at_unix_ms: _,
    } = i;
    Item::parse(RawItem {
        barcode: &barcode,
        citation: RawCitation {
            title: &title,
            author: &author,
            isbn: &isbn,
            issn: &issn,
            oclc: &oclc,
            lccn: &lccn,
            format: &format,
            publisher: &publisher,
            year: &year,
        },
        location: &location,
        call_number: &call_number,
        policy: &policy,
        status: &status,
    })
}

pub fn item_to_proto(i: &Item) -> spb::Item {
    spb::Item {
        barcode: i.barcode.clone(),
        title: i.title.clone(),
        author: i.author.clone(),
        publisher: i.publisher.clone(),
        year: i.year.clone(),
        isbn: i.isbn.clone().unwrap_or_default(),
        issn: i.issn.clone().unwrap_or_default(),
        oclc: i.oclc.clone().unwrap_or_default(),
        lccn: i.lccn.clone().unwrap_or_default(),
        format: i.format.clone(),
        location: i.location.clone(),
        call_number: i.call_number.clone(),
        policy: i.policy.to_string(),
        status: i.status.to_string(),
        updated_at_unix_ms: 0,
    }
}

pub fn staff_agreement(partner: &str, a: &Agreement) -> spb::Agreement {
    spb::Agreement {
        partner: partner.to_owned(),
        configured: a.configured,
        lend: a.lend,
        borrow: a.borrow,
        loan_days: a.loan_days,
        renewals: a.renewals,
        max_outstanding: a.max_outstanding,
        formats: a.formats.clone(),
        expiry_seconds: a.expiry_seconds,
        updated_at_unix_ms: 0,
    }
}

pub fn partner_to_proto(v: &PartnerView) -> spb::Partner {
    let p = &v.partner;
    spb::Partner {
        symbol: p.symbol.to_string(),
        name: p.name.clone(),
        endpoint: p.endpoint.clone(),
        tier: p.tier.to_string(),
        priority: p.priority,
        status: p.status.to_string(),
        fingerprint: p.fingerprint.clone(),
        added_at_unix_ms: ms(p.added_at),
        updated_at_unix_ms: ms(p.updated_at),
        agreement: Some(staff_agreement(p.symbol.as_str(), &v.agreement)),
        pending_messages: v.pending_messages,
        delivery_attempts: v.delivery_attempts,
        last_delivery_error: v.last_delivery_error.clone().unwrap_or_default(),
        closures: v
            .closures
            .iter()
            .map(|c| spb::Closure { from: c.from.to_string(), to: c.to.to_string(), note: c.note.clone() })
            .collect(),
    }
}

pub fn timeline_to_proto(t: &[TimelineEntry]) -> Vec<spb::TimelineEvent> {
    t.iter()
        .map(|e| spb::TimelineEvent {
            at_unix_ms: ms(e.at),
            actor: e.actor.clone(),
            event: e.event.clone(),
            state: e.state.clone(),
            detail: e.detail.clone(),
            partner: e.partner.clone().unwrap_or_default(),
        })
        .collect()
}

pub fn borrowing_to_proto(r: &BorrowingRecord, timeline: &[TimelineEntry]) -> spb::BorrowingRequest {
    spb::BorrowingRequest {
        id: r.id.clone(),
        state: r.state.to_string(),
        citation: Some(staff_citation_to_proto(&r.citation)),
        patron_id: r.patron_id.clone(),
        note: r.note.clone(),
        need_before: date_string(r.need_before),
        rota: r
            .rota
            .iter()
            .map(|e| spb::RotaEntry {
                partner: e.partner.to_string(),
                tier: e.tier.to_string(),
                priority: e.priority,
                outcome: e.outcome.to_string(),
                reason: e.reason.clone().unwrap_or_default(),
            })
            .collect(),
        position: r.position as u32,
        supplier: r.supplier.as_ref().map(ToString::to_string).unwrap_or_default(),
        created_at_unix_ms: ms(r.created_at),
        updated_at_unix_ms: ms(r.updated_at),
        timeline: timeline_to_proto(timeline),
        due_date: date_string(r.due),
        supplier_item: r.supplier_item.clone().unwrap_or_default(),
    }
}

pub fn lending_to_proto(r: &LendingRecord, item: Option<&Item>, timeline: &[TimelineEntry]) -> spb::LendingRequest {
    spb::LendingRequest {
        id: r.id.clone(),
        borrower: r.borrower.to_string(),
        state: r.state.to_string(),
        citation: Some(staff_citation_to_proto(&r.citation)),
        item_barcode: r.item_barcode.clone().unwrap_or_default(),
        reason_unfilled: r.reason_unfilled.clone().unwrap_or_default(),
        note: r.note.clone(),
        created_at_unix_ms: ms(r.created_at),
        updated_at_unix_ms: ms(r.updated_at),
        timeline: timeline_to_proto(timeline),
        item_title: item.map(|i| i.title.clone()).unwrap_or_default(),
        item_call_number: item.map(|i| i.call_number.clone()).unwrap_or_default(),
        item_location: item.map(|i| i.location.clone()).unwrap_or_default(),
        due_date: date_string(r.due),
        renew_pending: r.renew_pending,
        renewals: r.renewals,
    }
}

/// The current time in the wire's unit.
pub fn now_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn todo_to_proto(t: &crate::lifecycle::TodoItem) -> spb::TodoItem {
    spb::TodoItem {
        side: t.side.into(),
        id: t.id.clone(),
        state: t.state.clone(),
        action: t.action.into(),
        title: t.title.clone(),
        partner: t.partner.clone(),
        since_unix_ms: ms(t.since),
    }
}

pub fn stats_to_proto(s: &crate::lifecycle::PartnerStats) -> spb::PartnerStats {
    use crate::lifecycle::median;
    spb::PartnerStats {
        partner: s.partner.clone().unwrap_or_default(),
        requests: s.requests,
        filled: s.filled,
        fill_rate: s.fill_rate(),
        created_to_shipped_s: median(&s.created_to_shipped_s),
        shipped_to_received_s: median(&s.shipped_to_received_s),
        loaned_to_returned_s: median(&s.loaned_to_returned_s),
        lent: s.lent,
        borrowed: s.borrowed,
    }
}

/// An import row as the node takes it: raw strings, validated in `import`.
pub fn incoming_row(r: spb::ImportRow) -> crate::import::IncomingRow {
    let spb::ImportRow { source, item, record, offset, more_isbns } = r;
    let spb::Item {
        barcode,
        title,
        author,
        publisher,
        year,
        isbn,
        issn,
        oclc,
        lccn,
        format,
        location,
        call_number,
        policy,
        status,
        updated_at_unix_ms: _,
    } = item.unwrap_or_default();
    let isbns = std::iter::once(isbn).chain(more_isbns).filter(|s| !s.trim().is_empty()).take(32).collect();
    crate::import::IncomingRow {
        source: source.chars().take(64).collect(),
        record,
        offset,
        barcode,
        title,
        author,
        publisher,
        year,
        isbns,
        issn,
        oclc,
        lccn,
        format,
        location,
        call_number,
        policy,
        status,
    }
}

pub fn import_report_to_proto(r: &crate::import::ImportReport) -> spb::ImportReport {
    let issue = |i: &crate::import::ImportIssue| spb::ImportIssue {
        source: i.source.clone(),
        record: i.record,
        offset: i.offset,
        reason: i.reason.clone(),
    };
    spb::ImportReport {
        mode: r.mode.map(|m| m.to_string()).unwrap_or_default(),
        dry_run: r.dry_run,
        rows: r.rows,
        created: r.created,
        updated: r.updated,
        unchanged: r.unchanged,
        withdrawn: r.withdrawn,
        skipped: r.skipped,
        skips: r.skips.iter().map(issue).collect(),
        kept: r.kept.iter().map(|(b, s)| spb::KeptItem { barcode: b.clone(), status: s.to_string() }).collect(),
        warnings: r.warnings,
        warning_samples: r.warning_samples.iter().map(issue).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> pb::Envelope {
        pb::Envelope {
            message_id: Uuid::new_v4().to_string(),
            request_id: "DGW-1".into(),
            sequence: 1,
            sent_at_unix_ms: 1_800_000_000_000,
            body: Some(pb::envelope::Body::Request(pb::Request {
                citation: Some(pb::Citation {
                    title: "Glad reunion".into(),
                    isbn: "0914520407".into(),
                    ..Default::default()
                }),
                service_type: pb::ServiceType::Loan as i32,
                need_before: String::new(),
                note: String::new(),
            })),
        }
    }

    #[test]
    fn round_trip_and_normalisation() {
        let e = envelope_from_proto(env()).unwrap();
        let Body::Request(r) = &e.body else { panic!() };
        assert_eq!(r.citation.isbn.as_deref(), Some("9780914520405"));
        let again = envelope_from_proto(envelope_to_proto(&e)).unwrap();
        assert_eq!(again, e);
    }

    #[test]
    fn partners_confirmations_are_checked_and_round_trip() {
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        for c in [
            Confirmation::Accepted { received_at: now, sent_through: 3 },
            Confirmation::RetryLater { reason: "expected sequence 1 of request DGW-1, got 2".into() },
            Confirmation::Error { kind: ConfirmationError::IllegalInState, detail: "state is shipped".into() },
        ] {
            assert_eq!(confirmation_from_proto(confirmation_to_proto(&c)).unwrap(), c);
        }
        let field = |f: &dyn Fn(&mut pb::Confirmation)| {
            let mut c = confirmation_to_proto(&Confirmation::Accepted { received_at: now, sent_through: 1 });
            f(&mut c);
            confirmation_from_proto(c).unwrap_err().field
        };
        assert_eq!(field(&|c| c.status = 0), "confirmation.status");
        assert_eq!(field(&|c| c.status = 42), "confirmation.status");
        assert_eq!(field(&|c| c.sent_through = u64::MAX), "confirmation.sent_through");
        assert_eq!(field(&|c| c.received_at_unix_ms = -1), "confirmation.received_at_unix_ms");
        assert_eq!(field(&|c| c.status = pb::ConfirmationStatus::Error as i32), "confirmation.error_type");
        assert_eq!(
            field(&|c| {
                c.status = pb::ConfirmationStatus::RetryLater as i32;
                c.error_value = "x".repeat(5000);
            }),
            "confirmation.error_value"
        );
        assert_eq!(
            field(&|c| {
                c.status = pb::ConfirmationStatus::Error as i32;
                c.error_type = pb::ErrorType::UnsupportedAction as i32;
                c.error_value = "line\u{1b}[31m".into();
            }),
            "confirmation.error_value"
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |mut f: Box<dyn FnMut(&mut pb::Envelope)>| {
            let mut e = env();
            f(&mut e);
            envelope_from_proto(e).unwrap_err().field
        };
        assert_eq!(field(Box::new(|e| e.message_id = "nope".into())), "message_id");
        assert_eq!(field(Box::new(|e| e.request_id = "dgw 1".into())), "request_id");
        assert_eq!(field(Box::new(|e| e.sequence = 0)), "sequence");
        assert_eq!(field(Box::new(|e| e.sent_at_unix_ms = 5)), "sent_at_unix_ms");
        assert_eq!(field(Box::new(|e| e.body = None)), "body");
        assert_eq!(
            field(Box::new(|e| if let Some(pb::envelope::Body::Request(r)) = &mut e.body {
                r.citation.as_mut().unwrap().isbn = "0874669951".into();
            })),
            "request.citation.isbn"
        );
        assert_eq!(
            field(Box::new(|e| if let Some(pb::envelope::Body::Request(r)) = &mut e.body {
                r.service_type = 99;
            })),
            "request.service_type"
        );
        assert_eq!(
            field(Box::new(|e| e.body = Some(pb::envelope::Body::Supplier(pb::SupplierMessage {
                reason: 1,
                status: pb::SupplierStatus::Unfilled as i32,
                ..Default::default()
            })))),
            "supplier.reason_unfilled"
        );
    }
}
