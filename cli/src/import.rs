//! `rota holdings import`: stream a holdings export (MARC21, MARCXML or CSV), or a list of
//! barcodes to withdraw, to the node's `Import` call.
//!
//! The file is never loaded whole. A reader thread turns it into [`ImportRow`]s with
//! `rota_holdings`, batches them ([`BATCH`] rows) and hands the batches over a small bounded
//! channel to the gRPC stream, which starts with an `ImportStart`. A record that cannot be
//! read is counted and listed here as skipped, and the rest goes on. An error that stops
//! reading (the file cannot be read, is not XML, has a bad CSV header) cancels the import:
//! the stream then carries a message the node refuses, so the node applies nothing.
//!
//! Before the node is contacted, the file is opened, its format recognised and its first
//! item read, so a wrong file fails without needing a profile or a network.

use std::fs::File;
use std::io::{BufRead, BufReader, Chain, Cursor, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rota_holdings::{CsvReader, Format, HoldingRow, MarcReader, MarcXmlReader, Record, RecordError};
use rota_proto::staff::{
    ImportBatch, ImportIssue, ImportMessage, ImportReport, ImportRow, ImportStart, Item, import_message,
};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::context::{Ctx, status_error};
use crate::output::{fields_text, print_json, table};
use crate::{ImportArgs, usage_error};

/// Rows per `ImportBatch`.
pub const BATCH: usize = 500;
/// Batches read ahead of the network.
const CHANNEL: usize = 4;
/// Records that could not be read, listed one by one (all are counted). The node lists its
/// own skips and warnings the same way, up to 200 of each (`MAX_LISTED` in node/src/import.rs).
pub const MAX_LISTED: usize = 1000;
/// Skips and warnings shown in the text summary (`--json` has every listed one).
const SHOWN_SKIPS: usize = 20;
const SHOWN_WARNINGS: usize = 10;
/// Read buffer; large enough that reading costs few system calls.
const BUFFER: usize = 256 * 1024;

/// What an import does with the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Create new items and update existing ones.
    Upsert,
    /// A full sync: items missing from the file are withdrawn.
    Replace,
    /// Withdraw the listed barcodes.
    Delete,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Upsert => "upsert",
            Mode::Replace => "replace",
            Mode::Delete => "delete",
        }
    }
}

/// What is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Holdings(Format),
    /// Barcodes to withdraw, one per line.
    BarcodeLines,
    /// Barcodes to withdraw, in the `barcode` column of a CSV file with this separator.
    BarcodeCsv(u8),
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Holdings(f) => f.name(),
            Kind::BarcodeLines => "barcode list",
            Kind::BarcodeCsv(_) => "CSV barcode list",
        }
    }
}

/// Counts the bytes read from the file, for the progress bar.
struct Counted<R> {
    inner: R,
    read: u64,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if let Some(bar) = &self.bar {
            bar.set_position(self.read);
        }
        Ok(n)
    }
}

type FileReader = BufReader<Counted<Chain<Cursor<Vec<u8>>, File>>>;

/// An opened file, its kind recognised.
struct Input {
    path: PathBuf,
    kind: Kind,
    /// The file's size, for the progress bar.
    len: u64,
    reader: FileReader,
}

impl Input {
    /// Open a file and read its first bytes (which are read again from the returned reader).
    fn open(path: &Path) -> anyhow::Result<(Vec<u8>, Input)> {
        let name = path.display();
        let mut file = File::open(path).with_context(|| format!("cannot read {name}"))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut head = Vec::with_capacity(Format::DETECT_LEN);
        (&mut file)
            .take(Format::DETECT_LEN as u64)
            .read_to_end(&mut head)
            .with_context(|| format!("cannot read {name}"))?;
        let counted = Counted { inner: Cursor::new(head.clone()).chain(file), read: 0, bar: None };
        let reader = BufReader::with_capacity(BUFFER, counted);
        Ok((head, Input { path: path.to_owned(), kind: Kind::BarcodeLines, len, reader }))
    }

    /// A holdings export, in `format` or the format its first bytes show.
    fn holdings(path: &Path, format: Option<Format>) -> anyhow::Result<Input> {
        let (head, mut input) = Input::open(path)?;
        let format = match format {
            Some(f) => f,
            None => Format::detect(&head).map_err(|e| anyhow!("{}: {e}", path.display()))?,
        };
        input.kind = Kind::Holdings(format);
        Ok(input)
    }

