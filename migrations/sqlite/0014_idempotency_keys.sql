-- Idempotency-Key on tool calls: per tenant, the request's fingerprint and, once it has finished,
-- the response to replay. A running entry's expires_at is its lease (a replica that died while
-- running it gives it up); a finished one's, the end of its retention.
CREATE TABLE idempotency_keys (
    tenant_id TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    finished BIGINT NOT NULL DEFAULT 0,
    status BIGINT,
    headers TEXT,
    body BLOB,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
