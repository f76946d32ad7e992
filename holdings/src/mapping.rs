//! Turning a bibliographic [`Record`] and its local item fields into [`HoldingRow`]s.
//!
//! Library systems export items in local fields whose layout differs by system; an
//! [`ItemMapping`] says which field and subfields to read. It is parsed from a short string
//! ([`ItemMapping::parse`]) so staff can choose it on the command line:
//!
//! | mapping   | item field | subfields |
//! |-----------|------------|-----------|
//! | `koha`    | 952 | `p` barcode; `c` shelving location, else `a` home branch; `o` call number; `7` not for loan (non-zero: policy `not_lendable`, else `lendable`); `1` lost (non-zero: status `missing`, whatever `q` says); `q` date due (present: status `on_loan`; else `available`); `0` withdrawn (non-zero: the item is left out) |
//! | `sierra`  | 945 | `i` barcode; `l` location; `a` call number, else `c`; `s` status code: `-` available, `m` `n` `z` missing, `o` available with policy `library_use_only`, `t` in_process, anything else available; policy otherwise `lendable`. Due dates are not read: Sierra exports do not carry them in a fixed subfield |
//! | `generic` | 949 | `i` barcode; `l` location; `a` call number; `s` status and `p` policy, used only if they are Rota words |
//! | `alma`    | ITM, else AVA | ITM (Alma publishing, physical items): `b` barcode; `c` location code; `d` call number; `e` process type (`LOAN` `ILL`: on_loan; `MISSING` `LOST_LOAN` `LOST_ILL` `CLAIM_RETURNED_LOAN`: missing; `HOLDSHELF` `REQUESTED`: reserved; `ACQ` `TECHNICAL` `WORK_ORDER_DEPARTMENT` `TRANSIT` `TRANSIT_TO_REMOTE_STORAGE`: in_process; a Rota status word: itself; empty or other: available); `f` item policy, used only if it is a Rota policy word. AVA (availability, used only when a record has no ITM): `b` library; `c` location (else `b`); `d` call number; `e` availability (`available`: available, `unavailable`: on_loan, `check_holdings` or other: available); AVA carries no barcode, so the barcode is the record's 001, with `-2`, `-3`, … for the second and later AVA fields |
//! | `tag=TAG,barcode=X,location=Y,call=Z,status=S,policy=P` | TAG | custom: `tag` and `barcode` are required, the rest optional; `status` and `policy` subfields are used only if they hold Rota words |
//!
//! Rota status words are `available`, `on_loan`, `reserved`, `missing`, `in_process`;
//! policy words are `lendable`, `not_lendable`, `library_use_only` (any case; a space or
//! hyphen may stand for `_`). A status or policy the mapping does not set is left empty and
//! the node applies its default (`available`, `lendable`). "Non-zero" means present, not
//! blank and not a number equal to 0. An item without a call number takes the record's.
//!
//! The bibliographic part of every row comes from the record:
//!
//! * title: 245 `$a` and `$b`, with trailing ISBD punctuation (` /`, ` :`, ` ;`, ` =`,
//!   `,`, and a final `.` unless it ends an initial, an ellipsis or an abbreviation such as
//!   "Co.") trimmed;
//! * author: 100, 110 or 111 `$a`, trimmed the same way;
//! * publisher: 264 (second indicator `1`) `$b`, else 260 `$b`, trimmed the same way;
//! * year: 008/07-10 when it is four digits;
//! * ISBNs: every 020 `$a`; ISSN: 022 `$a`; OCLC number: the 035 `$a` starting `(OCoLC)`;
//!   LCCN: 010 `$a`, trimmed;
//! * format from leader/06-07: `a`/`t` with `s` → journal; `a`/`t` otherwise → book; `g`
//!   video; `i`/`j` audio; `e`/`f` map; `c`/`d` score; anything else book;
//! * call number: 050 `$a` `$b`, else 090 `$a` `$b`.
//!
//! One row is made per item field. A record with no item fields makes one row, with the
//! barcode taken from 001 (trimmed) and the call number from the record. An item field
//! without a barcode is skipped, and reported with the reason.

use std::fmt;
use std::str::FromStr;

use crate::RecordError;
use crate::marc::{DataField, Record, is_control_tag, valid_tag};
use crate::row::{HoldingRow, Source};