    /// A list of barcodes to withdraw.
    fn barcodes(path: &Path) -> anyhow::Result<Input> {
        let (head, mut input) = Input::open(path)?;
        input.kind = barcode_list_kind(&head).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok(input)
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Whether a list of barcodes is one barcode per line or a CSV file with a `barcode`
/// column, from its first bytes.
fn barcode_list_kind(head: &[u8]) -> Result<Kind, String> {
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let valid = match std::str::from_utf8(text) {
        Ok(s) => Some(s),
        // The sample may end inside a character.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&text[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    let Some(text) = valid.filter(|t| t.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))) else {
        let seen = match Format::detect(head) {
            Ok(format) => format!("a {format} holdings file"),
            Err(e) => e.seen,
        };
        return Err(format!(
            "this is not a list of barcodes: it is {seen}; give one barcode per line, or a CSV file with a \
             barcode column"
        ));
    };
    let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')) else {
        return Ok(Kind::BarcodeLines);
    };
    let delimiter = [b',', b';', b'\t'].into_iter().find(|d| first.as_bytes().contains(d));
    let cells: Vec<String> = match delimiter {
        Some(d) => first.split(char::from(d)).map(|c| c.trim().trim_matches('"').trim().to_ascii_lowercase()).collect(),
        None => vec![first.trim_matches('"').trim().to_ascii_lowercase()],
    };
    if cells.iter().any(|c| c == "barcode") {
        return Ok(Kind::BarcodeCsv(delimiter.unwrap_or(b',')));
    }
    if delimiter.is_some() {
        return Err(format!(
            "the first line {first:?} has several columns but none is named barcode; give one barcode per line, \
             or a CSV file with a barcode column"
        ));
    }
    Ok(Kind::BarcodeLines)
}

/// A skipped record, or a warning: from this side or from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// "record 17", "line 17".
    pub source: String,
    pub record: u64,
    pub offset: u64,
    pub reason: String,
}

impl Issue {
    fn from_error(e: &RecordError) -> Issue {
        let source = match (e.line, e.number) {
            (Some(line), _) => format!("line {line}"),
            // Not in any record.
            (None, 0) => String::new(),
            (None, n) => format!("record {n}"),
        };
        Issue { source, record: e.number, offset: e.offset, reason: e.reason.clone() }
    }

    fn from_proto(i: &ImportIssue) -> Issue {
        let source = if i.source.is_empty() { format!("record {}", i.record) } else { i.source.clone() };
        Issue { source, record: i.record, offset: i.offset, reason: i.reason.clone() }
    }

    /// `record 17 (byte 12345): reason`, or `byte 12345: reason` outside any record.
    pub fn text(&self) -> String {
        if self.source.is_empty() {
            format!("byte {}: {}", self.offset, self.reason)
        } else {
            format!("{} (byte {}): {}", self.source, self.offset, self.reason)
        }
    }

    fn json(&self) -> Value {
        json!({ "source": self.source, "record": self.record, "offset": self.offset, "reason": self.reason })
    }
}

/// Where a reading error happened, for a message: `record 3 (byte 120): `, `line 4: `.
fn position(e: &RecordError) -> String {
    match (e.line, e.number) {
        (Some(line), _) => format!("line {line}: "),
        (None, 0) if e.offset > 0 => format!("byte {}: ", e.offset),
        (None, 0) => String::new(),
        (None, n) => format!("record {n} (byte {}): ", e.offset),
    }
}

/// What reading the file found.
#[derive(Debug, Default)]
pub struct ReadReport {
    /// Records (MARC), data rows (CSV) or barcodes read, skipped ones included.
    pub records: u64,
    /// Items sent to the node.
    pub rows: u64,
    /// Records skipped here, because they could not be read.
    pub skipped: u64,
    /// The first [`MAX_LISTED`] of them.
    pub skips: Vec<Issue>,
    /// The error that stopped reading, if one did.
    pub fatal: Option<RecordError>,
}

impl ReadReport {
    fn skip(&mut self, e: &RecordError) {
        self.skipped += 1;
        if self.skips.len() < MAX_LISTED {
            self.skips.push(Issue::from_error(e));
        }
    }
}

/// An exported item as the node's import takes it.
pub fn import_row(row: HoldingRow) -> ImportRow {
    let HoldingRow {
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
        source,
    } = row;
    let mut isbns = isbns.into_iter();
    let isbn = isbns.next().unwrap_or_default();
    let label = match source.line {
        Some(line) => format!("line {line}"),
        None => format!("record {}", source.record),
    };
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
    ImportRow {
        source: label,
        item: Some(item),
        record: source.record,
        offset: source.offset,
        more_isbns: isbns.collect(),
    }
}

