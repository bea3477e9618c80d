-- Per-tenant outbound allowlist: internal ranges (an on-premises Jira) only this tenant may reach.
ALTER TABLE tenants ADD COLUMN outbound_allow_cidrs TEXT NOT NULL DEFAULT '[]';