/// The mapping table for `--help` text.
pub const MAPPING_HELP: &str = "\
Item mappings (which MARC field holds items, and its subfields):
  koha     952  p barcode, c location (else a home branch), o call number,
                7 not for loan (non-zero: not_lendable), 1 lost (non-zero: missing),
                q date due (present: on_loan), 0 withdrawn (non-zero: item left out)
  sierra   945  i barcode, l location, a call number (else c), s status code
                (- available, m n z missing, o library_use_only, t in_process)
  generic  949  i barcode, l location, a call number, s status, p policy
                (status and policy only if they are Rota words)
  alma     ITM  b barcode, c location, d call number, e process type
                (LOAN on_loan, MISSING/LOST_LOAN missing, HOLDSHELF reserved,
                ACQ/TECHNICAL/TRANSIT in_process), f policy (Rota words only)
           AVA  when a record has no ITM: b library, c location, d call number,
                e availability (available, unavailable: on_loan); barcode from 001
  tag=TAG,barcode=X[,location=Y][,call=Z][,status=S][,policy=P]
                a custom layout; status and policy subfields must hold Rota words
A record without item fields becomes one item whose barcode is its 001.";

/// Which local field holds items, and how to read it. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemMapping {
    Koha,
    Sierra,
    Generic,
    Alma,
    Custom(CustomMapping),
}

/// A custom item field layout: `tag=TAG,barcode=X,location=Y,call=Z,status=S,policy=P`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomMapping {
    pub tag: String,
    pub barcode: char,
    pub location: Option<char>,
    pub call_number: Option<char>,
    /// A subfield holding a Rota status word.
    pub status: Option<char>,
    /// A subfield holding a Rota policy word.
    pub policy: Option<char>,
}

/// A mapping string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("item mapping {spec:?}: {reason}")]
pub struct MappingError {
    pub spec: String,
    pub reason: String,
}

const CUSTOM_KEYS: &str = "tag, barcode, location, call, status, policy";

