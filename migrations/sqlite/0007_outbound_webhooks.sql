-- Outbound webhooks: tenants' endpoints, one delivery per (event, endpoint) written by the fan-out
-- consumer of the event log in the transaction that advances its cursor, and every attempt.

-- An endpoint receives events with `seq` above `start_seq` (the log's end when it was created).
-- Secrets are sealed with the tenant's data key; the previous one still signs until it expires.
CREATE TABLE webhook_endpoints (
    id                          TEXT PRIMARY KEY,
    tenant_id                   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url                         TEXT NOT NULL,
    event_types                 TEXT NOT NULL,
    description                 TEXT NOT NULL,
    state                       TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
    disabled_reason             TEXT,
    secret                      BLOB NOT NULL,
    previous_secret             BLOB,
    previous_secret_expires_at  INTEGER,
    failing_since               INTEGER,
    start_seq                   INTEGER NOT NULL,
    created_at                  INTEGER NOT NULL,
    updated_at                  INTEGER NOT NULL
);
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at);

-- A delivery lives as long as its event (retention) or its endpoint. `lease_until` (unix ms) and
-- `lease_token` say which dispatcher is attempting it; a lapsed lease is free to claim again.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id        TEXT NOT NULL,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_seq        INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER NOT NULL,
    lease_token      TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id);
CREATE INDEX webhook_deliveries_by_event ON webhook_deliveries (event_seq);

CREATE TABLE webhook_attempts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id    INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    endpoint_id    TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    attempted_at   INTEGER NOT NULL,
    status_code    INTEGER,
    error          TEXT,
    latency_ms     INTEGER NOT NULL,
    response_body  TEXT NOT NULL,
    succeeded      INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id);
