//! The service's logic without HTTP: a plugin's lifecycle (each step's hook, its event, what is
//! kept and refused) and the tool-call path up to the circuit breakers, on a real SQLite store
//! with a connector defined here and a vendor client that counts what it is asked.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use integrations_core::Lifecycle;
use integrations_service::{PluginName, PluginState, ServiceError};
use serde_json::{json, Value};
use support::{acme, config, crm, event_types, get_thing, harness, Harness};

#[tokio::test]
async fn each_lifecycle_step_runs_its_hook_and_records_its_event() {
    let Harness {
        service, seen, _dir, ..
    } = harness(200).await;
    let installed = service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    assert_eq!(installed.summary.state, PluginState::Enabled);
    assert_eq!(installed.secrets_set, Some(vec!["token".to_owned()]));
    service
        .configure(&acme(), &crm(), json!({"site": "https://two.example"}))
        .await
        .expect("configure keeps the token it was not given");
    let disabled = service.set_enabled(&acme(), &crm(), false).await.expect("disable");
    assert_eq!(disabled.summary.state, PluginState::Disabled);
    service.set_enabled(&acme(), &crm(), true).await.expect("enable");
    service.uninstall(&acme(), &crm()).await.expect("uninstall");

    assert_eq!(
        *seen.hooks.lock().unwrap(),
        vec![
            Lifecycle::Install,
            Lifecycle::Configure,
            Lifecycle::Disable,
            Lifecycle::Enable,
            Lifecycle::Uninstall
        ]
    );
    assert_eq!(
        event_types(&service, &acme()).await,
        [
            "plugin.installed",
            "plugin.configured",
            "plugin.disabled",
            "plugin.enabled",
            "plugin.uninstalled"
        ]
    );
    let gone = service.plugin_details(&acme(), &crm()).await.expect("details");
    assert_eq!(gone.summary.state, PluginState::NotInstalled);
}

#[tokio::test]
async fn a_refused_step_changes_nothing_and_records_nothing() {
    let Harness { service, _dir, .. } = harness(200).await;
    let refused = service
        .install(&acme(), &crm(), config("https://refused.example"))
        .await
        .expect_err("the hook refuses the site");
    assert!(matches!(refused, ServiceError::InvalidConfig(_)), "{refused:?}");
    let invalid = service
        .install(&acme(), &crm(), json!({"site": "https://one.example"}))
        .await
        .expect_err("the schema wants a token");
    assert!(matches!(invalid, ServiceError::InvalidConfig(_)), "{invalid:?}");
    assert_eq!(
        service
            .plugin_details(&acme(), &crm())
            .await
            .expect("details")
            .summary
            .state,
        PluginState::NotInstalled
    );
    assert!(event_types(&service, &acme()).await.is_empty());

    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    let again = service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect_err("installed twice");
    assert!(matches!(again, ServiceError::AlreadyInstalled(_)), "{again:?}");
    let moved = service
        .configure(&acme(), &crm(), json!({"site": "https://refused.example"}))
        .await
        .expect_err("the hook refuses the new site");
    assert!(matches!(moved, ServiceError::InvalidConfig(_)), "{moved:?}");
    let details = service.plugin_details(&acme(), &crm()).await.expect("details");
    let kept = details.config.map(Value::Object);
    assert_eq!(kept, Some(json!({"site": "https://one.example"})));
    assert_eq!(event_types(&service, &acme()).await, ["plugin.installed"]);
    let missing = service
        .uninstall(&acme(), &PluginName::parse("nothing").expect("a name"))
        .await
        .expect_err("no such plugin");
    assert!(matches!(missing, ServiceError::PluginNotFound(_)), "{missing:?}");
}

#[tokio::test]
async fn open_breakers_answer_a_call_before_the_connector_runs() {
    let Harness {
        service,
        seen,
        vendor,
        _dir,
        ..
    } = harness(500).await;
    service
        .install(&acme(), &crm(), config("https://one.example"))
        .await
        .expect("install");
    // Ten failed requests (a GET's 500 is not retried) open the breaker for the vendor's host.
    for _ in 0..10 {
        let failed = service
            .call_tool(&acme(), &get_thing(), json!({}))
            .await
            .expect("the vendor's 500 is the tool's answer");
        assert_eq!(failed, json!({"status": 500}));
    }
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 10);
    let refused = service
        .call_tool(&acme(), &get_thing(), json!({}))
        .await
        .expect_err("the breaker is open");
    assert!(
        matches!(refused, ServiceError::UpstreamCircuitOpen { retry_after } if retry_after > Duration::ZERO),
        "{refused:?}"
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 10, "the connector was not run");
    assert_eq!(vendor.requests.load(Ordering::SeqCst), 10);
    assert_eq!(service.upstream_view(&acme(), &crm()).state, "open");

    // A new config may send calls elsewhere: the connector runs, and the host's breaker decides.
    service
        .configure(&acme(), &crm(), json!({"site": "https://two.example"}))
        .await
        .expect("configure");
    let elsewhere = service.call_tool(&acme(), &get_thing(), json!({})).await;
    assert_eq!(elsewhere.expect("another host"), json!({"status": 500}));
    assert_eq!(seen.calls.load(Ordering::SeqCst), 11);
}
