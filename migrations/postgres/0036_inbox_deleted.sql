-- An inbox item deleted on its platform after it was collected is marked,
-- not dropped: what it said stays for the people working the inbox, and
-- nobody answers it. The collector looks again at recent items now and
-- then (`checked_at`, the last look) and marks those the platform no
-- longer shows.
ALTER TABLE inbox_items ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE inbox_items ADD COLUMN checked_at TIMESTAMPTZ;
CREATE INDEX inbox_items_checked_idx ON inbox_items (account_id, checked_at);
