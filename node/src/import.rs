//! Holdings imports at library scale.
//!
//! Rows arrive in batches (from the CLI, which parses MARC21, MARCXML or CSV). Each row is
//! validated here; a bad row is skipped and reported with its record number and byte offset,
//! and a malformed identifier is dropped with a warning. Good rows go into a staging table in
//! short transactions, so partners' messages keep flowing during a long import. When the
//! stream ends, one transaction applies the whole import with set-based SQL:
//!
//! - **upsert** (the default): new items are created, changed ones updated, the rest left;
//! - **replace**: a full sync; items missing from the file are withdrawn, except items on
//!   loan or reserved, which are reported instead. A row the node skips still names its
//!   item: the barcode is staged apart, and the item is kept as it is (its skip says so);
//! - **delete**: the listed barcodes are withdrawn (same exception).
//!
//! A dry run computes the same report and rolls back. An import that fails or is cut off
//! applies nothing: its staging rows are removed (and any left by a crash are removed at the
//! next start). An item lent or reserved through Rota keeps its circulation status whatever
//! the file says, so a catalogue export never un-reserves a copy promised to a partner.

use std::collections::HashMap;

use crate::domain::{FieldError, Item, ItemStatus, RawCitation, RawItem, check_text};
use crate::error::Result;
use crate::node::Node;
use crate::store::Store;

/// Rows staged per transaction.
pub const STAGE_BATCH: usize = 1500;
/// Skips and warnings listed one by one in a report (all are counted). The README quotes
/// this figure. Keep it modest: the report is one message (the CLI's client accepts 4 MB, the
/// tonic default), and a skip's reason can quote the value it refused.
pub const MAX_LISTED: usize = 200;

crate::domain::named_enum!(
    /// What an import does with the file.
    ImportMode { Upsert = "upsert", Replace = "replace", Delete = "delete" }
);

/// One row as it arrives: raw strings, plus where it came from.
#[derive(Clone, Debug, Default)]
pub struct IncomingRow {
    /// For messages: "record 17", "line 17".
    pub source: String,
    pub record: u64,
    pub offset: u64,
    pub barcode: String,
    pub title: String,
    pub author: String,
    pub publisher: String,
    pub year: String,
    pub isbns: Vec<String>,
    pub issn: String,
    pub oclc: String,
    pub lccn: String,
    pub format: String,
    pub location: String,
    pub call_number: String,
    pub policy: String,
    pub status: String,
}

/// A row that was not imported, or an identifier that was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportIssue {
    pub source: String,
    pub record: u64,
    pub offset: u64,
    pub reason: String,
}

/// What an import did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub mode: Option<ImportMode>,
    pub dry_run: bool,
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub withdrawn: u64,
    pub skipped: u64,
    pub skips: Vec<ImportIssue>,
    /// Items not withdrawn because they are on loan or reserved.
    pub kept: Vec<(String, ItemStatus)>,
    pub warnings: u64,
    pub warning_samples: Vec<ImportIssue>,
    /// Items a replace did not withdraw because their row was skipped (the listed skips
    /// of their rows say so).
    pub kept_skipped: u64,
}

/// An import in progress.
#[derive(Debug)]
pub struct ImportSession {
    pub id: String,
    pub mode: ImportMode,
    pub dry_run: bool,
    /// Barcodes seen so far, with where each was first seen: (source, record, offset).
    seen: HashMap<String, (String, u64, u64)>,
    batch: Vec<Item>,
    /// Replace only: barcodes of skipped rows, staged with the next batch.
    skipped_barcodes: Vec<String>,
    /// Replace only: the barcode of each listed skip that has one (index into the skips).
    listed_barcodes: Vec<(usize, String)>,
    report: ImportReport,
}

impl ImportSession {
    /// Skip a row. In a replace, its barcode (when usable) is remembered so that the item
    /// it names is not withdrawn as missing from the file.
    fn skip(&mut self, row: &IncomingRow, barcode: Option<String>, reason: String) {
        if let (ImportMode::Replace, Some(b)) = (self.mode, barcode) {
            if self.report.skips.len() < MAX_LISTED {
                self.listed_barcodes.push((self.report.skips.len(), b.clone()));
            }
            self.skipped_barcodes.push(b);
        }
        self.report.skipped += 1;
        if self.report.skips.len() < MAX_LISTED {
            self.report.skips.push(ImportIssue {
                source: row.source.clone(),
                record: row.record,
                offset: row.offset,
                reason,
            });
        }
    }

    fn warn(&mut self, row: &IncomingRow, reason: String) {
        self.report.warnings += 1;
        if self.report.warning_samples.len() < MAX_LISTED {
            self.report.warning_samples.push(ImportIssue {
                source: row.source.clone(),
                record: row.record,
                offset: row.offset,
                reason,
            });
        }
    }
}

impl Node {
    /// Start an import.
    pub async fn import_begin(&self, mode: ImportMode, dry_run: bool) -> Result<ImportSession> {
        Ok(ImportSession {
            id: uuid::Uuid::new_v4().to_string(),
            mode,
            dry_run,
            seen: HashMap::new(),
            batch: Vec::with_capacity(STAGE_BATCH),
            skipped_barcodes: vec![],
            listed_barcodes: vec![],
            report: ImportReport { mode: Some(mode), dry_run, ..Default::default() },
        })
    }