impl ItemMapping {
    /// Parse `koha`, `sierra`, `generic`, `alma` (any case) or a custom
    /// `tag=TAG,barcode=X,...` layout.
    pub fn parse(spec: &str) -> Result<Self, MappingError> {
        let err = |reason: String| MappingError { spec: spec.to_owned(), reason };
        let s = spec.trim();
        if !s.contains('=') {
            return match s.to_ascii_lowercase().as_str() {
                "koha" => Ok(ItemMapping::Koha),
                "sierra" => Ok(ItemMapping::Sierra),
                "generic" => Ok(ItemMapping::Generic),
                "alma" => Ok(ItemMapping::Alma),
                "" => Err(err("is empty; use koha, sierra, generic, alma or tag=TAG,barcode=X,...".to_owned())),
                _ => Err(err(
                    "is not a known mapping; use koha, sierra, generic, alma or tag=TAG,barcode=X,...".to_owned()
                )),
            };
        }
        let mut tag = None;
        let mut subfield: [Option<char>; 5] = [None; 5];
        const NAMES: [&str; 5] = ["barcode", "location", "call", "status", "policy"];
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(err(format!("{part:?} is not key=value (keys: {CUSTOM_KEYS})")));
            };
            let key_l = key.trim().to_ascii_lowercase();
            let value = value.trim();
            if key_l == "tag" {
                if tag.is_some() {
                    return Err(err("key 'tag' is given twice".to_owned()));
                }
                if !valid_tag(value) {
                    return Err(err(format!("key 'tag': {value:?} is not a tag (three letters or digits)")));
                }
                if is_control_tag(value) {
                    return Err(err(format!("key 'tag': {value} is a control field, which has no subfields")));
                }
                tag = Some(value.to_ascii_uppercase());
                continue;
            }
            let index = match key_l.as_str() {
                "call_number" => Some(2),
                k => NAMES.iter().position(|n| *n == k),
            };
            let Some(index) = index else {
                return Err(err(format!("unknown key {:?} (keys: {CUSTOM_KEYS})", key.trim())));
            };
            if subfield[index].is_some() {
                return Err(err(format!("key '{}' is given twice", NAMES[index])));
            }
            let mut chars = value.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphanumeric() => subfield[index] = Some(c),
                _ => {
                    return Err(err(format!(
                        "key '{}': {value:?} is not a subfield code (one letter or digit)",
                        NAMES[index]
                    )));
                }
            }
        }
        let Some(tag) = tag else {
            return Err(err("key 'tag' is required (the item field's tag, e.g. tag=949)".to_owned()));
        };
        let [barcode, location, call_number, status, policy] = subfield;
        let Some(barcode) = barcode else {
            return Err(err("key 'barcode' is required (the barcode's subfield code, e.g. barcode=i)".to_owned()));
        };
        Ok(ItemMapping::Custom(CustomMapping { tag, barcode, location, call_number, status, policy }))
    }

    /// The item field tags this mapping reads, in order of preference.
    pub fn item_tags(&self) -> Vec<&str> {
        match self {
            ItemMapping::Koha => vec!["952"],
            ItemMapping::Sierra => vec!["945"],
            ItemMapping::Generic => vec!["949"],
            ItemMapping::Alma => vec!["ITM", "AVA"],
            ItemMapping::Custom(c) => vec![c.tag.as_str()],
        }
    }

    /// The rows of a record; item fields that are skipped for a reason are left out (see
    /// [`ItemMapping::map`] to get those too).
    pub fn rows(&self, record: &Record) -> Vec<HoldingRow> {
        self.map(record).into_iter().filter_map(Result::ok).collect()
    }

    /// The rows of a record and, in field order among them, an error for every item field
    /// skipped for a reason (no barcode). Withdrawn Koha items are left out silently.
    pub fn map(&self, record: &Record) -> Vec<Result<HoldingRow, RecordError>> {
        let bib = bibliographic(record);
        let skip = |reason: String| Err(RecordError::new(record.number, record.offset, reason));
        let barcode_001 = record.control("001").map(str::trim).unwrap_or_default();

        // (tag, fields) of the item field in use.
        let (tag, fields): (&str, Vec<&DataField>) = match self {
            ItemMapping::Alma => {
                let itm: Vec<_> = record.fields_with_tag("ITM").collect();
                if itm.is_empty() { ("AVA", record.fields_with_tag("AVA").collect()) } else { ("ITM", itm) }
            }
            _ => {
                let tag = self.item_tags().first().copied().unwrap_or_default();
                (tag, record.fields_with_tag(tag).collect())
            }
        };
        if fields.is_empty() {
            if barcode_001.is_empty() {
                return vec![skip(format!(
                    "the record has no item fields ({}) and no 001 control number to use as the barcode",
                    self.item_tags().join(" or ")
                ))];
            }
            return vec![Ok(HoldingRow { barcode: barcode_001.to_owned(), ..bib })];
        }
        let mut out = Vec::with_capacity(fields.len());
        for (i, field) in fields.into_iter().enumerate() {
            let which = format!("item field {} of {tag}", i + 1);
            let item = match self {
                ItemMapping::Koha => koha(field),
                ItemMapping::Sierra => sierra(field),
                ItemMapping::Generic => custom(field, &GENERIC),
                ItemMapping::Alma if tag == "AVA" => {
                    let barcode = match (barcode_001.is_empty(), i) {
                        (true, _) => String::new(),
                        (false, 0) => barcode_001.to_owned(),
                        (false, i) => format!("{barcode_001}-{}", i + 1),
                    };
                    Item::Row(ava(field, barcode))
                }
                ItemMapping::Alma => alma_itm(field),
                ItemMapping::Custom(c) => custom(field, c),
            };
            match item {
                Item::Withdrawn => {}
                Item::Row(it) if it.barcode.trim().is_empty() => {
                    let reason = match self {
                        ItemMapping::Alma if tag == "AVA" => {
                            format!("{which} (Alma availability) skipped: AVA has no barcode and the record has no 001")
                        }
                        _ => format!("{which} skipped: it has no barcode (${})", self.barcode_code()),
                    };
                    out.push(skip(reason));
                }
                Item::Row(it) => out.push(Ok(HoldingRow {
                    barcode: it.barcode,
                    location: it.location,
                    call_number: if it.call_number.trim().is_empty() {
                        bib.call_number.clone()
                    } else {
                        it.call_number
                    },
                    policy: it.policy,
                    status: it.status,
                    ..bib.clone()
                })),
            }
        }
        out
    }

    fn barcode_code(&self) -> char {
        match self {
            ItemMapping::Koha => 'p',
            ItemMapping::Sierra | ItemMapping::Generic => 'i',
            ItemMapping::Alma => 'b',
            ItemMapping::Custom(c) => c.barcode,
        }
    }
}

