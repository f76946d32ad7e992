//! The whole path a CLI import takes: detect the format from the first bytes, then read
//! rows, for each kind of file.

mod common;

use std::io::{BufRead, BufReader};

use common::fixture;
use rota_holdings::{Format, HoldingRow, ItemMapping, RecordError, read_rows};

/// Detect the format from a peek at the buffer, then read every row.
fn import(bytes: &[u8], mapping: &str) -> (Format, Vec<Result<HoldingRow, RecordError>>) {
    let mut reader = BufReader::with_capacity(Format::DETECT_LEN, bytes);
    let format = Format::detect(reader.fill_buf().unwrap()).unwrap();
    let mapping = ItemMapping::parse(mapping).unwrap();
    (format, read_rows(reader, format, &mapping).collect())
}

#[test]
fn every_fixture_imports_through_detection() {
    for (file, mapping, format, rows, errors) in [
        ("loc-20.mrc", "generic", Format::Marc21, 20, 0),
        ("koha.mrc", "koha", Format::Marc21, 21, 1),
        ("sierra.mrc", "sierra", Format::Marc21, 20, 1),
        ("generic.mrc", "generic", Format::Marc21, 20, 0),
        ("alma.mrc", "alma", Format::Marc21, 20, 1),
        ("marc8-ascii.mrc", "koha", Format::Marc21, 1, 0),
        ("marc8-nonascii.mrc", "koha", Format::Marc21, 2, 1),
        ("corrupt-middle.mrc", "koha", Format::Marc21, 4, 1),
        ("loc-20-collection.xml", "koha", Format::MarcXml, 20, 0),
        ("loc-20-collection-prefix.xml", "koha", Format::MarcXml, 20, 0),
        ("loc-1-record.xml", "koha", Format::MarcXml, 1, 0),
        ("loc-1-record-prefix.xml", "koha", Format::MarcXml, 1, 0),
        ("koha-collection.xml", "koha", Format::MarcXml, 21, 1),
    ] {
        let (got, out) = import(&fixture(file), mapping);
        assert_eq!(got, format, "{file}");
        let ok = out.iter().filter(|r| r.is_ok()).count();
        assert_eq!((ok, out.len() - ok), (rows, errors), "{file}");
        assert!(
            out.iter().all(|r| r.as_ref().is_ok_and(|r| !r.barcode.is_empty() && !r.title.is_empty()) || r.is_err())
        );
    }
}

#[test]
fn csv_through_detection_ignores_the_mapping() {
    let data = "\u{feff}barcode,title,status,policy\nB1,Moby Dick,on_loan,\nB2,,,\n";
    let (format, out) = import(data.as_bytes(), "koha");
    assert_eq!(format, Format::Csv);
    assert_eq!(out.len(), 2);
    let row = out[0].as_ref().unwrap();
    assert_eq!((row.barcode.as_str(), row.status.as_str(), row.source.line), ("B1", "on_loan", Some(2)));
    let e = out[1].as_ref().unwrap_err();
    assert_eq!(e.to_string(), "line 3: the title is empty");
}

#[test]
fn errors_say_where() {
    let (_, out) = import(&fixture("corrupt-middle.mrc"), "koha");
    let e = out.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!((e.number, e.offset, e.line, e.fatal), (3, 1440, None, false));
    assert!(e.to_string().starts_with("record 3 (byte 1440): directory entry 9 (tag 245) points past the end"), "{e}");
    let mapping = ItemMapping::Koha;
    let out: Vec<_> = read_rows(&b"%PDF-1.4"[..], Format::MarcXml, &mapping).collect();
    assert_eq!(out.len(), 1);
    assert!(out[0].as_ref().is_err_and(|e| e.fatal && e.to_string().starts_with("not an XML document")));
}
