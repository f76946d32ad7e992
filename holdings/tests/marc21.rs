//! Reading MARC21 binary: the real Library of Congress records, the item mapping presets on
//! fixtures derived from them, MARC-8, and a corrupt record among good ones.

mod common;

use common::{ALMA_PROCESS, GENERIC_WORDS, SIERRA_CODES, barcode, fixture};
use rota_holdings::ids::{normalise_isbn, normalise_lccn, normalise_oclc, title_key};
use rota_holdings::{Format, HoldingRow, ItemMapping, MarcReader, RecordError, Source, read_rows};

fn rows(file: &str, mapping: &str) -> Vec<Result<HoldingRow, RecordError>> {
    let mapping = ItemMapping::parse(mapping).unwrap();
    read_rows(&fixture(file)[..], Format::Marc21, &mapping).collect()
}

fn ok_rows(file: &str, mapping: &str) -> Vec<HoldingRow> {
    rows(file, mapping).into_iter().map(|r| r.unwrap()).collect()
}

/// The rows of record `n` (from 1).
fn of_record(rows: &[HoldingRow], n: u64) -> Vec<&HoldingRow> {
    rows.iter().filter(|r| r.source.record == n).collect()
}

#[test]
fn loc_record_1_in_detail() {
    let rows = ok_rows("loc-20.mrc", "generic");
    assert_eq!(rows.len(), 20);
    let r = &rows[0];
    assert_eq!(
        r.title,
        "Botanical materia medica and pharmacology; drugs considered from a botanical, pharmaceutical, \
         physiological, therapeutical and toxicological standpoint"
    );
    assert_eq!(r.author, "Aurand, Samuel Herbert");
    assert_eq!(r.publisher, "P. H. Mallen Company");
    assert_eq!(r.year, "1899");
    assert_eq!(r.lccn, "00000002");
    assert_eq!(normalise_lccn(&r.lccn).unwrap(), "00000002");
    assert_eq!(r.oclc, "(OCoLC)5853149");
    assert_eq!(normalise_oclc(&r.oclc).unwrap(), "5853149");
    assert_eq!(r.call_number, "RX671 .A92");
    assert_eq!(r.format, "book");
    // No item fields: the barcode is the 001, trimmed; status and policy are left to the node.
    assert_eq!(r.barcode, "00000002");
    assert_eq!((r.status.as_str(), r.policy.as_str(), r.location.as_str()), ("", "", ""));
    assert!(r.isbns.is_empty() && r.issn.is_empty());
    assert_eq!(r.source, Source { record: 1, offset: 0, line: None });
}

#[test]
fn loc_records_have_their_real_values() {
    let rows = ok_rows("loc-20.mrc", "koha");
    let get = |n: usize| &rows[n - 1];
    assert_eq!(get(2).title, "Personal rights and the domestic relations");
    assert_eq!(get(2).author, "Chadman, Charles E.");
    assert_eq!(get(2).publisher, "Home Study Pub. Co.");
    assert_eq!(get(2).oclc, "(OCoLC)ocm34987929");
    assert_eq!(normalise_oclc(&get(2).oclc).unwrap(), "34987929");
    assert_eq!(get(2).source.offset, 720);
    assert_eq!(get(3).title, "The sky pilot; a tale of the foothills");
    assert_eq!(get(3).call_number, "PZ3.G654 S");
    assert_eq!(get(3).oclc, "");
    assert_eq!(get(7).title, "The complete geography");
    assert_eq!(get(7).publisher, "Werner School Book Co.");
    assert_eq!(get(11).author, "Burrows Brothers Company, Cleveland");
    assert_eq!(get(14).year, "1900");
    assert_eq!(get(16).title, "Songs of the Lakes and other poems");
    assert_eq!(get(18).title.as_str().rsplit(", ").next(), Some("Pa. ..."));
    assert_eq!(
        get(20).title,
        "Recollections of my mother, Mrs. Anne Jean Lyman, of Northampton : being a picture of domestic and \
         social life in New England in the first half of the nineteenth century"
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.barcode, r.lccn, "record {}", i + 1);
        assert_eq!(r.format, "book");
        assert_eq!(r.source.record, i as u64 + 1);
        assert!(!r.title.is_empty() && !r.author.is_empty() && !r.publisher.is_empty());
    }
    let offsets: Vec<u64> = rows.iter().map(|r| r.source.offset).collect();
    assert_eq!(&offsets[..4], &[0, 720, 1440, 1912]);
}

