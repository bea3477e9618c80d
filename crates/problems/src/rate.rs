//! A request refused by its tenant's rate limit.

use std::time::Duration;

use integrations_store::RateLimit;

/// What a bucket limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateScope {
    /// The tenant API and MCP.
    Api,
    /// Inbound webhooks.
    Webhooks,
}

/// A request over its tenant's rate limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimited {
    /// What was limited.
    pub scope: RateScope,
    /// This replica's share of the limit, the one that refused.
    pub limit: RateLimit,
    /// When the next request would be allowed.
    pub retry_after: Duration,
}
