//! Test helpers: a small MARC21 and MARCXML *writer*, and the builders of the fixture files
//! in `tests/fixtures/` (all derived from the first 20 Library of Congress records in
//! `loc-20.mrc`). `cargo test -p rota-holdings -- --ignored regenerate_fixtures` rewrites
//! the files; the `fixtures_are_up_to_date` test checks they match these builders.

#![allow(dead_code)]

use std::path::PathBuf;

use rota_holdings::{DataField, MarcReader, Record};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every record of a MARC21 file, which must all parse.
pub fn records(bytes: &[u8]) -> Vec<Record> {
    MarcReader::new(bytes).map(|r| r.unwrap()).collect()
}

pub fn loc20() -> Vec<Record> {
    records(&fixture("loc-20.mrc"))
}

/// Write a record as MARC21: the leader's length and base address are computed, the rest
/// of it is kept; control fields come first, then data fields, each in order.
pub fn write_marc(record: &Record) -> Vec<u8> {
    let mut directory = Vec::new();
    let mut data = Vec::new();
    let mut add = |tag: &str, body: Vec<u8>| {
        directory.extend_from_slice(format!("{tag}{:04}{:05}", body.len() + 1, data.len()).as_bytes());
        data.extend_from_slice(&body);
        data.push(0x1E);
    };
    for (tag, value) in &record.controls {
        add(tag, value.as_bytes().to_vec());
    }
    for f in &record.fields {
        let mut body = format!("{}{}", f.ind1, f.ind2).into_bytes();
        for (code, value) in &f.subfields {
            body.push(0x1F);
            body.extend_from_slice(code.to_string().as_bytes());
            body.extend_from_slice(value.as_bytes());
        }
        add(&f.tag, body);
    }
    directory.push(0x1E);
    let base = 24 + directory.len();
    let length = base + data.len() + 1;
    let mut out = record.leader.to_vec();
    out[0..5].copy_from_slice(format!("{length:05}").as_bytes());
    out[12..17].copy_from_slice(format!("{base:05}").as_bytes());
    out.extend_from_slice(&directory);
    out.extend_from_slice(&data);
    out.push(0x1D);
    out
}

