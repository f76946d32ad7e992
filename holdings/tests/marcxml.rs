//! Reading MARCXML: the same records as the MARC21 fixtures, with and without a
//! collection or a namespace prefix; a malformed record among good ones; files that are not
//! MARCXML.

mod common;

use common::{fixture, loc20};
use rota_holdings::{Format, HoldingRow, ItemMapping, MarcXmlReader, Record, RecordError, read_rows};

fn read(xml: &[u8]) -> Vec<Result<Record, RecordError>> {
    MarcXmlReader::new(xml).collect()
}

fn read_ok(xml: &[u8]) -> Vec<Record> {
    read(xml).into_iter().map(Result::unwrap).collect()
}

/// The records agree with the binary ones in everything but the byte offset.
fn assert_same(xml: &[Record], marc: &[Record]) {
    assert_eq!(xml.len(), marc.len());
    for (x, m) in xml.iter().zip(marc) {
        assert_eq!((x.leader, &x.controls, &x.fields, x.number), (m.leader, &m.controls, &m.fields, m.number));
    }
}

/// Byte offsets of each `<record` or `<marc:record` tag.
fn record_offsets(xml: &[u8], tag: &str) -> Vec<u64> {
    let tag = tag.as_bytes();
    xml.windows(tag.len()).enumerate().filter(|(_, w)| *w == tag).map(|(i, _)| i as u64).collect()
}

#[test]
fn collection_in_the_default_namespace() {
    let xml = fixture("loc-20-collection.xml");
    let records = read_ok(&xml);
    assert_same(&records, &loc20());
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, record_offsets(&xml, "<record>"));
}

#[test]
fn collection_with_a_prefix() {
    let xml = fixture("loc-20-collection-prefix.xml");
    let records = read_ok(&xml);
    assert_same(&records, &loc20());
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, record_offsets(&xml, "<marc:record>"));
}

#[test]
fn a_lone_record_with_and_without_a_prefix() {
    for name in ["loc-1-record.xml", "loc-1-record-prefix.xml"] {
        let records = read_ok(&fixture(name));
        assert_same(&records, &loc20()[..1]);
        assert_eq!(records[0].offset, 39, "{name}");
    }
}

#[test]
fn no_namespace_and_undeclared_prefixes_are_accepted() {
    let marc = String::from_utf8(fixture("loc-1-record.xml")).unwrap();
    let bare = marc.replace(" xmlns=\"http://www.loc.gov/MARC21/slim\"", "");
    assert_same(&read_ok(bare.as_bytes()), &loc20()[..1]);
    let prefixed = String::from_utf8(fixture("loc-1-record-prefix.xml")).unwrap();
    let undeclared = prefixed.replace(" xmlns:marc=\"http://www.loc.gov/MARC21/slim\"", "");
    assert_same(&read_ok(undeclared.as_bytes()), &loc20()[..1]);
}

#[test]
fn records_inside_an_oai_pmh_envelope() {
    let marc = String::from_utf8(fixture("loc-1-record.xml")).unwrap();
    let inner = marc.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let xml = format!(
        "<?xml version=\"1.0\"?>\n<OAI-PMH xmlns=\"http://www.openarchives.org/OAI/2.0/\"><ListRecords>\
         <record><header><identifier>oai:x:1</identifier></header><metadata>{inner}</metadata></record>\
         <record><header status=\"deleted\"><identifier>oai:x:2</identifier></header></record>\
         </ListRecords></OAI-PMH>"
    );
    let records = read_ok(xml.as_bytes());
    assert_same(&records, &loc20()[..1]);
}

