//! The parsers of single configuration values: durations, counts, lists, limits, settings read
//! from several variables.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::ConfigError;

/// `Host` values: each a name, an IP address or `name:port`, or `*` for any host.
pub(super) fn allowed_hosts(list: &str) -> Result<Vec<String>, ConfigError> {
    let name = "INTEGRATIONS_MCP_ALLOWED_HOSTS";
    let hosts: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect();
    for host in &hosts {
        let valid = host == "*"
            || host.parse::<std::net::Ipv6Addr>().is_ok()
            || (host
                .parse::<axum::http::uri::Authority>()
                .is_ok_and(|a| a.as_str() == a.host() || a.port().is_some())
                && !host.contains('@'));
        if !valid {
            return Err(invalid(
                name,
                &format!("{host:?} is not a host name, address or host:port"),
            ));
        }
    }
    if hosts.is_empty() {
        return Err(invalid(name, "expected at least one host, or * for any"));
    }
    Ok(hosts)
}

/// A whole number of at least 1.
/// When a tenant's breaker for a vendor opens, and for how long.
pub(super) fn breaker_settings<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<integrations_http::BreakerSettings, ConfigError> {
    let mut settings = integrations_http::BreakerSettings::default();
    if let Some(secs) = get("INTEGRATIONS_BREAKER_WINDOW_SECS") {
        settings.window = seconds(secs, "INTEGRATIONS_BREAKER_WINDOW_SECS")?;
    }
    if let Some(count) = get("INTEGRATIONS_BREAKER_MIN_REQUESTS") {
        settings.min_requests = positive(count, "INTEGRATIONS_BREAKER_MIN_REQUESTS", "a number of requests")?
            .try_into()
            .map_err(|_| invalid("INTEGRATIONS_BREAKER_MIN_REQUESTS", "too many requests"))?;
    }
    if let Some(ratio) = get("INTEGRATIONS_BREAKER_FAILURE_RATIO") {
        settings.failure_ratio = ratio
            .parse::<f64>()
            .ok()
            .filter(|ratio| *ratio > 0.0 && *ratio <= 1.0)
            .ok_or_else(|| {
                invalid(
                    "INTEGRATIONS_BREAKER_FAILURE_RATIO",
                    "expected a number above 0 and at most 1",
                )
            })?;
    }
    if let Some(secs) = get("INTEGRATIONS_BREAKER_OPEN_SECS") {
        settings.open_for = seconds(secs, "INTEGRATIONS_BREAKER_OPEN_SECS")?;
    }
    Ok(settings)
}

/// The deployment's per-tenant limits.
pub(super) fn tenant_limits<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
) -> Result<integrations_service::DeploymentLimits, ConfigError> {
    let defaults = integrations_service::DeploymentLimits::default();
    let count = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
        match get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| invalid(name, "expected a whole number (0 forbids it)")),
        }
    };
    let limits = integrations_service::DeploymentLimits {
        rate_limit: rate_limit(get, "INTEGRATIONS_RATE_LIMIT_PER_SEC", "INTEGRATIONS_RATE_LIMIT_BURST")?,
        webhook_rate_limit: rate_limit(
            get,
            "INTEGRATIONS_WEBHOOK_RATE_LIMIT_PER_SEC",
            "INTEGRATIONS_WEBHOOK_RATE_LIMIT_BURST",
        )?,
        max_concurrent_tool_calls: count(
            "INTEGRATIONS_MAX_CONCURRENT_TOOL_CALLS",
            defaults.max_concurrent_tool_calls,
        )?,
        max_long_polls: count("INTEGRATIONS_MAX_LONG_POLLS_PER_TENANT", defaults.max_long_polls)?,
        max_webhook_endpoints: count("INTEGRATIONS_MAX_WEBHOOK_ENDPOINTS", defaults.max_webhook_endpoints)?,
        max_queued_jobs: count("INTEGRATIONS_MAX_QUEUED_JOBS", defaults.max_queued_jobs)?,
    };
    Ok(limits)
}

/// A token bucket from a rate variable and a burst variable; off while the rate is unset. The
/// burst defaults to one second's worth.
fn rate_limit<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    per_sec_name: &'static str,
    burst_name: &'static str,
) -> Result<Option<integrations_store::RateLimit>, ConfigError> {
    let Some(per_sec) = get(per_sec_name) else {
        return match get(burst_name) {
            Some(_) => Err(invalid(burst_name, &format!("needs {per_sec_name}"))),
            None => Ok(None),
        };
    };
    let per_sec: f64 = per_sec
        .parse()
        .map_err(|_| invalid(per_sec_name, "expected requests per second"))?;
    let burst = match get(burst_name) {
        Some(burst) => burst
            .parse()
            .map_err(|_| invalid(burst_name, "expected a whole number"))?,
        None => per_sec.ceil().clamp(1.0, f64::from(u32::MAX)) as u32,
    };
    let limit = integrations_store::RateLimit { per_sec, burst };
    integrations_service::check_rate_limit("rate", Some(limit)).map_err(|e| invalid(per_sec_name, &e.to_string()))?;
    Ok(Some(limit))
}

pub(super) fn positive(value: &str, name: &'static str, unit: &str) -> Result<usize, ConfigError> {
    match value.parse::<usize>() {
        Ok(number) if number > 0 => Ok(number),
        _ => Err(invalid(name, &format!("expected {unit}, at least 1"))),
    }
}

/// Whole seconds, at least 1.
/// A NATS subject token or stream name: no wildcards, separators or spaces.
pub(super) fn nats_token(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn seconds(value: &str, name: &'static str) -> Result<Duration, ConfigError> {
    positive(value, name, "seconds").map(|secs| Duration::from_secs(secs as u64))
}

pub(super) fn invalid(name: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        message: message.to_owned(),
    }
}

pub(super) fn read_env_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::File {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect())
}
