//! A streaming MARCXML reader (quick-xml events, no DOM) yielding the same [`Record`]s as
//! the MARC21 binary reader.
//!
//! Records are `record` elements in the MARC21 slim namespace
//! (`http://www.loc.gov/MARC21/slim`, or MarcXchange's), in no namespace, or under an
//! undeclared prefix such as a bare `marc:`; `record` elements of other namespaces (an
//! OAI-PMH or SRU envelope's) are looked inside. So a lone `<record>`, a `<collection>` and
//! an envelope all work, with or without a prefix. A record's `offset` is the byte position
//! of its `<record` tag.
//!
//! A record that is malformed — broken XML, tags that do not nest, a bad leader, tag,
//! indicator or subfield code, invalid UTF-8 — is an error for that record, and reading
//! resumes after its `</record>`. A file that is not XML at all, declares an encoding other
//! than UTF-8, or holds no records is an error for the whole file.

use std::io::{BufRead, Chain, Cursor, Read};

use quick_xml::events::Event;
use quick_xml::events::attributes::Attributes;
use quick_xml::name::{PrefixDeclaration, ResolveResult};
use quick_xml::{NsReader, XmlVersion};

use crate::RecordError;
use crate::marc::{DataField, Record, show, valid_indicator, valid_tag};

/// Namespaces whose `record` elements are MARC records.
const MARC_NAMESPACES: [&str; 3] =
    ["http://www.loc.gov/MARC21/slim", "info:lc/xmlns/marcxchange-v1", "info:lc/xmlns/marcxchange-v2"];

/// The most text a record may hold before it is refused (a MARC record holds 99,999 bytes;
/// XML escaping and white space may add some).
const MAX_RECORD_TEXT: usize = 1_000_000;

/// The reader's input: bytes to re-read first (after a resynchronisation), then the file,
/// keeping what the current event consumed.
type Input<R> = Tap<Chain<Cursor<Vec<u8>>, R>>;

/// Passes bytes through to quick-xml, keeping those of the event being read, so that after
/// an error they can be scanned again.
struct Tap<R> {
    inner: R,
    kept: Vec<u8>,
}

impl<R: BufRead> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.kept.extend_from_slice(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tap<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes were just returned by fill_buf, so asking again does no I/O.
        if amt > 0
            && let Ok(buf) = self.inner.fill_buf()
        {
            self.kept.extend_from_slice(&buf[..amt.min(buf.len())]);
        }
        self.inner.consume(amt);
    }
}

/// Streams [`Record`]s out of a MARCXML document.
///
/// quick-xml stops at the first syntax or encoding error. To go on after a broken record,
/// this reader takes the input back, skips the raw bytes to the end of that record (or the
/// start of the next), and starts a new parser there, fed first with a synthetic start tag
/// that re-declares the namespaces in scope.
pub struct MarcXmlReader<R> {
    /// None only if taking the input back went wrong; reading then ends.
    xml: Option<NsReader<Input<R>>>,
    /// File offset of the first byte after the synthetic prefix of the current parser's input.
    base: u64,
    /// Length of that synthetic prefix.
    synthetic: u64,
    /// Namespace nesting level of the record being read.
    record_level: u16,
    /// Where (in the current parser's input) the event being read started.
    event_start: u64,
    buf: Vec<u8>,
    /// `record` elements started so far.
    number: u64,
    checked_start: bool,
    done: bool,
    /// The document's first element, for the "no records" message.
    root: Option<String>,
    /// A `<record>` met while skipping a broken one: its byte position.
    pending: Option<u64>,
}

impl<R> std::fmt::Debug for MarcXmlReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarcXmlReader").field("number", &self.number).field("done", &self.done).finish()
    }
}

/// An XML event, reduced to what the reader needs and owned.
enum Ev {
    /// A start tag (or an empty-element tag, `empty`), with its local name, whether it is a
    /// MARC `record`, and its attributes (or why they could not be read).
    Start {
        name: String,
        marc_record: bool,
        attrs: Result<Vec<(String, String)>, String>,
        empty: bool,
    },
    End {
        name: String,
    },
    Text(String),
    /// An entity reference that cannot be resolved.
    BadRef(String),
    Encoding(Option<String>),
    Other,
    Eof,
    /// A quick-xml error: what, and where.
    Error(String, u64),
}

