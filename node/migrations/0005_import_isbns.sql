-- The ISBNs of staged import rows, one row each, so applying an import is set-based SQL.
CREATE TABLE import_staging_isbns (
    import_id TEXT NOT NULL,
    barcode   TEXT NOT NULL,
    isbn      TEXT NOT NULL,
    PRIMARY KEY (import_id, barcode, isbn)
) STRICT, WITHOUT ROWID;
