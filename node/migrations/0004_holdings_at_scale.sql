-- Holdings at library scale: several ISBNs per item, withdrawn items, and a staging table
-- that an import fills in short transactions before one transaction applies it.

ALTER TABLE items ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
-- Every normalised ISBN of the item, space-separated, in the order found.
ALTER TABLE items ADD COLUMN isbns TEXT NOT NULL DEFAULT '';
UPDATE items SET isbns = COALESCE(isbn, '');

CREATE TABLE item_isbns (
    isbn    TEXT NOT NULL,
    barcode TEXT NOT NULL REFERENCES items (barcode) ON DELETE CASCADE,
    PRIMARY KEY (isbn, barcode)
) STRICT, WITHOUT ROWID;
CREATE INDEX item_isbns_barcode ON item_isbns (barcode);
INSERT INTO item_isbns (isbn, barcode) SELECT isbn, barcode FROM items WHERE isbn IS NOT NULL;

CREATE TABLE import_staging (
    import_id   TEXT NOT NULL,
    barcode     TEXT NOT NULL,
    title       TEXT NOT NULL,
    author      TEXT NOT NULL,
    publisher   TEXT NOT NULL,
    year        TEXT NOT NULL,
    isbn        TEXT,
    isbns       TEXT NOT NULL,
    issn        TEXT,
    oclc        TEXT,
    lccn        TEXT,
    format      TEXT NOT NULL,
    location    TEXT NOT NULL,
    call_number TEXT NOT NULL,
    policy      TEXT NOT NULL,
    status      TEXT NOT NULL,
    title_key   TEXT NOT NULL,
    PRIMARY KEY (import_id, barcode)
) STRICT;
