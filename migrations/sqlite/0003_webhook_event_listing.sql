-- Listing a tenant's events newest first, page by page (keyset on received_at, id), without a sort.
CREATE INDEX webhook_events_listing ON webhook_events (tenant_id, received_at, id);
