//! Tool calls, driven on the service directly: arguments checked against the tool's schema, a
//! tool the tenant cannot use reported as not found, each tenant's call run with its own config
//! alone, the per-tenant limit of calls in flight, and the deadline.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use integrations_service::{LimitsUpdate, ServiceError, TenantUpdate, ToolLimits, ToolName};
use serde_json::json;
use support::{acme, config, create_tenant, crm, find_things, get_thing, globex, harness, Harness, Setup};

/// The fields named by an `InvalidArguments`, in order.
fn refused_fields(error: ServiceError) -> Vec<(String, String)> {
    match error {
        ServiceError::InvalidArguments(errors) => errors
            .errors
            .into_iter()
            .map(|error| (error.field, error.message))
            .collect(),
        other => panic!("invalid arguments expected, got {other:?}"),
    }
}

#[tokio::test]
async fn arguments_that_break_the_schema_never_reach_the_connector() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
        ..
    } = harness(200).await;
    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    let missing = service
        .call_tool(&acme(), &find_things(), json!({}))
        .await
        .expect_err("query is required");
    assert_eq!(refused_fields(missing), [("query".into(), "is required".into())]);
    let wrong = service
        .call_tool(
            &acme(),
            &find_things(),
            json!({"query": "", "limit": 11, "extra": true}),
        )
        .await
        .expect_err("three fields are wrong");
    let fields: Vec<String> = refused_fields(wrong).into_iter().map(|(field, _)| field).collect();
    assert_eq!(fields, ["extra", "limit", "query"]);
    let not_an_object = service
        .call_tool(&acme(), &find_things(), json!(["printers"]))
        .await
        .expect_err("arguments are an object");
    assert!(
        matches!(not_an_object, ServiceError::InvalidArguments(_)),
        "{not_an_object:?}"
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 0);
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 0);

    let found = service
        .call_tool(&acme(), &find_things(), json!({"query": "printers", "limit": 10}))
        .await
        .expect("valid arguments");
    assert_eq!(found, json!({"status": 200}));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    assert_eq!(vendor.seen()[0].0, "https://one.example/things?q=printers");
}

#[tokio::test]
async fn a_tool_the_tenant_cannot_use_is_not_found() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
        ..
    } = harness(200).await;
    let not_found = |error: ServiceError, tool: &str| {
        assert!(
            matches!(&error, ServiceError::ToolNotFound(name) if name == tool),
            "{tool}: {error:?}"
        );
    };
    not_found(
        service
            .call_tool(&acme(), &get_thing(), json!({}))
            .await
            .expect_err("not installed"),
        "crm_get_thing",
    );
    // Arguments are not checked for a tool the tenant cannot see: that would tell it exists.
    not_found(
        service
            .call_tool(&acme(), &find_things(), json!({}))
            .await
            .expect_err("not installed"),
        "crm_find_things",
    );
    let unknown = ToolName::parse("crm_delete_everything").expect("a tool name");
    not_found(
        service
            .call_tool(&acme(), &unknown, json!({}))
            .await
            .expect_err("no such tool"),
        "crm_delete_everything",
    );
    assert!(service.list_tools(&acme()).await.expect("tools").is_empty());

    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    service
        .call_tool(&acme(), &get_thing(), json!({}))
        .await
        .expect("installed");
    let listed: Vec<String> = service
        .list_tools(&acme())
        .await
        .expect("tools")
        .into_iter()
        .map(|tool| tool.name)
        .collect();
    assert_eq!(listed, ["crm_find_things", "crm_get_thing"]);

    service.set_enabled(&acme(), &crm(), false).await.expect("disable");
    not_found(
        service
            .call_tool(&acme(), &get_thing(), json!({}))
            .await
            .expect_err("disabled"),
        "crm_get_thing",
    );
    assert!(service.list_tools(&acme()).await.expect("tools").is_empty());
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1, "only the enabled call ran");
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn each_tenant_calls_with_its_own_config_and_secrets() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
        ..
    } = harness(200).await;
    create_tenant(&service, &globex()).await;
    service
        .install(
            &acme(),
            &crm(),
            json!({"site": "https://acme.example", "token": "acme-token"}),
        )
        .await
        .expect("install");
    service
        .install(
            &globex(),
            &crm(),
            json!({"site": "https://globex.example", "token": "globex-token"}),
        )
        .await
        .expect("install");
    for tenant in [acme(), globex(), acme(), globex()] {
        service.call_tool(&tenant, &get_thing(), json!({})).await.expect("call");
    }
    // Each tenant's configs are cached once read: a change to one is not seen by the other.
    service
        .configure(&globex(), &crm(), json!({"site": "https://globex2.example"}))
        .await
        .expect("configure");
    service.call_tool(&acme(), &get_thing(), json!({})).await.expect("call");
    service
        .call_tool(&globex(), &get_thing(), json!({}))
        .await
        .expect("call");

    let acme_call = ("https://acme.example/thing".to_owned(), "Bearer acme-token".to_owned());
    let globex_call = |site: &str| (format!("https://{site}/thing"), "Bearer globex-token".to_owned());
    assert_eq!(
        vendor.seen(),
        [
            acme_call.clone(),
            globex_call("globex.example"),
            acme_call.clone(),
            globex_call("globex.example"),
            acme_call,
            globex_call("globex2.example"),
        ]
    );
    assert_eq!(
        *seen.tenants.lock().unwrap(),
        ["acme", "globex", "acme", "globex", "acme", "globex"]
    );

    // A tenant without the plugin does not borrow another's installation.
    service.uninstall(&globex(), &crm()).await.expect("uninstall");
    let refused = service
        .call_tool(&globex(), &get_thing(), json!({}))
        .await
        .expect_err("uninstalled");
    assert!(matches!(refused, ServiceError::ToolNotFound(_)), "{refused:?}");
    service
        .call_tool(&acme(), &get_thing(), json!({}))
        .await
        .expect("acme's stays");
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 7);
}

