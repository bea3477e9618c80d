-- Normalized events: one ordered log per deployment, read per tenant by `seq`. Writers serialise
-- (SQLite by nature, PostgreSQL by an advisory lock), so `seq` order is commit order and a reader
-- that has seen `seq` n has seen everything before it: consumers (long-poll readers, the NATS
-- relay, outbound deliveries) keep a cursor instead of marking rows.
CREATE TABLE events (
    seq              BIGSERIAL PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin           TEXT,
    type             TEXT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    data             TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);
CREATE INDEX events_by_age ON events (created_at);
CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- A stored webhook is turned into events once, in the transaction that writes them.
ALTER TABLE webhook_events ADD COLUMN processed_at BIGINT;
CREATE INDEX webhook_events_unprocessed ON webhook_events (id) WHERE processed_at IS NULL;
CREATE INDEX webhook_events_by_age ON webhook_events (received_at);

-- How far each consumer of the log has got.
CREATE TABLE event_cursors (
    name  TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