/// Without `--items`: every record is one item, its barcode the record's 001.
fn whole_records(
    reader: impl BufRead + 'static,
    format: Format,
) -> impl Iterator<Item = Result<HoldingRow, RecordError>> {
    let records: Box<dyn Iterator<Item = Result<Record, RecordError>>> = match format {
        Format::MarcXml => Box::new(MarcXmlReader::new(reader)),
        // CSV never comes here: its rows are read by `CsvReader`.
        Format::Marc21 | Format::Csv => Box::new(MarcReader::new(reader)),
    };
    records.map(|record| {
        let record = record?;
        let barcode = record.control("001").map(str::trim).unwrap_or_default();
        if barcode.is_empty() {
            return Err(RecordError::new(
                record.number,
                record.offset,
                "the record has no 001 control number to use as the barcode (if its items are in item \
                 fields, such as Koha's 952, choose them with --items)",
            ));
        }
        Ok(HoldingRow { barcode: barcode.to_owned(), ..rota_holdings::mapping::bibliographic(&record) })
    })
}

/// A row withdrawing one barcode.
fn barcode_row(barcode: String, number: u64, line: u64, offset: u64) -> ImportRow {
    ImportRow {
        source: format!("line {line}"),
        item: Some(Item { barcode, ..Default::default() }),
        record: number,
        offset,
        more_isbns: Vec::new(),
    }
}

/// Barcodes one per line; blank lines and lines starting with `#` are left out.
struct LineBarcodes<R> {
    reader: R,
    buf: Vec<u8>,
    line: u64,
    offset: u64,
    number: u64,
    done: bool,
}

impl<R: BufRead> Iterator for LineBarcodes<R> {
    type Item = Result<ImportRow, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.buf.clear();
            let start = self.offset;
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    let e = RecordError::new(0, start, format!("cannot read the file: {e}"));
                    return Some(Err(e.at_line(self.line + 1).into_fatal()));
                }
            };
            self.offset += n as u64;
            self.line += 1;
            let bytes =
                if self.line == 1 { self.buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&self.buf) } else { &self.buf };
            let text = std::str::from_utf8(bytes).map(str::trim);
            if matches!(text, Ok(t) if t.is_empty() || t.starts_with('#')) {
                continue;
            }
            self.number += 1;
            return Some(match text {
                Ok(barcode) => Ok(barcode_row(barcode.to_owned(), self.number, self.line, start)),
                Err(_) => Err(RecordError::new(self.number, start, "not valid UTF-8 (save the list as UTF-8 text)")
                    .at_line(self.line)),
            });
        }
        None
    }
}

/// Barcodes in the `barcode` column of a CSV file.
struct CsvBarcodes<R> {
    csv: csv::Reader<R>,
    column: Option<usize>,
    record: csv::ByteRecord,
    number: u64,
    done: bool,
}

impl<R: Read> CsvBarcodes<R> {
    fn new(reader: R, delimiter: u8) -> Self {
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .delimiter(delimiter)
            .from_reader(reader);
        CsvBarcodes { csv, column: None, record: csv::ByteRecord::new(), number: 0, done: false }
    }

    /// The next raw record, or the error that stops reading.
    fn read(&mut self) -> Result<Option<(u64, u64)>, RecordError> {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(true) => {
                let pos = self.record.position().cloned().unwrap_or_else(csv::Position::new);
                Ok(Some((pos.line(), pos.byte())))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                let (line, offset) = e.position().map_or((0, 0), |p| (p.line(), p.byte()));
                Err(RecordError::new(0, offset, format!("cannot read the file: {e}")).at_line(line).into_fatal())
            }
        }
    }
}

impl<R: Read> Iterator for CsvBarcodes<R> {
    type Item = Result<ImportRow, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.read_row();
        if matches!(&result, Some(Err(e)) if e.fatal) || result.is_none() {
            self.done = true;
        }
        result
    }
}

impl<R: Read> CsvBarcodes<R> {
    fn read_row(&mut self) -> Option<Result<ImportRow, RecordError>> {
        let column = match self.column {
            Some(c) => c,
            None => {
                let line = match self.read() {
                    Err(e) => return Some(Err(e)),
                    Ok(None) => return None,
                    Ok(Some((line, _))) => line,
                };
                let found = self.record.iter().enumerate().position(|(n, cell)| {
                    let cell = if n == 0 { cell.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(cell) } else { cell };
                    cell.trim_ascii().eq_ignore_ascii_case(b"barcode")
                });
                let Some(c) = found else {
                    let e = RecordError::new(0, 0, "the header names no barcode column");
                    return Some(Err(e.at_line(line).into_fatal()));
                };
                self.column = Some(c);
                c
            }
        };
        let (line, offset) = match self.read() {
            Err(e) => return Some(Err(e)),
            Ok(None) => return None,
            Ok(Some(at)) => at,
        };
        self.number += 1;
        let skip = |reason: &str| Some(Err(RecordError::new(self.number, offset, reason).at_line(line)));
        match self.record.get(column).map(std::str::from_utf8) {
            None | Some(Ok("")) => skip("the barcode is empty"),
            Some(Err(_)) => skip("the barcode is not valid UTF-8 (save the file as UTF-8 CSV)"),
            Some(Ok(barcode)) => Some(Ok(barcode_row(barcode.to_owned(), self.number, line, offset))),
        }
    }
}

