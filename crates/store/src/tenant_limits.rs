//! A tenant's own limits, set by the operator; a limit the tenant does not set is the
//! deployment's default. Stored as one JSON document on the tenant's row.

use serde::{Deserialize, Serialize};

/// A token bucket: `per_sec` tokens come back each second, at most `burst` are held.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second (fractions allowed: 0.5 is one every two seconds).
    pub per_sec: f64,
    /// Requests allowed at once after a quiet spell.
    pub burst: u32,
}

/// The operator's limits for one tenant; `None` is the deployment default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantLimits {
    /// Requests to the tenant API (MCP included).
    pub rate_limit: Option<RateLimit>,
    /// Inbound webhooks addressed to the tenant.
    pub webhook_rate_limit: Option<RateLimit>,
    /// Synchronous tool calls running at once.
    pub max_concurrent_tool_calls: Option<u32>,
    /// Outbound webhook endpoints.
    pub max_webhook_endpoints: Option<u32>,
    /// Background jobs waiting or running.
    pub max_queued_jobs: Option<u32>,
}

impl TenantLimits {
    pub(crate) fn to_json(self) -> String {
        serde_json::to_string(&self).unwrap_or_else(|_| "{}".to_owned())
    }

    pub(crate) fn from_json(text: &str) -> Result<Self, crate::StoreError> {
        serde_json::from_str(text).map_err(|_| crate::StoreError::Corrupt("tenant limits".into()))
    }
}
