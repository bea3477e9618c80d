//! The problem of each kind of failure: status, stable `type`, members and headers.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::StatusCode;
use integrations_store::RateLimit;
use serde_json::{json, Value};

use crate::{FieldError, FieldErrors, Problem, RateLimited, RateScope, RequestError, ServiceError};

fn header<'a>(problem: &'a Problem, name: &str) -> Option<&'a str> {
    problem
        .headers()
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, value)| value.to_str().ok())
}

fn field_errors(count: usize, omitted: usize) -> FieldErrors {
    let errors = (0..count)
        .map(|i| FieldError {
            field: format!("f{i}"),
            message: "is required".into(),
        })
        .collect();
    FieldErrors { errors, omitted }
}

#[test]
fn each_service_error_has_its_status_and_type() {
    let cases = [
        (ServiceError::Unauthorized, 401, "unauthorized"),
        (ServiceError::InvalidTenantId("x".into()), 422, "invalid-tenant-id"),
        (ServiceError::TenantNotFound, 404, "tenant-not-found"),
        (ServiceError::TenantExists, 409, "tenant-exists"),
        (ServiceError::PluginNotAllowed("jira".into()), 403, "plugin-not-allowed"),
        (ServiceError::ToolNotFound("t".into()), 404, "tool-not-found"),
        (
            ServiceError::UpstreamUnavailable("dns".into()),
            502,
            "upstream-unavailable",
        ),
        (
            ServiceError::ToolDeadlineExceeded(Duration::from_secs(30)),
            504,
            "tool-deadline-exceeded",
        ),
        (ServiceError::JobNotRetryable("running"), 409, "job-not-retryable"),
        (ServiceError::WebhookRejected, 404, "webhook-rejected"),
        (
            ServiceError::TooManyQueuedJobs { limit: 5 },
            429,
            "too-many-queued-jobs",
        ),
        (ServiceError::IdempotencyKeyReused, 422, "idempotency-key-reused"),
        (ServiceError::Internal("secret detail".into()), 500, "internal"),
    ];
    for (error, status, slug) in cases {
        let problem = Problem::from(&error);
        assert_eq!((problem.status().as_u16(), problem.slug()), (status, slug), "{error:?}");
        let document = problem.document();
        assert_eq!(document["type"], format!("https://integrations.dev/problems/{slug}"));
        assert_eq!(document["status"], status);
    }
}

#[test]
fn each_request_error_has_its_status_and_type() {
    let cases = [
        (RequestError::MalformedJson("line 1".into()), 400, "malformed-json"),
        (RequestError::PayloadTooLarge, 413, "payload-too-large"),
        (
            RequestError::InvalidParameters("limit".into()),
            400,
            "invalid-parameters",
        ),
        (RequestError::BadBody, 400, "bad-body"),
        (RequestError::InvalidTenantHeader("empty"), 400, "invalid-tenant-header"),
        (RequestError::AdminUnauthorized, 401, "unauthorized"),
        (RequestError::RouteNotFound, 404, "route-not-found"),
        (RequestError::MethodNotAllowed, 405, "method-not-allowed"),
        (
            RequestError::RequestTimeout(Duration::from_secs(30)),
            503,
            "request-timeout",
        ),
        (RequestError::McpSessionNotFound, 404, "mcp-session-not-found"),
        (
            RequestError::InvalidIdempotencyKey("send one"),
            400,
            "invalid-idempotency-key",
        ),
    ];
    for (error, status, slug) in cases {
        let problem = Problem::from(&error);
        assert_eq!((problem.status().as_u16(), problem.slug()), (status, slug), "{error:?}");
        assert_eq!(problem.detail(), error.to_string());
    }
}

#[test]
fn only_missing_or_wrong_credentials_challenge_for_a_bearer_token() {
    assert!(Problem::from(&ServiceError::Unauthorized).challenges_bearer());
    assert!(Problem::from(&RequestError::AdminUnauthorized).challenges_bearer());
    assert!(!Problem::from(&ServiceError::PluginNotAllowed("jira".into())).challenges_bearer());
    assert!(!Problem::from(&RequestError::RouteNotFound).challenges_bearer());
}

#[test]
fn the_document_has_the_rfc_9457_members_and_the_extensions() {
    let problem = Problem::from(&ServiceError::QuotaExceeded {
        resource: "webhook endpoints",
        limit: 10,
    });
    assert_eq!(
        problem.document(),
        json!({
            "type": "https://integrations.dev/problems/quota-exceeded",
            "title": "Quota exceeded",
            "status": 409,
            "detail": "the tenant already has 10 webhook endpoints, the most it may have",
            "resource": "webhook endpoints",
            "limit": 10,
        })
    );
}

#[test]
fn the_written_json_is_the_document() {
    let problem = Problem::from(&ServiceError::InvalidArguments(field_errors(2, 0)));
    let written: Value = serde_json::from_slice(&problem.to_json()).unwrap();
    assert_eq!(written, problem.document());
}

