-- An event made from a webhook whose body is its data refers to the webhook (webhook_id set,
-- data empty) instead of holding a second copy of the body: ingest writes each body once.
ALTER TABLE events ADD COLUMN webhook_id TEXT;
-- Retention finds old events by their time-ordered id, through the id index: an index on the
-- creation time cost every append a page write of its own.
DROP INDEX events_by_age;

-- Webhooks waiting to be turned into events: a row each, written with the webhook and deleted in
-- the transaction that appends its events. Marking the webhook's own row instead rewrote it, body
-- and all, one commit after it was written.
CREATE TABLE webhook_backlog (
    id  TEXT PRIMARY KEY REFERENCES webhook_events(id) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO webhook_backlog (id) SELECT id FROM webhook_events WHERE processed_at IS NULL;
DROP INDEX webhook_events_unprocessed;
ALTER TABLE webhook_events DROP COLUMN processed_at;
-- Processed webhooks expire by their time-ordered id, through the primary key, like events.
DROP INDEX webhook_events_by_age;
