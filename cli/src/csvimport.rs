//! Reading a holdings CSV file into import rows.
//!
//! The whole file is read and checked before anything is sent, so a syntax error or a bad
//! header is reported with its line and nothing reaches the node.

use std::path::Path;

use anyhow::{anyhow, bail};
use rota_proto::staff::{ImportRow, Item};

/// Every column a holdings file may have, in the order the help text lists them.
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

/// Columns every file must have, and every row must fill.
pub const REQUIRED: [&str; 2] = ["barcode", "title"];

/// Read and check a holdings file.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<ImportRow>> {
    let data = std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    parse(&path.display().to_string(), &data)
}

/// Parse a holdings file's contents; `name` is used in error messages.
pub fn parse(name: &str, data: &[u8]) -> anyhow::Result<Vec<ImportRow>> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(data);
    let header = reader.headers().map_err(|e| csv_error(name, data, &e))?.clone();
    if header.iter().all(str::is_empty) {
        bail!("{name}: the file is empty; the first line must name the columns, e.g. barcode,title");
    }
    // For each column of the file, its index in COLUMNS.
    let mut mapping = Vec::with_capacity(header.len());
    for (n, raw) in header.iter().enumerate() {
        let column = raw.to_ascii_lowercase();
        let Some(known) = COLUMNS.iter().position(|c| *c == column) else {
            if column.is_empty() {
                bail!("{name}: line 1: column {} has no name", n + 1);
            }
            bail!("{name}: line 1: unknown column {raw:?}; the columns are {}", COLUMNS.join(", "));
        };
        if mapping.contains(&known) {
            bail!("{name}: line 1: column {column:?} appears twice");
        }
        mapping.push(known);
    }
    for required in REQUIRED {
        if !mapping.iter().any(|&k| COLUMNS[k] == required) {
            bail!(
                "{name}: line 1: there is no {required:?} column (the file must have {} columns)",
                REQUIRED.join(" and ")
            );
        }
    }

    let mut rows = Vec::new();
    let mut last_start = None;
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(name, data, &e))?;
        let line = record.position().map_or(0, |pos| line_of(data, pos));
        last_start = record.position().map(|pos| (pos.byte(), line));
        let mut values: [String; COLUMNS.len()] = Default::default();
        for (cell, &k) in record.iter().zip(&mapping) {
            values[k] = cell.to_owned();
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
                bail!("{name}: line {line}: the {column} is empty");
            }
        }
        let item = Item {
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
            updated_at_unix_ms: 0,
        };
        rows.push(ImportRow { source: format!("line {line}"), item: Some(item), record: line, ..Default::default() });
    }
    // The csv crate lets a quote that is never closed run to the end of the file, which
    // would swallow every later line into one value. It can only happen in the last record,
    // and shows as an odd number of quote characters from its start.
    if let Some((start, line)) = last_start {
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let quotes = data.get(start..).unwrap_or_default().iter().filter(|b| **b == b'"').count();
        if quotes % 2 == 1 {
            bail!("{name}: line {line}: a \"quoted\" value is never closed");
        }
    }
    Ok(rows)
}

/// The line a record starts on. The csv crate counts from where it began reading, before
/// any blank lines it skipped; skip them here too.
fn line_of(data: &[u8], pos: &csv::Position) -> u64 {
    let start = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
    let skipped = data
        .get(start..)
        .unwrap_or_default()
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .filter(|b| **b == b'\n')
        .count();
    pos.line() + skipped as u64
}

fn csv_error(name: &str, data: &[u8], e: &csv::Error) -> anyhow::Error {
    let line = |pos: &Option<csv::Position>| pos.as_ref().map_or(0, |p| line_of(data, p));
    match e.kind() {
        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => anyhow!(
            "{name}: line {}: {len} fields, but the header row has {expected_len} \
             (a value with a comma needs \"double quotes\")",
            line(pos)
        ),
        csv::ErrorKind::Utf8 { pos, .. } => {
            anyhow!("{name}: line {}: not valid UTF-8 (save the file as UTF-8 CSV)", line(pos))
        }
        csv::ErrorKind::Io(err) => anyhow!("{name}: {err}"),
        _ => match e.position() {
            Some(pos) => anyhow!("{name}: line {}: {e}", line_of(data, pos)),
            None => anyhow!("{name}: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(data: &str) -> String {
        parse("books.csv", data.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn columns_in_any_order_with_line_numbers() {
        let rows =
            parse("books.csv", b"Title, barcode ,author\nMoby Dick,B1,\"Melville, Herman\"\n\n\"Two\nlines\",B2,\n")
                .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].source, "line 2");
        let item = rows[0].item.as_ref().unwrap();
        assert_eq!((item.barcode.as_str(), item.title.as_str()), ("B1", "Moby Dick"));
        assert_eq!(item.author, "Melville, Herman");
        // A blank line is skipped; the next record starts on line 4.
        assert_eq!(rows[1].source, "line 4");
        let item = rows[1].item.as_ref().unwrap();
        assert_eq!(item.title, "Two\nlines");
        // Columns the file lacks, and empty cells, are sent empty: the node applies defaults.
        assert_eq!((item.policy.as_str(), item.status.as_str(), item.format.as_str()), ("", "", ""));
    }

    #[test]
    fn unknown_column_is_named() {
        let e = err("barcode,title,shelf\nB1,T,3\n");
        assert!(e.contains("unknown column \"shelf\""), "{e}");
        assert!(e.contains("call_number"), "{e}");
    }

    #[test]
    fn missing_required_column_is_named() {
        let e = err("barcode,author\nB1,A\n");
        assert!(e.contains("no \"title\" column"), "{e}");
        let e = err("title\nT\n");
        assert!(e.contains("no \"barcode\" column"), "{e}");
    }

    #[test]
    fn repeated_and_unnamed_columns() {
        assert!(err("barcode,title,title\n").contains("\"title\" appears twice"));
        assert!(err("barcode,title,\nB,T,x\n").contains("column 3 has no name"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("barcode,title\nB1,T1\nB2,T2,extra\n");
        assert!(e.starts_with("books.csv: line 3: 3 fields, but the header row has 2"), "{e}");
        let e = parse("books.csv", b"barcode,title\nB1,T1\nB2,\xff\n").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn unclosed_quote_names_the_line() {
        let e = err("barcode,title\nB1,T1\nB2,\"unclosed, x\nB3,T3\n");
        assert_eq!(e, "books.csv: line 3: a \"quoted\" value is never closed");
        // Quotes that are closed, and doubled quotes inside them, are fine.
        assert!(parse("b.csv", b"barcode,title\nB1,\"Say \"\"hi\"\"\"\n").is_ok());
    }

    #[test]
    fn empty_required_cells_name_the_line() {
        let e = err("barcode,title\nB1,T1\n,T2\n");
        assert_eq!(e, "books.csv: line 3: the barcode is empty");
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let rows = parse("b.csv", b"\xEF\xBB\xBFbarcode,title\nB1,T1\n").unwrap();
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn the_sample_file_reads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/loc-books-50.csv");
        let rows = read_file(&path).unwrap();
        assert_eq!(rows.len(), 50);
        assert_eq!(rows[0].source, "line 2");
        let item = rows[0].item.as_ref().unwrap();
        assert_eq!(item.barcode, "00000002");
        assert_eq!(item.policy, "lendable");
        assert_eq!(item.call_number, "RX671 .A92");
    }
}
