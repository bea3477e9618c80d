-- Fair claims: the tenants with queued jobs are found by skipping through this index (one probe
-- per tenant, not one row per job), and each tenant's oldest due jobs are read from it in order.
-- The running jobs a tenant holds are counted through it too.
CREATE INDEX jobs_waiting ON jobs (state, tenant_id, run_at);