#[test]
fn utf8_text_is_decoded() {
    let records = common::loc20();
    let series = records[6].field("490").and_then(|f| f.subfield('a')).unwrap();
    assert_eq!(series, "Tarbells\u{315} geographical series");
    assert_eq!(records[6].leader_str(), "00631cam a22002171  4500");
    assert_eq!(records[0].control("001"), Some("   00000002 "));
    let f245 = records[0].field("245").unwrap();
    assert_eq!((f245.ind1, f245.ind2), ('1', '0'));
    assert_eq!(f245.subfields.len(), 3);
}

#[test]
fn isbns_are_every_020_a_raw() {
    let rows = ok_rows("loc-isbn.mrc", "generic");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0].isbns,
        [
            "0780363590 (softbound edition)",
            "0780363604 (casebound edition)",
            "0780363612 (microfiche edition)",
            "0780363620 (cdrom edition)"
        ]
    );
    assert_eq!(rows[0].title.split(" : ").next(), Some("IGARSS 2000"));
    assert!(rows[0].title.ends_with("Honolulu, Hawaii, USA"), "{}", rows[0].title);
    assert_eq!(rows[1].isbns, ["0130271624 (v. 1)", "013027190X (v. 2)"]);
    let normalised: Vec<String> = rows[1].isbns.iter().map(|i| normalise_isbn(i).unwrap()).collect();
    assert_eq!(normalised, ["9780130271624", "9780130271907"]);
    assert_eq!(rows[2].isbns, ["0914520407"]);
    assert_eq!(normalise_isbn(&rows[2].isbns[0]).unwrap(), "9780914520405");
    assert_eq!(rows[2].title, "Glad reunion : meeting ourselves in the lives of biblical men and women");
    assert_eq!(rows[2].author, "Claypool, John R.");
    assert_eq!(rows[2].publisher, "Insight Press");
    assert_eq!(rows[2].year, "2000");
    assert_eq!(rows[2].call_number, "BS571 .C495 2000");
    assert_eq!(title_key(&rows[2].title, &rows[2].author), "glad reunion|claypool");
    assert_eq!(rows[2].source.record, 3);
    assert_eq!(rows[2].source.offset, 1512 + 983);
}

#[test]
fn koha_items() {
    let all = rows("koha.mrc", "koha");
    let errors: Vec<&RecordError> = all.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].number, 6);
    assert!(errors[0].reason.contains("item field 1 of 952") && errors[0].reason.contains("no barcode ($p)"));
    let rows: Vec<HoldingRow> = all.into_iter().filter_map(Result::ok).collect();
    assert_eq!(rows.len(), 21);

    let r1 = of_record(&rows, 1);
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0].barcode, barcode(1, 1));
    assert_eq!(r1[0].location, "STACKS");
    assert_eq!(r1[0].call_number, "RX671 .A92");
    assert_eq!((r1[0].status.as_str(), r1[0].policy.as_str()), ("available", "lendable"));
    assert!(r1[0].title.starts_with("Botanical materia medica"));

    let r2 = of_record(&rows, 2);
    assert_eq!(r2.len(), 2);
    assert_eq!(r2[0].call_number, "LOCAL 1");
    assert_eq!((r2[1].barcode.as_str(), r2[1].status.as_str()), (barcode(2, 2).as_str(), "on_loan"));
    // An item without a call number takes the record's.
    assert_eq!(r2[1].call_number, "KF505.Z9 C43");
    assert_eq!(r2[0].title, r2[1].title);

    assert_eq!(of_record(&rows, 3)[0].status, "missing");
    let r4 = of_record(&rows, 4);
    assert_eq!((r4[0].policy.as_str(), r4[0].location.as_str()), ("not_lendable", "REF"));
    // Withdrawn: left out.
    let r5 = of_record(&rows, 5);
    assert_eq!(r5.len(), 1);
    assert_eq!(r5[0].barcode, barcode(5, 2));
    assert_eq!(of_record(&rows, 6)[0].barcode, barcode(6, 2));
    // Home branch when there is no shelving location; zeros mean no.
    let r7 = of_record(&rows, 7);
    assert_eq!(r7[0].location, "BRANCH");
    assert_eq!((r7[0].status.as_str(), r7[0].policy.as_str()), ("available", "lendable"));
    assert_eq!(r7[0].call_number, "G127 .T175");
}