/// The reader thread's ends of the pipe.
struct Link {
    tx: mpsc::Sender<ImportMessage>,
    /// Told `true` once an item has been read, `false` if reading ended before any.
    ready: oneshot::Sender<bool>,
    /// Gets the [`ReadReport`] when reading ends.
    done: oneshot::Sender<ReadReport>,
    progress: Option<ProgressBar>,
    /// A full sync: any record that could not be read cancels the import, because the node
    /// would otherwise withdraw that record's items as missing from the file.
    replace: bool,
}

fn batch(rows: Vec<ImportRow>) -> ImportMessage {
    ImportMessage { body: Some(import_message::Body::Batch(ImportBatch { rows })) }
}

/// The message that cancels an import: the node accepts only batches after the start, so
/// it refuses this one and applies nothing.
fn cancel_message() -> ImportMessage {
    ImportMessage { body: None }
}

/// Read every row, batch them into the channel, and report. On an error that stops reading,
/// the report goes first and then the message that cancels the import, so that whoever sees
/// the import refused also finds why.
fn pump(rows: impl Iterator<Item = Result<ImportRow, RecordError>>, link: Link) {
    let Link { tx, ready, done, progress, replace } = link;
    let _guard = CancelOnPanic(tx.clone());
    let mut ready = Some(ready);
    let mut read = ReadReport::default();
    let mut rows_batch = Vec::with_capacity(BATCH);
    let started = Instant::now();
    let mut cut_off = false;
    for item in rows {
        match item {
            Ok(row) => {
                read.records = read.records.max(row.record);
                read.rows += 1;
                rows_batch.push(row);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(true);
                }
            }
            Err(e) if e.fatal => {
                read.fatal = Some(e);
                break;
            }
            Err(e) => {
                read.records = read.records.max(e.number);
                read.skip(&e);
            }
        }
        if rows_batch.len() >= BATCH {
            if let Some(bar) = &progress {
                let per_second = read.records as f64 / started.elapsed().as_secs_f64().max(0.001);
                bar.set_message(format!("{} records, {per_second:.0}/s", read.records));
            }
            let full = std::mem::replace(&mut rows_batch, Vec::with_capacity(BATCH));
            if tx.blocking_send(batch(full)).is_err() {
                // The import ended on the other side (refused, or the command gave up).
                cut_off = true;
                break;
            }
        }
    }
    let sending = match ready.take() {
        Some(ready) => {
            let _ = ready.send(false);
            false
        }
        None => true,
    };
    if replace && read.fatal.is_none() && read.skipped > 0 {
        read.fatal = Some(RecordError::new(
            0,
            0,
            format!(
                "{} record(s) could not be read, and a --replace would withdraw their items as missing from the file; \
                 fix them (see the list above), or import without --replace",
                read.skipped
            ),
        ));
    }
    let fatal = read.fatal.is_some();
    if sending && !fatal && !cut_off && !rows_batch.is_empty() {
        let _ = tx.blocking_send(batch(rows_batch));
    }
    let _ = done.send(read);
    if sending && fatal {
        let _ = tx.blocking_send(cancel_message());
    }
    // Dropping the sender ends the stream.
    drop(tx);
}

/// Cancels the import if reading panics, so that the stream does not end as if the file
/// had been read to its end.
struct CancelOnPanic(mpsc::Sender<ImportMessage>);

impl Drop for CancelOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.blocking_send(cancel_message());
        }
    }
}

/// A progress bar over the file's bytes, on a terminal.
fn progress_bar(len: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes}  {msg}  ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message("reading");
    Some(bar)
}

