//! Rota's CSV holdings format, read as a stream of [`HoldingRow`]s.
//!
//! * The first line is a header naming the columns, in any order: `barcode` and `title`
//!   (both required), `author`, `publisher`, `year`, `isbn`, `issn`, `oclc`, `lccn`,
//!   `format`, `call_number`, `location`, `policy`, `status`. Names are case-insensitive
//!   and surrounding spaces are ignored. An unknown, unnamed or repeated column is an error
//!   naming it, and nothing is read.
//! * The separator is `,`, or `;` or a tab if the header line has no comma but has one of
//!   those (as spreadsheets in some locales write).
//! * Values are trimmed. An `isbn` cell may hold several ISBNs separated by `;` or `|`.
//! * A UTF-8 byte-order mark is skipped; blank lines are skipped.
//! * A bad row — the wrong number of fields, an empty barcode or title, invalid UTF-8, a
//!   quoted value that is never closed — is an error with its line number, and reading goes
//!   on with the next row.

use std::io::{BufRead, Read};

use crate::RecordError;
use crate::row::{HoldingRow, Source};

/// Every column a holdings CSV may have.
pub const COLUMNS: [&str; 14] = [
    "barcode",
    "title",
    "author",
    "publisher",
    "year",
    "isbn",
    "issn",
    "oclc",
    "lccn",
    "format",
    "call_number",
    "location",
    "policy",
    "status",
];

/// Columns every file must have and every row must fill.
pub const REQUIRED: [&str; 2] = ["barcode", "title"];

/// Passes bytes through to the csv parser, keeping those from the start of the current
/// row so that line numbers and unclosed quotes can be worked out.
struct Tap<R> {
    inner: R,
    /// Bytes read from `inner` so far.
    total: u64,
    /// File offset of `kept[0]`.
    kept_from: u64,
    kept: Vec<u8>,
    eof: bool,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        self.kept.extend_from_slice(buf.get(..n).unwrap_or(buf));
        self.total += n as u64;
        Ok(n)
    }
}

impl<R> Tap<R> {
    fn discard_before(&mut self, offset: u64) {
        let n = usize::try_from(offset.saturating_sub(self.kept_from)).unwrap_or(usize::MAX).min(self.kept.len());
        self.kept.drain(..n);
        self.kept_from += n as u64;
    }

    fn bytes_from(&self, offset: u64) -> &[u8] {
        let start = usize::try_from(offset.saturating_sub(self.kept_from)).unwrap_or(usize::MAX);
        self.kept.get(start..).unwrap_or_default()
    }
}

/// Streams [`HoldingRow`]s out of a holdings CSV file.
pub struct CsvReader<R> {
    /// Before the first call: the input.
    input: Option<R>,
    csv: Option<csv::Reader<Tap<R>>>,
    /// For each column of the file, its index in [`COLUMNS`].
    columns: Vec<usize>,
    record: csv::ByteRecord,
    /// Data rows read so far.
    number: u64,
    done: bool,
}

impl<R> std::fmt::Debug for CsvReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvReader").field("number", &self.number).field("done", &self.done).finish()
    }
}

/// Where a row starts: its byte offset and line, past any blank lines the csv parser
/// skipped before it.
struct Start {
    offset: u64,
    line: u64,
}

impl<R: BufRead> CsvReader<R> {
    pub fn new(input: R) -> Self {
        CsvReader {
            input: Some(input),
            csv: None,
            columns: Vec::new(),
            record: csv::ByteRecord::new(),
            number: 0,
            done: false,
        }
    }

    fn fatal(&mut self, line: Option<u64>, reason: String) -> Option<Result<HoldingRow, RecordError>> {
        self.done = true;
        let e = RecordError::new(0, 0, reason).into_fatal();
        Some(Err(match line {
            Some(l) => e.at_line(l),
            None => e,
        }))
    }

