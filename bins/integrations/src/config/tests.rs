//! Reading the configuration from variables and an env file.

use super::*;

fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn defaults_need_no_configuration() {
    let config = Config::from_values(&HashMap::new()).unwrap();
    assert_eq!(config.bind.to_string(), "127.0.0.1:8085");
    assert_eq!(config.database_url(), "sqlite://./data/integrations.db");
    assert!(config.is_embedded());
    assert!(config.admin_token.is_none());
    assert!(matches!(config.flags, FlagsSource::None));
    assert_eq!(config.tool_response_budget_bytes, 4 * 1024 * 1024);
    assert_eq!(config.tool_max_pages, 100);
    assert!(config.request_timeout > config.tool_deadline);
    assert_eq!(config.max_connections, 10_000);
}

#[test]
fn reads_limits_and_refuses_zero() {
    let config = Config::from_values(&values(&[
        ("INTEGRATIONS_TOOL_RESPONSE_BUDGET_BYTES", "65536"),
        ("INTEGRATIONS_TOOL_DEADLINE_SECS", "5"),
        ("INTEGRATIONS_TOOL_MAX_PAGES", "7"),
        ("INTEGRATIONS_HEADER_READ_TIMEOUT_SECS", "2"),
        ("INTEGRATIONS_REQUEST_TIMEOUT_SECS", "9"),
        ("INTEGRATIONS_MAX_CONNECTIONS", "3"),
        ("INTEGRATIONS_JOB_RETENTION_SECS", "60"),
        ("INTEGRATIONS_MAX_RUNNING_JOBS_PER_TENANT", "2"),
    ]))
    .unwrap();
    assert_eq!(config.job_retention, Duration::from_secs(60));
    assert_eq!(config.max_running_jobs_per_tenant, 2);
    assert_eq!(config.tool_response_budget_bytes, 65536);
    assert_eq!(config.tool_deadline, Duration::from_secs(5));
    assert_eq!(config.tool_max_pages, 7);
    assert_eq!(config.header_read_timeout, Duration::from_secs(2));
    assert_eq!(config.request_timeout, Duration::from_secs(9));
    assert_eq!(config.max_connections, 3);
    for name in [
        "INTEGRATIONS_TOOL_RESPONSE_BUDGET_BYTES",
        "INTEGRATIONS_TOOL_DEADLINE_SECS",
        "INTEGRATIONS_TOOL_MAX_PAGES",
        "INTEGRATIONS_HEADER_READ_TIMEOUT_SECS",
        "INTEGRATIONS_REQUEST_TIMEOUT_SECS",
        "INTEGRATIONS_MAX_CONNECTIONS",
        "INTEGRATIONS_JOB_RETENTION_SECS",
        "INTEGRATIONS_MAX_RUNNING_JOBS_PER_TENANT",
    ] {
        assert!(Config::from_values(&values(&[(name, "0")])).is_err(), "{name}");
        assert!(Config::from_values(&values(&[(name, "lots")])).is_err(), "{name}");
    }
}

#[test]
fn reads_every_variable_and_never_prints_secrets() {
    let config = Config::from_values(&values(&[
        ("INTEGRATIONS_BIND", "0.0.0.0:9000"),
        ("DATABASE_URL", "postgres://u:db-password-value@127.0.0.1/db"),
        ("INTEGRATIONS_ADMIN_TOKEN", "admin-secret-value"),
        ("INTEGRATIONS_TRUST_TENANT_HEADER", "true"),
        ("FLAGSMITH_API_URL", "http://127.0.0.1:1/api/v1"),
        ("FLAGSMITH_SERVER_KEY", "ser.secret-key"),
    ]))
    .unwrap();
    assert!(!config.is_embedded());
    assert!(config.trust_tenant_header);
    let printed = format!("{config:?}");
    assert!(!printed.contains("admin-secret-value") && !printed.contains("ser.secret-key"));
    assert!(!printed.contains("db-password-value") && printed.contains("postgres://u:[redacted]@127.0.0.1/db"));
}

#[test]
fn reads_the_mcp_allowed_hosts() {
    let loopback = Config::from_values(&HashMap::new()).unwrap().mcp_allowed_hosts;
    assert_eq!(loopback, ["localhost", "127.0.0.1", "::1"]);
    let config = Config::from_values(&values(&[(
        "INTEGRATIONS_MCP_ALLOWED_HOSTS",
        " mcp.example.com, mcp.example.com:8443 ,::1,[::1]:8085",
    )]))
    .unwrap();
    assert_eq!(
        config.mcp_allowed_hosts,
        ["mcp.example.com", "mcp.example.com:8443", "::1", "[::1]:8085"]
    );
    let any = Config::from_values(&values(&[("INTEGRATIONS_MCP_ALLOWED_HOSTS", "*")])).unwrap();
    assert_eq!(any.mcp_allowed_hosts, ["*"]);
    for bad in [
        ",",
        "https://mcp.example.com",
        "user@mcp.example.com",
        "mcp.example.com/mcp",
        "a b",
    ] {
        assert!(
            Config::from_values(&values(&[("INTEGRATIONS_MCP_ALLOWED_HOSTS", bad)])).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn reads_the_webhook_retry_schedule() {
    assert_eq!(
        Config::from_values(&HashMap::new()).unwrap().webhook_retry_schedule,
        RetrySchedule::default()
    );
    let config = Config::from_values(&values(&[("INTEGRATIONS_WEBHOOK_RETRY_SCHEDULE", "0, 1,2")])).unwrap();
    assert_eq!(config.webhook_retry_schedule, "0,1,2".parse().unwrap());
    assert!(Config::from_values(&values(&[("INTEGRATIONS_WEBHOOK_RETRY_SCHEDULE", "0,soon")])).is_err());
}

#[test]
fn reads_the_dispatch_memory_budget() {
    let default = Config::from_values(&HashMap::new()).unwrap();
    assert_eq!(default.dispatch_memory_bytes, 64 * 1024 * 1024);
    let config = Config::from_values(&values(&[("INTEGRATIONS_DISPATCH_MEMORY_BYTES", "1048576")])).unwrap();
    assert_eq!(config.dispatch_memory_bytes, 1_048_576);
    for bad in ["0", "-1", "lots"] {
        assert!(Config::from_values(&values(&[("INTEGRATIONS_DISPATCH_MEMORY_BYTES", bad)])).is_err());
    }
}

#[test]
fn rejects_bad_values() {
    assert!(Config::from_values(&values(&[("INTEGRATIONS_BIND", "nope")])).is_err());
    assert!(Config::from_values(&values(&[("INTEGRATIONS_TRUST_TENANT_HEADER", "maybe")])).is_err());
    assert!(Config::from_values(&values(&[("FLAGSMITH_API_URL", "http://x")])).is_err());
}
