//! Every way a MARC21 record can be malformed is reported with a reason naming what is
//! wrong, and the reader carries on with the next record.

mod common;

use std::io::{BufReader, Read};

use common::fixture;
use rota_holdings::{MarcReader, Record, RecordError};

/// Record 1 of loc-20 (720 bytes; base address 205; 15 directory entries).
fn rec1() -> Vec<u8> {
    fixture("loc-20.mrc")[..720].to_vec()
}

/// Record 2 of loc-20 (720 bytes).
fn rec2() -> Vec<u8> {
    fixture("loc-20.mrc")[720..1440].to_vec()
}

/// Where the directory entry for `tag` starts.
fn entry(rec: &[u8], tag: &str) -> usize {
    (24..205).step_by(12).find(|&p| &rec[p..p + 3] == tag.as_bytes()).unwrap()
}

/// Where field `tag`'s data starts.
fn field_at(rec: &[u8], tag: &str) -> usize {
    let e = entry(rec, tag);
    205 + std::str::from_utf8(&rec[e + 7..e + 12]).unwrap().parse::<usize>().unwrap()
}

/// A record from raw field bodies (each ending in its terminator), leader/09 `a`.
fn raw(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut dir = Vec::new();
    let mut data = Vec::new();
    for (tag, body) in fields {
        dir.extend_from_slice(format!("{tag}{:04}{:05}", body.len(), data.len()).as_bytes());
        data.extend_from_slice(body);
    }
    dir.push(0x1E);
    let base = 24 + dir.len();
    let len = base + data.len() + 1;
    let mut out = format!("{len:05}nam a22{base:05}   4500").into_bytes();
    out.extend_from_slice(&dir);
    out.extend_from_slice(&data);
    out.push(0x1D);
    out
}

/// Read `bad` followed by a good record: the first must fail, the second must parse, and
/// the reason is returned.
fn reason(bad: &[u8]) -> String {
    let mut file = bad.to_vec();
    file.extend_from_slice(&rec2());
    let results: Vec<Result<Record, RecordError>> = MarcReader::new(&file[..]).collect();
    assert_eq!(results.len(), 2, "{results:?}");
    let err = results[0].as_ref().unwrap_err().clone();
    assert_eq!((err.number, err.offset, err.fatal), (1, 0, false));
    let next = results[1].as_ref().unwrap();
    assert_eq!((next.number, next.offset), (2, bad.len() as u64));
    assert_eq!(next.control("001"), Some("   00000004 "));
    err.reason
}

fn patched(at: usize, bytes: &[u8]) -> Vec<u8> {
    let mut r = rec1();
    r[at..at + bytes.len()].copy_from_slice(bytes);
    r
}

#[test]
fn the_unpatched_record_parses() {
    let r: Vec<_> = MarcReader::new(&rec1()[..]).collect();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].as_ref().unwrap().fields.len(), 11);
    assert_eq!(r[0].as_ref().unwrap().controls.len(), 4);
}

#[test]
fn leader_errors() {
    assert_eq!(reason(&patched(0, b"abcde")), "bad leader: record length 'abcde' is not a number");
    assert!(reason(&patched(0, b"00719")).starts_with("bad leader: record length is 719 but the record terminator"));
    assert_eq!(reason(&patched(12, b"00x05")), "bad leader: base address of data '00x05' is not a number");
    assert!(reason(&patched(12, b"00900")).contains("base address of data 900 is outside the record (720 bytes)"));
    assert!(reason(&patched(12, b"00010")).contains("base address of data 10 is outside the record"));
    let e = reason(&patched(9, b"b"));
    assert!(e.contains("character coding scheme (leader/09) is 'b'"), "{e}");
    assert!(reason(&patched(10, b"3")).contains("indicator count (leader/10) is '3'"));
    assert!(reason(&patched(11, b"1")).contains("subfield code length (leader/11) is '1'"));
    assert!(reason(&patched(20, b"3")).contains("(leader/20) is '3'"));
    assert!(reason(&patched(21, b"9")).contains("(leader/21) is '9'"));
    assert_eq!(reason(&patched(6, b"\x01")), "bad leader: position 6 holds '\\x01', not a printable ASCII character");
    assert_eq!(
        reason(&patched(7, "é".as_bytes())),
        "bad leader: position 7 holds '\\xC3', not a printable ASCII character"
    );
}

