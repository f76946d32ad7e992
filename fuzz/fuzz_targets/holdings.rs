//! Any bytes as a holdings export: the MARC21, MARCXML and CSV readers and the item
//! mappings must never panic or hang, and every error must say why.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rota_holdings::{Format, ItemMapping, read_rows};

fuzz_target!(|data: &[u8]| {
    let _ = Format::detect(&data[..data.len().min(Format::DETECT_LEN)]);
    for format in [Format::Marc21, Format::MarcXml, Format::Csv] {
        for mapping in [ItemMapping::Koha, ItemMapping::Alma] {
            for (n, r) in read_rows(data, format, &mapping).enumerate() {
                assert!(n <= data.len() * 4 + 8, "more results than the input could hold");
                if let Err(e) = r {
                    assert!(!e.reason.is_empty());
                }
            }
        }
    }
});
