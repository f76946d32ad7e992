-- What each partner's confirmation said it had queued back to us for the request (its
-- `sent_through`): a lender ships only once it has received that far.
ALTER TABLE outbox ADD COLUMN peer_sent_through INTEGER NOT NULL DEFAULT 0 CHECK (peer_sent_through >= 0);
