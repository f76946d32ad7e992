//! A streaming reader for MARC21 binary (ISO 2709) files, and the [`Record`] type that the
//! MARCXML reader produces too.
//!
//! A record is framed by its terminator (0x1D), never by trusting the length in its leader,
//! so a damaged record costs only itself: [`MarcReader`] reports it as a [`RecordError`]
//! naming what is wrong and carries on with the next record. At most one record (99,999
//! bytes) is held in memory at a time.
//!
//! Every structural part is checked: the leader's numbers, that the record length matches
//! where the record ends, the directory (12-byte entries of tag, length and start, ending in
//! 0x1E), that each field lies inside the record and ends in 0x1E, indicators, subfield
//! delimiters and codes, and the character encoding:
//!
//! * leader/09 `a`: UTF-8. Invalid UTF-8 is an error for that record.
//! * leader/09 blank: MARC-8. A record that is pure ASCII reads the same in MARC-8 and is
//!   accepted; any other byte is refused with advice to convert the file to UTF-8 first,
//!   because guessing would store garbled titles.

use std::io::BufRead;

use crate::RecordError;

/// The largest record ISO 2709 can describe: its length has five digits.
pub const MAX_RECORD_LEN: usize = 99_999;

const RECORD_TERMINATOR: u8 = 0x1D;
const FIELD_TERMINATOR: u8 = 0x1E;
const SUBFIELD_DELIMITER: u8 = 0x1F;
/// Starts a MARC-8 escape sequence (a switch of character set).
const ESCAPE: u8 = 0x1B;

/// How to convert a MARC-8 file; part of the error for a MARC-8 record that is not ASCII.
pub const MARC8_ADVICE: &str = "convert the file to UTF-8 first, for example with MarcEdit \
     (MARC Tools: MARC-8 to UTF-8) or `yaz-marcdump -f MARC-8 -t UTF-8 -o marc -l 9=97 in.mrc > out.mrc`";

/// One bibliographic record, from MARC21 binary or MARCXML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The 24-byte leader, printable ASCII.
    pub leader: [u8; 24],
    /// Control fields (tags 001 to 009) as (tag, value), in file order.
    pub controls: Vec<(String, String)>,
    /// Data fields, in file order.
    pub fields: Vec<DataField>,
    /// Byte offset of the record in the file (for MARCXML: of its `<record>` tag).
    pub offset: u64,
    /// The record's position in the file, counting from 1 (bad records count too).
    pub number: u64,
}

/// A data field: tag, two indicators and subfields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataField {
    pub tag: String,
    pub ind1: char,
    pub ind2: char,
    /// (code, value) in field order.
    pub subfields: Vec<(char, String)>,
}

impl Record {
    /// The leader as text.
    pub fn leader_str(&self) -> &str {
        std::str::from_utf8(&self.leader).unwrap_or_default()
    }

    /// The value of the first control field with this tag.
    pub fn control(&self, tag: &str) -> Option<&str> {
        self.controls.iter().find(|(t, _)| t == tag).map(|(_, v)| v.as_str())
    }

    /// Every data field with this tag, in order.
    pub fn fields_with_tag<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a DataField> + 'a {
        self.fields.iter().filter(move |f| f.tag == tag)
    }

    /// The first data field with this tag.
    pub fn field(&self, tag: &str) -> Option<&DataField> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}

impl DataField {
    /// The value of the first subfield with this code.
    pub fn subfield(&self, code: char) -> Option<&str> {
        self.subfields.iter().find(|(c, _)| *c == code).map(|(_, v)| v.as_str())
    }

    /// Every subfield value with this code, in order.
    pub fn subfields_with_code(&self, code: char) -> impl Iterator<Item = &str> + '_ {
        self.subfields.iter().filter(move |(c, _)| *c == code).map(|(_, v)| v.as_str())
    }
}

/// Whether a byte may be an indicator: a digit, a lowercase letter, blank or the fill
/// character `|`.
pub(crate) fn valid_indicator(c: char) -> bool {
    matches!(c, ' ' | '|' | '0'..='9' | 'a'..='z')
}

/// Whether a tag is three ASCII letters or digits.
pub(crate) fn valid_tag(tag: &str) -> bool {
    tag.len() == 3 && tag.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a tag is a control field's (001 to 009, and 000).
pub(crate) fn is_control_tag(tag: &str) -> bool {
    tag.starts_with("00")
}

/// Quote bytes for an error message: printable ASCII as is, anything else as `\xNN`.
pub(crate) fn show(bytes: &[u8]) -> String {
    let mut s = String::from("'");
    for &b in bytes {
        if b == b' ' || b.is_ascii_graphic() {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02X}"));
        }
    }
    s.push('\'');
    s
}