    /// Open the csv parser, choosing the separator from the header line.
    fn open(&mut self, mut input: R) -> std::io::Result<()> {
        let head = input.fill_buf()?;
        let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
        let line = &head[..line_end];
        let delimiter = if line.contains(&b',') {
            b','
        } else if line.contains(&b';') {
            b';'
        } else if line.contains(&b'\t') {
            b'\t'
        } else {
            b','
        };
        let tap = Tap { inner: input, total: 0, kept_from: 0, kept: Vec::new(), eof: false };
        self.csv = Some(
            csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .trim(csv::Trim::All)
                .delimiter(delimiter)
                .from_reader(tap),
        );
        Ok(())
    }

    /// Read the next raw record into `self.record`; `Ok(None)` at the end.
    fn read(&mut self) -> Result<Option<Start>, String> {
        let Some(csv) = self.csv.as_mut() else {
            return Ok(None);
        };
        match csv.read_byte_record(&mut self.record) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => {
                return Err(match e.kind() {
                    csv::ErrorKind::Io(io) => format!("cannot read the file: {io}"),
                    _ => format!("cannot read the file: {e}"),
                });
            }
        }
        let pos = self.record.position().cloned().unwrap_or_else(csv::Position::new);
        let tap = csv.get_mut();
        tap.discard_before(pos.byte());
        let blank = tap.bytes_from(pos.byte()).iter().take_while(|b| matches!(b, b'\r' | b'\n')).collect::<Vec<_>>();
        let newlines = blank.iter().filter(|b| ***b == b'\n').count() as u64;
        Ok(Some(Start { offset: pos.byte() + blank.len() as u64, line: pos.line() + newlines }))
    }

    /// Whether the row just read is the last in the file and has a quoted value that is
    /// never closed: the csv parser then runs it to the end of the file, swallowing every
    /// later line.
    fn unclosed_quote(&self, start: &Start) -> bool {
        let Some(csv) = self.csv.as_ref() else {
            return false;
        };
        let tap = csv.get_ref();
        if !tap.eof || csv.position().byte() < tap.total {
            return false;
        }
        let raw = tap.bytes_from(start.offset);
        let body = raw.trim_ascii_end();
        raw.iter().filter(|&&b| b == b'"').count() % 2 == 1 && body.contains(&b'\n')
    }

    /// Check the header row and set up `columns`.
    fn header(&mut self) -> Result<(), String> {
        let mut columns = Vec::with_capacity(self.record.len());
        for (n, raw) in self.record.iter().enumerate() {
            let raw = if n == 0 { raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw) } else { raw };
            let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(format!("column {} of the header has no name", n + 1));
            }
            let Some(known) = COLUMNS.iter().position(|c| *c == name) else {
                return Err(format!(
                    "unknown column {name:?} (column {}); the columns are {}",
                    n + 1,
                    COLUMNS.join(", ")
                ));
            };
            if let Some(first) = columns.iter().position(|&k| k == known) {
                return Err(format!("column {name:?} appears twice (columns {} and {})", first + 1, n + 1));
            }
            columns.push(known);
        }
        for required in REQUIRED {
            if !columns.iter().any(|&k| COLUMNS[k] == required) {
                return Err(format!(
                    "there is no {required:?} column; a holdings file must have {} columns",
                    REQUIRED.join(" and ")
                ));
            }
        }
        self.columns = columns;
        Ok(())
    }

    /// Turn the row in `self.record` into a [`HoldingRow`].
    fn row(&self, start: &Start) -> Result<HoldingRow, String> {
        if self.record.len() != self.columns.len() {
            return Err(format!(
                "{} fields, but the header has {} (a value with a comma needs \"double quotes\")",
                self.record.len(),
                self.columns.len()
            ));
        }
        let mut values: [String; COLUMNS.len()] = Default::default();
        for (cell, &k) in self.record.iter().zip(&self.columns) {
            values[k] = std::str::from_utf8(cell)
                .map_err(|_| format!("the {} is not valid UTF-8 (save the file as UTF-8 CSV)", COLUMNS[k]))?
                .to_owned();
        }
        let [
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
            call_number,
            location,
            policy,
            status,
        ] = values;
        for (column, value) in [("barcode", &barcode), ("title", &title)] {
            if value.is_empty() {
                return Err(format!("the {column} is empty"));
            }
        }
        let isbns = isbn.split([';', '|']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        Ok(HoldingRow {
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
            source: Source { record: self.number, offset: start.offset, line: Some(start.line) },
        })
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<HoldingRow, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(input) = self.input.take() {
            if let Err(e) = self.open(input) {
                return self.fatal(None, format!("cannot read the file: {e}"));
            }
            match self.read() {
                Err(e) => return self.fatal(None, e),
                Ok(None) => {
                    return self.fatal(
                        Some(1),
                        "the file is empty; the first line must name the columns, e.g. barcode,title".to_owned(),
                    );
                }
                Ok(Some(start)) => {
                    if let Err(e) = self.header() {
                        return self.fatal(Some(start.line), e);
                    }
                }
            }
        }
        let start = match self.read() {
            Err(e) => return self.fatal(None, e),
            Ok(None) => {
                self.done = true;
                return None;
            }
            Ok(Some(start)) => start,
        };
        self.number += 1;
        let result = if self.unclosed_quote(&start) {
            Err("a \"quoted\" value is never closed, so it runs to the end of the file".to_owned())
        } else {
            self.row(&start)
        };
        Some(result.map_err(|reason| RecordError::new(self.number, start.offset, reason).at_line(start.line)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &str) -> Vec<Result<HoldingRow, RecordError>> {
        CsvReader::new(data.as_bytes()).collect()
    }

    fn fatal(data: &str) -> RecordError {
        let r = read(data);
        assert_eq!(r.len(), 1, "{r:?}");
        let e = r[0].clone().unwrap_err();
        assert!(e.fatal && e.number == 0, "{e:?}");
        e
    }

    #[test]
    fn columns_in_any_order_with_lines_and_offsets() {
        let data = "Title, BARCODE ,author,isbn\nMoby Dick,B1,\"Melville, Herman\",0-19-852663-6 (pbk.); 9780914520405\n\n\"Two\nlines\",B2,,\nThird,B3,,\n";
        let rows: Vec<HoldingRow> = read(data).into_iter().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].barcode.as_str(), rows[0].title.as_str()), ("B1", "Moby Dick"));
        assert_eq!(rows[0].author, "Melville, Herman");
        assert_eq!(rows[0].isbns, ["0-19-852663-6 (pbk.)", "9780914520405"]);
        assert_eq!(rows[0].source, Source { record: 1, offset: 28, line: Some(2) });
        // A blank line is skipped: the next row starts on line 4, and runs over two lines.
        assert_eq!(rows[1].title, "Two\nlines");
        assert_eq!(rows[1].source, Source { record: 2, offset: data.find("\"Two").unwrap() as u64, line: Some(4) });
        assert_eq!(rows[2].source.line, Some(6));
        // Columns the file lacks are empty: the node applies its defaults.
        assert_eq!((rows[1].policy.as_str(), rows[1].status.as_str(), rows[1].format.as_str()), ("", "", ""));
        assert!(rows[1].isbns.is_empty());
    }

    #[test]
    fn every_column() {
        let header = COLUMNS.join(",");
        let values = COLUMNS.map(|c| format!("v-{c}")).join(",");
        let rows = read(&format!("{header}\r\n{values}\r\n"));
        let r = rows[0].as_ref().unwrap();
        let got = [
            &r.barcode,
            &r.title,
            &r.author,
            &r.publisher,
            &r.year,
            &r.isbns[0],
            &r.issn,
            &r.oclc,
            &r.lccn,
            &r.format,
            &r.call_number,
            &r.location,
            &r.policy,
            &r.status,
        ];
        for (c, v) in COLUMNS.iter().zip(got) {
            assert_eq!(*v, format!("v-{c}"));
        }
    }

    #[test]
    fn a_bom_and_other_separators() {
        let rows = read("\u{feff}barcode;title\nB1;Moby Dick, or the whale\n");
        let r = rows[0].as_ref().unwrap();
        assert_eq!((r.barcode.as_str(), r.title.as_str()), ("B1", "Moby Dick, or the whale"));
        assert_eq!(r.source.offset, 17);
        let rows = read("barcode\ttitle\nB1\tMoby Dick\n");
        assert_eq!(rows[0].as_ref().unwrap().title, "Moby Dick");
    }

    #[test]
    fn header_errors_name_the_column() {
        let e = fatal("barcode,title,shelf\nB1,T,3\n");
        assert_eq!(e.line, Some(1));
        assert!(e.reason.starts_with("unknown column \"shelf\" (column 3); the columns are barcode, title"), "{e}");
        assert!(e.to_string().starts_with("line 1: unknown column"), "{e}");
        let e = fatal("barcode,Title,TITLE\n");
        assert_eq!(e.reason, "column \"title\" appears twice (columns 2 and 3)");
        let e = fatal("barcode,author\nB1,Melville\n");
        assert_eq!(e.reason, "there is no \"title\" column; a holdings file must have barcode and title columns");
        let e = fatal("title\n");
        assert!(e.reason.starts_with("there is no \"barcode\" column"));
        let e = fatal("barcode,,title\n");
        assert_eq!(e.reason, "column 2 of the header has no name");
        let e = fatal("");
        assert!(e.reason.starts_with("the file is empty"), "{e}");
        let e = fatal("\n\n");
        assert!(e.reason.starts_with("the file is empty"), "{e}");
    }

    #[test]
    fn bad_rows_are_reported_with_their_line_and_reading_goes_on() {
        let data = "barcode,title\nB1,One\nB2\n,No barcode\nB4,\nB5,T,extra\nB6,\"Six\"\n";
        let r = read(data);
        assert_eq!(r.len(), 6);
        let err = |i: usize| r[i].clone().unwrap_err();
        assert_eq!(r[0].as_ref().unwrap().barcode, "B1");
        assert_eq!((err(1).line, err(1).number), (Some(3), 2));
        assert!(err(1).reason.starts_with("1 fields, but the header has 2"), "{}", err(1));
        assert_eq!(err(1).to_string(), format!("line 3: {}", err(1).reason));
        assert_eq!((err(2).line, err(2).reason.as_str()), (Some(4), "the barcode is empty"));
        assert_eq!((err(3).line, err(3).reason.as_str()), (Some(5), "the title is empty"));
        assert_eq!(err(4).line, Some(6));
        assert!(err(4).reason.starts_with("3 fields"));
        assert!(!err(4).fatal);
        let last = r[5].as_ref().unwrap();
        assert_eq!((last.barcode.as_str(), last.title.as_str(), last.source.line), ("B6", "Six", Some(7)));
    }

    #[test]
    fn invalid_utf8_is_a_row_error() {
        let data = b"barcode,title\nB1,Caf\xE9\nB2,Tea\n";
        let r: Vec<_> = CsvReader::new(&data[..]).collect();
        let e = r[0].clone().unwrap_err();
        assert_eq!((e.line, e.reason.as_str()), (Some(2), "the title is not valid UTF-8 (save the file as UTF-8 CSV)"));
        assert_eq!(r[1].as_ref().unwrap().title, "Tea");
    }

    #[test]
    fn an_unclosed_quote_is_reported() {
        let r = read("barcode,title\nB1,One\nB2,\"Two\nB3,Three\nB4,Four\n");
        assert_eq!(r.len(), 2, "{r:?}");
        let e = r[1].clone().unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.reason.contains("never closed"), "{e}");
        // A stray quote inside a value on the last line is not mistaken for one.
        let r = read("barcode,title\nB1,12\" ruler\n");
        assert_eq!(r[0].as_ref().unwrap().title, "12\" ruler");
        // Quoted values spanning lines in the last row are fine.
        let r = read("barcode,title\nB1,\"One\nTwo\"");
        assert_eq!(r[0].as_ref().unwrap().title, "One\nTwo");
    }

    #[test]
    fn long_files_stream() {
        let mut data = String::from("barcode,title\n");
        for i in 0..20_000 {
            data.push_str(&format!("B{i},Title {i}\n"));
        }
        let mut n = 0;
        for (i, row) in CsvReader::new(std::io::BufReader::with_capacity(512, data.as_bytes())).enumerate() {
            let row = row.unwrap();
            assert_eq!(row.source.line, Some(i as u64 + 2));
            n += 1;
        }
        assert_eq!(n, 20_000);
    }
}
