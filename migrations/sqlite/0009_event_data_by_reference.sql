-- An event made from a webhook whose body is its data refers to the webhook (webhook_id set,
-- data empty) instead of holding a second copy of the body: ingest writes each body once.
ALTER TABLE events ADD COLUMN webhook_id TEXT;
-- Retention finds old events by their time-ordered id, through the id index: an index on the
-- creation time cost every append a page write of its own.
DROP INDEX events_by_age;
