//! What one tenant may use: the deployment's defaults, a tenant's own overrides (the admin API's
//! fields), and the checks that keep one tenant's traffic from costing the others anything.

use integrations_core::TenantId;
use integrations_store::{RateLimit, TenantLimits};
use serde::Serialize;

use crate::ServiceError;

/// The deployment's limits, for every tenant that has none of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeploymentLimits {
    /// Requests per tenant to the tenant API, MCP included (`None`: unlimited).
    pub rate_limit: Option<RateLimit>,
    /// Inbound webhooks per tenant (`None`: unlimited).
    pub webhook_rate_limit: Option<RateLimit>,
    /// Synchronous tool calls of one tenant running at once.
    pub max_concurrent_tool_calls: u32,
    /// Outbound webhook endpoints per tenant.
    pub max_webhook_endpoints: u32,
    /// Background jobs per tenant waiting or running.
    pub max_queued_jobs: u32,
    /// Long-polls of one tenant waiting at once (per replica).
    pub max_long_polls: u32,
}

impl Default for DeploymentLimits {
    fn default() -> Self {
        Self {
            rate_limit: None,
            webhook_rate_limit: None,
            max_concurrent_tool_calls: 64,
            max_webhook_endpoints: 100,
            max_queued_jobs: 10_000,
            max_long_polls: 16,
        }
    }
}

/// The limits in force for one tenant: its own where it has them, else the deployment's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct EffectiveLimits {
    /// Requests to the tenant API.
    pub rate_limit: Option<RateLimit>,
    /// Inbound webhooks.
    pub webhook_rate_limit: Option<RateLimit>,
    /// Synchronous tool calls at once.
    pub max_concurrent_tool_calls: u32,
    /// Outbound webhook endpoints.
    pub max_webhook_endpoints: u32,
    /// Background jobs waiting or running.
    pub max_queued_jobs: u32,
}

impl DeploymentLimits {
    /// The limits in force for a tenant with `own` overrides.
    pub fn effective(&self, own: &TenantLimits) -> EffectiveLimits {
        EffectiveLimits {
            rate_limit: own.rate_limit.or(self.rate_limit),
            webhook_rate_limit: own.webhook_rate_limit.or(self.webhook_rate_limit),
            max_concurrent_tool_calls: own.max_concurrent_tool_calls.unwrap_or(self.max_concurrent_tool_calls),
            max_webhook_endpoints: own.max_webhook_endpoints.unwrap_or(self.max_webhook_endpoints),
            max_queued_jobs: own.max_queued_jobs.unwrap_or(self.max_queued_jobs),
        }
    }
}

/// A change to one of a tenant's limits: `None` keeps it, `Some(None)` returns it to the
/// deployment default, `Some(Some(value))` sets it.
pub type LimitChange<T> = Option<Option<T>>;

/// Changes to a tenant's limits (the admin API's `POST` and `PATCH`): a field left out keeps the
/// limit, `null` returns it to the deployment default.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Deserialize)]
pub struct LimitsUpdate {
    /// `rate_limit`.
    #[serde(default, deserialize_with = "rate_limit_change")]
    pub rate_limit: LimitChange<RateLimit>,
    /// `webhook_rate_limit`.
    #[serde(default, deserialize_with = "webhook_rate_limit_change")]
    pub webhook_rate_limit: LimitChange<RateLimit>,
    /// `max_concurrent_tool_calls`.
    #[serde(default, deserialize_with = "max_concurrent_tool_calls_change")]
    pub max_concurrent_tool_calls: LimitChange<u32>,
    /// `max_webhook_endpoints`.
    #[serde(default, deserialize_with = "max_webhook_endpoints_change")]
    pub max_webhook_endpoints: LimitChange<u32>,
    /// `max_queued_jobs`.
    #[serde(default, deserialize_with = "max_queued_jobs_change")]
    pub max_queued_jobs: LimitChange<u32>,
}

/// A limit field's value (`null` included), its error naming the field and the form it takes:
/// the limits are read flattened into the tenant's body, where serde loses the field's path.
macro_rules! limit_change {
    ($name:ident, $type:ty, $field:literal, $expected:literal) => {
        fn $name<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<LimitChange<$type>, D::Error> {
            <Option<$type> as serde::Deserialize>::deserialize(deserializer)
                .map(Some)
                .map_err(|_| serde::de::Error::custom(concat!($field, ": must be null or ", $expected)))
        }
    };
}