/// `rota holdings import`.
pub async fn run(ctx: &Ctx, args: ImportArgs) -> anyhow::Result<()> {
    let (mode, input) = match (&args.delete, &args.file) {
        (Some(list), _) => (Mode::Delete, Input::barcodes(list)?),
        (None, Some(file)) => {
            let mode = if args.replace { Mode::Replace } else { Mode::Upsert };
            (mode, Input::holdings(file, args.format.map(Into::into))?)
        }
        (None, None) => usage_error("give the FILE to import, or --delete BARCODES_FILE"),
    };
    if input.kind == Kind::Holdings(Format::Csv) && args.items.is_some() {
        usage_error(format!(
            "--items applies to MARC21 and MARCXML files; {} is CSV, whose columns hold the items",
            input.name()
        ));
    }
    let name = input.name();
    let kind = input.kind;

    let progress = progress_bar(input.len);
    let (tx, rx) = mpsc::channel(CHANNEL);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (done_tx, mut done_rx) = oneshot::channel();
    let link = Link { tx, ready: ready_tx, done: done_tx, progress: progress.clone(), replace: mode == Mode::Replace };
    let mapping = args.items;
    let Input { mut reader, .. } = input;
    reader.get_mut().bar = progress.clone();
    std::thread::Builder::new()
        .name("import-reader".into())
        .spawn(move || match kind {
            Kind::Holdings(Format::Csv) => pump(CsvReader::new(reader).map(|r| r.map(import_row)), link),
            Kind::Holdings(format) => match &mapping {
                Some(m) => pump(rota_holdings::read_rows(reader, format, m).map(|r| r.map(import_row)), link),
                None => pump(whole_records(reader, format).map(|r| r.map(import_row)), link),
            },
            Kind::BarcodeLines => {
                let lines = LineBarcodes { reader, buf: Vec::new(), line: 0, offset: 0, number: 0, done: false };
                pump(lines, link);
            }
            Kind::BarcodeCsv(delimiter) => pump(CsvBarcodes::new(reader, delimiter), link),
        })
        .context("cannot start reading")?;

    // The first item, or why there is none, before anything is sent.
    let clear = || {
        if let Some(bar) = &progress {
            bar.finish_and_clear();
        }
    };
    if !ready_rx.await.unwrap_or(false) {
        clear();
        let read = done_rx.await.map_err(|_| anyhow!("reading {name} stopped unexpectedly"))?;
        if let Some(e) = read.fatal {
            bail!("{name}: {}{}; nothing was imported", position(&e), e.reason);
        }
        let why = match (read.skips.first(), read.records) {
            (Some(first), 1) => format!("its one record could not be read: {}", first.text()),
            (Some(first), n) => format!("none of its {n} records could be read (the first: {})", first.text()),
            (None, _) => "it has no records".to_owned(),
        };
        bail!("{name}: nothing to import: {why}; nothing was imported");
    }

    let mut node = match ctx.connect().await {
        Ok(node) => node,
        Err(e) => {
            clear();
            return Err(e);
        }
    };
    let start = ImportMessage {
        body: Some(import_message::Body::Start(ImportStart { mode: mode.name().to_owned(), dry_run: args.dry_run })),
    };
    let stream = futures::StreamExt::chain(futures::stream::iter([start]), ReceiverStream::new(rx));
    // Ctrl-C (or SIGINT) cancels the call: the node applies nothing and drops what it had
    // staged, so running the same command again starts cleanly.
    let reply = tokio::select! {
        reply = node.client.import(stream) => reply,
        _ = tokio::signal::ctrl_c() => {
            clear();
            eprintln!(
                "interrupted: {name} was not imported and nothing was written; run the same command again to import it"
            );
            std::process::exit(130);
        }
    };
    clear();
    let report = match reply {
        Ok(reply) => reply.into_inner(),
        Err(status) => {
            if let Ok(read) = done_rx.try_recv()
                && let Some(e) = read.fatal
            {
                bail!(
                    "{name}: {}{}; reading stopped there, so the import was cancelled and nothing was written",
                    position(&e),
                    e.reason
                );
            }
            let e = status_error(&node.url, &status);
            bail!("import of {name} failed, nothing was written: {e}");
        }
    };
    let read = done_rx.await.map_err(|_| anyhow!("reading {name} stopped unexpectedly"))?;
    if let Some(e) = &read.fatal {
        bail!(
            "{name}: {}{}; reading stopped there and the import was cancelled, but the node did not refuse \
             it: check your holdings with `rota holdings stats`",
            position(e),
            e.reason
        );
    }
    let summary = Summary { file: name, format: kind.name(), mode, dry_run: args.dry_run, read, report };
    if ctx.json {
        return print_json(&summary.json());
    }
    summary.print();
    Ok(())
}

/// What an import did, from both sides.
pub struct Summary {
    pub file: String,
    pub format: &'static str,
    pub mode: Mode,
    pub dry_run: bool,
    pub read: ReadReport,
    pub report: ImportReport,
}