impl FromStr for ItemMapping {
    type Err = MappingError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ItemMapping::parse(s)
    }
}

impl fmt::Display for ItemMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemMapping::Koha => f.write_str("koha"),
            ItemMapping::Sierra => f.write_str("sierra"),
            ItemMapping::Generic => f.write_str("generic"),
            ItemMapping::Alma => f.write_str("alma"),
            ItemMapping::Custom(c) => {
                write!(f, "tag={},barcode={}", c.tag, c.barcode)?;
                for (key, code) in
                    [("location", c.location), ("call", c.call_number), ("status", c.status), ("policy", c.policy)]
                {
                    if let Some(code) = code {
                        write!(f, ",{key}={code}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

/// The item part of a row.
#[derive(Default)]
struct ItemData {
    barcode: String,
    location: String,
    call_number: String,
    policy: String,
    status: String,
}

enum Item {
    Row(ItemData),
    /// Deliberately left out (Koha: withdrawn).
    Withdrawn,
}

const GENERIC: CustomMapping = CustomMapping {
    tag: String::new(),
    barcode: 'i',
    location: Some('l'),
    call_number: Some('a'),
    status: Some('s'),
    policy: Some('p'),
};

fn sub(field: &DataField, code: char) -> String {
    field.subfield(code).map(str::trim).unwrap_or_default().to_owned()
}

/// `Some(code)`'s trimmed value, or empty.
fn sub_opt(field: &DataField, code: Option<char>) -> String {
    code.map(|c| sub(field, c)).unwrap_or_default()
}

/// Present, not blank, and not a number equal to 0.
fn non_zero(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some(v) => v.parse::<i64>() != Ok(0),
    }
}

fn first_non_empty(field: &DataField, codes: &[char]) -> String {
    codes.iter().map(|&c| sub(field, c)).find(|v| !v.is_empty()).unwrap_or_default()
}

fn koha(f: &DataField) -> Item {
    if non_zero(f.subfield('0')) {
        return Item::Withdrawn;
    }
    let status = if non_zero(f.subfield('1')) {
        "missing"
    } else if !sub(f, 'q').is_empty() {
        "on_loan"
    } else {
        "available"
    };
    let policy = if non_zero(f.subfield('7')) { "not_lendable" } else { "lendable" };
    Item::Row(ItemData {
        barcode: sub(f, 'p'),
        location: first_non_empty(f, &['c', 'a']),
        call_number: sub(f, 'o'),
        policy: policy.to_owned(),
        status: status.to_owned(),
    })
}

fn sierra(f: &DataField) -> Item {
    let code = sub(f, 's');
    let (status, policy) = match code.as_str() {
        "m" | "n" | "z" => ("missing", "lendable"),
        "o" => ("available", "library_use_only"),
        "t" => ("in_process", "lendable"),
        _ => ("available", "lendable"),
    };
    Item::Row(ItemData {
        barcode: sub(f, 'i'),
        location: sub(f, 'l'),
        call_number: first_non_empty(f, &['a', 'c']),
        policy: policy.to_owned(),
        status: status.to_owned(),
    })
}

fn alma_itm(f: &DataField) -> Item {
    let process = sub(f, 'e');
    let status = match process.to_ascii_uppercase().as_str() {
        "" => "available".to_owned(),
        "LOAN" | "ILL" => "on_loan".to_owned(),
        "MISSING" | "LOST_LOAN" | "LOST_ILL" | "CLAIM_RETURNED_LOAN" => "missing".to_owned(),
        "HOLDSHELF" | "REQUESTED" => "reserved".to_owned(),
        "ACQ" | "TECHNICAL" | "WORK_ORDER_DEPARTMENT" | "TRANSIT" | "TRANSIT_TO_REMOTE_STORAGE" => {
            "in_process".to_owned()
        }
        _ => rota_status(&process).unwrap_or("available").to_owned(),
    };
    Item::Row(ItemData {
        barcode: sub(f, 'b'),
        location: sub(f, 'c'),
        call_number: sub(f, 'd'),
        policy: rota_policy(&sub(f, 'f')).unwrap_or_default().to_owned(),
        status,
    })
}

fn ava(f: &DataField, barcode: String) -> ItemData {
    let status = match sub(f, 'e').to_ascii_lowercase().as_str() {
        "unavailable" => "on_loan",
        _ => "available",
    };
    ItemData {
        barcode,
        location: first_non_empty(f, &['c', 'b']),
        call_number: sub(f, 'd'),
        policy: String::new(),
        status: status.to_owned(),
    }
}

fn custom(f: &DataField, c: &CustomMapping) -> Item {
    Item::Row(ItemData {
        barcode: sub(f, c.barcode),
        location: sub_opt(f, c.location),
        call_number: sub_opt(f, c.call_number),
        policy: rota_policy(&sub_opt(f, c.policy)).unwrap_or_default().to_owned(),
        status: rota_status(&sub_opt(f, c.status)).unwrap_or_default().to_owned(),
    })
}

/// A word as Rota spells it: lowercase, with `_` for spaces and hyphens.
fn word(s: &str) -> String {
    s.trim().to_lowercase().replace([' ', '-'], "_")
}

/// The Rota status word `s` spells, if any.
fn rota_status(s: &str) -> Option<&'static str> {
    ["available", "on_loan", "reserved", "missing", "in_process"].into_iter().find(|w| *w == word(s))
}

/// The Rota policy word `s` spells, if any.
fn rota_policy(s: &str) -> Option<&'static str> {
    ["lendable", "not_lendable", "library_use_only"].into_iter().find(|w| *w == word(s))
}

/// Trim trailing ISBD punctuation: ` /`, ` :`, ` ;`, ` =`, `,` (with or without the
/// space) and a final `.`, unless the full stop ends an initial ("Claypool, John R."), an
/// ellipsis or a common abbreviation ("Co.", "Inc.", "Ltd.", "Jr.", "etc.", …).
pub fn trim_isbd(s: &str) -> String {
    let mut t = s.trim();
    loop {
        let before = t.len();
        if let Some(rest) = t.strip_suffix(['/', ':', ';', '=', ',']) {
            t = rest.trim_end();
        }
        if let Some(rest) = t.strip_suffix('.')
            && !rest.ends_with('.')
            && !ends_with_initial(rest)
            && !ends_with_abbreviation(rest)
        {
            t = rest.trim_end();
        }
        if t.len() == before {
            return t.to_owned();
        }
    }
}

/// Abbreviations whose full stop [`trim_isbd`] keeps (compared in lowercase).
const ABBREVIATIONS: [&str; 16] = [
    "co", "inc", "ltd", "bros", "corp", "pub", "publ", "jr", "sr", "etc", "st", "dept", "univ", "assoc", "assn", "mfg",
];

/// Whether `s` ends with a word from [`ABBREVIATIONS`] ("Werner School Book Co").
fn ends_with_abbreviation(s: &str) -> bool {
    let last = s.rsplit(|c: char| !c.is_alphanumeric()).next().unwrap_or_default();
    ABBREVIATIONS.contains(&last.to_lowercase().as_str())
}

/// Whether `s` ends with a single capital letter standing alone ("John R").
fn ends_with_initial(s: &str) -> bool {
    let mut rev = s.chars().rev();
    match (rev.next(), rev.next()) {
        (Some(c), None) => c.is_uppercase(),
        (Some(c), Some(prev)) => c.is_uppercase() && (prev.is_whitespace() || prev == '.'),
        _ => false,
    }
}

/// The format word for a leader's type of record (06) and bibliographic level (07).
pub fn format_from_leader(leader: &[u8; 24]) -> &'static str {
    match (leader[6], leader[7]) {
        (b'a' | b't', b's') => "journal",
        (b'g', _) => "video",
        (b'i' | b'j', _) => "audio",
        (b'e' | b'f', _) => "map",
        (b'c' | b'd', _) => "score",
        _ => "book",
    }
}