#[test]
fn directory_errors() {
    let e = reason(&patched(204, b"X"));
    assert!(e.starts_with("the directory does not end with a field terminator (0x1E) at byte 204"), "{e}");

    // An extra byte inside the directory, with the leader adjusted to match.
    let mut r = rec1();
    r.insert(204, b'0');
    r[0..5].copy_from_slice(b"00721");
    r[12..17].copy_from_slice(b"00206");
    assert_eq!(reason(&r), "the directory is 181 bytes long, not a whole number of 12-byte entries");

    let at = entry(&rec1(), "245");
    assert_eq!(reason(&patched(at, b"2\x1F5")), "directory entry 10: tag '2\\x1F5' is not three letters or digits");
    assert_eq!(reason(&patched(at + 3, b"01x6")), "directory entry 10 (tag 245): field length '01x6' is not a number");
    assert_eq!(reason(&patched(at + 7, b"0018 ")), "directory entry 10 (tag 245): field start '0018 ' is not a number");
    assert_eq!(reason(&patched(at + 3, b"0000")), "directory entry 10 (tag 245): field length is 0");
    let e = reason(&patched(at + 7, b"09000"));
    assert_eq!(e, "directory entry 10 (tag 245) points past the end of the record (bytes 9205 to 9380 of 720)");
    // One byte too long: the field's last byte is not a terminator.
    let e = reason(&patched(at + 3, b"0177"));
    assert_eq!(
        e,
        "field 245 (directory entry 10) does not end with a field terminator (0x1E); its length or start in the \
         directory is wrong"
    );
    // Starting one byte early, one longer: the previous field's terminator is inside it.
    let mut r = patched(at + 3, b"0177");
    let start = field_at(&rec1(), "245") - 205 - 1;
    r[at + 7..at + 12].copy_from_slice(format!("{start:05}").as_bytes());
    assert!(reason(&r).starts_with("field 245 (directory entry 10) has a field terminator (0x1E) at byte 0 of 176"));
}

#[test]
fn field_errors() {
    let title = field_at(&rec1(), "245");
    assert_eq!(
        reason(&patched(title + 10, b"\xFF")),
        "field 245: invalid UTF-8 (byte 0xFF at position 10 of the field)"
    );
    // A truncated multi-byte character.
    assert_eq!(
        reason(&patched(title + 10, b"\xCC")),
        "field 245: invalid UTF-8 (byte 0xCC at position 10 of the field)"
    );
    assert_eq!(reason(&patched(title, b"X")), "field 245: indicator 1 is 'X', not a digit, lowercase letter or blank");
    assert_eq!(
        reason(&patched(title + 1, b"\x1F")),
        "field 245: indicator 2 is '\\x1F', not a digit, lowercase letter or blank"
    );
    assert_eq!(reason(&patched(title + 2, b"a")), "field 245: data does not start with a subfield delimiter (0x1F)");
    assert_eq!(reason(&patched(title + 3, b" ")), "field 245: subfield 1 has code ' ', not a letter or digit");
    let b = title + rec1()[title..].windows(2).position(|w| w == b"\x1Fb").unwrap();
    assert_eq!(reason(&patched(b + 1, b"\x1F")), "field 245: subfield 2 has a delimiter (0x1F) but no code");
    let control = field_at(&rec1(), "001");
    assert_eq!(
        reason(&patched(control + 2, b"\x1F")),
        "field 001: a control field must not contain a subfield delimiter (0x1F)"
    );
    assert_eq!(
        reason(&raw(&[("001", b"1\x1E"), ("245", b"1\x1E")])),
        "field 245: too short to hold its two indicators"
    );
    let e = reason(&raw(&[("001", b"1\x1E"), ("245", b"10\x1Fa\xE9t\xE9\x1E")]));
    assert_eq!(e, "field 245: invalid UTF-8 (byte 0xE9 at position 4 of the field)");
}

#[test]
fn a_stray_delimiter_at_the_end_of_a_control_field_is_dropped() {
    // As in Library of Congress record 23523 of BooksAll 2016 part 1: 001 "   00038361\x1F".
    let r = raw(&[("001", b"   00038361\x1F\x1E"), ("245", b"10\x1FaTitle\x1E")]);
    let recs: Vec<_> = MarcReader::new(&r[..]).collect();
    let rec = recs[0].as_ref().unwrap();
    assert_eq!(rec.control("001"), Some("   00038361"));
}

