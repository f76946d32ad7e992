-- The whole lending lifecycle: due dates, renewals, the lender's item id, and when the
-- current lender was asked (its expiry window starts then).

ALTER TABLE borrowing ADD COLUMN due_date TEXT;
ALTER TABLE borrowing ADD COLUMN resume_state TEXT;
ALTER TABLE borrowing ADD COLUMN supplier_item TEXT;
ALTER TABLE borrowing ADD COLUMN asked_at INTEGER;
CREATE INDEX borrowing_due ON borrowing (due_date) WHERE due_date IS NOT NULL;

ALTER TABLE lending ADD COLUMN due_date TEXT;
ALTER TABLE lending ADD COLUMN renew_pending INTEGER NOT NULL DEFAULT 0;
CREATE INDEX lending_due ON lending (due_date) WHERE due_date IS NOT NULL;
