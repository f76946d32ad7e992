//! Domain types: what a node knows about items, partners, agreements, citations and
//! requests. No wire types (prost) and no storage types (sqlx) appear here.

use std::fmt;

use serde::{Deserialize, Serialize};

pub use rota_certs::{StaffUser, Symbol};

/// A value that failed validation, with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }

    /// Prefix the field with its parent, e.g. `citation.` + `isbn`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// Declares a string-valued enum with its names, parsing that names the field on failure.
macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parse, naming `field` and the accepted values on failure.
            pub fn parse_field(s: &str, field: &str) -> Result<Self, $crate::domain::FieldError> {
                s.parse().map_err(|_| $crate::domain::FieldError::new(field, format!(
                    "{s:?} is not one of {}",
                    [$($text),+].join(", ")
                )))
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(
    /// Where a partner sits in the rota: consortium partners are asked first, then wider
    /// peer-to-peer partners, then the last-resort ILL service.
    Tier { Consortium = "consortium", P2p = "p2p", LastResort = "last_resort" }
);

impl Tier {
    /// Sort rank: lower is asked first.
    pub fn rank(self) -> u8 {
        match self {
            Tier::Consortium => 0,
            Tier::P2p => 1,
            Tier::LastResort => 2,
        }
    }
}

named_enum!(
    /// How lenders are ordered within a tier: `priority` (static), `balance` (favour
    /// lenders who have lent to us least relative to what we lent them) or `performance`
    /// (fill rate, then turnaround).
    Strategy { Priority = "priority", Balance = "balance", Performance = "performance" }
);

/// A period when a partner is closed and left out of new rotas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closure {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub note: String,
}

impl Closure {
    pub fn covers(&self, day: chrono::NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

named_enum!(
    /// Whether a partner may connect and is asked to lend.
    PartnerStatus { Active = "active", Suspended = "suspended" }
);

named_enum!(
    /// An item's resource-sharing policy.
    Policy { Lendable = "lendable", NotLendable = "not_lendable", LibraryUseOnly = "library_use_only" }
);

named_enum!(
    /// An item's circulation status.
    ItemStatus { Available = "available", OnLoan = "on_loan", Reserved = "reserved", Missing = "missing", InProcess = "in_process" }
);

named_enum!(
    /// ISO 18626 ReasonUnfilled.
    ReasonUnfilled {
        NotHeld = "NotHeld",
        NotOnShelf = "NotOnShelf",
        NonCirculating = "NonCirculating",
        NotAvailableForIll = "NotAvailableForILL",
        PolicyProblem = "PolicyProblem",
        PoorCondition = "PoorCondition",
    }
);

named_enum!(
    /// ISO 18626 SupplierMessage status.
    SupplierStatus {
        ExpectToSupply = "ExpectToSupply",
        WillSupply = "WillSupply",
        Loaned = "Loaned",
        Overdue = "Overdue",
        Recalled = "Recalled",
        RetryPossible = "RetryPossible",
        Unfilled = "Unfilled",
        LoanCompleted = "LoanCompleted",
        CompletedWithoutReturn = "CompletedWithoutReturn",
        Cancelled = "Cancelled",
    }
);

named_enum!(
    /// ISO 18626 ReasonForMessage.
    ReasonForMessage {
        RequestResponse = "RequestResponse",
        StatusChange = "StatusChange",
        CancelResponse = "CancelResponse",
        RenewResponse = "RenewResponse",
        Notification = "Notification",
    }
);

named_enum!(
    /// ISO 18626 RequesterMessage action.
    RequesterAction {
        Received = "Received",
        ShippedReturn = "ShippedReturn",
        Cancel = "Cancel",
        Renew = "Renew",
        Lost = "Lost",
        StatusRequest = "StatusRequest",
        Notification = "Notification",
    }
);

/// Who caused a state change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    Staff(String),
    Partner(Symbol),
    /// The node itself: automatic decisions and timers.
    Node,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Staff(u) => write!(f, "staff:{u}"),
            Actor::Partner(s) => write!(f, "partner:{s}"),
            Actor::Node => f.write_str("node"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Identifiers

// Identifier normalisation lives in `rota-holdings`, shared with the CLI's import.
pub use rota_holdings::ids::{normalise_isbn, normalise_issn, normalise_lccn, normalise_oclc, title_key};

/// Check a free-text field: trimmed, at most `max` characters, no control characters.
pub fn check_text(field: &str, value: &str, max: usize, required: bool) -> Result<String, FieldError> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(FieldError::new(field, "is required"));
    }
    if v.chars().count() > max {
        return Err(FieldError::new(field, format!("is longer than {max} characters")));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(field, "contains a control character"));
    }
    Ok(v.to_owned())
}