/// Where the raw scan after a broken record stopped.
enum Resync {
    /// Just after the record's end tag, at this file offset.
    AfterEnd(u64),
    /// At the start tag of the next record: the bytes of the tag read so far, and its offset.
    AtStart(Vec<u8>, u64),
    Eof,
}

/// Whether `name` (maybe prefixed) is `record`.
fn is_record_name(name: &[u8]) -> bool {
    let local = name.rsplit(|&b| b == b':').next().unwrap_or_default();
    local == b"record"
}

/// Read raw bytes until just after a `</record>` (any prefix) or just into a `<record`
/// start tag. `pos` is the file offset of the first byte.
fn scan_to_record_boundary(input: &mut impl BufRead, mut pos: u64) -> std::io::Result<Resync> {
    // The markup read since the last '<', while it may still be a record tag.
    let mut tag: Vec<u8> = Vec::new();
    let mut tag_start = 0;
    loop {
        let avail = match input.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(Resync::Eof);
        }
        let mut used = 0;
        let mut found = None;
        for &b in avail {
            used += 1;
            if b == b'<' {
                tag.clear();
                tag.push(b);
                tag_start = pos + used as u64 - 1;
                continue;
            }
            if tag.is_empty() {
                continue;
            }
            tag.push(b);
            let name_char = b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-' | b'.');
            if tag.len() > 64 {
                tag.clear();
            } else if tag.starts_with(b"</") {
                if b == b'>' {
                    let name = tag[2..tag.len() - 1].trim_ascii_end();
                    if is_record_name(name) {
                        found = Some(Resync::AfterEnd(pos + used as u64));
                        break;
                    }
                    tag.clear();
                } else if !(name_char || b.is_ascii_whitespace() || (tag.len() == 2 && b == b'/')) {
                    tag.clear();
                }
            } else if tag.len() == 2 && !(b == b'/' || b.is_ascii_alphabetic() || b == b'_') {
                tag.clear();
            } else if !name_char {
                if (b.is_ascii_whitespace() || b == b'>' || b == b'/') && is_record_name(&tag[1..tag.len() - 1]) {
                    found = Some(Resync::AtStart(std::mem::take(&mut tag), tag_start));
                    break;
                }
                tag.clear();
            }
        }
        input.consume(used);
        pos += used as u64;
        if let Some(found) = found {
            return Ok(found);
        }
    }
}

/// Escape text for an attribute value.
fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
}

fn new_parser<R: BufRead>(input: Chain<Cursor<Vec<u8>>, R>) -> NsReader<Input<R>> {
    let mut xml = NsReader::from_reader(Tap { inner: input, kept: Vec::new() });
    // Tags are matched by this reader, so a mismatch is reported per record and does not
    // derail quick-xml's own stack of open elements.
    xml.config_mut().check_end_names = false;
    xml.config_mut().allow_unmatched_ends = true;
    xml
}

/// What an open element inside a record is.
enum Open {
    Leader(String),
    Control {
        tag: String,
        text: String,
    },
    Data(DataField),
    Subfield {
        code: Option<char>,
        text: String,
    },
    /// Something a MARC record does not contain; its content is ignored.
    Other(String),
}

impl Open {
    fn name(&self) -> &str {
        match self {
            Open::Leader(_) => "leader",
            Open::Control { .. } => "controlfield",
            Open::Data(_) => "datafield",
            Open::Subfield { .. } => "subfield",
            Open::Other(n) => n,
        }
    }
}

fn read_attrs(attrs: Attributes<'_>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for a in attrs {
        let a = a.map_err(|e| format!("malformed attribute: {e}"))?;
        let value = a.normalized_value(XmlVersion::Implicit1_0).map_err(|e| format!("bad attribute value: {e}"))?;
        out.push((a.key.local_name().as_ref().to_owned(), value.into_owned()));
    }
    Ok(out)
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