#[test]
fn unusual_but_valid_records_parse() {
    let r = raw(&[("001", b"x1\x1E"), ("245", b"  \x1E"), ("ITM", b"  \x1Fbb1\x1Fc\x1E"), ("500", b"1|\x1Fa\x1E")]);
    let recs: Vec<_> = MarcReader::new(&r[..]).collect();
    let rec = recs[0].as_ref().unwrap();
    assert_eq!(rec.control("001"), Some("x1"));
    assert_eq!(rec.fields[0].subfields, []);
    assert_eq!(rec.fields[1].subfields, [('b', "b1".to_owned()), ('c', String::new())]);
    assert_eq!((rec.fields[2].ind1, rec.fields[2].ind2), ('1', '|'));
}

#[test]
fn record_framing_errors() {
    assert_eq!(reason(b"0001\x1D"), "record is only 5 bytes long; the leader alone takes 24");

    // A file that ends without a record terminator.
    let mut file = rec1();
    file.extend_from_slice(&rec2()[..700]);
    let r: Vec<_> = MarcReader::new(&file[..]).collect();
    assert_eq!(r.len(), 2);
    let e = r[1].as_ref().unwrap_err();
    assert_eq!((e.number, e.offset), (2, 720));
    assert_eq!(e.reason, "the file ends in the middle of a record: 700 bytes without a record terminator (0x1D)");

    // 150,000 bytes without a terminator: refused, skipped, and the next record still reads.
    let mut file = vec![b'9'; 150_000];
    file.push(0x1D);
    file.extend_from_slice(&rec1());
    let r: Vec<_> = MarcReader::new(BufReader::with_capacity(8192, &file[..])).collect();
    assert_eq!(r.len(), 2);
    let e = r[0].as_ref().unwrap_err();
    assert!(e.reason.starts_with("no record terminator (0x1D) within 99999 bytes"), "{}", e.reason);
    assert!(e.reason.contains("skipped 150001 bytes"), "{}", e.reason);
    assert_eq!(r[1].as_ref().unwrap().offset, 150_001);

    // ... and when the file ends first.
    let r: Vec<_> = MarcReader::new(&vec![b'9'; 120_000][..]).collect();
    assert_eq!(r.len(), 1);
    assert!(r[0].as_ref().unwrap_err().reason.contains("the file ends without one"));
}

#[test]
fn filler_between_records_is_skipped() {
    let mut file = rec1();
    file.extend_from_slice(b"\r\n");
    file.extend_from_slice(&rec2());
    file.extend_from_slice(b"\n\x1A");
    let r: Vec<Record> = MarcReader::new(&file[..]).map(Result::unwrap).collect();
    assert_eq!(r.len(), 2);
    assert_eq!((r[1].number, r[1].offset), (2, 722));
    assert_eq!(MarcReader::new(&b""[..]).count(), 0);
    assert_eq!(MarcReader::new(&b"\n\n"[..]).count(), 0);
}

/// A reader that fails after some bytes.
struct Failing(Vec<u8>);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() {
            return Err(std::io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0.drain(..n);
        Ok(n)
    }
}

#[test]
fn an_io_error_ends_the_stream() {
    let mut data = rec1();
    data.extend_from_slice(&rec2()[..100]);
    let r: Vec<_> = MarcReader::new(BufReader::with_capacity(64, Failing(data))).collect();
    assert_eq!(r.len(), 2);
    assert!(r[0].is_ok());
    let e = r[1].as_ref().unwrap_err();
    assert!(e.fatal);
    assert_eq!(e.reason, "cannot read the file: disk on fire");
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Every prefix and many single-byte corruptions of a real record: errors, never panics.
    let good = rec1();
    for n in 0..good.len() {
        let _ = MarcReader::new(&good[..n]).count();
    }
    let mut seed = 12345u32;
    for _ in 0..3000 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let at = (seed >> 8) as usize % good.len();
        let mut bad = good.clone();
        bad[at] = (seed >> 20) as u8;
        let _ = MarcReader::new(&bad[..]).count();
    }
}
