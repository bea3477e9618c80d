-- Outbound webhooks that no tenant can use to exhaust the service.

-- The fan-out writes an event's deliveries over several bounded transactions when its tenant has
-- many endpoints: `after_endpoint` is the last endpoint of event `seq + 1` already written ('' when
-- none), so the outbound cursor can stop inside an event. Other consumers leave it ''.
ALTER TABLE event_cursors ADD COLUMN after_endpoint TEXT NOT NULL DEFAULT '';
-- A tenant's endpoints in id order: the fan-out walks each event's endpoints in that order.
CREATE INDEX webhook_endpoints_by_tenant_id ON webhook_endpoints (tenant_id, id);
-- Listed in pages ordered by creation, then id.
DROP INDEX webhook_endpoints_by_tenant;
CREATE INDEX webhook_endpoints_by_tenant ON webhook_endpoints (tenant_id, created_at, id);

-- An endpoint's delivery rate limit per second (NULL: unlimited), and until when (unix
-- microseconds) send slots are reserved for it: a dispatcher reserves a slot for each delivery it
-- claims, so the endpoint gets at most its rate however many replicas deliver to it.
ALTER TABLE webhook_endpoints ADD COLUMN rate_limit_per_sec BIGINT;
ALTER TABLE webhook_endpoints ADD COLUMN paced_until BIGINT NOT NULL DEFAULT 0;

-- Until when (unix ms) a replay is being written for the endpoint: a second one meanwhile is
-- refused (409), on any replica. Cleared when the replay ends; lapses if its replica dies.
ALTER TABLE webhook_endpoints ADD COLUMN replay_until BIGINT NOT NULL DEFAULT 0;