#[test]
fn a_broken_record_inside_an_envelope() {
    // After a syntax error the reader restarts on the raw bytes; the namespaces declared
    // around the record must still apply, so the envelope's own <record>s are not taken for
    // MARC records.
    let marc = String::from_utf8(fixture("loc-1-record-prefix.xml")).unwrap();
    let inner = marc.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let broken = inner.replacen("<marc:subfield code=\"a\">", "<marc:subfield code=\"a\">A@B", 1);
    let oai = |metadata: &str| format!("<record><header/><metadata>{metadata}</metadata></record>");
    let xml = format!(
        "<OAI-PMH xmlns=\"http://www.openarchives.org/OAI/2.0/\"><ListRecords>{}{}{}</ListRecords></OAI-PMH>",
        oai(inner),
        oai(&broken),
        oai(inner)
    );
    let mut bytes = xml.clone().into_bytes();
    let at = bytes.iter().position(|&b| b == b'@').unwrap();
    bytes[at] = 0xFF;
    let r = read(&bytes);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r[0].is_ok() && r[2].is_ok());
    assert!(
        r[1].as_ref().unwrap_err().reason.starts_with("invalid UTF-8 (save the file as UTF-8) at byte "),
        "{:?}",
        r[1]
    );
    let third = r[2].as_ref().unwrap();
    assert_eq!(third.number, 3);
    assert_eq!(third.offset, xml.match_indices("<marc:record").nth(2).unwrap().0 as u64);
    assert_same(std::slice::from_ref(third), &[Record { number: 3, ..loc20()[0].clone() }]);
}

#[test]
fn koha_items_read_the_same_from_xml() {
    let mapping = ItemMapping::Koha;
    let strip = |rows: Vec<Result<HoldingRow, RecordError>>| -> Vec<(String, String, String, String)> {
        rows.into_iter().filter_map(Result::ok).map(|r| (r.barcode, r.title, r.status, r.policy)).collect()
    };
    let xml = strip(read_rows(&fixture("koha-collection.xml")[..], Format::MarcXml, &mapping).collect());
    let marc = strip(read_rows(&fixture("koha.mrc")[..], Format::Marc21, &mapping).collect());
    assert_eq!(xml.len(), 21);
    assert_eq!(xml, marc);
}

/// A collection of loc-20 records 1 to 3 with record 2 (the text between its tags)
/// replaced by `broken`.
fn with_broken_second(broken: &str) -> String {
    let xml = common::write_marcxml(&loc20()[..3], true, None);
    let starts: Vec<usize> = xml.match_indices("<record>").map(|(i, _)| i).collect();
    format!("{}<record>{broken}</record>\n  {}", &xml[..starts[1]], &xml[starts[2]..])
}

/// Read a collection whose second record is `broken`: the first and third parse, the
/// second's reason is returned.
fn broken_reason(broken: &str) -> String {
    let xml = with_broken_second(broken);
    let results = read(xml.as_bytes());
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0].as_ref().unwrap().control("001"), Some("   00000002 "));
    let e = results[1].as_ref().unwrap_err();
    assert_eq!((e.number, e.fatal), (2, false));
    assert_eq!(e.offset, xml.match_indices("<record>").nth(1).unwrap().0 as u64);
    let third = results[2].as_ref().unwrap();
    assert_eq!((third.number, third.control("001")), (3, Some("   00000006 ")));
    assert_eq!(third.offset, xml.match_indices("<record>").nth(2).unwrap().0 as u64);
    e.reason.clone()
}

const LEADER: &str = "<leader>00720cam a22002051  4500</leader>";

#[test]
fn a_malformed_record_costs_only_itself() {
    let e = broken_reason(&format!(
        "{LEADER}<datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">T</datafield>"
    ));
    assert!(e.starts_with("malformed XML at byte ") && e.ends_with("</datafield> closes <subfield>"), "{e}");
    let e = broken_reason(&format!("{LEADER}<controlfield tag=\"001\">1</controlfield></leader>"));
    assert!(e.ends_with("</leader> does not close <record>"), "{e}");
    let e = broken_reason(&format!(
        "{LEADER}<datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">A & B</subfield></datafield>"
    ));
    assert!(e.starts_with("malformed XML at byte "), "{e}");
    let e = broken_reason(&format!(
        "{LEADER}<datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">A < B</subfield></datafield>"
    ));
    assert!(e.starts_with("malformed XML at byte "), "{e}");
    let e = broken_reason(&format!(
        "{LEADER}<datafield tag=\"245\" ind1=\"1 ind2=\"0\"><subfield code=\"a\">A</subfield></datafield>"
    ));
    assert!(e.contains("attribute"), "{e}");
}

#[test]
fn invalid_utf8_in_a_record() {
    let mut xml = with_broken_second(&format!(
        "{LEADER}<datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">Caf@</subfield></datafield>"
    ))
    .into_bytes();
    let at = xml.iter().position(|&b| b == b'@').unwrap();
    xml[at] = 0xE9;
    let results = read(&xml);
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results[0].is_ok() && results[2].is_ok());
    let e = results[1].as_ref().unwrap_err();
    assert!(e.reason.contains("UTF-8") || e.reason.contains("utf-8"), "{}", e.reason);
}

