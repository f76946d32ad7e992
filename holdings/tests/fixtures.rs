//! The fixture files are what the builders in `common` make from `loc-20.mrc`, and the test
//! MARC writer reproduces the Library of Congress records byte for byte.

mod common;

use common::{fixture, fixture_path, generated, loc20, write_marc};

#[test]
fn loc_20_is_the_first_20_loc_records() {
    let raw = fixture("loc-20.mrc");
    assert_eq!(raw.len(), 15_903);
    assert_eq!(raw.iter().filter(|&&b| b == 0x1D).count(), 20);
    assert!(raw.starts_with(b"00720cam a22002051  4500"));
}

#[test]
fn the_writer_reproduces_the_loc_records_exactly() {
    let raw = fixture("loc-20.mrc");
    let originals: Vec<&[u8]> = raw.split_inclusive(|&b| b == 0x1D).collect();
    let records = loc20();
    assert_eq!(records.len(), originals.len());
    for (record, original) in records.iter().zip(originals) {
        assert_eq!(write_marc(record), original, "record {}", record.number);
    }
}

#[test]
fn fixtures_are_up_to_date() {
    for (name, bytes) in generated() {
        let on_disk = std::fs::read(fixture_path(name)).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "tests/fixtures/{name} is not what tests/common builds; run \
             `cargo test -p rota-holdings -- --ignored regenerate_fixtures`"
        );
    }
}

#[test]
#[ignore = "rewrites tests/fixtures; run by hand after changing tests/common"]
fn regenerate_fixtures() {
    for (name, bytes) in generated() {
        std::fs::write(fixture_path(name), bytes).unwrap();
    }
}