    /// Validate and stage a batch of rows.
    pub async fn import_rows(&self, s: &mut ImportSession, rows: Vec<IncomingRow>) -> Result<()> {
        for row in rows {
            s.report.rows += 1;
            let parsed = if s.mode == ImportMode::Delete {
                check_text("barcode", &row.barcode, 64, true).map(|barcode| {
                    let mut item = placeholder();
                    item.barcode = barcode;
                    (item, vec![])
                })
            } else {
                parse_row(&row)
            };
            let (item, warnings) = match parsed {
                Ok(v) => v,
                Err(e) => {
                    // Stored barcodes passed the same check, so one that fails it names no item.
                    let barcode = check_text("barcode", &row.barcode, 64, true).ok();
                    s.skip(&row, barcode, e.to_string());
                    if s.batch.len() + s.skipped_barcodes.len() >= STAGE_BATCH {
                        self.flush(s).await?;
                    }
                    continue;
                }
            };
            for w in warnings {
                s.warn(&row, w);
            }
            if let Some((first, _, _)) = s.seen.get(&item.barcode) {
                let reason = format!("barcode {} already appears at {first}", item.barcode);
                // The first row with this barcode is staged: nothing more to remember.
                s.skip(&row, None, reason);
                continue;
            }
            s.seen.insert(item.barcode.clone(), (row.source.clone(), row.record, row.offset));
            s.batch.push(item);
            if s.batch.len() + s.skipped_barcodes.len() >= STAGE_BATCH {
                self.flush(s).await?;
            }
        }
        Ok(())
    }

    async fn flush(&self, s: &mut ImportSession) -> Result<()> {
        if s.batch.is_empty() && s.skipped_barcodes.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        Store::stage_items(&mut tx, &s.id, &s.batch).await?;
        Store::stage_skipped(&mut tx, &s.id, &s.skipped_barcodes).await?;
        tx.commit().await?;
        s.batch.clear();
        s.skipped_barcodes.clear();
        Ok(())
    }

    /// Apply the import in one transaction (or, for a dry run, compute it and roll back).
    pub async fn import_finish(&self, mut s: ImportSession) -> Result<ImportReport> {
        let result = self.apply(&mut s).await;
        if result.is_err() || s.dry_run {
            self.import_abort(&s.id).await;
        }
        result?;
        tracing::info!(
            import = %s.id,
            mode = %s.mode,
            dry_run = s.dry_run,
            rows = s.report.rows,
            created = s.report.created,
            updated = s.report.updated,
            withdrawn = s.report.withdrawn,
            skipped = s.report.skipped,
            kept_skipped = s.report.kept_skipped,
            "holdings import finished"
        );
        Ok(s.report)
    }

    async fn apply(&self, s: &mut ImportSession) -> Result<()> {
        self.flush(s).await?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let r = &mut s.report;
        if s.mode != ImportMode::Delete {
            let (created, updated, unchanged) = Store::apply_staged_upsert(&mut tx, &s.id, now).await?;
            (r.created, r.updated, r.unchanged) = (created, updated, unchanged);
        }
        match s.mode {
            ImportMode::Upsert => {}
            ImportMode::Replace => {
                let (withdrawn, kept) = Store::withdraw_missing(&mut tx, &s.id, now).await?;
                r.withdrawn = withdrawn;
                r.kept = kept;
                let listed: Vec<&str> = s.listed_barcodes.iter().map(|(_, b)| b.as_str()).collect();
                let (count, found) = Store::kept_as_skipped(&mut tx, &s.id, &listed).await?;
                r.kept_skipped = count;
                for (i, barcode) in &s.listed_barcodes {
                    if found.contains(barcode) {
                        let skip = &mut r.skips[*i];
                        skip.reason = format!("{} (item {barcode} kept as it is, not withdrawn)", skip.reason);
                    }
                }
            }
            ImportMode::Delete => {
                let (withdrawn, kept, missing) = Store::withdraw_listed(&mut tx, &s.id, now).await?;
                r.withdrawn = withdrawn;
                r.kept = kept;
                for barcode in missing {
                    let (source, record, offset) = s.seen.get(&barcode).cloned().unwrap_or_default();
                    r.skipped += 1;
                    if r.skips.len() < MAX_LISTED {
                        r.skips.push(ImportIssue {
                            source,
                            record,
                            offset,
                            reason: format!("no item with barcode {barcode}"),
                        });
                    }
                }
            }
        }
        if s.dry_run {
            tx.rollback().await?;
            return Ok(());
        }
        Store::clear_staging(&mut tx, &s.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drop an import's staging rows.
    pub async fn import_abort(&self, id: &str) {
        let cleared: Result<()> = async {
            let mut tx = self.store.begin().await?;
            Store::clear_staging(&mut tx, id).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = cleared {
            tracing::warn!(import = %id, error = %e, "could not clear import staging rows");
        }
    }
}

fn placeholder() -> Item {
    Item {
        barcode: String::new(),
        title: String::new(),
        author: String::new(),
        publisher: String::new(),
        year: String::new(),
        isbn: None,
        isbns: vec![],
        issn: None,
        oclc: None,
        lccn: None,
        format: "book".into(),
        location: String::new(),
        call_number: String::new(),
        policy: crate::domain::Policy::Lendable,
        status: ItemStatus::Available,
    }
}

fn parse_row(row: &IncomingRow) -> Result<(Item, Vec<String>), FieldError> {
    let first = row.isbns.first().map(String::as_str).unwrap_or("");
    let rest: Vec<String> = row.isbns.iter().skip(1).cloned().collect();
    Item::parse_import(
        RawItem {
            barcode: &row.barcode,
            citation: RawCitation {
                title: &row.title,
                author: &row.author,
                isbn: first,
                issn: &row.issn,
                oclc: &row.oclc,
                lccn: &row.lccn,
                format: &row.format,
                publisher: &row.publisher,
                year: &row.year,
            },
            location: &row.location,
            call_number: &row.call_number,
            policy: &row.policy,
            status: &row.status,
        },
        &rest,
    )
}