limit_change!(
    rate_limit_change,
    RateLimit,
    "rate_limit",
    "an object {\"per_sec\": number, \"burst\": integer}"
);
limit_change!(
    webhook_rate_limit_change,
    RateLimit,
    "webhook_rate_limit",
    "an object {\"per_sec\": number, \"burst\": integer}"
);
limit_change!(
    max_concurrent_tool_calls_change,
    u32,
    "max_concurrent_tool_calls",
    "a whole number"
);
limit_change!(
    max_webhook_endpoints_change,
    u32,
    "max_webhook_endpoints",
    "a whole number"
);
limit_change!(max_queued_jobs_change, u32, "max_queued_jobs", "a whole number");

impl LimitsUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `current` with these changes applied, checked.
    pub(crate) fn apply(&self, current: TenantLimits) -> Result<TenantLimits, ServiceError> {
        fn pick<T: Copy>(change: LimitChange<T>, current: Option<T>) -> Option<T> {
            change.unwrap_or(current)
        }
        let limits = TenantLimits {
            rate_limit: pick(self.rate_limit, current.rate_limit),
            webhook_rate_limit: pick(self.webhook_rate_limit, current.webhook_rate_limit),
            max_concurrent_tool_calls: pick(self.max_concurrent_tool_calls, current.max_concurrent_tool_calls),
            max_webhook_endpoints: pick(self.max_webhook_endpoints, current.max_webhook_endpoints),
            max_queued_jobs: pick(self.max_queued_jobs, current.max_queued_jobs),
        };
        check_rate_limit("rate_limit", limits.rate_limit)?;
        check_rate_limit("webhook_rate_limit", limits.webhook_rate_limit)?;
        Ok(limits)
    }
}

/// The most requests per second a rate limit may name (a bucket refills at most every microsecond).
pub const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

/// Checks a token bucket's figures: a positive, finite rate and a burst of at least one.
pub fn check_rate_limit(field: &str, limit: Option<RateLimit>) -> Result<(), ServiceError> {
    let Some(limit) = limit else { return Ok(()) };
    if !(limit.per_sec.is_finite() && limit.per_sec > 0.0 && limit.per_sec <= MAX_RATE_PER_SEC) {
        return Err(ServiceError::InvalidRequest(format!(
            "{field}.per_sec: must be a number above 0 and at most {MAX_RATE_PER_SEC}"
        )));
    }
    if limit.burst == 0 {
        return Err(ServiceError::InvalidRequest(format!(
            "{field}.burst: must be at least 1"
        )));
    }
    Ok(())
}

impl crate::Service {
    /// The limits in force for `tenant_id`.
    pub async fn effective_limits(&self, tenant_id: &TenantId) -> Result<EffectiveLimits, ServiceError> {
        let gate = self.existing_gate(tenant_id).await?;
        Ok(self.limits.effective(&gate.tenant.limits))
    }

    /// Lets one request of an authenticated tenant in, or refuses it with the wait until its
    /// bucket for `scope` has a token again.
    pub async fn admit(&self, tenant_id: &TenantId, scope: crate::RateScope) -> Result<(), ServiceError> {
        let limits = self.effective_limits(tenant_id).await?;
        let limit = match scope {
            crate::RateScope::Api => limits.rate_limit,
            crate::RateScope::Webhooks => limits.webhook_rate_limit,
        };
        self.rate_limiters
            .check(scope, tenant_id, limit)
            .map_err(ServiceError::RateLimited)
    }

    /// Starts one more synchronous tool call of the tenant's, or refuses it at once.
    pub(crate) fn start_tool_call(
        &self,
        tenant_id: &TenantId,
        limits: &EffectiveLimits,
    ) -> Result<crate::in_flight::InFlightPermit, ServiceError> {
        self.tool_calls
            .try_start(tenant_id, limits.max_concurrent_tool_calls)
            .ok_or(ServiceError::TooManyConcurrentCalls {
                limit: limits.max_concurrent_tool_calls,
            })
    }

    /// Starts one more long-poll of the tenant's; `None` when it has as many waiting as it may.
    pub(crate) fn start_long_poll(&self, tenant_id: &TenantId) -> Option<crate::in_flight::InFlightPermit> {
        self.long_polls.try_start(tenant_id, self.limits.max_long_polls)
    }
}