/// Streams [`Record`]s out of a MARC21 binary file.
///
/// Blank lines, spaces, NUL and Ctrl-Z bytes between records (left by some tools) are
/// skipped. An I/O error ends the stream with a fatal [`RecordError`].
#[derive(Debug)]
pub struct MarcReader<R> {
    inner: R,
    /// Bytes consumed so far.
    pos: u64,
    /// Records started so far.
    number: u64,
    buf: Vec<u8>,
    done: bool,
}

enum Chunk {
    /// `buf` holds a whole record, terminator included.
    Complete,
    /// No terminator within [`MAX_RECORD_LEN`] bytes; skipped up to the next one (or the end).
    Overlong { skipped: u64, at_eof: bool },
    /// The file ended before a terminator; `buf` holds what there was.
    Truncated,
}

impl<R: BufRead> MarcReader<R> {
    pub fn new(inner: R) -> Self {
        MarcReader { inner, pos: 0, number: 0, buf: Vec::with_capacity(4096), done: false }
    }

    /// Skip filler between records. Returns false at the end of the file.
    fn skip_filler(&mut self) -> std::io::Result<bool> {
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(false);
            }
            let n = avail.iter().take_while(|b| matches!(b, b'\n' | b'\r' | b' ' | b'\t' | 0 | 0x1A)).count();
            let more = n < avail.len();
            self.inner.consume(n);
            self.pos += n as u64;
            if more {
                return Ok(true);
            }
        }
    }

    /// Read up to and including the next record terminator.
    fn read_chunk(&mut self) -> std::io::Result<Chunk> {
        self.buf.clear();
        let mut skipped: Option<u64> = None;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(match skipped {
                    Some(skipped) => Chunk::Overlong { skipped, at_eof: true },
                    None => Chunk::Truncated,
                });
            }
            let (take, found) = match avail.iter().position(|&b| b == RECORD_TERMINATOR) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            match skipped.as_mut() {
                Some(s) => *s += take as u64,
                None if self.buf.len() + take > MAX_RECORD_LEN => {
                    skipped = Some((self.buf.len() + take) as u64);
                    self.buf.clear();
                }
                None => self.buf.extend_from_slice(&avail[..take]),
            }
            self.inner.consume(take);
            self.pos += take as u64;
            if found {
                return Ok(match skipped {
                    Some(skipped) => Chunk::Overlong { skipped, at_eof: false },
                    None => Chunk::Complete,
                });
            }
        }
    }
}

impl<R: BufRead> Iterator for MarcReader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let io_error = |number, offset, e: std::io::Error| {
            RecordError::new(number, offset, format!("cannot read the file: {e}")).into_fatal()
        };
        match self.skip_filler() {
            Ok(true) => {}
            Ok(false) => {
                self.done = true;
                return None;
            }
            Err(e) => {
                self.done = true;
                return Some(Err(io_error(self.number + 1, self.pos, e)));
            }
        }
        let offset = self.pos;
        self.number += 1;
        let number = self.number;
        match self.read_chunk() {
            Ok(Chunk::Complete) => Some(parse_record(&self.buf, number, offset)),
            Ok(Chunk::Overlong { skipped, at_eof }) => {
                self.done = at_eof;
                let tail = if at_eof {
                    "the file ends without one".to_owned()
                } else {
                    format!("skipped {skipped} bytes to the next one")
                };
                Some(Err(RecordError::new(
                    number,
                    offset,
                    format!(
                        "no record terminator (0x1D) within {MAX_RECORD_LEN} bytes, the most a MARC21 record \
                         can hold; {tail} (is this really a MARC21 file?)"
                    ),
                )))
            }
            Ok(Chunk::Truncated) => {
                self.done = true;
                Some(Err(RecordError::new(
                    number,
                    offset,
                    format!(
                        "the file ends in the middle of a record: {} bytes without a record terminator (0x1D)",
                        self.buf.len()
                    ),
                )))
            }
            Err(e) => {
                self.done = true;
                Some(Err(io_error(number, offset, e)))
            }
        }
    }
}

