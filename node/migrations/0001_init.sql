-- Rota node schema, version 1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE items (
    barcode     TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    author      TEXT NOT NULL DEFAULT '',
    publisher   TEXT NOT NULL DEFAULT '',
    year        TEXT NOT NULL DEFAULT '',
    isbn        TEXT,
    issn        TEXT,
    oclc        TEXT,
    lccn        TEXT,
    format      TEXT NOT NULL,
    location    TEXT NOT NULL DEFAULT '',
    call_number TEXT NOT NULL DEFAULT '',
    policy      TEXT NOT NULL CHECK (policy IN ('lendable', 'not_lendable', 'library_use_only')),
    status      TEXT NOT NULL CHECK (status IN ('available', 'on_loan', 'reserved', 'missing', 'in_process')),
    title_key   TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX items_isbn ON items (isbn) WHERE isbn IS NOT NULL;
CREATE INDEX items_issn ON items (issn) WHERE issn IS NOT NULL;
CREATE INDEX items_oclc ON items (oclc) WHERE oclc IS NOT NULL;
CREATE INDEX items_lccn ON items (lccn) WHERE lccn IS NOT NULL;
CREATE INDEX items_title_key ON items (title_key);

CREATE TABLE partners (
    symbol      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    ca_pem      TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    tier        TEXT NOT NULL CHECK (tier IN ('consortium', 'p2p', 'last_resort')),
    priority    INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    added_at    INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE agreements (
    partner         TEXT PRIMARY KEY REFERENCES partners (symbol) ON DELETE CASCADE,
    lend            INTEGER NOT NULL,
    borrow          INTEGER NOT NULL,
    loan_days       INTEGER NOT NULL,
    renewals        INTEGER NOT NULL,
    max_outstanding INTEGER NOT NULL,
    formats         TEXT NOT NULL,
    expiry_seconds  INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

-- Borrowing requests: this library asking partners.
CREATE TABLE borrowing (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    citation    TEXT NOT NULL, -- JSON of the domain Citation
    title       TEXT NOT NULL,
    patron_id   TEXT NOT NULL,
    note        TEXT NOT NULL,
    need_before TEXT,
    position    INTEGER NOT NULL,
    supplier    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX borrowing_state ON borrowing (state, created_at);

CREATE TABLE rota_entries (
    request_id TEXT NOT NULL REFERENCES borrowing (id),
    idx        INTEGER NOT NULL,
    partner    TEXT NOT NULL,
    tier       TEXT NOT NULL,
    priority   INTEGER NOT NULL,
    outcome    TEXT NOT NULL,
    reason     TEXT,
    PRIMARY KEY (request_id, idx)
) STRICT;

-- Lending requests: partners asking this library. Keyed by the borrower's request id,
-- which always begins with the borrower's symbol.
CREATE TABLE lending (
    id              TEXT PRIMARY KEY,
    borrower        TEXT NOT NULL,
    state           TEXT NOT NULL,
    citation        TEXT NOT NULL,
    title           TEXT NOT NULL,
    item_barcode    TEXT REFERENCES items (barcode),
    reason_unfilled TEXT,
    note            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX lending_state ON lending (state, created_at);
CREATE INDEX lending_borrower ON lending (borrower, state);
-- One copy is never reserved for two live requests.
CREATE UNIQUE INDEX lending_live_item ON lending (item_barcode)
    WHERE item_barcode IS NOT NULL AND state NOT IN ('unfilled', 'cancelled', 'completed', 'expired');

CREATE TABLE timeline (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    side       TEXT NOT NULL CHECK (side IN ('borrowing', 'lending')),
    request_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    event      TEXT NOT NULL,
    state      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    partner    TEXT
) STRICT;
CREATE INDEX timeline_request ON timeline (side, request_id, seq);

-- Transactional outbox: written in the same transaction as the state change that emits it.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner         TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    message_id      TEXT NOT NULL UNIQUE,
    sequence        INTEGER NOT NULL,
    envelope        TEXT NOT NULL, -- JSON of the domain Envelope
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER,
    outcome         TEXT,
    last_error      TEXT
) STRICT;
CREATE INDEX outbox_pending ON outbox (partner, next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_request ON outbox (partner, request_id, id) WHERE delivered_at IS NULL;

-- Inbound de-duplication: the first confirmation for each (sender, message_id) is kept and
-- returned again for every redelivery.
CREATE TABLE inbox (
    sender       TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    payload_hash TEXT NOT NULL,
    confirmation TEXT NOT NULL, -- JSON of the domain Confirmation
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (sender, message_id)
) STRICT;

-- Last sequence number used per request and conversation ('out': we sent to peer,
-- 'in': we received from peer).
CREATE TABLE sequences (
    request_id TEXT NOT NULL,
    peer       TEXT NOT NULL,
    direction  TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    last       INTEGER NOT NULL,
    PRIMARY KEY (request_id, peer, direction)
) STRICT;
