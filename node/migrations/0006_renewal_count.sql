-- Renewals granted on each loan, counted against the agreement's renewal limit.
ALTER TABLE lending ADD COLUMN renewals INTEGER NOT NULL DEFAULT 0 CHECK (renewals >= 0);