/// Parse a five- or four-digit number field of the leader or directory.
fn decimal(bytes: &[u8]) -> Option<usize> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |n, b| n * 10 + usize::from(b - b'0')))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Marc8,
}

/// Parse and check one MARC21 record: `data` runs from the first byte of the leader to the
/// record terminator (0x1D) inclusive. `number` and `offset` go into the record and errors.
pub fn parse_record(data: &[u8], number: u64, offset: u64) -> Result<Record, RecordError> {
    parse(data, number, offset).map_err(|reason| RecordError::new(number, offset, reason))
}

fn parse(data: &[u8], number: u64, offset: u64) -> Result<Record, String> {
    let n = data.len();
    if n < 25 {
        return Err(format!("record is only {n} bytes long; the leader alone takes 24"));
    }
    if data[n - 1] != RECORD_TERMINATOR {
        return Err("record does not end with a record terminator (0x1D)".to_owned());
    }
    let mut leader = [0u8; 24];
    leader.copy_from_slice(&data[..24]);
    if let Some(p) = leader.iter().position(|&b| !(b == b' ' || b.is_ascii_graphic())) {
        return Err(format!(
            "bad leader: position {p} holds {}, not a printable ASCII character",
            show(&leader[p..=p])
        ));
    }
    let length = decimal(&leader[0..5])
        .ok_or_else(|| format!("bad leader: record length {} is not a number", show(&leader[0..5])))?;
    if length != n {
        return Err(format!(
            "bad leader: record length is {length} but the record terminator (0x1D) ends it after {n} bytes"
        ));
    }
    let encoding = match leader[9] {
        b'a' => Encoding::Utf8,
        b' ' => Encoding::Marc8,
        other => {
            return Err(format!(
                "bad leader: character coding scheme (leader/09) is {}; expected 'a' (UTF-8) or blank (MARC-8)",
                show(&[other])
            ));
        }
    };
    for (pos, want, what) in [(10, b'2', "indicator count"), (11, b'2', "subfield code length")] {
        if leader[pos] != want && leader[pos] != b' ' {
            return Err(format!(
                "bad leader: {what} (leader/{pos}) is {}; MARC21 uses {}",
                show(&leader[pos..=pos]),
                char::from(want)
            ));
        }
    }
    for (pos, want, what) in [(20, b'4', "length of the length-of-field part"), (21, b'5', "length of the start part")]
    {
        if leader[pos] != want && leader[pos] != b' ' {
            return Err(format!(
                "bad leader: {what} of directory entries (leader/{pos}) is {}; MARC21 uses {}",
                show(&leader[pos..=pos]),
                char::from(want)
            ));
        }
    }
    let base = decimal(&leader[12..17])
        .ok_or_else(|| format!("bad leader: base address of data {} is not a number", show(&leader[12..17])))?;
    if base < 25 || base > n - 1 {
        return Err(format!("bad leader: base address of data {base} is outside the record ({n} bytes)"));
    }
    if data[base - 1] != FIELD_TERMINATOR {
        return Err(format!(
            "the directory does not end with a field terminator (0x1E) at byte {}, just before the base \
             address {base}",
            base - 1
        ));
    }
    let directory = &data[24..base - 1];
    if !directory.len().is_multiple_of(12) {
        return Err(format!("the directory is {} bytes long, not a whole number of 12-byte entries", directory.len()));
    }

    // Directory first, so every field is known to lie inside the record.
    let mut spans = Vec::with_capacity(directory.len() / 12);
    for (i, entry) in directory.chunks_exact(12).enumerate() {
        let k = i + 1;
        let tag_bytes = &entry[0..3];
        if !tag_bytes.iter().all(u8::is_ascii_alphanumeric) {
            return Err(format!("directory entry {k}: tag {} is not three letters or digits", show(tag_bytes)));
        }
        let tag = String::from_utf8_lossy(tag_bytes).into_owned();
        let len = decimal(&entry[3..7]).ok_or_else(|| {
            format!("directory entry {k} (tag {tag}): field length {} is not a number", show(&entry[3..7]))
        })?;
        let start = decimal(&entry[7..12]).ok_or_else(|| {
            format!("directory entry {k} (tag {tag}): field start {} is not a number", show(&entry[7..12]))
        })?;
        if len == 0 {
            return Err(format!("directory entry {k} (tag {tag}): field length is 0"));
        }
        let begin = base + start;
        let end = begin + len;
        if end > n - 1 {
            return Err(format!(
                "directory entry {k} (tag {tag}) points past the end of the record (bytes {begin} to {} of {n})",
                end - 1
            ));
        }
        spans.push((k, tag, begin, end));
    }

    // MARC-8 beyond plain ASCII: a byte above 0x7F (diacritics, extended Latin), or an
    // escape (0x1B) that switches to another character set (Greek, Cyrillic, Hebrew, CJK,
    // sub- and superscripts), which is 7-bit but is not ASCII text either.
    if encoding == Encoding::Marc8
        && let Some(p) = data.iter().position(|&b| !b.is_ascii() || b == ESCAPE)
    {
        let place = spans
            .iter()
            .find(|(_, _, begin, end)| (*begin..*end).contains(&p))
            .map_or_else(|| "outside any field".to_owned(), |(_, tag, _, _)| format!("in field {tag}"));
        let what = if data[p] == ESCAPE {
            format!("an escape sequence that switches character sets (byte 0x1B at {p}, {place})")
        } else {
            format!("non-ASCII characters (byte 0x{:02X} at {p}, {place})", data[p])
        };
        return Err(format!(
            "the record is MARC-8 encoded (leader/09 blank) and has {what}; Rota reads MARC-8 only when \
             it is plain ASCII: {MARC8_ADVICE}"
        ));
    }

    let mut controls = Vec::new();
    let mut fields = Vec::new();
    for (k, tag, begin, end) in spans {
        let field = &data[begin..end];
        let Some((&last, body)) = field.split_last() else {
            return Err(format!("directory entry {k} (tag {tag}): field length is 0"));
        };
        if last != FIELD_TERMINATOR {
            return Err(format!(
                "field {tag} (directory entry {k}) does not end with a field terminator (0x1E); \
                 its length or start in the directory is wrong"
            ));
        }
        if let Some(p) = body.iter().position(|&b| b == FIELD_TERMINATOR) {
            return Err(format!(
                "field {tag} (directory entry {k}) has a field terminator (0x1E) at byte {p} of {}; \
                 its length in the directory is wrong",
                body.len()
            ));
        }
        let text = std::str::from_utf8(body).map_err(|e| {
            let p = e.valid_up_to();
            format!("field {tag}: invalid UTF-8 (byte 0x{:02X} at position {p} of the field)", body[p])
        })?;
        if is_control_tag(&tag) {
            // A stray delimiter at the end of a control field is a known export quirk (seen
            // in Library of Congress records: "   00038361\x1F"); the value itself is intact.
            let text = text.trim_end_matches('\u{1F}');
            if text.contains('\u{1F}') {
                return Err(format!("field {tag}: a control field must not contain a subfield delimiter (0x1F)"));
            }
            controls.push((tag, text.to_owned()));
            continue;
        }
        fields.push(parse_data_field(tag, text)?);
    }
    Ok(Record { leader, controls, fields, offset, number })
}

