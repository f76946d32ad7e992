//! [`HoldingRow`]: one item as found in a holdings export, before the node validates it.

use serde::{Deserialize, Serialize};

/// Where a row came from in the export, for error messages and import reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The record (MARC) or data row (CSV) it came from, counting from 1.
    pub record: u64,
    /// The byte offset of that record or row in the file.
    pub offset: u64,
    /// The line the row starts on (CSV only).
    pub line: Option<u64>,
}

/// One item (a physical copy with a barcode) as found in a holdings export.
///
/// Every value is the raw text of the export, trimmed of surrounding ISBD punctuation where
/// noted in [`crate::mapping`] but otherwise unchecked: the node validates and normalises it
/// (identifiers with [`crate::ids`]). An empty string means the export did not say; for
/// `policy` and `status` the node then applies its defaults (`lendable`, `available`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldingRow {
    pub barcode: String,
    pub title: String,
    pub author: String,
    pub publisher: String,
    pub year: String,
    /// Every ISBN of the record, raw ("0-19-852663-6 (pbk.)"), in the order found.
    pub isbns: Vec<String>,
    pub issn: String,
    /// The OCLC number, raw, usually with its prefix ("(OCoLC)ocm05853149").
    pub oclc: String,
    pub lccn: String,
    pub format: String,
    pub location: String,
    pub call_number: String,
    pub policy: String,
    pub status: String,
    pub source: Source,
}