#[test]
fn sierra_items() {
    let all = rows("sierra.mrc", "sierra");
    let errors: Vec<&RecordError> = all.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].number, 10);
    assert!(errors[0].reason.contains("no barcode ($i)"), "{}", errors[0].reason);
    let rows: Vec<HoldingRow> = all.into_iter().filter_map(Result::ok).collect();
    assert_eq!(rows.len(), 20);
    let expect = |code: Option<&str>| match code {
        Some("m" | "n" | "z") => ("missing", "lendable"),
        Some("o") => ("available", "library_use_only"),
        Some("t") => ("in_process", "lendable"),
        _ => ("available", "lendable"),
    };
    for r in &rows {
        let n = r.source.record as usize;
        let want = if n == 11 && r.barcode == barcode(11, 2) {
            ("available", "lendable")
        } else {
            expect(SIERRA_CODES[n - 1])
        };
        assert_eq!((r.status.as_str(), r.policy.as_str()), want, "record {n}");
    }
    assert_eq!(of_record(&rows, 2)[0].status, "missing");
    assert_eq!(of_record(&rows, 5)[0].policy, "library_use_only");
    assert_eq!(of_record(&rows, 6)[0].status, "in_process");
    assert_eq!(of_record(&rows, 1)[0].call_number, "SIERRA A");
    assert_eq!(of_record(&rows, 9)[0].call_number, "SIERRA C");
    assert_eq!(of_record(&rows, 1)[0].location, "mmain");
    let r11 = of_record(&rows, 11);
    assert_eq!(r11.len(), 2);
    assert_eq!((r11[1].location.as_str(), r11[1].call_number.as_str()), ("mbran", "Z1036 .B972"));
}

#[test]
fn generic_items() {
    let rows = ok_rows("generic.mrc", "generic");
    assert_eq!(rows.len(), 20);
    for (i, r) in rows.iter().enumerate() {
        let (s, p) = GENERIC_WORDS[i % GENERIC_WORDS.len()];
        let (want_s, want_p) = match (s, p) {
            ("available", "lendable") => ("available", "lendable"),
            ("On loan", "library_use_only") => ("on_loan", "library_use_only"),
            ("bogus", "Not-Lendable") => ("", "not_lendable"),
            ("MISSING", "gold") => ("missing", ""),
            ("in_process", "") => ("in_process", ""),
            _ => ("", ""),
        };
        assert_eq!((r.status.as_str(), r.policy.as_str()), (want_s, want_p), "record {}", i + 1);
        assert_eq!((r.barcode.as_str(), r.location.as_str()), (barcode(i + 1, 1).as_str(), "Main Library"));
        assert_eq!(r.call_number, "GEN 949");
    }
}