/// A format name: `book`, `dvd`, `journal`… lowercase letters, digits and `_`, 1–32 long.
pub fn check_format(field: &str, value: &str) -> Result<String, FieldError> {
    let v = value.trim();
    if v.is_empty() || v.len() > 32 || !v.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_') {
        return Err(FieldError::new(field, format!("{v:?} is not a format name (lowercase letters, digits, _)")));
    }
    Ok(v.to_owned())
}

/// A date `YYYY-MM-DD`.
pub fn check_date(field: &str, value: &str) -> Result<Option<chrono::NaiveDate>, FieldError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| FieldError::new(field, format!("{v:?} is not a date (YYYY-MM-DD)")))
}

// ---------------------------------------------------------------------------------------
// Citations, items, agreements

/// What a request asks for, validated and normalised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub title: String,
    pub author: String,
    pub isbn: Option<String>,
    pub issn: Option<String>,
    pub oclc: Option<String>,
    pub lccn: Option<String>,
    pub format: String,
    pub publisher: String,
    pub year: String,
}

/// Unchecked citation fields, as they arrive.
#[derive(Clone, Debug, Default)]
pub struct RawCitation<'a> {
    pub title: &'a str,
    pub author: &'a str,
    pub isbn: &'a str,
    pub issn: &'a str,
    pub oclc: &'a str,
    pub lccn: &'a str,
    pub format: &'a str,
    pub publisher: &'a str,
    pub year: &'a str,
}

fn opt_id(field: &str, raw: &str, f: fn(&str) -> Result<String, String>) -> Result<Option<String>, FieldError> {
    if raw.trim().is_empty() { Ok(None) } else { f(raw).map(Some).map_err(|r| FieldError::new(field, r)) }
}

impl Citation {
    /// A citation needs a title or at least one identifier.
    pub fn parse(raw: RawCitation<'_>) -> Result<Self, FieldError> {
        let has_id = [raw.isbn, raw.issn, raw.oclc, raw.lccn].iter().any(|v| !v.trim().is_empty());
        let c = Citation {
            title: check_text("title", raw.title, 2000, false)?,
            author: check_text("author", raw.author, 500, false)?,
            isbn: opt_id("isbn", raw.isbn, normalise_isbn)?,
            issn: opt_id("issn", raw.issn, normalise_issn)?,
            oclc: opt_id("oclc", raw.oclc, normalise_oclc)?,
            lccn: opt_id("lccn", raw.lccn, normalise_lccn)?,
            format: if raw.format.trim().is_empty() { "book".into() } else { check_format("format", raw.format)? },
            publisher: check_text("publisher", raw.publisher, 300, false)?,
            year: check_text("year", raw.year, 16, false)?,
        };
        if c.title.is_empty() && !has_id {
            return Err(FieldError::new("title", "is required when there is no ISBN, ISSN, OCLC number or LCCN"));
        }
        Ok(c)
    }

    pub fn has_identifier(&self) -> bool {
        self.isbn.is_some() || self.issn.is_some() || self.oclc.is_some() || self.lccn.is_some()
    }

    /// A short label for logs and tables: the first identifier, else the title.
    pub fn label(&self) -> String {
        if let Some(i) = &self.isbn {
            return format!("ISBN {i}");
        }
        if let Some(i) = &self.oclc {
            return format!("OCLC {i}");
        }
        if let Some(i) = &self.lccn {
            return format!("LCCN {i}");
        }
        if let Some(i) = &self.issn {
            return format!("ISSN {i}");
        }
        self.title.chars().take(60).collect()
    }
}

/// One item (copy) in the holdings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub barcode: String,
    pub title: String,
    pub author: String,
    pub publisher: String,
    pub year: String,
    /// The first ISBN (for display); `isbns` has them all.
    pub isbn: Option<String>,
    /// Every ISBN of the item, normalised to ISBN-13, in the order found.
    pub isbns: Vec<String>,
    pub issn: Option<String>,
    pub oclc: Option<String>,
    pub lccn: Option<String>,
    pub format: String,
    pub location: String,
    pub call_number: String,
    pub policy: Policy,
    pub status: ItemStatus,
}

/// Unchecked item fields, as they arrive from staff.
#[derive(Clone, Debug, Default)]
pub struct RawItem<'a> {
    pub barcode: &'a str,
    pub citation: RawCitation<'a>,
    pub location: &'a str,
    pub call_number: &'a str,
    pub policy: &'a str,
    pub status: &'a str,
}

