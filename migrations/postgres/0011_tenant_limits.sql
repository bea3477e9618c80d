-- The operator's per-tenant limits (rate limits, quotas) as one JSON document; '{}' is every
-- deployment default.
ALTER TABLE tenants ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';

-- Each replica's heartbeat, so each can take its share of a deployment-wide rate limit.
CREATE TABLE service_replicas (
    id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