#[test]
fn alma_items_and_availability() {
    let all = rows("alma.mrc", "alma");
    let errors: Vec<&RecordError> = all.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].number, 11);
    assert!(errors[0].reason.contains("item field 1 of ITM") && errors[0].reason.contains("($b)"));
    let rows: Vec<HoldingRow> = all.into_iter().filter_map(Result::ok).collect();
    assert_eq!(rows.len(), 10 + 5 + 5);
    for n in 1..=10 {
        let r = of_record(&rows, n as u64);
        assert_eq!(r.len(), 1, "ITM wins over AVA in record {n}");
        let want = match ALMA_PROCESS[n - 1] {
            "LOAN" | "ILL" => "on_loan",
            "MISSING" | "LOST_LOAN" => "missing",
            "HOLDSHELF" => "reserved",
            "ACQ" | "TRANSIT" | "in_process" => "in_process",
            _ => "available",
        };
        assert_eq!(r[0].status, want, "record {n}");
        assert_eq!((r[0].barcode.as_str(), r[0].location.as_str()), (barcode(n, 1).as_str(), "STACKS"));
        assert_eq!(r[0].call_number, "ALMA 1");
    }
    assert_eq!(of_record(&rows, 2)[0].policy, "library_use_only");
    assert_eq!(of_record(&rows, 3)[0].policy, "");
    let r12 = of_record(&rows, 12);
    assert_eq!((r12[0].barcode.as_str(), r12[0].location.as_str()), ("00000043", "Main stacks"));
    assert_eq!((r12[0].call_number.as_str(), r12[0].status.as_str()), ("AVA 1", "available"));
    let r13 = of_record(&rows, 13);
    assert_eq!(r13.len(), 2);
    assert_eq!((r13[0].barcode.as_str(), r13[0].status.as_str()), ("00000048", "on_loan"));
    assert_eq!((r13[1].barcode.as_str(), r13[1].status.as_str()), ("00000048-2", "available"));
    assert_eq!((r13[1].location.as_str(), r13[1].call_number.as_str()), ("BRANCH", "AC8 .F62"));
    let r16 = of_record(&rows, 16);
    assert_eq!((r16[0].barcode.as_str(), r16[0].status.as_str()), ("00000053", ""));
}

#[test]
fn custom_mapping_reads_the_named_subfields() {
    let generic = ok_rows("generic.mrc", "tag=949,barcode=i,call=a");
    assert_eq!(generic.len(), 20);
    assert_eq!(generic[1].barcode, barcode(2, 1));
    assert_eq!(
        (generic[1].call_number.as_str(), generic[1].location.as_str(), generic[1].status.as_str()),
        ("GEN 949", "", "")
    );
    let custom: Vec<HoldingRow> =
        rows("koha.mrc", "tag=952, barcode=p, location=a, status=q").into_iter().filter_map(Result::ok).collect();
    // Record 6's first 952 has no $p: skipped; $q holds a date, not a Rota word: ignored.
    assert_eq!(custom.len(), 21 + 1);
    assert!(custom.iter().all(|r| r.location == "MAIN" || r.location == "BRANCH"));
    assert!(custom.iter().all(|r| r.status.is_empty()));
    // Another preset's field is not an item field: every record falls back to its 001.
    let other = ok_rows("koha.mrc", "sierra");
    assert_eq!(other.len(), 20);
    assert_eq!(other[0].barcode, "00000002");
}

#[test]
fn marc8_ascii_is_accepted() {
    let records: Vec<_> = MarcReader::new(&fixture("marc8-ascii.mrc")[..]).collect();
    assert_eq!(records.len(), 1);
    let r = records[0].as_ref().unwrap();
    assert_eq!(r.leader[9], b' ');
    let utf8 = &common::loc20()[0];
    assert_eq!((&r.controls, &r.fields), (&utf8.controls, &utf8.fields));
}

#[test]
fn marc8_non_ascii_is_refused_and_the_rest_still_reads() {
    let results: Vec<_> = MarcReader::new(&fixture("marc8-nonascii.mrc")[..]).collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok());
    let e = results[1].as_ref().unwrap_err();
    assert_eq!((e.number, e.offset, e.fatal), (2, 720, false));
    for needle in
        ["MARC-8", "0xE2", "in field 245", "convert the file to UTF-8", "MarcEdit", "yaz-marcdump -f MARC-8 -t UTF-8"]
    {
        assert!(e.reason.contains(needle), "{needle:?} not in {}", e.reason);
    }
    let third = results[2].as_ref().unwrap();
    assert_eq!((third.number, third.offset), (3, 720 + 472));
    assert_eq!(third.control("001"), Some("   00000004 "));
}