impl<R: BufRead> MarcXmlReader<R> {
    pub fn new(inner: R) -> Self {
        MarcXmlReader {
            xml: Some(new_parser(Cursor::new(Vec::new()).chain(inner))),
            base: 0,
            synthetic: 0,
            record_level: 0,
            event_start: 0,
            buf: Vec::with_capacity(1024),
            number: 0,
            checked_start: false,
            done: false,
            root: None,
            pending: None,
        }
    }

    /// Read the next event; returns it with the byte position where it starts.
    /// The file offset of a position in the current parser's input.
    fn file_pos(&self, parser_pos: u64) -> u64 {
        self.base + parser_pos.saturating_sub(self.synthetic)
    }

    fn event(&mut self) -> (u64, Ev) {
        self.buf.clear();
        let Some(xml) = self.xml.as_mut() else {
            return (0, Ev::Eof);
        };
        let before = xml.buffer_position();
        self.event_start = before;
        xml.get_mut().kept.clear();
        let result = xml.read_resolved_event_into(&mut self.buf);
        let pos = self.base + before.saturating_sub(self.synthetic);
        let ev = match result {
            Err(e) => {
                let (at, what) = match &e {
                    quick_xml::Error::Encoding(_) => (xml.buffer_position(), "invalid UTF-8 (save the file as UTF-8)"),
                    _ => (xml.error_position().max(before), "malformed XML"),
                };
                let at = self.base + at.saturating_sub(self.synthetic);
                return (pos, Ev::Error(format!("{what} at byte {at}: {e}"), at));
            }
            Ok((ns, ev)) => {
                let marc_ns = match ns {
                    ResolveResult::Unbound | ResolveResult::Unknown(_) => true,
                    ResolveResult::Bound(ns) => MARC_NAMESPACES.iter().any(|m| *m == ns.as_ref()),
                };
                match ev {
                    Event::Start(ref e) | Event::Empty(ref e) => {
                        let name = e.local_name().as_ref().to_owned();
                        Ev::Start {
                            marc_record: marc_ns && name == "record",
                            attrs: read_attrs(e.attributes()),
                            empty: matches!(ev, Event::Empty(_)),
                            name,
                        }
                    }
                    Event::End(e) => Ev::End { name: e.local_name().as_ref().to_owned() },
                    Event::Text(t) => Ev::Text(t.xml10_content().into_owned()),
                    Event::CData(c) => Ev::Text(c.xml10_content().into_owned()),
                    Event::GeneralRef(r) => match r.resolve_char_ref() {
                        Ok(Some(c)) => Ev::Text(c.to_string()),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                            Some(s) => Ev::Text(s.to_owned()),
                            None => Ev::BadRef(format!("unknown entity &{};", &*r)),
                        },
                        Err(e) => Ev::BadRef(format!("bad character reference &{};: {e}", &*r)),
                    },
                    Event::Decl(d) => Ev::Encoding(d.encoding().and_then(Result::ok).map(|e| e.into_owned())),
                    Event::Eof => Ev::Eof,
                    Event::Comment(_) | Event::PI(_) | Event::DocType(_) => Ev::Other,
                }
            }
        };
        (pos, ev)
    }

    /// Check the first bytes: the document must start (after a byte-order mark and white
    /// space) with `<`.
    fn check_start(&mut self) -> Result<(), String> {
        let Some(xml) = self.xml.as_mut() else {
            return Err("the file is empty".to_owned());
        };
        let head = xml.get_mut().inner.fill_buf().map_err(|e| format!("cannot read the file: {e}"))?;
        if head.is_empty() {
            return Err("the file is empty".to_owned());
        }
        if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
            return Err("the document is UTF-16; Rota reads MARCXML in UTF-8 only: save it as UTF-8".to_owned());
        }
        let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head).trim_ascii_start();
        match text.first() {
            None | Some(b'<') => Ok(()),
            Some(_) => Err(format!("not an XML document: it starts with {}", show(&text[..text.len().min(24)]))),
        }
    }

    fn fatal(&mut self, number: u64, offset: u64, reason: String) -> Option<Result<Record, RecordError>> {
        self.done = true;
        Some(Err(RecordError::new(number, offset, reason).into_fatal()))
    }

    /// Parse the record whose `<record>` tag starts at `offset` (already read).
    fn record(&mut self, offset: u64) -> Result<Record, RecordError> {
        self.number += 1;
        let number = self.number;
        let err = |reason: String| RecordError::new(number, offset, reason);
        let mut leader: Option<String> = None;
        let mut controls = Vec::new();
        let mut fields = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        // The first problem that does not break the XML; reading goes on to </record>.
        let mut problem: Option<String> = None;
        let mut size = 0usize;
        self.record_level = self.xml.as_ref().map_or(0, |x| x.resolver().level());
        loop {
            let (pos, ev) = self.event();
            match ev {
                Ev::Error(e, _) => {
                    self.resync(0, self.record_level);
                    return Err(err(e));
                }
                Ev::Eof => {
                    self.done = true;
                    return Err(err("the file ends inside this record (no </record>)".to_owned()));
                }
                Ev::Start { marc_record: true, .. } => {
                    self.pending = Some(pos);
                    return Err(err(format!("a new <record> starts at byte {pos} before this one is closed")));
                }
                Ev::Start { name, attrs, empty, .. } => {
                    let attrs = match attrs {
                        Ok(a) => a,
                        Err(e) => {
                            problem.get_or_insert(format!("<{name}>: {e}"));
                            Vec::new()
                        }
                    };
                    let el = match (open.last(), name.as_str()) {
                        (None, "leader") => Open::Leader(String::new()),
                        (None, "controlfield") => {
                            let tag = attr(&attrs, "tag").unwrap_or_default().to_owned();
                            if !valid_tag(&tag) {
                                problem.get_or_insert(format!(
                                    "<controlfield> tag {} is not three letters or digits",
                                    show(tag.as_bytes())
                                ));
                            }
                            Open::Control { tag, text: String::new() }
                        }
                        (None, "datafield") => {
                            let tag = attr(&attrs, "tag").unwrap_or_default().to_owned();
                            if !valid_tag(&tag) {
                                problem.get_or_insert(format!(
                                    "<datafield> tag {} is not three letters or digits",
                                    show(tag.as_bytes())
                                ));
                            }
                            let mut ind = [' '; 2];
                            for (i, key) in ["ind1", "ind2"].into_iter().enumerate() {
                                let v = attr(&attrs, key).unwrap_or_default();
                                let mut cs = v.chars();
                                match (cs.next(), cs.next()) {
                                    (None, _) => {}
                                    (Some(c), None) if valid_indicator(c) => ind[i] = c,
                                    _ => {
                                        problem.get_or_insert(format!(
                                            "field {tag}: indicator {} is {}, not a digit, lowercase letter or blank",
                                            i + 1,
                                            show(v.as_bytes())
                                        ));
                                    }
                                }
                            }
                            Open::Data(DataField { tag, ind1: ind[0], ind2: ind[1], subfields: Vec::new() })
                        }
                        (Some(Open::Data(f)), "subfield") => {
                            let v = attr(&attrs, "code").unwrap_or_default();
                            let mut cs = v.chars();
                            let code = match (cs.next(), cs.next()) {
                                (Some(c), None) if c.is_ascii_alphanumeric() => Some(c),
                                _ => {
                                    problem.get_or_insert(format!(
                                        "field {}: subfield {} has code {}, not a letter or digit",
                                        f.tag,
                                        f.subfields.len() + 1,
                                        show(v.as_bytes())
                                    ));
                                    None
                                }
                            };
                            Open::Subfield { code, text: String::new() }
                        }
                        _ => Open::Other(name),
                    };
                    open.push(el);
                    if empty && let Err(e) = close(&mut open, None, &mut leader, &mut controls, &mut fields) {
                        problem.get_or_insert(e);
                    }
                }
                Ev::End { name } => {
                    if open.is_empty() {
                        if name == "record" {
                            break;
                        }
                        self.skip_rest_of_record();
                        return Err(err(format!("malformed XML at byte {pos}: </{name}> does not close <record>")));
                    }
                    match close(&mut open, Some(&name), &mut leader, &mut controls, &mut fields) {
                        Ok(()) => {}
                        Err(e) if e.starts_with('<') => {
                            self.skip_rest_of_record();
                            return Err(err(format!("malformed XML at byte {pos}: {e}")));
                        }
                        Err(e) => {
                            problem.get_or_insert(e);
                        }
                    }
                }
                Ev::Text(t) => {
                    size += t.len();
                    if size > MAX_RECORD_TEXT {
                        problem.get_or_insert(format!("the record holds more than {MAX_RECORD_TEXT} bytes of text"));
                        continue;
                    }
                    if let Some(Open::Leader(s) | Open::Control { text: s, .. } | Open::Subfield { text: s, .. }) =
                        open.last_mut()
                    {
                        s.push_str(&t);
                    }
                }
                Ev::BadRef(e) => {
                    problem.get_or_insert(e);
                }
                Ev::Encoding(_) | Ev::Other => {}
            }
        }
        if let Some(p) = problem {
            return Err(err(p));
        }
        let Some(leader_text) = leader else {
            return Err(err("the record has no <leader>".to_owned()));
        };
        let bytes = leader_text.as_bytes();
        if let Some(b) = bytes.iter().find(|b| !(**b == b' ' || b.is_ascii_graphic())) {
            return Err(err(format!(
                "bad leader {}: byte {} is not a printable ASCII character",
                show(bytes),
                show(&[*b])
            )));
        }
        let Ok(leader) = <[u8; 24]>::try_from(bytes) else {
            return Err(err(format!("bad leader {}: it is {} characters long, not 24", show(bytes), bytes.len())));
        };
        Ok(Record { leader, controls, fields, offset, number })
    }

    /// After an error that leaves the XML readable (tags that do not nest), skip to the
    /// end of the broken record: its `</record>`, the next `<record>` (left pending), or the
    /// end of the file.
    fn skip_rest_of_record(&mut self) {
        loop {
            let (pos, ev) = self.event();
            match ev {
                Ev::End { name } if name == "record" => return,
                Ev::Start { marc_record: true, .. } => {
                    self.pending = Some(pos);
                    return;
                }
                Ev::Eof => {
                    self.done = true;
                    return;
                }
                Ev::Error(..) => return self.resync(0, self.record_level),
                _ => {}
            }
        }
    }

    /// After quick-xml gave up (a syntax or encoding error), take the input back, scan the
    /// raw bytes from the failed event's start (plus `skip` bytes) to the end of the broken
    /// record or the start of the next, and go on with a new parser from there.
    /// `ns_levels`: the namespace levels in scope there (those below it are re-declared).
    fn resync(&mut self, skip: usize, ns_levels: u16) {
        let Some(xml) = self.xml.take() else {
            self.done = true;
            return;
        };
        let from = self.file_pos(self.event_start) + skip as u64;
        // One synthetic element per enclosing level, re-declaring that level's namespaces, so
        // that the end tags still to come close them as they would have closed the originals.
        let mut wrapper = String::new();
        for level in 1..ns_levels {
            wrapper.push_str("<rota-resync");
            for (prefix, uri) in xml.resolver().bindings_of(level) {
                match prefix {
                    PrefixDeclaration::Default => wrapper.push_str(" xmlns=\""),
                    PrefixDeclaration::Named(p) => wrapper.push_str(&format!(" xmlns:{p}=\"")),
                }
                wrapper.push_str(&escape_attr(uri.0));
                wrapper.push('"');
            }
            wrapper.push('>');
        }
        let tap = xml.into_inner();
        let mut again = tap.kept;
        again.drain(..skip.min(again.len()));
        let (cursor, mut rest) = tap.inner.into_inner();
        let consumed = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        again.extend_from_slice(cursor.get_ref().get(consumed..).unwrap_or_default());

        let mut input = Cursor::new(again).chain(&mut rest);
        let found = scan_to_record_boundary(&mut input, from);
        let (cursor, _) = input.into_inner();
        let consumed = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
        let leftover = cursor.get_ref().get(consumed..).unwrap_or_default().to_vec();

        let mut synthetic = wrapper.into_bytes();
        self.synthetic = synthetic.len() as u64;
        match found {
            Ok(Resync::AfterEnd(at)) => self.base = at,
            Ok(Resync::AtStart(tag, at)) => {
                self.base = at;
                synthetic.extend_from_slice(&tag);
            }
            Ok(Resync::Eof) => {
                // Nothing more: a parser over nothing reports the end of the file.
                self.base = 0;
                self.synthetic = 0;
                self.xml = Some(new_parser(Cursor::new(Vec::new()).chain(rest)));
                return;
            }
            Err(_) => {
                self.done = true;
                return;
            }
        }
        synthetic.extend_from_slice(&leftover);
        self.xml = Some(new_parser(Cursor::new(synthetic).chain(rest)));
    }
}