/// Whether an 035 $a holds an OCLC number: `(OCoLC)` in any case, or OCLC's own `ocm`,
/// `ocn` and `on` prefixes before digits. Other systems' numbers, such as `(DLC)…`, are not.
fn is_oclc_035(a: &str) -> bool {
    let lower = a.to_ascii_lowercase();
    if lower.starts_with("(ocolc)") {
        return true;
    }
    ["ocm", "ocn", "on"]
        .iter()
        .any(|p| lower.strip_prefix(p).is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())))
}

fn join_subfields(field: &DataField, codes: &[char]) -> String {
    let parts: Vec<&str> =
        codes.iter().filter_map(|&c| field.subfield(c)).map(str::trim).filter(|s| !s.is_empty()).collect();
    parts.join(" ")
}

/// The bibliographic part of a record's rows (everything but the item part), with the
/// record's own call number. See the [module docs](self) for where each value comes from.
pub fn bibliographic(record: &Record) -> HoldingRow {
    let title = record.field("245").map(|f| trim_isbd(&join_subfields(f, &['a', 'b']))).unwrap_or_default();
    let author = ["100", "110", "111"]
        .iter()
        .find_map(|t| record.field(t).and_then(|f| f.subfield('a')))
        .map(trim_isbd)
        .unwrap_or_default();
    let publisher = record
        .fields_with_tag("264")
        .find(|f| f.ind2 == '1')
        .and_then(|f| f.subfield('b'))
        .or_else(|| record.field("260").and_then(|f| f.subfield('b')))
        .map(trim_isbd)
        .unwrap_or_default();
    let year = record
        .control("008")
        .and_then(|f| f.get(7..11))
        .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_default()
        .to_owned();
    let isbns = record
        .fields_with_tag("020")
        .flat_map(|f| f.subfields_with_code('a'))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let issn = record.field("022").and_then(|f| f.subfield('a')).map(str::trim).unwrap_or_default().to_owned();
    let oclc = record
        .fields_with_tag("035")
        .flat_map(|f| f.subfields_with_code('a'))
        .map(str::trim)
        .find(|a| is_oclc_035(a))
        .unwrap_or_default()
        .to_owned();
    let lccn = record.field("010").and_then(|f| f.subfield('a')).map(str::trim).unwrap_or_default().to_owned();
    let call_number = ["050", "090"]
        .iter()
        .filter_map(|t| record.field(t))
        .map(|f| join_subfields(f, &['a', 'b']))
        .find(|c| !c.is_empty())
        .unwrap_or_default();
    HoldingRow {
        title,
        author,
        publisher,
        year,
        isbns,
        issn,
        oclc,
        lccn,
        format: format_from_leader(&record.leader).to_owned(),
        call_number,
        source: Source { record: record.number, offset: record.offset, line: None },
        ..HoldingRow::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(spec: &str) -> String {
        ItemMapping::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn oclc_numbers_are_found_in_035_however_they_are_written() {
        for a in ["(OCoLC)ocm05853149", "(ocolc)12345", "(OCOLC) 12345", "ocm05853149", "ocn123456789", "on1234567890"]
        {
            assert!(is_oclc_035(a), "{a}");
        }
        for a in ["(DLC)   85000002", "(CaOTULAS)160597761", "ocm", "online", "12345"] {
            assert!(!is_oclc_035(a), "{a}");
        }
    }

    #[test]
    fn presets_parse_in_any_case() {
        assert_eq!(ItemMapping::parse("koha"), Ok(ItemMapping::Koha));
        assert_eq!(ItemMapping::parse(" Sierra "), Ok(ItemMapping::Sierra));
        assert_eq!("GENERIC".parse::<ItemMapping>(), Ok(ItemMapping::Generic));
        assert_eq!(ItemMapping::parse("alma"), Ok(ItemMapping::Alma));
        assert_eq!(ItemMapping::Alma.item_tags(), ["ITM", "AVA"]);
        assert_eq!(ItemMapping::Koha.to_string(), "koha");
        let e = parse_err("folio");
        assert!(e.starts_with("item mapping \"folio\": is not a known mapping; use koha, sierra"), "{e}");
        assert!(parse_err("  ").contains("is empty"));
    }

    #[test]
    fn custom_mappings_parse() {
        let m = ItemMapping::parse("tag=949,barcode=i,location=l,call=a,status=s,policy=p").unwrap();
        assert_eq!(
            m,
            ItemMapping::Custom(CustomMapping {
                tag: "949".into(),
                barcode: 'i',
                location: Some('l'),
                call_number: Some('a'),
                status: Some('s'),
                policy: Some('p'),
            })
        );
        assert_eq!(m.to_string(), "tag=949,barcode=i,location=l,call=a,status=s,policy=p");
        let m = ItemMapping::parse(" TAG = itm , Barcode = b ,call_number=d,").unwrap();
        assert_eq!(m.to_string(), "tag=ITM,barcode=b,call=d");
        assert_eq!(m.item_tags(), ["ITM"]);
        assert_eq!(ItemMapping::parse(&m.to_string()), Ok(m));
    }

    #[test]
    fn custom_mapping_errors_name_the_key() {
        assert_eq!(
            parse_err("tag=949,barcode=i,shelf=x"),
            "item mapping \"tag=949,barcode=i,shelf=x\": unknown key \"shelf\" (keys: tag, barcode, location, call, \
             status, policy)"
        );
        assert!(parse_err("barcode=i").contains("key 'tag' is required"));
        assert!(parse_err("tag=949,location=l").contains("key 'barcode' is required"));
        assert!(parse_err("tag=94,barcode=i").contains("key 'tag': \"94\" is not a tag"));
        assert!(parse_err("tag=001,barcode=i").contains("key 'tag': 001 is a control field"));
        assert!(parse_err("tag=949,barcode=ii").contains("key 'barcode': \"ii\" is not a subfield code"));
        assert!(parse_err("tag=949,barcode=i,location=").contains("key 'location': \"\" is not a subfield code"));
        assert!(parse_err("tag=949,barcode=i,status=$").contains("key 'status'"));
        assert!(parse_err("tag=949,barcode=i,barcode=p").contains("key 'barcode' is given twice"));
        assert!(parse_err("tag=949,tag=950,barcode=p").contains("key 'tag' is given twice"));
        assert!(parse_err("tag=949,barcode=i,call=a,call_number=b").contains("key 'call' is given twice"));
        assert!(parse_err("tag=949,barcode").contains("\"barcode\" is not key=value"));
    }

    #[test]
    fn the_help_table_lists_every_preset() {
        for preset in ["koha", "sierra", "generic", "alma", "tag=TAG,barcode=X"] {
            assert!(MAPPING_HELP.contains(preset), "{preset}");
        }
        for tag in ["952", "945", "949", "ITM", "AVA"] {
            assert!(MAPPING_HELP.contains(tag), "{tag}");
        }
    }

    #[test]
    fn isbd_punctuation_is_trimmed() {
        assert_eq!(
            trim_isbd("Personal rights and the domestic relations /"),
            "Personal rights and the domestic relations"
        );
        assert_eq!(trim_isbd("The sky pilot; a tale of the foothills,"), "The sky pilot; a tale of the foothills");
        assert_eq!(trim_isbd("Glad reunion :"), "Glad reunion");
        assert_eq!(trim_isbd("Title ; "), "Title");
        assert_eq!(trim_isbd("Parallel title ="), "Parallel title");
        assert_eq!(trim_isbd("standpoint."), "standpoint");
        assert_eq!(trim_isbd("Songs of the Lakes and other poems. /"), "Songs of the Lakes and other poems");
        assert_eq!(trim_isbd("Claypool, John R."), "Claypool, John R.");
        assert_eq!(trim_isbd("Aurand, Samuel Herbert,"), "Aurand, Samuel Herbert");
        assert_eq!(trim_isbd("Werner School Book Co."), "Werner School Book Co.");
        assert_eq!(trim_isbd("Scranton, Pa. ..."), "Scranton, Pa. ...");
        assert_eq!(trim_isbd(" / . , "), "");
        assert_eq!(trim_isbd(""), "");
    }

    #[test]
    fn formats_come_from_the_leader() {
        let leader = |t: &str| -> [u8; 24] {
            let mut l = *b"00000nam a2200000   4500";
            l[6..8].copy_from_slice(t.as_bytes());
            l
        };
        for (t, f) in [
            ("am", "book"),
            ("tm", "book"),
            ("ac", "book"),
            ("as", "journal"),
            ("gm", "video"),
            ("jm", "audio"),
            ("im", "audio"),
            ("em", "map"),
            ("fm", "map"),
            ("cm", "score"),
            ("dm", "score"),
            ("mm", "book"),
            ("km", "book"),
        ] {
            assert_eq!(format_from_leader(&leader(t)), f, "{t}");
        }
    }

    #[test]
    fn words_and_flags() {
        assert_eq!(rota_status(" On loan "), Some("on_loan"));
        assert_eq!(rota_status("in-process"), Some("in_process"));
        assert_eq!(rota_status("checked out"), None);
        assert_eq!(rota_policy("Library use only"), Some("library_use_only"));
        assert_eq!(rota_policy("reference"), None);
        assert!(!non_zero(None));
        assert!(!non_zero(Some(" ")));
        assert!(!non_zero(Some("0")));
        assert!(!non_zero(Some("00")));
        assert!(non_zero(Some("1")));
        assert!(non_zero(Some("-1")));
        assert!(non_zero(Some("Y")));
    }

    fn record(controls: &[(&str, &str)], fields: Vec<DataField>) -> Record {
        Record {
            leader: *b"00000nam a2200000   4500",
            controls: controls.iter().map(|(t, v)| ((*t).to_owned(), (*v).to_owned())).collect(),
            fields,
            offset: 10,
            number: 2,
        }
    }

    fn df(tag: &str, ind2: char, subs: &[(char, &str)]) -> DataField {
        DataField {
            tag: tag.into(),
            ind1: ' ',
            ind2,
            subfields: subs.iter().map(|(c, v)| (*c, (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn bibliographic_values() {
        let r = record(
            &[("001", " b1 "), ("008", "200101s20x1")],
            vec![
                df("245", '0', &[('a', "Only a title.")]),
                df("264", '0', &[('b', "Producer,")]),
                df("264", '1', &[('b', "Publisher :")]),
                df("260", ' ', &[('b', "Old publisher")]),
                df("022", ' ', &[('a', " 0317-8471 ")]),
                df("035", ' ', &[('a', "(DLC)123"), ('a', "(OCoLC)ocm05853149")]),
                df("020", ' ', &[('z', "cancelled"), ('a', "1"), ('a', "2")]),
                df("020", ' ', &[('a', "3")]),
                df("090", ' ', &[('a', "QA76"), ('b', ".L6")]),
                df("111", ' ', &[('a', "Conference.")]),
            ],
        );
        let b = bibliographic(&r);
        assert_eq!(b.title, "Only a title");
        assert_eq!(b.publisher, "Publisher");
        assert_eq!(b.year, "", "008/07-10 is not four digits");
        assert_eq!(b.issn, "0317-8471");
        assert_eq!(b.oclc, "(OCoLC)ocm05853149");
        assert_eq!(b.isbns, ["1", "2", "3"]);
        assert_eq!(b.call_number, "QA76 .L6");
        assert_eq!(b.author, "Conference");
        assert_eq!(b.source, Source { record: 2, offset: 10, line: None });
        // 260 when there is no 264 with second indicator 1; a short 008 is no year.
        let r = record(&[("008", "2001")], vec![df("260", ' ', &[('b', "Old publisher,")])]);
        let b = bibliographic(&r);
        assert_eq!((b.publisher.as_str(), b.year.as_str(), b.title.as_str()), ("Old publisher", "", ""));
    }

    #[test]
    fn a_record_without_items_or_001_is_an_error() {
        let r = record(&[], vec![df("245", '0', &[('a', "T")])]);
        let out = ItemMapping::Koha.map(&r);
        assert_eq!(out.len(), 1);
        let e = out[0].clone().unwrap_err();
        assert_eq!((e.number, e.offset), (2, 10));
        assert_eq!(e.reason, "the record has no item fields (952) and no 001 control number to use as the barcode");
        assert!(ItemMapping::Koha.rows(&r).is_empty());
        let e = ItemMapping::Alma.map(&r)[0].clone().unwrap_err();
        assert!(e.reason.contains("(ITM or AVA)"), "{e}");
        // AVA without a 001 has no barcode either.
        let r = record(&[], vec![df("AVA", ' ', &[('b', "MAIN")])]);
        let e = ItemMapping::Alma.map(&r)[0].clone().unwrap_err();
        assert!(e.reason.contains("AVA has no barcode and the record has no 001"), "{e}");
    }

    #[test]
    fn koha_withdrawn_and_blank_values() {
        let r = record(
            &[("001", "x")],
            vec![
                df("952", ' ', &[('p', "W1"), ('0', "2")]),
                df("952", ' ', &[('p', "  "), ('c', "GEN")]),
                df("952", ' ', &[('p', "I3"), ('c', " "), ('a', "HOME"), ('q', " "), ('1', "")]),
            ],
        );
        let out = ItemMapping::Koha.map(&r);
        assert_eq!(out.len(), 2);
        assert!(out[0].as_ref().unwrap_err().reason.contains("item field 2 of 952 skipped"));
        let row = out[1].as_ref().unwrap();
        assert_eq!((row.barcode.as_str(), row.location.as_str(), row.status.as_str()), ("I3", "HOME", "available"));
    }
}