#[test]
fn marc8_escape_sequences_are_refused_with_a_marc8_reason() {
    // The same file with the record's one non-ASCII byte replaced by an escape (0x1B), as
    // MARC-8 writes a switch to Greek or Cyrillic: every byte is 7-bit, and still not text.
    let mut bytes = fixture("marc8-nonascii.mrc");
    let p = bytes.iter().position(|b| !b.is_ascii()).unwrap();
    bytes[p] = 0x1B;
    let results: Vec<_> = MarcReader::new(&bytes[..]).collect();
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    let e = results[1].as_ref().unwrap_err();
    assert_eq!((e.number, e.offset, e.fatal), (2, 720, false));
    for needle in ["MARC-8", "escape sequence that switches character sets", "0x1B", "in field 245", "convert the file"]
    {
        assert!(e.reason.contains(needle), "{needle:?} not in {}", e.reason);
    }
}

#[test]
fn a_corrupt_record_costs_only_itself() {
    let results: Vec<_> = MarcReader::new(&fixture("corrupt-middle.mrc")[..]).collect();
    assert_eq!(results.len(), 5);
    let e = results[2].as_ref().unwrap_err();
    assert_eq!((e.number, e.offset), (3, 1440));
    assert!(e.reason.contains("(tag 245) points past the end of the record"), "{}", e.reason);
    assert!(e.to_string().starts_with("record 3 (byte 1440): directory entry "), "{e}");
    let lccns: Vec<Option<String>> =
        results.iter().map(|r| r.as_ref().ok().and_then(|r| r.control("001")).map(|s| s.trim().to_owned())).collect();
    assert_eq!(
        lccns,
        [Some("00000002".into()), Some("00000004".into()), None, Some("00000007".into()), Some("00000009".into())]
    );
    // Through read_rows too: four rows and one error, in file order.
    let mapping = ItemMapping::Generic;
    let out: Vec<_> = read_rows(&fixture("corrupt-middle.mrc")[..], Format::Marc21, &mapping).collect();
    assert_eq!(out.iter().map(Result::is_ok).collect::<Vec<_>>(), [true, true, false, true, true]);
}

#[test]
fn xml_fixtures_detect_as_marcxml_and_binary_as_marc21() {
    assert_eq!(Format::detect(&fixture("loc-20.mrc")[..100]), Ok(Format::Marc21));
    assert_eq!(Format::detect(&fixture("koha.mrc")), Ok(Format::Marc21));
    assert_eq!(Format::detect(&fixture("loc-20-collection-prefix.xml")), Ok(Format::MarcXml));
    assert_eq!(Format::detect(&fixture("loc-1-record.xml")), Ok(Format::MarcXml));
}

/// The whole 2,000-record LoC sample, when this checkout sits next to `shared/` (it is not
/// needed otherwise).
#[test]
fn all_of_loc_books_2k_when_present() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/loc-books-2k.mrc");
    let Ok(file) = std::fs::File::open(&path) else {
        return;
    };
    let mapping = ItemMapping::Koha;
    let mut rows = 0;
    let mut with_isbn = 0;
    let mut valid_isbns = 0;
    let mut with_oclc = 0;
    let mut last = None;
    for row in read_rows(std::io::BufReader::new(file), Format::Marc21, &mapping) {
        let row = row.unwrap();
        rows += 1;
        assert!(!row.title.is_empty() && !row.barcode.is_empty(), "{row:?}");
        assert_eq!(normalise_lccn(&row.lccn).as_deref(), Ok(row.barcode.as_str()));
        if !row.isbns.is_empty() {
            with_isbn += 1;
        }
        valid_isbns += row.isbns.iter().filter(|i| normalise_isbn(i).is_ok()).count();
        if !row.oclc.is_empty() {
            with_oclc += 1;
            assert!(normalise_oclc(&row.oclc).is_ok(), "{}", row.oclc);
        }
        last = Some(row);
    }
    assert_eq!(rows, 2000);
    // 194 records have an 020, but one of them only a cancelled ISBN ($z).
    assert_eq!(with_isbn, 193);
    assert!(valid_isbns > 190, "{valid_isbns}");
    assert!(with_oclc > 100, "{with_oclc}");
    let last = last.unwrap();
    assert_eq!(last.source.record, 2000);
    assert_eq!(last.source.offset, 1_618_554);
    assert_eq!(normalise_isbn(&last.isbns[0]).unwrap(), "9780914520405");
}