#[tokio::test]
async fn a_tenant_at_its_limit_of_calls_in_flight_is_refused_and_others_are_not() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
        ..
    } = harness(200).await;
    create_tenant(&service, &globex()).await;
    let one_at_a_time = TenantUpdate {
        limits: LimitsUpdate {
            max_concurrent_tool_calls: Some(Some(1)),
            ..LimitsUpdate::default()
        },
        ..TenantUpdate::default()
    };
    service.update_tenant(&acme(), one_at_a_time).await.expect("limit");
    service
        .install(&acme(), &crm(), config("https://slow.example"))
        .await
        .expect("install");
    service
        .install(&globex(), &crm(), config("https://quick.example"))
        .await
        .expect("install");
    vendor.hold("https://slow.example");

    let (tenant, tool) = (acme(), get_thing());
    let first = service.call_tool(&tenant, &tool, json!({}));
    let meanwhile = async {
        vendor.entered.notified().await;
        let refused = service.call_tool(&tenant, &tool, json!({})).await;
        let other = service.call_tool(&globex(), &tool, json!({})).await;
        vendor.release();
        (refused, other)
    };
    let within = Duration::from_secs(10);
    let (first, (refused, other)) = tokio::time::timeout(within, async { tokio::join!(first, meanwhile) })
        .await
        .expect("the held call was released");
    assert_eq!(first.expect("the first call"), json!({"status": 200}));
    assert!(
        matches!(refused, Err(ServiceError::TooManyConcurrentCalls { limit: 1 })),
        "{refused:?}"
    );
    assert_eq!(other.expect("globex has its own limit"), json!({"status": 200}));
    assert_eq!(
        seen.calls.load(Ordering::SeqCst),
        2,
        "the refused call never reached the connector"
    );

    // The finished call gave its place back.
    service
        .call_tool(&acme(), &get_thing(), json!({}))
        .await
        .expect("a place is free");
}

#[tokio::test]
async fn a_call_past_its_deadline_ends_and_frees_its_place() {
    let deadline = Duration::from_millis(100);
    let Harness {
        service, vendor, _dir, ..
    } = Setup {
        vendor_delay: Duration::from_secs(30),
        tool_limits: ToolLimits {
            deadline,
            ..ToolLimits::default()
        },
        ..Setup::default()
    }
    .start()
    .await;
    let one_at_a_time = TenantUpdate {
        limits: LimitsUpdate {
            max_concurrent_tool_calls: Some(Some(1)),
            ..LimitsUpdate::default()
        },
        ..TenantUpdate::default()
    };
    service.update_tenant(&acme(), one_at_a_time).await.expect("limit");
    service
        .install(&acme(), &crm(), config("https://slow.example"))
        .await
        .expect("install");
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let late = service
            .call_tool(&acme(), &get_thing(), json!({}))
            .await
            .expect_err("the vendor is too slow");
        assert!(
            matches!(late, ServiceError::ToolDeadlineExceeded(d) if d == deadline),
            "{late:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "ended at the deadline");
    }
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 2);
}
