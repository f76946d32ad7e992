//! Telling a holdings export's format from its first bytes, and saying what a file is when
//! it is not a holdings export at all (a PDF, a spreadsheet, a web page, …).

use std::fmt;
use std::str::FromStr;

use crate::marc::show;

/// The formats Rota reads holdings from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// MARC21 binary (ISO 2709), usually `.mrc`.
    Marc21,
    /// MARCXML, with or without a `<collection>`.
    MarcXml,
    /// Rota's CSV holdings format (see [`crate::csvfmt`]).
    Csv,
}

/// A file that is none of the [`Format`]s; `seen` says what it looks like instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this file is not MARC21, MARCXML or CSV holdings: it is {seen}")]
pub struct NotHoldings {
    pub seen: String,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl Format {
    /// How many leading bytes [`Format::detect`] looks at; it works with fewer.
    pub const DETECT_LEN: usize = 4096;

    /// The format's name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Marc21 => "MARC21",
            Format::MarcXml => "MARCXML",
            Format::Csv => "CSV",
        }
    }

    /// Recognise a format from the first bytes of a file (up to [`Format::DETECT_LEN`]):
    ///
    /// * MARC21: five digits (the record length) and a plausible leader;
    /// * MARCXML: an optional byte-order mark and white space, then `<` (but not HTML);
    /// * CSV: a first line (after an optional byte-order mark) that names a `barcode`
    ///   column.
    pub fn detect(first_bytes: &[u8]) -> Result<Format, NotHoldings> {
        let b = first_bytes;
        let not = |seen: String| Err(NotHoldings { seen });
        if b.is_empty() {
            return not("empty".to_owned());
        }
        if b.len() >= 5 && b[..5].iter().all(u8::is_ascii_digit) {
            if plausible_leader(b) {
                return Ok(Format::Marc21);
            }
            if !first_line(b).to_ascii_lowercase().contains("barcode") {
                let leader = &b[..b.len().min(24)];
                return not(format!(
                    "something that starts like a MARC21 record, but its leader {} is not valid",
                    show(leader)
                ));
            }
        }
        if b.starts_with(b"\xFF\xFE") || b.starts_with(b"\xFE\xFF") {
            return not("UTF-16 text; save or export it as UTF-8".to_owned());
        }
        let text = b.strip_prefix(BOM).unwrap_or(b);
        let trimmed = text.trim_ascii_start();
        if trimmed.starts_with(b"<") {
            let head = String::from_utf8_lossy(&trimmed[..trimmed.len().min(200)]).to_ascii_lowercase();
            if head.starts_with("<!doctype html") || head.starts_with("<html") {
                return not("an HTML web page (perhaps an error or login page saved instead of the export)".to_owned());
            }
            return Ok(Format::MarcXml);
        }
        if first_line(text).to_ascii_lowercase().contains("barcode") {
            return Ok(Format::Csv);
        }
        not(describe(b))
    }
}

/// Five digits, then the fixed parts of a MARC21 leader as far as `b` goes.
fn plausible_leader(b: &[u8]) -> bool {
    let leader = &b[..b.len().min(24)];
    let at = |i: usize, ok: &dyn Fn(u8) -> bool| leader.get(i).is_none_or(|&c| ok(c));
    leader.iter().all(|&c| c == b' ' || c.is_ascii_graphic())
        && at(10, &|c| c == b'2' || c == b' ')
        && at(11, &|c| c == b'2' || c == b' ')
        && (12..17).all(|i| at(i, &|c: u8| c.is_ascii_digit()))
        && at(20, &|c| c == b'4' || c == b' ')
        && at(21, &|c| c == b'5' || c == b' ')
}

