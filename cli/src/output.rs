//! Output: tables, `key: value` lines, JSON, and timestamps.
//!
//! Readable output goes through [`table`] and [`print_fields`]; `--json` output through
//! [`print_json`] and the `*_json` builders, which name timestamp fields without their
//! `_unix_ms` suffix and write them as RFC 3339 strings.

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use rota_proto::staff::{
    Agreement, BorrowingRequest, Citation, Closure, Item, LendingRequest, Partner, PartnerStats, PreviewEntry,
    PreviewReply, RotaEntry, TimelineEvent, TodoItem,
};
use serde_json::{Value, json};

use crate::duration::format_duration;

fn datetime(ms: i64) -> Option<DateTime<Utc>> {
    if ms == 0 { None } else { DateTime::from_timestamp_millis(ms) }
}

/// A timestamp for people: `YYYY-MM-DD HH:MM:SSZ` (UTC), or empty when unset.
pub fn time(ms: i64) -> String {
    datetime(ms).map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string()).unwrap_or_default()
}

/// A timestamp for JSON: an RFC 3339 string, or null when unset.
pub fn time_json(ms: i64) -> Value {
    datetime(ms).map(|t| Value::String(t.to_rfc3339_opts(SecondsFormat::Millis, true))).unwrap_or(Value::Null)
}

/// Print a JSON value on stdout.
pub fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row, sized to the terminal when there is one.
pub fn table<const N: usize>(header: [&str; N]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    t
}

/// Print `key: value` lines with the values aligned, leaving out empty values.
pub fn print_fields(fields: &[(&str, String)]) {
    print!("{}", fields_text(fields));
}

/// `key: value` lines with the values aligned, leaving out empty values.
pub fn fields_text(fields: &[(&str, String)]) -> String {
    let shown: Vec<_> = fields.iter().filter(|(_, v)| !v.is_empty()).collect();
    let width = shown.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    shown.iter().map(|(k, v)| format!("{:<w$} {v}\n", format!("{k}:"), w = width + 1)).collect()
}

pub fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// A list of formats for people: empty means every format.
pub fn formats(list: &[String]) -> String {
    if list.is_empty() { "all".to_owned() } else { list.join(", ") }
}