impl Summary {
    /// Every listed skip, this side's and the node's, in file order.
    pub fn skips(&self) -> Vec<Issue> {
        let mut all: Vec<Issue> =
            self.read.skips.iter().cloned().chain(self.report.skips.iter().map(Issue::from_proto)).collect();
        all.sort_by_key(|i| (i.record, i.offset));
        all
    }

    pub fn skipped(&self) -> u64 {
        self.read.skipped + self.report.skipped
    }

    fn mode_text(&self) -> String {
        if self.dry_run {
            format!("{} (dry run: nothing was written)", self.mode.name())
        } else {
            self.mode.name().to_owned()
        }
    }

    pub fn json(&self) -> Value {
        let r = &self.report;
        json!({
            "file": self.file,
            "format": self.format,
            "mode": self.mode.name(),
            "dry_run": self.dry_run,
            "records": self.read.records,
            "items": r.rows,
            "created": r.created,
            "updated": r.updated,
            "unchanged": r.unchanged,
            "withdrawn": r.withdrawn,
            "skipped": self.skipped(),
            "skips": self.skips().iter().map(Issue::json).collect::<Vec<_>>(),
            "kept": r.kept.iter().map(|k| json!({ "barcode": k.barcode, "status": k.status })).collect::<Vec<_>>(),
            "warnings": r.warnings,
            "warning_samples": r.warning_samples.iter().map(|w| Issue::from_proto(w).json()).collect::<Vec<_>>(),
        })
    }

    pub fn text(&self) -> String {
        let r = &self.report;
        let mut out = fields_text(&[
            ("file", self.file.clone()),
            ("format", self.format.to_owned()),
            ("mode", self.mode_text()),
            ("records read", self.read.records.to_string()),
            ("items", r.rows.to_string()),
            ("created", r.created.to_string()),
            ("updated", r.updated.to_string()),
            ("unchanged", r.unchanged.to_string()),
            ("withdrawn", r.withdrawn.to_string()),
            ("skipped", self.skipped().to_string()),
            ("warnings", r.warnings.to_string()),
        ]);
        let skips = self.skips();
        if !skips.is_empty() {
            out.push_str(&format!("\nSkipped{}:\n", first_of(SHOWN_SKIPS, skips.len(), self.skipped())));
            for s in skips.iter().take(SHOWN_SKIPS) {
                out.push_str(&format!("  {}\n", s.text()));
            }
        }
        if !r.kept.is_empty() {
            out.push_str("\nKept, not withdrawn (on loan or reserved):\n");
            let mut t = table(["barcode", "status"]);
            for k in &r.kept {
                t.add_row([k.barcode.clone(), k.status.clone()]);
            }
            out.push_str(&format!("{t}\n"));
        }
        if !r.warning_samples.is_empty() {
            out.push_str(&format!("\nWarnings{}:\n", first_of(SHOWN_WARNINGS, r.warning_samples.len(), r.warnings)));
            for w in r.warning_samples.iter().take(SHOWN_WARNINGS) {
                out.push_str(&format!("  {}\n", Issue::from_proto(w).text()));
            }
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.text());
    }
}

