-- Claims walk the endpoints that have pending deliveries and take each one's earliest due ones,
-- so a claim's cost follows what it takes, not the size of the backlog (a window over every
-- pending delivery grew with the backlog and slowed delivery just when it fell behind).
CREATE INDEX webhook_deliveries_pending_by_endpoint
    ON webhook_deliveries (endpoint_id, next_attempt_at, id) WHERE status = 'pending';
