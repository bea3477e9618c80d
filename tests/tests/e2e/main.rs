//! End-to-end tests of the assembled host through its HTTP API, on SQLite by default and on
//! PostgreSQL when `TEST_DATABASE_URL` is set. Vendors are wiremock servers on 127.0.0.1.

mod contract;
mod harness;

mod bitbucket;
mod bitbucket_contract;
mod event_log;
mod events;
mod flags;
mod graph_handshake;
mod idempotency;
mod isolation;
mod jira;
mod jira_contract;
mod job_quotas;
mod jobs;
mod lifecycle;
mod limits;
mod mcp;
mod microsoft;
mod outbound;
mod quotas;
mod receiver;
mod resilience;
mod secrets;
mod sharepoint;
mod slack;
mod slack_contract;
mod socket;
mod standardwebhooks;
mod teams;
mod tenant_state;
mod webhooks;