/// Close the innermost open element (whose end tag is `name`, or which was empty), moving
/// its content into the record. An error starting `<` means the tags do not nest.
fn close(
    open: &mut Vec<Open>,
    name: Option<&str>,
    leader: &mut Option<String>,
    controls: &mut Vec<(String, String)>,
    fields: &mut Vec<DataField>,
) -> Result<(), String> {
    let Some(el) = open.pop() else {
        return Ok(());
    };
    if let Some(name) = name
        && name != el.name()
    {
        return Err(format!("</{name}> closes <{}>", el.name()));
    }
    match el {
        Open::Leader(text) => {
            if leader.is_some() {
                return Err("the record has two <leader>s".to_owned());
            }
            *leader = Some(text);
        }
        Open::Control { tag, text } => controls.push((tag, text)),
        Open::Data(f) => fields.push(f),
        Open::Subfield { code, text } => {
            if let (Some(code), Some(Open::Data(f))) = (code, open.last_mut()) {
                f.subfields.push((code, text));
            }
        }
        Open::Other(_) => {}
    }
    Ok(())
}

impl<R: BufRead> Iterator for MarcXmlReader<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.checked_start {
            self.checked_start = true;
            if let Err(e) = self.check_start() {
                return self.fatal(0, 0, e);
            }
        }
        if let Some(pos) = self.pending.take() {
            return Some(self.record(pos));
        }
        loop {
            let (pos, ev) = self.event();
            match ev {
                Ev::Start { marc_record: true, empty: true, .. } => {
                    self.number += 1;
                    return Some(Err(RecordError::new(self.number, pos, "the record is empty (<record/>)")));
                }
                Ev::Start { marc_record: true, .. } => return Some(self.record(pos)),
                Ev::Start { name, .. } => {
                    if name != "rota-resync" {
                        self.root.get_or_insert(name);
                    }
                }
                Ev::Encoding(Some(enc)) => {
                    let e = enc.to_ascii_lowercase();
                    if !matches!(e.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
                        return self.fatal(
                            0,
                            pos,
                            format!(
                                "the document declares the encoding {enc:?}; Rota reads MARCXML in UTF-8 only: \
                                 save or export it as UTF-8"
                            ),
                        );
                    }
                }
                Ev::Error(e, at) => {
                    // Look for the next record from just after where this went wrong.
                    let level = self.xml.as_ref().map_or(0, |x| x.resolver().level());
                    self.resync(1, level.saturating_add(1));
                    return Some(Err(RecordError::new(0, at, format!("{e} (outside any record)"))));
                }
                Ev::Eof => {
                    self.done = true;
                    if self.number == 0 {
                        let root = match &self.root {
                            Some(r) => format!("its first element is <{r}>"),
                            None => "it has no elements".to_owned(),
                        };
                        return Some(Err(RecordError::new(
                            0,
                            0,
                            format!("no MARC records in this XML document: {root}, and there is no MARCXML <record>"),
                        )
                        .into_fatal()));
                    }
                    return None;
                }
                Ev::End { .. } | Ev::Text(_) | Ev::BadRef(_) | Ev::Encoding(None) | Ev::Other => {}
            }
        }
    }
}