/// The first line of `b`, as (lossy) text.
fn first_line(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == b'\n' || c == b'\r').unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Say what a file that is not holdings looks like.
fn describe(b: &[u8]) -> String {
    let magic: [(&[u8], &str); 9] = [
        (b"%PDF", "a PDF document"),
        (
            b"PK\x03\x04",
            "a ZIP archive, such as an Excel (.xlsx) or OpenDocument (.ods) spreadsheet; \
             save the sheet as CSV (UTF-8) instead",
        ),
        (
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1",
            "an old-style Microsoft Office file, such as an Excel 97-2003 (.xls) spreadsheet; \
             save the sheet as CSV (UTF-8) instead",
        ),
        (b"\x1F\x8B", "a gzip-compressed file; decompress it first"),
        (b"BZh", "a bzip2-compressed file; decompress it first"),
        (b"\xFD7zXZ\x00", "an xz-compressed file; decompress it first"),
        (b"\x89PNG", "a PNG image"),
        (b"\xFF\xD8\xFF", "a JPEG image"),
        (b"GIF8", "a GIF image"),
    ];
    if let Some((_, what)) = magic.iter().find(|(m, _)| b.starts_with(m)) {
        return (*what).to_owned();
    }
    let text = b.strip_prefix(BOM).unwrap_or(b);
    let valid = match std::str::from_utf8(text) {
        Ok(s) => s,
        // A sample may end inside a character; judge what comes before.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or_default(),
        Err(_) => "",
    };
    let is_text = !valid.is_empty() && valid.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    if is_text {
        let trimmed = valid.trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            return "JSON text".to_owned();
        }
        let line: String = trimmed.lines().next().unwrap_or("").chars().take(60).collect();
        return format!(
            "text whose first line is {line:?}; a CSV holdings file starts with a header line naming its \
             columns, and it must have a barcode column"
        );
    }
    let hex: Vec<String> = b.iter().take(8).map(|c| format!("{c:02X}")).collect();
    format!("binary data starting with the bytes {}", hex.join(" "))
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    /// `marc21` (or `marc`, `mrc`, `iso2709`), `marcxml` (or `xml`), `csv`; any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "marc21" | "marc" | "mrc" | "iso2709" => Ok(Format::Marc21),
            "marcxml" | "xml" => Ok(Format::MarcXml),
            "csv" => Ok(Format::Csv),
            other => Err(format!("unknown holdings format {other:?}: use marc21, marcxml or csv")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(b: &[u8]) -> String {
        Format::detect(b).unwrap_err().to_string()
    }

    #[test]
    fn recognises_the_three_formats() {
        let marc = b"00720cam a2200205 a 4500001001300000";
        assert_eq!(Format::detect(marc), Ok(Format::Marc21));
        // A short sample is judged as far as it goes.
        assert_eq!(Format::detect(b"00720cam a22"), Ok(Format::Marc21));
        assert_eq!(Format::detect(b"<?xml version=\"1.0\"?>\n<collection>"), Ok(Format::MarcXml));
        assert_eq!(Format::detect(b"\xEF\xBB\xBF  \n<marc:record>"), Ok(Format::MarcXml));
        assert_eq!(Format::detect(b"<record xmlns=\"http://www.loc.gov/MARC21/slim\">"), Ok(Format::MarcXml));
        assert_eq!(Format::detect(b"Title,Barcode\nMoby Dick,B1\n"), Ok(Format::Csv));
        assert_eq!(Format::detect(b"\xEF\xBB\xBFbarcode;title"), Ok(Format::Csv));
    }

    #[test]
    fn names_what_other_files_are() {
        assert!(seen(b"").contains("is empty"));
        let pdf = seen(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3");
        assert!(pdf.starts_with("this file is not MARC21, MARCXML or CSV holdings"), "{pdf}");
        assert!(pdf.contains("PDF document"), "{pdf}");
        assert!(seen(b"PK\x03\x04\x14\x00\x06\x00").contains("Excel (.xlsx)"));
        assert!(seen(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\x00").contains("Excel 97-2003"));
        assert!(seen(b"\x1F\x8B\x08\x00").contains("gzip"));
        assert!(seen(b"\xFF\xFEb\x00a\x00").contains("UTF-16"));
        assert!(seen(b"<!DOCTYPE html>\n<html>").contains("HTML"));
        assert!(seen(b"  {\"items\": []}").contains("JSON"));
        let text = seen(b"title,author\nMoby Dick,Melville\n");
        assert!(text.contains("\"title,author\"") && text.contains("barcode column"), "{text}");
        let bin = seen(b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09");
        assert!(bin.contains("00 01 02 03 04 05 06 07"), "{bin}");
        let bad_leader = seen(b"00720cam a99002051  4500");
        assert!(bad_leader.contains("starts like a MARC21 record"), "{bad_leader}");
        assert!(bad_leader.contains("'00720cam a99002051  4500'"), "{bad_leader}");
    }

    #[test]
    fn a_sample_cut_inside_a_character_is_still_text() {
        let s = "title,auteur\nLes Misérables,Hugo".as_bytes();
        let cut = &s[..s.len() - 10];
        assert!(seen(cut).contains("text whose first line"), "{}", seen(cut));
        let cut = &"Misérables".as_bytes()[..4];
        assert!(seen(cut).contains("text whose first line"));
    }

    #[test]
    fn format_names_parse() {
        assert_eq!("MARC".parse::<Format>(), Ok(Format::Marc21));
        assert_eq!(" xml ".parse::<Format>(), Ok(Format::MarcXml));
        assert_eq!("csv".parse::<Format>(), Ok(Format::Csv));
        assert!("xlsx".parse::<Format>().unwrap_err().contains("marc21, marcxml or csv"));
        assert_eq!(Format::MarcXml.to_string(), "MARCXML");
    }
}