#[test]
fn an_internal_error_says_nothing_of_its_cause() {
    let problem = Problem::from(&ServiceError::Internal("password=hunter2".into()));
    assert_eq!(problem.detail(), "an internal error occurred");
    assert!(!String::from_utf8(problem.to_json()).unwrap().contains("hunter2"));
}

#[test]
fn an_open_circuit_says_when_to_retry_in_whole_seconds() {
    let problem = Problem::from(&ServiceError::UpstreamCircuitOpen {
        retry_after: Duration::from_millis(2_100),
    });
    assert_eq!(problem.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&problem, RETRY_AFTER.as_str()), Some("3"));
    assert_eq!(problem.document()["retry_after"], 3);
}

#[test]
fn a_vendor_error_passes_its_retry_after_on_only_when_it_sent_one() {
    let upstream = |retry_after| ServiceError::Upstream {
        status: 429,
        message: "slow down".into(),
        details: json!({"error": "ratelimited"}),
        retry_after,
    };
    let problem = Problem::from(&upstream(Some(Duration::from_secs(120))));
    assert_eq!((problem.status().as_u16(), problem.slug()), (502, "upstream-error"));
    assert_eq!(header(&problem, "retry-after"), Some("120"));
    let document = problem.document();
    assert_eq!(document["retry_after"], 120);
    assert_eq!(document["upstream_status"], 429);
    assert_eq!(document["upstream_errors"], json!({"error": "ratelimited"}));

    let problem = Problem::from(&upstream(None));
    assert!(problem.headers().is_empty());
    assert!(problem.document().get("retry_after").is_none());
}

#[test]
fn a_rate_limited_request_gets_retry_after_and_the_ratelimit_fields() {
    let problem = Problem::from(&ServiceError::RateLimited(RateLimited {
        scope: RateScope::Api,
        limit: RateLimit {
            per_sec: 5.0,
            burst: 10,
        },
        retry_after: Duration::from_millis(200),
    }));
    assert_eq!((problem.status().as_u16(), problem.slug()), (429, "rate-limited"));
    assert_eq!(header(&problem, "retry-after"), Some("1"));
    assert_eq!(problem.document()["retry_after"], 1);
    assert_eq!(header(&problem, "ratelimit-policy"), Some("\"tenant\";q=10;w=2"));
    assert_eq!(header(&problem, "ratelimit"), Some("\"tenant\";r=0;t=1"));
}

#[test]
fn too_many_concurrent_calls_asks_for_a_retry_after_one_second() {
    let problem = Problem::from(&ServiceError::TooManyConcurrentCalls { limit: 4 });
    assert_eq!(header(&problem, "retry-after"), Some("1"));
    assert_eq!(problem.document()["limit"], 4);
}

#[test]
fn validation_problems_list_every_reported_error_and_name_the_first_three() {
    let problem = Problem::from(&ServiceError::InvalidConfig(field_errors(5, 2)));
    assert_eq!((problem.status().as_u16(), problem.slug()), (422, "invalid-config"));
    assert_eq!(
        problem.detail(),
        "f0: is required; f1: is required; f2: is required; and 4 more"
    );
    let document = problem.document();
    assert_eq!(document["errors"].as_array().unwrap().len(), 5);
    assert_eq!(document["errors"][4], json!({"field": "f4", "message": "is required"}));
    assert_eq!(document["errors_omitted"], 2);
}

#[test]
fn a_document_level_error_is_named_without_a_field() {
    let errors = FieldErrors::from(vec![FieldError {
        field: String::new(),
        message: "must be of type object".into(),
    }]);
    let problem = Problem::from(&ServiceError::InvalidArguments(errors));
    assert_eq!(problem.slug(), "invalid-arguments");
    assert_eq!(problem.detail(), "must be of type object");
    assert_eq!(problem.document()["errors_omitted"], 0);
}

#[test]
fn an_invalid_webhook_endpoint_lists_its_errors() {
    let problem = Problem::from(&ServiceError::InvalidWebhookEndpoint(field_errors(1, 0)));
    assert_eq!(
        (problem.status().as_u16(), problem.slug()),
        (422, "invalid-webhook-endpoint")
    );
    assert_eq!(problem.document()["errors"][0]["field"], "f0");
}

#[test]
fn field_errors_keep_the_first_ones_sorted_and_count_the_rest() {
    let many: Vec<FieldError> = (0..25)
        .rev()
        .map(|i| FieldError {
            field: format!("f{i:02}"),
            message: "is required".into(),
        })
        .collect();
    let capped = FieldErrors::from(many);
    assert_eq!(capped.errors.len(), crate::MAX_REPORTED_ERRORS);
    assert_eq!(capped.omitted, 5);
    assert_eq!(capped.errors[0].field, "f05");
}
