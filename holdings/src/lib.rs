//! Reading library holdings exports — MARC21 binary, MARCXML and CSV — into item rows
//! ([`HoldingRow`]) that a Rota node validates and stores.
//!
//! * [`detect`] tells the three formats apart from a file's first bytes, and names what a
//!   file is when it is none of them.
//! * [`marc`] and [`marcxml`] stream bibliographic [`Record`]s; [`mapping`] turns a record
//!   and its local item fields (Koha 952, Sierra 945, 949, Alma ITM/AVA or a custom layout)
//!   into rows.
//! * [`csvfmt`] reads Rota's CSV holdings format straight into rows.
//! * [`read_rows`] puts these together.
//! * [`ids`] normalises ISBN, ISSN, OCLC numbers and LCCNs, and makes the title+author key.
//!
//! Nothing here panics on bad input or reads a whole file into memory: every reader yields
//! one `Result` per record (or row), and a bad one is reported and skipped while the rest of
//! the file still imports.

use std::collections::VecDeque;
use std::fmt;
use std::io::BufRead;

pub mod csvfmt;
pub mod detect;
pub mod ids;
pub mod mapping;
pub mod marc;
pub mod marcxml;
pub mod row;

pub use csvfmt::CsvReader;
pub use detect::{Format, NotHoldings};
pub use mapping::{CustomMapping, ItemMapping, MAPPING_HELP, MappingError};
pub use marc::{DataField, MarcReader, Record};
pub use marcxml::MarcXmlReader;
pub use row::{HoldingRow, Source};

/// A record (or CSV row, or item) that could not be read, and why.
///
/// Most errors concern one record: the reader skips it and goes on. A `fatal` error ends
/// the stream: the file as a whole cannot be read (not XML, a bad CSV header, an I/O
/// error). `number` is 0 when the error is about the whole file rather than one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// The record (MARC) or data row (CSV), counting from 1; 0 for the whole file.
    pub number: u64,
    /// Byte offset of the record or row in the file.
    pub offset: u64,
    /// The line, for CSV.
    pub line: Option<u64>,
    /// What is wrong, for staff.
    pub reason: String,
    /// Whether reading stopped here.
    pub fatal: bool,
}

impl RecordError {
    pub fn new(number: u64, offset: u64, reason: impl Into<String>) -> Self {
        RecordError { number, offset, line: None, reason: reason.into(), fatal: false }
    }

    /// The same error, marked as ending the stream.
    pub fn into_fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// The same error, at a line of the file.
    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.number) {
            (Some(line), _) => write!(f, "line {line}: {}", self.reason),
            (None, 0) => f.write_str(&self.reason),
            (None, n) => write!(f, "record {n} (byte {}): {}", self.offset, self.reason),
        }
    }
}

impl std::error::Error for RecordError {}

/// Read item rows from a holdings export in a known format.
///
/// For MARC21 and MARCXML each record is turned into rows by `mapping`: a record error, or
/// an item field skipped for a reason (no barcode), comes out as an `Err` and reading goes
/// on. CSV rows carry their own item data, so `mapping` is not used for CSV.
pub fn read_rows(
    reader: impl BufRead,
    format: Format,
    mapping: &ItemMapping,
) -> impl Iterator<Item = Result<HoldingRow, RecordError>> {
    let records = match format {
        Format::Csv => return Rows::Csv(CsvReader::new(reader)),
        Format::Marc21 => Records::Marc(MarcReader::new(reader)),
        Format::MarcXml => Records::Xml(Box::new(MarcXmlReader::new(reader))),
    };
    Rows::Records { records, mapping, pending: VecDeque::new() }
}

enum Records<R> {
    Marc(MarcReader<R>),
    Xml(Box<MarcXmlReader<R>>),
}

enum Rows<'m, R> {
    Csv(CsvReader<R>),
    Records { records: Records<R>, mapping: &'m ItemMapping, pending: VecDeque<Result<HoldingRow, RecordError>> },
}

impl<R: BufRead> Iterator for Rows<'_, R> {
    type Item = Result<HoldingRow, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Rows::Csv(csv) => csv.next(),
            Rows::Records { records, mapping, pending } => loop {
                if let Some(next) = pending.pop_front() {
                    return Some(next);
                }
                let record = match records {
                    Records::Marc(r) => r.next()?,
                    Records::Xml(r) => r.next()?,
                };
                match record {
                    Ok(record) => pending.extend(mapping.map(&record)),
                    Err(e) => return Some(Err(e)),
                }
            },
        }
    }
}