/// The identifiers of a citation, e.g. `ISBN 9780142437247, OCLC 123`.
pub fn identifiers(c: &Citation) -> String {
    [("ISBN", &c.isbn), ("ISSN", &c.issn), ("OCLC", &c.oclc), ("LCCN", &c.lccn)]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn agreement_json(a: &Agreement) -> Value {
    json!({
        "partner": a.partner,
        "configured": a.configured,
        "lend": a.lend,
        "borrow": a.borrow,
        "loan_days": a.loan_days,
        "renewals": a.renewals,
        "max_outstanding": a.max_outstanding,
        "formats": a.formats,
        "expiry_seconds": a.expiry_seconds,
        "updated_at": time_json(a.updated_at_unix_ms),
    })
}

/// The agreement as `key: value` pairs.
pub fn agreement_fields(a: &Agreement) -> Vec<(&'static str, String)> {
    if !a.configured {
        return vec![
            ("partner", a.partner.clone()),
            ("agreement", "none yet (set one with `rota agreement set`)".to_owned()),
        ];
    }
    vec![
        ("partner", a.partner.clone()),
        ("lend", yes_no(a.lend)),
        ("borrow", yes_no(a.borrow)),
        ("loan days", a.loan_days.to_string()),
        ("renewals", a.renewals.to_string()),
        ("max outstanding", a.max_outstanding.to_string()),
        ("formats", formats(&a.formats)),
        ("expiry", format_duration(a.expiry_seconds)),
        ("updated", time(a.updated_at_unix_ms)),
    ]
}

pub fn partner_json(p: &Partner) -> Value {
    json!({
        "id": p.symbol,
        "symbol": p.symbol,
        "name": p.name,
        "endpoint": p.endpoint,
        "tier": p.tier,
        "priority": p.priority,
        "status": p.status,
        "fingerprint": p.fingerprint,
        "added_at": time_json(p.added_at_unix_ms),
        "updated_at": time_json(p.updated_at_unix_ms),
        "agreement": p.agreement.as_ref().map(agreement_json),
        "pending_messages": p.pending_messages,
        "delivery_attempts": p.delivery_attempts,
        "last_delivery_error": p.last_delivery_error,
        "closures": p.closures.iter().map(closure_json).collect::<Vec<_>>(),
    })
}

pub fn closure_json(c: &Closure) -> Value {
    json!({ "from": c.from, "to": c.to, "note": c.note })
}

/// A closure period for people: `2026-12-24 to 2027-01-02 (winter holidays)`.
pub fn closure_text(c: &Closure) -> String {
    let dates = if c.from == c.to { c.from.clone() } else { format!("{} to {}", c.from, c.to) };
    if c.note.is_empty() { dates } else { format!("{dates} ({})", c.note) }
}

pub fn print_partner(p: &Partner) {
    let mut fields = vec![
        ("symbol", p.symbol.clone()),
        ("name", p.name.clone()),
        ("endpoint", p.endpoint.clone()),
        ("tier", p.tier.clone()),
        ("priority", p.priority.to_string()),
        ("status", p.status.clone()),
        ("fingerprint", p.fingerprint.clone()),
        ("added", time(p.added_at_unix_ms)),
        ("updated", time(p.updated_at_unix_ms)),
        ("pending messages", format!("{} ({} delivery attempts so far)", p.pending_messages, p.delivery_attempts)),
        ("last delivery error", p.last_delivery_error.clone()),
    ];
    // One line per closure period, current and future.
    fields.extend(p.closures.iter().map(|c| ("closed", closure_text(c))));
    match &p.agreement {
        Some(a) if a.configured => {
            fields.push(("lend", yes_no(a.lend)));
            fields.push(("borrow", yes_no(a.borrow)));
            fields.push(("loan days", a.loan_days.to_string()));
            fields.push(("renewals", a.renewals.to_string()));
            fields.push(("max outstanding", a.max_outstanding.to_string()));
            fields.push(("formats", formats(&a.formats)));
            fields.push(("expiry", format_duration(a.expiry_seconds)));
        }
        _ => fields.push(("agreement", format!("none yet (set one with `rota agreement set {}`)", p.symbol))),
    }
    print_fields(&fields);
}

pub fn item_json(i: &Item) -> Value {
    json!({
        "id": i.barcode,
        "barcode": i.barcode,
        "title": i.title,
        "author": i.author,
        "publisher": i.publisher,
        "year": i.year,
        "isbn": i.isbn,
        "issn": i.issn,
        "oclc": i.oclc,
        "lccn": i.lccn,
        "format": i.format,
        "call_number": i.call_number,
        "location": i.location,
        "policy": i.policy,
        "status": i.status,
        "updated_at": time_json(i.updated_at_unix_ms),
    })
}

pub fn print_item(i: &Item) {
    print_fields(&[
        ("barcode", i.barcode.clone()),
        ("title", i.title.clone()),
        ("author", i.author.clone()),
        ("publisher", i.publisher.clone()),
        ("year", i.year.clone()),
        ("isbn", i.isbn.clone()),
        ("issn", i.issn.clone()),
        ("oclc", i.oclc.clone()),
        ("lccn", i.lccn.clone()),
        ("format", i.format.clone()),
        ("call number", i.call_number.clone()),
        ("location", i.location.clone()),
        ("policy", i.policy.clone()),
        ("status", i.status.clone()),
        ("updated", time(i.updated_at_unix_ms)),
    ]);
}

pub fn citation_json(c: Option<&Citation>) -> Value {
    let c = c.cloned().unwrap_or_default();
    json!({
        "title": c.title,
        "author": c.author,
        "isbn": c.isbn,
        "issn": c.issn,
        "oclc": c.oclc,
        "lccn": c.lccn,
        "format": c.format,
    })
}

fn rota_entry_json(r: &RotaEntry) -> Value {
    json!({
        "partner": r.partner,
        "tier": r.tier,
        "priority": r.priority,
        "outcome": r.outcome,
        "reason": r.reason,
    })
}

fn event_json(e: &TimelineEvent) -> Value {
    json!({
        "at": time_json(e.at_unix_ms),
        "actor": e.actor,
        "event": e.event,
        "state": e.state,
        "detail": e.detail,
        "partner": e.partner,
    })
}

pub fn borrowing_json(r: &BorrowingRequest) -> Value {
    json!({
        "id": r.id,
        "state": r.state,
        "citation": citation_json(r.citation.as_ref()),
        "patron_id": r.patron_id,
        "note": r.note,
        "need_before": r.need_before,
        "rota": r.rota.iter().map(rota_entry_json).collect::<Vec<_>>(),
        "position": r.position,
        "supplier": r.supplier,
        "supplier_item": r.supplier_item,
        "due_date": r.due_date,
        "created_at": time_json(r.created_at_unix_ms),
        "updated_at": time_json(r.updated_at_unix_ms),
        "timeline": r.timeline.iter().map(event_json).collect::<Vec<_>>(),
    })
}

pub fn lending_json(r: &LendingRequest) -> Value {
    json!({
        "id": r.id,
        "borrower": r.borrower,
        "state": r.state,
        "citation": citation_json(r.citation.as_ref()),
        "item_barcode": r.item_barcode,
        "item_title": r.item_title,
        "item_call_number": r.item_call_number,
        "item_location": r.item_location,
        "reason_unfilled": r.reason_unfilled,
        "note": r.note,
        "due_date": r.due_date,
        "renew_pending": r.renew_pending,
        "renewals": r.renewals,
        "created_at": time_json(r.created_at_unix_ms),
        "updated_at": time_json(r.updated_at_unix_ms),
        "timeline": r.timeline.iter().map(event_json).collect::<Vec<_>>(),
    })
}

/// A borrowing request in a few lines, after a staff action.
pub fn borrowing_brief(r: &BorrowingRequest) -> Vec<(&'static str, String)> {
    vec![
        ("id", r.id.clone()),
        ("state", r.state.clone()),
        ("title", r.citation.as_ref().map(|c| c.title.clone()).unwrap_or_default()),
        ("due date", r.due_date.clone()),
        ("lender", current_lender(r)),
        ("supplier item", r.supplier_item.clone()),
    ]
}

/// The title of a lending request: the matched item's, else the borrower's citation's.
pub fn lending_title(r: &LendingRequest) -> String {
    if r.item_title.is_empty() {
        r.citation.as_ref().map(|c| c.title.clone()).unwrap_or_default()
    } else {
        r.item_title.clone()
    }
}

/// "yes, answer with ..." when the borrower has asked for a renewal, else empty.
pub fn renewal_asked(r: &LendingRequest) -> String {
    if r.renew_pending {
        format!("yes: answer with `rota lending renew-answer {} yes|no`", r.id)
    } else {
        String::new()
    }
}

/// A lending request in a few lines, after a staff action.
pub fn lending_brief(r: &LendingRequest) -> Vec<(&'static str, String)> {
    vec![
        ("id", r.id.clone()),
        ("borrower", r.borrower.clone()),
        ("state", r.state.clone()),
        ("title", lending_title(r)),
        ("item barcode", r.item_barcode.clone()),
        ("due date", r.due_date.clone()),
        ("renewal asked", renewal_asked(r)),
        ("renewals granted", if r.renewals > 0 { r.renewals.to_string() } else { String::new() }),
        ("unfilled because", r.reason_unfilled.clone()),
    ]
}

pub fn todo_json(i: &TodoItem) -> Value {
    json!({
        "side": i.side,
        "id": i.id,
        "state": i.state,
        "action": i.action,
        "title": i.title,
        "partner": i.partner,
        "since": time_json(i.since_unix_ms),
    })
}

pub fn stats_json(p: &PartnerStats) -> Value {
    json!({
        "partner": p.partner,
        "requests": p.requests,
        "filled": p.filled,
        "fill_rate": p.fill_rate,
        "created_to_shipped_s": p.created_to_shipped_s,
        "shipped_to_received_s": p.shipped_to_received_s,
        "loaned_to_returned_s": p.loaned_to_returned_s,
        "lent": p.lent,
        "borrowed": p.borrowed,
    })
}

/// A fill rate (0 to 1) as a percentage, or "-" when nothing was requested.
pub fn percent(rate: f64, requests: u64) -> String {
    if requests == 0 || !rate.is_finite() { "-".to_owned() } else { format!("{:.0}%", rate * 100.0) }
}

/// The partner a borrowing request is with now: its supplier, or the lender being asked.
pub fn current_lender(r: &BorrowingRequest) -> String {
    if !r.supplier.is_empty() {
        return r.supplier.clone();
    }
    match r.rota.get(r.position as usize) {
        Some(entry) => format!("{} (asked)", entry.partner),
        None => String::new(),
    }
}

/// The rota of a request as a table.
pub fn rota_table(r: &BorrowingRequest) -> Table {
    let mut t = table(["#", "partner", "tier", "priority", "outcome", "reason"]);
    for (n, e) in r.rota.iter().enumerate() {
        t.add_row([
            (n + 1).to_string(),
            e.partner.clone(),
            e.tier.clone(),
            e.priority.to_string(),
            e.outcome.clone(),
            e.reason.clone(),
        ]);
    }
    t
}

fn preview_entry_json(e: &PreviewEntry) -> Value {
    json!({
        "partner": e.partner,
        "tier": e.tier,
        "priority": e.priority,
        "included": e.included,
        "locate": e.locate,
        "reason": e.reason,
        "copies": e.copies,
    })
}

pub fn preview_json(r: &PreviewReply) -> Value {
    json!({
        "strategy": r.strategy,
        "local_copies": r.local_copies,
        "entries": r.entries.iter().map(preview_entry_json).collect::<Vec<_>>(),
    })
}

/// The warning shown when our own library has the item on the shelf, or None.
pub fn local_copies_warning(r: &PreviewReply) -> Option<String> {
    if r.local_copies.is_empty() {
        return None;
    }
    Some(format!(
        "Our own copies are on the shelf: {} (a request would be refused without --force)",
        r.local_copies.join(", ")
    ))
}

/// The rows of a preview: lenders in the rota numbered 1, 2, … in rota order; the others "-".
pub fn preview_rows(r: &PreviewReply) -> Vec<[String; 8]> {
    let mut n = 0;
    r.entries
        .iter()
        .map(|e| {
            let number = if e.included {
                n += 1;
                n.to_string()
            } else {
                "-".to_owned()
            };
            // A lender that was not asked, or did not answer, has no count of copies.
            let copies = match e.locate.as_str() {
                "not_asked" | "unreachable" | "" => "-".to_owned(),
                _ => e.copies.to_string(),
            };
            [
                number,
                e.partner.clone(),
                e.tier.clone(),
                e.priority.to_string(),
                yes_no(e.included),
                e.locate.clone(),
                copies,
                e.reason.clone(),
            ]
        })
        .collect()
}

/// A preview as a table.
pub fn preview_table(r: &PreviewReply) -> Table {
    let mut t = table(["#", "partner", "tier", "priority", "in rota", "locate", "copies", "reason"]);
    for row in preview_rows(r) {
        t.add_row(row);
    }
    t
}

/// A timeline under its heading.
pub fn print_timeline(events: &[TimelineEvent]) {
    println!("\nTimeline:");
    if events.is_empty() {
        println!("(no events yet)");
    } else {
        println!("{}", timeline_table(events));
    }
}

/// A timeline as a table.
pub fn timeline_table(events: &[TimelineEvent]) -> Table {
    let mut t = table(["time", "actor", "event", "state", "detail"]);
    for e in events {
        let names_partner = e.partner.is_empty() || e.actor == format!("partner:{}", e.partner);
        let event = if names_partner { e.event.clone() } else { format!("{} ({})", e.event, e.partner) };
        t.add_row([time(e.at_unix_ms), e.actor.clone(), event, e.state.clone(), e.detail.clone()]);
    }
    t
}

/// After a list cut at `limit`: say that more may exist, and how to see them.
pub fn note_if_cut(shown: usize, limit: u32) {
    if shown as u64 >= u64::from(limit) {
        println!("(the newest {shown} are shown; there may be more: add --limit N, or --status to narrow the list)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        // 2024-05-01T12:34:56.789Z
        let ms = 1_714_566_896_789;
        assert_eq!(time(ms), "2024-05-01 12:34:56Z");
        assert_eq!(time_json(ms), json!("2024-05-01T12:34:56.789Z"));
        assert_eq!(time(0), "");
        assert_eq!(time_json(0), Value::Null);
    }

    #[test]
    fn fields_are_aligned_and_empty_ones_left_out() {
        let text = fields_text(&[("id", "r1".into()), ("author", String::new()), ("state", "new".into())]);
        assert_eq!(text, "id:    r1\nstate: new\n");
    }

    #[test]
    fn json_names_timestamps_without_suffix() {
        let p = Partner { symbol: "DGW".into(), added_at_unix_ms: 1_714_566_896_789, ..Default::default() };
        let v = partner_json(&p);
        assert_eq!(v["added_at"], json!("2024-05-01T12:34:56.789Z"));
        assert!(v.get("added_at_unix_ms").is_none());
        assert_eq!(v["updated_at"], Value::Null);
    }

    #[test]
    fn current_lender_is_supplier_or_asked_partner() {
        let mut r = BorrowingRequest {
            rota: vec![
                RotaEntry { partner: "AAA".into(), ..Default::default() },
                RotaEntry { partner: "BBB".into(), ..Default::default() },
            ],
            position: 1,
            ..Default::default()
        };
        assert_eq!(current_lender(&r), "BBB (asked)");
        r.position = 2;
        assert_eq!(current_lender(&r), "");
        r.supplier = "BBB".into();
        assert_eq!(current_lender(&r), "BBB");
    }

    #[test]
    fn fill_rates() {
        assert_eq!(percent(0.5, 4), "50%");
        assert_eq!(percent(2.0 / 3.0, 3), "67%");
        assert_eq!(percent(1.0, 1), "100%");
        assert_eq!(percent(0.0, 0), "-");
    }

    #[test]
    fn new_request_fields_in_json() {
        let r = BorrowingRequest { due_date: "2025-07-31".into(), supplier_item: "B1".into(), ..Default::default() };
        let v = borrowing_json(&r);
        assert_eq!((v["due_date"].as_str(), v["supplier_item"].as_str()), (Some("2025-07-31"), Some("B1")));
        let l = LendingRequest { due_date: "2025-07-31".into(), renew_pending: true, ..Default::default() };
        let v = lending_json(&l);
        assert_eq!((v["due_date"].as_str(), v["renew_pending"].as_bool()), (Some("2025-07-31"), Some(true)));
    }

    #[test]
    fn preview_numbers_only_the_lenders_in_the_rota() {
        let entry = |partner: &str, included: bool, locate: &str, copies: u32| PreviewEntry {
            partner: partner.into(),
            included,
            locate: locate.into(),
            copies,
            ..Default::default()
        };
        let r = PreviewReply {
            entries: vec![
                entry("AAA", true, "available", 2),
                entry("BBB", true, "unreachable", 0),
                entry("CCC", false, "not_asked", 0),
                entry("DDD", false, "not_available", 0),
            ],
            local_copies: vec![],
            strategy: "priority".into(),
        };
        let rows = preview_rows(&r);
        let numbers: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
        assert_eq!(numbers, ["1", "2", "-", "-"]);
        assert_eq!((rows[0][4].as_str(), rows[2][4].as_str()), ("yes", "no"));
        assert_eq!((rows[0][6].as_str(), rows[1][6].as_str(), rows[3][6].as_str()), ("2", "-", "0"));
        assert_eq!(rows[3][5], "not_available");
        assert_eq!(local_copies_warning(&r), None);
        let v = preview_json(&r);
        assert_eq!(
            (v["entries"][2]["included"].as_bool(), v["entries"][2]["locate"].as_str()),
            (Some(false), Some("not_asked"))
        );
        assert_eq!(v["local_copies"], json!([]));
        let r = PreviewReply { local_copies: vec!["B1".into(), "B2".into()], ..r };
        assert_eq!(
            local_copies_warning(&r).unwrap(),
            "Our own copies are on the shelf: B1, B2 (a request would be refused without --force)"
        );
    }

    #[test]
    fn closures_in_json_and_text() {
        let c = Closure { from: "2026-12-24".into(), to: "2027-01-02".into(), note: "winter holidays".into() };
        assert_eq!(closure_text(&c), "2026-12-24 to 2027-01-02 (winter holidays)");
        let day = Closure { from: "2026-05-01".into(), to: "2026-05-01".into(), note: String::new() };
        assert_eq!(closure_text(&day), "2026-05-01");
        let p = Partner { closures: vec![c], ..Default::default() };
        assert_eq!(
            partner_json(&p)["closures"],
            json!([{"from": "2026-12-24", "to": "2027-01-02", "note": "winter holidays"}])
        );
        assert_eq!(partner_json(&Partner::default())["closures"], json!([]));
    }

    #[test]
    fn identifier_list() {
        let c = Citation { isbn: "978".into(), oclc: "12".into(), ..Default::default() };
        assert_eq!(identifiers(&c), "ISBN 978, OCLC 12");
    }
}
