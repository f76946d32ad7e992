-- Closure periods: a partner in one is left out of new rotas.
CREATE TABLE partner_closures (
    partner   TEXT NOT NULL REFERENCES partners (symbol) ON DELETE CASCADE,
    from_date TEXT NOT NULL,
    to_date   TEXT NOT NULL,
    note      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (partner, from_date, to_date)
) STRICT;