/// ` (the first 20 of 31)` when not all are shown, else empty.
fn first_of(shown: usize, listed: usize, total: u64) -> String {
    let shown = shown.min(listed) as u64;
    if shown < total { format!(" (the first {shown} of {total})") } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(record: u64, barcode: &str) -> Result<ImportRow, RecordError> {
        Ok(barcode_row(barcode.to_owned(), record, record + 1, record * 10))
    }

    /// Run `pump` over `rows`; what it sent, whether it said it was ready, and its report.
    fn run_pump(rows: Vec<Result<ImportRow, RecordError>>) -> (Vec<ImportMessage>, bool, ReadReport) {
        let (tx, mut rx) = mpsc::channel(1000);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        pump(rows.into_iter(), Link { tx, ready: ready_tx, done: done_tx, progress: None, replace: false });
        let mut sent = Vec::new();
        while let Ok(m) = rx.try_recv() {
            sent.push(m);
        }
        (sent, ready_rx.blocking_recv().unwrap(), done_rx.blocking_recv().unwrap())
    }

    fn batch_sizes(sent: &[ImportMessage]) -> Vec<Option<usize>> {
        sent.iter()
            .map(|m| match &m.body {
                Some(import_message::Body::Batch(b)) => Some(b.rows.len()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn rows_go_in_batches_and_skips_are_counted() {
        let mut rows: Vec<_> = (1..=1200).map(|n| row(n, &format!("B{n}"))).collect();
        rows.insert(3, Err(RecordError::new(4, 40, "bad leader")));
        let (sent, ready, read) = run_pump(rows);
        assert!(ready);
        assert_eq!(batch_sizes(&sent), [Some(500), Some(500), Some(200)]);
        assert_eq!((read.records, read.rows, read.skipped), (1200, 1200, 1));
        assert_eq!(read.skips[0].text(), "record 4 (byte 40): bad leader");
        assert!(read.fatal.is_none());
    }

    #[test]
    fn an_error_that_stops_reading_sends_the_cancel_message() {
        let mut rows: Vec<_> = (1..=600).map(|n| row(n, "B")).collect();
        rows.push(Err(RecordError::new(601, 6000, "cannot read the file: I/O error").into_fatal()));
        rows.push(row(602, "never read"));
        let (sent, ready, read) = run_pump(rows);
        assert!(ready);
        // The first whole batch went; the rest is held back and the import cancelled.
        assert_eq!(batch_sizes(&sent), [Some(500), None]);
        assert_eq!(read.fatal.unwrap().number, 601);
        assert_eq!(read.rows, 600);
    }

    #[test]
    fn nothing_is_sent_when_no_row_can_be_read() {
        let (sent, ready, read) = run_pump(vec![Err(RecordError::new(0, 0, "not XML").into_fatal())]);
        assert!(!ready && sent.is_empty());
        assert_eq!(read.fatal.unwrap().reason, "not XML");
        let (sent, ready, read) =
            run_pump(vec![Err(RecordError::new(1, 0, "bad")), Err(RecordError::new(2, 9, "bad"))]);
        assert!(!ready && sent.is_empty());
        assert_eq!((read.records, read.skipped, read.rows), (2, 2, 0));
    }

    #[test]
    fn a_panic_while_reading_cancels_the_import() {
        let (tx, mut rx) = mpsc::channel(10);
        let (ready_tx, _ready_rx) = oneshot::channel();
        let (done_tx, _done_rx) = oneshot::channel();
        let rows = (1..=3).map(|n| if n < 3 { row(n, "B") } else { panic!("reader bug") });
        let link = Link { tx, ready: ready_tx, done: done_tx, progress: None, replace: false };
        let result = std::thread::spawn(move || pump(rows, link)).join();
        assert!(result.is_err());
        let last = std::iter::from_fn(|| rx.try_recv().ok()).last().unwrap();
        assert_eq!(last, cancel_message());
    }

    #[test]
    fn holding_rows_become_import_rows() {
        let row = HoldingRow {
            barcode: "B1".into(),
            title: "Moby Dick".into(),
            isbns: vec!["9780142437247".into(), "0-19-852663-6".into(), "0914520407".into()],
            source: rota_holdings::Source { record: 7, offset: 1234, line: None },
            ..Default::default()
        };
        let r = import_row(row.clone());
        assert_eq!((r.source.as_str(), r.record, r.offset), ("record 7", 7, 1234));
        let item = r.item.unwrap();
        assert_eq!((item.barcode.as_str(), item.isbn.as_str()), ("B1", "9780142437247"));
        assert_eq!(r.more_isbns, ["0-19-852663-6", "0914520407"]);
        let csv =
            HoldingRow { isbns: vec![], source: rota_holdings::Source { record: 2, offset: 20, line: Some(3) }, ..row };
        let r = import_row(csv);
        assert_eq!((r.source.as_str(), r.record, r.item.unwrap().isbn.as_str()), ("line 3", 2, ""));
        assert!(r.more_isbns.is_empty());
    }

    #[test]
    fn barcode_lists() {
        assert_eq!(barcode_list_kind(b"# gone\n\nB1\nB2\n"), Ok(Kind::BarcodeLines));
        assert_eq!(barcode_list_kind(b""), Ok(Kind::BarcodeLines));
        assert_eq!(barcode_list_kind(b"\xEF\xBB\xBFBarcode\nB1\n"), Ok(Kind::BarcodeCsv(b',')));
        assert_eq!(barcode_list_kind(b"# list\ntitle;\"barcode\"\nT;B1\n"), Ok(Kind::BarcodeCsv(b';')));
        let e = barcode_list_kind(b"title,author\nT,A\n").unwrap_err();
        assert!(e.contains("none is named barcode"), "{e}");
        let e = barcode_list_kind(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n").unwrap_err();
        assert!(e.contains("not a list of barcodes") && e.contains("PDF"), "{e}");
        let e = barcode_list_kind(b"00041nam a2200037   4500001000300000\x1eB1\x1e\x1d").unwrap_err();
        assert!(e.contains("MARC21 holdings file"), "{e}");

        let text = "\u{feff}B1\r\n# note\n\n  B 2 \nB3";
        let lines =
            LineBarcodes { reader: text.as_bytes(), buf: Vec::new(), line: 0, offset: 0, number: 0, done: false };
        let rows: Vec<ImportRow> = lines.map(Result::unwrap).collect();
        let got: Vec<(String, String, u64, u64)> =
            rows.into_iter().map(|r| (r.item.unwrap().barcode, r.source, r.record, r.offset)).collect();
        assert_eq!(
            got,
            [
                ("B1".into(), "line 1".into(), 1, 0),
                ("B 2".into(), "line 4".into(), 2, 15),
                ("B3".into(), "line 5".into(), 3, 22)
            ]
        );

        let csv = "title,barcode\nOne,B1\nTwo,\n\"Three, a novel\",B3\n";
        let rows: Vec<_> = CsvBarcodes::new(csv.as_bytes(), b',').collect();
        assert_eq!(rows.len(), 3);
        let first = rows[0].clone().unwrap();
        assert_eq!((first.item.unwrap().barcode.as_str(), first.source.as_str(), first.offset), ("B1", "line 2", 14));
        let skip = rows[1].clone().unwrap_err();
        assert_eq!((skip.number, skip.line, skip.fatal), (2, Some(3), false));
        assert_eq!(rows[2].clone().unwrap().item.unwrap().barcode, "B3");
        let e = CsvBarcodes::new("title\nOne\n".as_bytes(), b',').next().unwrap().unwrap_err();
        assert!(e.fatal && e.reason.contains("no barcode column"), "{e}");
    }

    fn issue(source: &str, record: u64, offset: u64, reason: &str) -> ImportIssue {
        ImportIssue { source: source.into(), record, offset, reason: reason.into() }
    }

    #[test]
    fn the_summary_merges_skips_in_file_order() {
        let mut read = ReadReport { records: 40, rows: 38, ..Default::default() };
        read.skip(&RecordError::new(17, 12345, "bad leader"));
        read.skip(&RecordError::new(0, 999, "malformed XML"));
        let report = ImportReport {
            mode: "replace".into(),
            dry_run: true,
            rows: 38,
            created: 30,
            updated: 5,
            unchanged: 2,
            withdrawn: 4,
            skipped: 1,
            skips: vec![issue("record 3", 3, 300, "no title")],
            kept: vec![rota_proto::staff::KeptItem { barcode: "K1".into(), status: "on_loan".into() }],
            warnings: 12,
            warning_samples: (1..=12).map(|n| issue(&format!("record {n}"), n, n * 100, "ISBN dropped")).collect(),
        };
        let summary =
            Summary { file: "x.mrc".into(), format: "MARC21", mode: Mode::Replace, dry_run: true, read, report };
        let text = summary.text();
        assert!(text.contains("mode:         replace (dry run: nothing was written)\n"), "{text}");
        assert!(text.contains("skipped:      3\n") && text.contains("records read: 40\n"), "{text}");
        let skips: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("Skipped")).skip(1).take(3).collect();
        assert_eq!(
            skips,
            ["  byte 999: malformed XML", "  record 3 (byte 300): no title", "  record 17 (byte 12345): bad leader"]
        );
        assert!(text.contains("K1") && text.contains("on_loan"), "{text}");
        assert!(text.contains("Warnings (the first 10 of 12):"), "{text}");
        assert!(text.contains("record 10 (byte 1000)") && !text.contains("record 11 (byte"), "{text}");

        let v = summary.json();
        assert_eq!((v["skipped"].as_u64(), v["warnings"].as_u64()), (Some(3), Some(12)));
        assert_eq!(
            v["skips"][2],
            json!({"source": "record 17", "record": 17, "offset": 12345, "reason": "bad leader"})
        );
        assert_eq!(v["warning_samples"].as_array().unwrap().len(), 12);
        assert_eq!(v["kept"], json!([{"barcode": "K1", "status": "on_loan"}]));
        assert_eq!((v["mode"].as_str(), v["dry_run"].as_bool()), (Some("replace"), Some(true)));
    }

    #[test]
    fn positions_in_messages() {
        assert_eq!(position(&RecordError::new(3, 120, "x")), "record 3 (byte 120): ");
        assert_eq!(position(&RecordError::new(0, 0, "x").at_line(4)), "line 4: ");
        assert_eq!(position(&RecordError::new(0, 77, "x")), "byte 77: ");
        assert_eq!(position(&RecordError::new(0, 0, "x")), "");
    }
}