#[test]
fn invalid_values_in_a_record() {
    let df = |attrs: &str, sub: &str| format!("{LEADER}<datafield {attrs}>{sub}</datafield>");
    let sub = "<subfield code=\"a\">A</subfield>";
    assert_eq!(
        broken_reason(&df("tag=\"245\" ind1=\"X\" ind2=\"0\"", sub)),
        "field 245: indicator 1 is 'X', not a digit, lowercase letter or blank"
    );
    assert_eq!(
        broken_reason(&df("tag=\"245\" ind1=\"1\" ind2=\"00\"", sub)),
        "field 245: indicator 2 is '00', not a digit, lowercase letter or blank"
    );
    assert_eq!(
        broken_reason(&df("tag=\"24\" ind1=\"1\" ind2=\"0\"", sub)),
        "<datafield> tag '24' is not three letters or digits"
    );
    assert_eq!(broken_reason(&df("ind1=\"1\" ind2=\"0\"", sub)), "<datafield> tag '' is not three letters or digits");
    assert_eq!(
        broken_reason(&df("tag=\"245\" ind1=\"1\" ind2=\"0\"", "<subfield code=\"ab\">A</subfield>")),
        "field 245: subfield 1 has code 'ab', not a letter or digit"
    );
    assert_eq!(
        broken_reason(&df("tag=\"245\" ind1=\"1\" ind2=\"0\"", "<subfield>A</subfield>")),
        "field 245: subfield 1 has code '', not a letter or digit"
    );
    assert_eq!(
        broken_reason(&format!("{LEADER}<controlfield tag=\"0 1\">x</controlfield>")),
        "<controlfield> tag '0 1' is not three letters or digits"
    );
    assert_eq!(broken_reason("<controlfield tag=\"001\">x</controlfield>"), "the record has no <leader>");
    assert_eq!(
        broken_reason("<leader>00720cam a2200205</leader>"),
        "bad leader '00720cam a2200205': it is 17 characters long, not 24"
    );
    assert_eq!(
        broken_reason("<leader>00720cam a22002051  4500</leader><leader>00720cam a22002051  4500</leader>"),
        "the record has two <leader>s"
    );
    assert_eq!(
        broken_reason(&format!("{LEADER}<controlfield tag=\"001\">&nbsp;</controlfield>")),
        "unknown entity &nbsp;"
    );
}

#[test]
fn escapes_entities_and_cdata_are_decoded() {
    let xml = format!(
        "<record>{LEADER}<controlfield tag=\"001\"> 42 </controlfield>\
         <datafield tag=\"245\" ind1=\"1\" ind2=\"0\"><subfield code=\"a\">Tom &amp; Jerry &#233;t&#xE9; &lt;1&gt;</subfield>\
         <subfield code=\"b\"><![CDATA[a <raw> & text]]></subfield><subfield code=\"c\"/></datafield>\
         <datafield tag=\"500\" ind1=\"\" ind2=\" \"/></record>"
    );
    let r = read_ok(xml.as_bytes());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].control("001"), Some(" 42 "));
    let f = &r[0].fields[0];
    assert_eq!(f.subfields[0].1, "Tom & Jerry été <1>");
    assert_eq!(f.subfields[1].1, "a <raw> & text");
    assert_eq!(f.subfields[2], ('c', String::new()));
    assert_eq!((r[0].fields[1].ind1, r[0].fields[1].subfields.len()), (' ', 0));
    assert_eq!(r[0].offset, 0);
}

#[test]
fn unknown_elements_inside_a_record_are_ignored() {
    let xml =
        format!("<record>{LEADER}<note>hello <b>there</b></note><controlfield tag=\"001\">1</controlfield></record>");
    let r = read_ok(xml.as_bytes());
    assert_eq!(r[0].controls, [("001".to_owned(), "1".to_owned())]);
}