impl Item {
    pub fn parse(raw: RawItem<'_>) -> Result<Self, FieldError> {
        let barcode = check_text("barcode", raw.barcode, 64, true)?;
        if barcode.chars().any(char::is_whitespace) {
            return Err(FieldError::new("barcode", "must not contain spaces"));
        }
        if raw.citation.title.trim().is_empty() {
            return Err(FieldError::new("title", "is required"));
        }
        let c = Citation::parse(raw.citation)?;
        Ok(Item {
            barcode,
            title: c.title,
            author: c.author,
            publisher: c.publisher,
            year: c.year,
            isbns: c.isbn.iter().cloned().collect(),
            isbn: c.isbn,
            issn: c.issn,
            oclc: c.oclc,
            lccn: c.lccn,
            format: c.format,
            location: check_text("location", raw.location, 200, false)?,
            call_number: check_text("call_number", raw.call_number, 200, false)?,
            policy: if raw.policy.trim().is_empty() {
                Policy::Lendable
            } else {
                Policy::parse_field(raw.policy.trim(), "policy")?
            },
            status: if raw.status.trim().is_empty() {
                ItemStatus::Available
            } else {
                ItemStatus::parse_field(raw.status.trim(), "status")?
            },
        })
    }

    pub fn title_key(&self) -> String {
        title_key(&self.title, &self.author)
    }

    /// Parse an item from an import. A malformed identifier is dropped with a warning
    /// instead of refusing the whole item (a book with a mistyped ISBN is still a book);
    /// anything else wrong refuses the item. `more_isbns` are further ISBNs of the record.
    pub fn parse_import(raw: RawItem<'_>, more_isbns: &[String]) -> Result<(Item, Vec<String>), FieldError> {
        let mut warnings = vec![];
        let mut isbns: Vec<String> = vec![];
        for r in std::iter::once(raw.citation.isbn).chain(more_isbns.iter().map(String::as_str)) {
            if r.trim().is_empty() {
                continue;
            }
            match normalise_isbn(r) {
                Ok(v) if !isbns.contains(&v) => isbns.push(v),
                Ok(_) => {}
                Err(e) => warnings.push(format!("isbn: {e}; ignored")),
            }
        }
        let mut keep = |field: &str, v: &'_ str, f: fn(&str) -> Result<String, String>| -> bool {
            if v.trim().is_empty() || f(v).is_ok() {
                true
            } else {
                warnings.push(format!("{field}: {}; ignored", f(v).err().unwrap_or_default()));
                false
            }
        };
        let mut cleaned = raw.clone();
        cleaned.citation.isbn = "";
        if !keep("issn", raw.citation.issn, normalise_issn) {
            cleaned.citation.issn = "";
        }
        if !keep("oclc", raw.citation.oclc, normalise_oclc) {
            cleaned.citation.oclc = "";
        }
        if !keep("lccn", raw.citation.lccn, normalise_lccn) {
            cleaned.citation.lccn = "";
        }
        if cleaned.citation.title.trim().is_empty() {
            return Err(FieldError::new("title", "is required"));
        }
        let mut item = Item::parse(cleaned)?;
        item.isbn = isbns.first().cloned();
        item.isbns = isbns;
        Ok((item, warnings))
    }
}

/// The terms this library has set with one partner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// False until staff set it: an unconfigured partner is neither lent to nor asked.
    pub configured: bool,
    pub lend: bool,
    pub borrow: bool,
    pub loan_days: u32,
    pub renewals: u32,
    pub max_outstanding: u32,
    /// Formats lent; empty means every format.
    pub formats: Vec<String>,
    pub expiry_seconds: u64,
}

impl Default for Agreement {
    fn default() -> Self {
        Agreement {
            configured: false,
            lend: false,
            borrow: false,
            loan_days: 28,
            renewals: 1,
            max_outstanding: 50,
            formats: Vec::new(),
            expiry_seconds: 4 * 24 * 3600,
        }
    }
}

impl Agreement {
    pub fn lends_format(&self, format: &str) -> bool {
        self.formats.is_empty() || self.formats.iter().any(|f| f == format)
    }
}

/// A partner library as this node knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    pub symbol: Symbol,
    pub name: String,
    pub endpoint: String,
    pub ca_pem: String,
    pub fingerprint: String,
    pub tier: Tier,
    pub priority: u32,
    pub status: PartnerStatus,
    pub added_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Parse a duration written like `30s`, `15m`, `96h` or `4d`, into seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a duration like 30s, 15m, 96h or 4d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("{s:?} is not a duration like 30s, 15m, 96h or 4d")),
    };
    n.checked_mul(mult).filter(|v| *v > 0).ok_or_else(|| format!("{s:?} is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("96h").unwrap(), 96 * 3600);
        assert_eq!(parse_duration("4d").unwrap(), 4 * 86400);
        assert!(parse_duration("4").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("4w").is_err());
    }

    #[test]
    fn enums_name_the_field() {
        let e = Tier::parse_field("gold", "tier").unwrap_err();
        assert_eq!(e.field, "tier");
        assert!(e.reason.contains("consortium, p2p, last_resort"));
    }
}