fn parse_data_field(tag: String, text: &str) -> Result<DataField, String> {
    let mut chars = text.chars();
    let (Some(ind1), Some(ind2)) = (chars.next(), chars.next()) else {
        return Err(format!("field {tag}: too short to hold its two indicators"));
    };
    for (i, ind) in [(1, ind1), (2, ind2)] {
        if !valid_indicator(ind) {
            return Err(format!(
                "field {tag}: indicator {i} is {}, not a digit, lowercase letter or blank",
                show(ind.to_string().as_bytes())
            ));
        }
    }
    let rest = chars.as_str();
    let mut subfields = Vec::new();
    if !rest.is_empty() {
        let Some(rest) = rest.strip_prefix(char::from(SUBFIELD_DELIMITER)) else {
            return Err(format!("field {tag}: data does not start with a subfield delimiter (0x1F)"));
        };
        for (j, sub) in rest.split(char::from(SUBFIELD_DELIMITER)).enumerate() {
            let mut sc = sub.chars();
            let Some(code) = sc.next() else {
                return Err(format!("field {tag}: subfield {} has a delimiter (0x1F) but no code", j + 1));
            };
            if !code.is_ascii_alphanumeric() {
                return Err(format!(
                    "field {tag}: subfield {} has code {}, not a letter or digit",
                    j + 1,
                    show(code.to_string().as_bytes())
                ));
            }
            subfields.push((code, sc.as_str().to_owned()));
        }
    }
    Ok(DataField { tag, ind1, ind2, subfields })
}