#[test]
fn file_level_errors() {
    let fatal = |xml: &[u8]| {
        let r = read(xml);
        assert_eq!(r.len(), 1, "{r:?}");
        let e = r[0].as_ref().unwrap_err().clone();
        assert!(e.fatal, "{e:?}");
        e
    };
    let e = fatal(b"barcode,title\n1,Moby Dick\n");
    assert_eq!(e.reason, "not an XML document: it starts with 'barcode,title\\x0A1,Moby Dic'");
    assert_eq!(e.number, 0);
    assert_eq!(e.to_string(), e.reason);
    assert_eq!(fatal(b"").reason, "the file is empty");
    assert!(fatal(b"\xFF\xFE<\x00").reason.contains("UTF-16"));
    let e = fatal(b"<?xml version=\"1.0\"?><items><item barcode=\"1\"/></items>");
    assert_eq!(
        e.reason,
        "no MARC records in this XML document: its first element is <items>, and there is no MARCXML <record>"
    );
    assert!(fatal(b"<?xml version=\"1.0\"?>").reason.contains("it has no elements"));
    let e = fatal(b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><collection/>");
    assert!(e.reason.contains("declares the encoding \"ISO-8859-1\"") && e.reason.contains("UTF-8"), "{}", e.reason);
    // Broken XML outside any record is reported, and the search for records goes on.
    let r = read(b"<collection><!-- unclosed comment");
    assert_eq!(r.len(), 2, "{r:?}");
    let e = r[0].as_ref().unwrap_err();
    assert!(e.reason.starts_with("malformed XML at byte 12: ") && e.reason.ends_with("(outside any record)"), "{e}");
    assert_eq!((e.number, e.fatal), (0, false));
    let e = r[1].as_ref().unwrap_err();
    assert!(e.fatal && e.reason.starts_with("no MARC records"), "{e}");
    let mut xml = b"<collection>AT&T ".to_vec();
    xml.extend_from_slice(&fixture("loc-20-collection.xml")[39..]);
    let r = read(&xml);
    assert_eq!(r.len(), 21, "{:?}", r[0]);
    assert!(r[0].is_err() && r[1..].iter().all(Result::is_ok));
    // A byte-order mark and white space before the document are fine.
    let mut xml = b"\xEF\xBB\xBF\n  ".to_vec();
    xml.extend_from_slice(&fixture("loc-1-record.xml"));
    assert_eq!(read_ok(&xml).len(), 1);
}

#[test]
fn records_cut_short() {
    let xml = common::write_marcxml(&loc20()[..2], true, None);
    // The file ends inside record 2, between tags ...
    let cut = &xml[..xml.rfind("<datafield").unwrap()];
    let r = read(cut.as_bytes());
    assert_eq!(r.len(), 2);
    assert!(r[0].is_ok());
    assert_eq!(r[1].as_ref().unwrap_err().reason, "the file ends inside this record (no </record>)");
    // ... or inside a tag.
    let cut = &xml[..xml.rfind("<datafield").unwrap() + 5];
    let r = read(cut.as_bytes());
    assert_eq!(r.len(), 2);
    let e = r[1].as_ref().unwrap_err();
    assert!(e.reason.starts_with(&format!("malformed XML at byte {}: ", cut.len() - 5)), "{}", e.reason);
    // A record that is never closed before the next begins.
    let open = format!(
        "<collection><record>{LEADER}<controlfield tag=\"001\">1</controlfield>\
         <record>{LEADER}<controlfield tag=\"001\">2</controlfield></record></collection>"
    );
    let r = read(open.as_bytes());
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].as_ref().unwrap_err().reason.starts_with("a new <record> starts at byte"));
    let second = r[1].as_ref().unwrap();
    assert_eq!((second.number, second.control("001")), (2, Some("2")));
    // An empty record element.
    let r = read(b"<collection><record/></collection>");
    assert_eq!(r[0].as_ref().unwrap_err().reason, "the record is empty (<record/>)");
}

#[test]
fn arbitrary_corruption_never_panics() {
    let good = fixture("loc-1-record-prefix.xml");
    for n in (0..good.len()).step_by(7) {
        let _ = MarcXmlReader::new(&good[..n]).count();
    }
    let mut seed = 99u32;
    for _ in 0..2000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let at = (seed >> 8) as usize % good.len();
        let mut bad = good.clone();
        bad[at] = (seed >> 20) as u8;
        let _ = MarcXmlReader::new(&bad[..]).count();
    }
}