pub fn write_marc_file(records: &[Record]) -> Vec<u8> {
    records.iter().flat_map(write_marc).collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Write records as MARCXML: in a `<collection>` or (for one record) bare, with element
/// names under `prefix` (`Some("marc")`) or in the default namespace (`None`).
pub fn write_marcxml(records: &[Record], collection: bool, prefix: Option<&str>) -> String {
    const NS: &str = "http://www.loc.gov/MARC21/slim";
    let p = prefix.map(|p| format!("{p}:")).unwrap_or_default();
    let xmlns = match prefix {
        Some(p) => format!(" xmlns:{p}=\"{NS}\""),
        None => format!(" xmlns=\"{NS}\""),
    };
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (record_ns, indent) = if collection {
        out.push_str(&format!("<{p}collection{xmlns}>\n"));
        (String::new(), "  ")
    } else {
        (xmlns, "")
    };
    for r in records {
        out.push_str(&format!("{indent}<{p}record{record_ns}>\n"));
        out.push_str(&format!("{indent}  <{p}leader>{}</{p}leader>\n", escape(r.leader_str())));
        for (tag, value) in &r.controls {
            out.push_str(&format!("{indent}  <{p}controlfield tag=\"{tag}\">{}</{p}controlfield>\n", escape(value)));
        }
        for f in &r.fields {
            out.push_str(&format!(
                "{indent}  <{p}datafield tag=\"{}\" ind1=\"{}\" ind2=\"{}\">\n",
                f.tag, f.ind1, f.ind2
            ));
            for (code, value) in &f.subfields {
                out.push_str(&format!("{indent}    <{p}subfield code=\"{code}\">{}</{p}subfield>\n", escape(value)));
            }
            out.push_str(&format!("{indent}  </{p}datafield>\n"));
        }
        out.push_str(&format!("{indent}</{p}record>\n"));
    }
    if collection {
        out.push_str(&format!("</{p}collection>\n"));
    }
    out
}

pub fn field(tag: &str, subfields: &[(char, &str)]) -> DataField {
    DataField {
        tag: tag.to_owned(),
        ind1: ' ',
        ind2: ' ',
        subfields: subfields.iter().map(|(c, v)| (*c, (*v).to_owned())).collect(),
    }
}

/// A barcode for fixture item `n` of record `r` (both from 1).
pub fn barcode(r: usize, n: usize) -> String {
    format!("3900{r:02}{n:02}")
}

/// The LoC records with Koha 952 item fields:
/// 1: one item; 2: two items, the second on loan; 3: lost; 4: not for loan; 5: a withdrawn
/// item then a normal one; 6: an item without a barcode then a normal one; 7: home branch
/// only, no call number; 8 to 20: one plain item each.
pub fn koha() -> Vec<Record> {
    let mut recs = loc20();
    for (i, rec) in recs.iter_mut().enumerate() {
        let r = i + 1;
        let b1 = barcode(r, 1);
        let b2 = barcode(r, 2);
        let plain = |b: &str| {
            field("952", &[('a', "MAIN"), ('b', "MAIN"), ('c', "STACKS"), ('o', "LOCAL 1"), ('p', b), ('y', "BK")])
        };
        let items = match r {
            1 => vec![field("952", &[('a', "MAIN"), ('c', "STACKS"), ('o', "RX671 .A92"), ('p', &b1), ('y', "BK")])],
            2 => vec![plain(&b1), field("952", &[('a', "MAIN"), ('c', "STACKS"), ('p', &b2), ('q', "2026-05-01")])],
            3 => vec![field("952", &[('a', "MAIN"), ('c', "STACKS"), ('p', &b1), ('1', "1")])],
            4 => vec![field("952", &[('a', "MAIN"), ('c', "REF"), ('p', &b1), ('7', "1")])],
            5 => vec![field("952", &[('a', "MAIN"), ('p', &b1), ('0', "1")]), plain(&b2)],
            6 => vec![field("952", &[('a', "MAIN"), ('c', "STACKS")]), plain(&b2)],
            7 => vec![field("952", &[('a', "BRANCH"), ('p', &b1), ('7', "0"), ('1', "0"), ('0', "0")])],
            _ => vec![plain(&b1)],
        };
        rec.fields.extend(items);
    }
    recs
}

/// The LoC records with Sierra 945 item fields; record `r`'s item has status code
/// `SIERRA_CODES[r - 1]` (None: no $s). Record 9 has its call number in $c, not $a;
/// record 10 has no barcode; record 11 has two items.
pub const SIERRA_CODES: [Option<&str>; 20] = [
    Some("-"),
    Some("m"),
    Some("n"),
    Some("z"),
    Some("o"),
    Some("t"),
    Some("x"),
    None,
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
    Some("-"),
];

pub fn sierra() -> Vec<Record> {
    let mut recs = loc20();
    for (i, rec) in recs.iter_mut().enumerate() {
        let r = i + 1;
        let b1 = barcode(r, 1);
        let mut subs: Vec<(char, &str)> = vec![('l', "mmain"), ('t', "0")];
        match r {
            9 => subs.push(('c', "SIERRA C")),
            _ => subs.push(('a', "SIERRA A")),
        }
        if r != 10 {
            subs.push(('i', &b1));
        }
        if let Some(code) = SIERRA_CODES[i] {
            subs.push(('s', code));
        }
        rec.fields.push(field("945", &subs));
        if r == 11 {
            let b2 = barcode(r, 2);
            rec.fields.push(field("945", &[('i', &b2), ('l', "mbran"), ('s', "-")]));
        }
    }
    recs
}

/// `(status $s, policy $p)` of the generic 949 item of record `r` (from 1), cycling.
pub const GENERIC_WORDS: [(&str, &str); 6] = [
    ("available", "lendable"),
    ("On loan", "library_use_only"),
    ("bogus", "Not-Lendable"),
    ("MISSING", "gold"),
    ("in_process", ""),
    ("", ""),
];

pub fn generic() -> Vec<Record> {
    let mut recs = loc20();
    for (i, rec) in recs.iter_mut().enumerate() {
        let r = i + 1;
        let b1 = barcode(r, 1);
        let (s, p) = GENERIC_WORDS[i % GENERIC_WORDS.len()];
        let mut subs: Vec<(char, &str)> = vec![('i', &b1), ('l', "Main Library"), ('a', "GEN 949")];
        if !s.is_empty() {
            subs.push(('s', s));
        }
        if !p.is_empty() {
            subs.push(('p', p));
        }
        rec.fields.push(field("949", &subs));
    }
    recs
}

/// The Alma process type ($e) of the ITM item of records 1 to 10.
pub const ALMA_PROCESS: [&str; 10] =
    ["", "LOAN", "MISSING", "HOLDSHELF", "ACQ", "TRANSIT", "in_process", "WEIRD", "LOST_LOAN", "ILL"];

/// The LoC records with Alma publishing fields: records 1 to 10 have one ITM item (plus an
/// AVA, which is then ignored), record 11 has an ITM without barcode; records 12 to 15 have
/// only AVA (13 has two), records 16 to 20 neither.
pub fn alma() -> Vec<Record> {
    let mut recs = loc20();
    for (i, rec) in recs.iter_mut().enumerate() {
        let r = i + 1;
        let b1 = barcode(r, 1);
        let ava = |e: &str, lib: &str| {
            field(
                "AVA",
                &[('a', "01ROTA_INST"), ('b', lib), ('c', "Main stacks"), ('d', "AVA 1"), ('e', e), ('f', "1")],
            )
        };
        match r {
            1..=10 => {
                let process = ALMA_PROCESS[i];
                let mut subs: Vec<(char, &str)> =
                    vec![('a', "01ROTA_INST"), ('b', &b1), ('c', "STACKS"), ('d', "ALMA 1")];
                if !process.is_empty() {
                    subs.push(('e', process));
                }
                if r == 2 {
                    subs.push(('f', "library_use_only"));
                }
                if r == 3 {
                    subs.push(('f', "Standard loan"));
                }
                rec.fields.push(field("ITM", &subs));
                rec.fields.push(ava("available", "MAIN"));
            }
            11 => rec.fields.push(field("ITM", &[('c', "STACKS")])),
            12 => rec.fields.push(ava("available", "MAIN")),
            13 => {
                rec.fields.push(ava("unavailable", "MAIN"));
                rec.fields.push(field("AVA", &[('b', "BRANCH"), ('e', "check_holdings")]));
            }
            14 | 15 => rec.fields.push(ava("unavailable", "MAIN")),
            _ => {}
        }
    }
    recs
}

/// Record `n` (from 1) of loc-20, with leader/09 set to blank (MARC-8).
pub fn as_marc8(n: usize) -> Record {
    let mut r = loc20().swap_remove(n - 1);
    r.leader[9] = b' ';
    r
}

/// MARC-8 record 1 (pure ASCII), then MARC-8 record 3 with a MARC-8 combining acute accent
/// (0xE2) in its title, then UTF-8 record 2.
pub fn marc8_nonascii() -> Vec<u8> {
    let mut bad = write_marc(&as_marc8(3));
    let title = bad.windows(5).position(|w| w == b"pilot").unwrap();
    bad[title + 1] = 0xE2;
    let recs = loc20();
    let mut out = write_marc(&as_marc8(1));
    out.extend_from_slice(&bad);
    out.extend_from_slice(&write_marc(&recs[1]));
    out
}

/// Records 1 to 5 of loc-20 with record 3's directory entry for 245 pointing past the end.
pub fn corrupt_middle() -> Vec<u8> {
    let raw = fixture("loc-20.mrc");
    let recs: Vec<&[u8]> = raw.split_inclusive(|&b| b == 0x1D).take(5).collect();
    let mut bad = recs[2].to_vec();
    let dir_end = bad.iter().position(|&b| b == 0x1E).unwrap();
    let entry = (24..dir_end).step_by(12).find(|&p| &bad[p..p + 3] == b"245").unwrap();
    bad[entry + 7..entry + 12].copy_from_slice(b"09000");
    let mut out = Vec::new();
    out.extend_from_slice(recs[0]);
    out.extend_from_slice(recs[1]);
    out.extend_from_slice(&bad);
    out.extend_from_slice(recs[3]);
    out.extend_from_slice(recs[4]);
    out
}

/// Every generated fixture: (file name, contents).
pub fn generated() -> Vec<(&'static str, Vec<u8>)> {
    let recs = loc20();
    vec![
        ("koha.mrc", write_marc_file(&koha())),
        ("sierra.mrc", write_marc_file(&sierra())),
        ("generic.mrc", write_marc_file(&generic())),
        ("alma.mrc", write_marc_file(&alma())),
        ("marc8-ascii.mrc", write_marc(&as_marc8(1))),
        ("marc8-nonascii.mrc", marc8_nonascii()),
        ("corrupt-middle.mrc", corrupt_middle()),
        ("loc-20-collection.xml", write_marcxml(&recs, true, None).into_bytes()),
        ("loc-20-collection-prefix.xml", write_marcxml(&recs, true, Some("marc")).into_bytes()),
        ("loc-1-record.xml", write_marcxml(&recs[..1], false, None).into_bytes()),
        ("loc-1-record-prefix.xml", write_marcxml(&recs[..1], false, Some("marc")).into_bytes()),
        ("koha-collection.xml", write_marcxml(&koha(), true, Some("marc")).into_bytes()),
    ]
}
