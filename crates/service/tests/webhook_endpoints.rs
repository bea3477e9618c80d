//! Tenants' outbound webhook endpoints, driven on the service directly: the URL checked by the
//! tenant's own outbound policy, the quota, update, secret rotation and delete, and another
//! tenant's endpoint never found.

mod support;

use integrations_service::Service;
use integrations_service::{
    CreatedWebhookEndpoint, EndpointId, LimitsUpdate, ServiceError, TenantId, TenantUpdate, WebhookEndpointFields,
};
use support::{acme, create_tenant, globex, harness, Harness};

/// Lets `tenant` reach 127.0.0.1, where the tests' endpoints are (nothing is ever sent there).
async fn allow_loopback(service: &Service, tenant: &TenantId) {
    let update = TenantUpdate {
        outbound_allow_cidrs: Some(vec!["127.0.0.1".into()]),
        ..TenantUpdate::default()
    };
    service.update_tenant(tenant, update).await.expect("allowlist");
}

fn at(url: &str) -> WebhookEndpointFields {
    WebhookEndpointFields {
        url: Some(url.into()),
        ..WebhookEndpointFields::default()
    }
}

async fn create(service: &Service, tenant: &TenantId, url: &str) -> CreatedWebhookEndpoint {
    service
        .create_webhook_endpoint(tenant, at(url))
        .await
        .expect("endpoint")
}

fn id(created: &CreatedWebhookEndpoint) -> EndpointId {
    EndpointId::parse(&created.endpoint.id).expect("an endpoint id")
}

/// The fields named by an `InvalidWebhookEndpoint`.
fn refused_fields(error: ServiceError) -> Vec<String> {
    match error {
        ServiceError::InvalidWebhookEndpoint(errors) => errors.errors.into_iter().map(|error| error.field).collect(),
        other => panic!("invalid webhook endpoint expected, got {other:?}"),
    }
}

/// The URLs of the tenant's endpoints, sorted (endpoints created in one second list in any order).
async fn stored_urls(service: &Service, tenant: &TenantId) -> Vec<String> {
    let (endpoints, _) = service.list_webhook_endpoints(tenant, None, 100).await.expect("list");
    let mut urls: Vec<String> = endpoints.into_iter().map(|endpoint| endpoint.url).collect();
    urls.sort();
    urls
}

#[tokio::test]
async fn an_endpoint_url_is_checked_by_the_tenants_own_policy() {
    let Harness { service, _dir, .. } = harness(200).await;
    let refused = service
        .create_webhook_endpoint(&acme(), at("http://127.0.0.1:9/hook"))
        .await
        .expect_err("loopback is not on the shared allowlist");
    assert_eq!(refused_fields(refused), ["url"]);
    let unusable = service
        .create_webhook_endpoint(&acme(), at("ftp://hooks.example/x"))
        .await
        .expect_err("not http");
    assert_eq!(refused_fields(unusable), ["url"]);
    let missing = service
        .create_webhook_endpoint(&acme(), WebhookEndpointFields::default())
        .await
        .expect_err("a url is required");
    assert_eq!(refused_fields(missing), ["url"]);
    assert!(stored_urls(&service, &acme()).await.is_empty());

    allow_loopback(&service, &acme()).await;
    let created = service
        .create_webhook_endpoint(
            &acme(),
            WebhookEndpointFields {
                url: Some("http://127.0.0.1:9".into()),
                event_types: Some(vec!["plugin.*".into(), "plugin.*".into()]),
                description: Some("audit".into()),
                ..WebhookEndpointFields::default()
            },
        )
        .await
        .expect("allowed for acme");
    assert!(created.secret.starts_with("whsec_"), "the signing secret is shown once");
    assert!(created.endpoint.id.starts_with("ep_"));
    assert_eq!(created.endpoint.url, "http://127.0.0.1:9/", "stored normalised");
    assert_eq!(created.endpoint.event_types, ["plugin.*"]);
    assert!(created.endpoint.enabled);
    assert_eq!(stored_urls(&service, &acme()).await, ["http://127.0.0.1:9/"]);
}

#[tokio::test]
async fn a_tenant_has_no_more_endpoints_than_its_quota() {
    let Harness { service, _dir, .. } = harness(200).await;
    allow_loopback(&service, &acme()).await;
    let two = TenantUpdate {
        limits: LimitsUpdate {
            max_webhook_endpoints: Some(Some(2)),
            ..LimitsUpdate::default()
        },
        ..TenantUpdate::default()
    };
    service.update_tenant(&acme(), two).await.expect("quota");
    let first = create(&service, &acme(), "http://127.0.0.1:9/one").await;
    create(&service, &acme(), "http://127.0.0.1:9/two").await;
    let over = service
        .create_webhook_endpoint(&acme(), at("http://127.0.0.1:9/three"))
        .await
        .expect_err("over the quota");
    assert!(
        matches!(
            over,
            ServiceError::QuotaExceeded {
                resource: "webhook endpoints",
                limit: 2
            }
        ),
        "{over:?}"
    );
    assert_eq!(
        stored_urls(&service, &acme()).await,
        ["http://127.0.0.1:9/one", "http://127.0.0.1:9/two"]
    );

    // Another tenant's quota is its own; a deleted endpoint frees its place.
    create_tenant(&service, &globex()).await;
    allow_loopback(&service, &globex()).await;
    create(&service, &globex(), "http://127.0.0.1:9/globex").await;
    service
        .delete_webhook_endpoint(&acme(), &id(&first))
        .await
        .expect("delete");
    create(&service, &acme(), "http://127.0.0.1:9/three").await;
    assert_eq!(
        stored_urls(&service, &acme()).await,
        ["http://127.0.0.1:9/three", "http://127.0.0.1:9/two"]
    );
}

#[tokio::test]
async fn an_endpoint_is_updated_rotated_and_deleted() {
    let Harness { service, _dir, .. } = harness(200).await;
    allow_loopback(&service, &acme()).await;
    let created = create(&service, &acme(), "http://127.0.0.1:9/hook").await;
    let endpoint = id(&created);

    let changed = service
        .update_webhook_endpoint(
            &acme(),
            &endpoint,
            WebhookEndpointFields {
                event_types: Some(vec!["plugin.installed".into()]),
                enabled: Some(false),
                rate_limit_per_sec: Some(Some(5)),
                ..WebhookEndpointFields::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(changed.url, "http://127.0.0.1:9/hook", "left out, kept");
    assert_eq!(changed.event_types, ["plugin.installed"]);
    assert!(!changed.enabled);
    assert_eq!(changed.rate_limit_per_sec, Some(5));

    let refused = service
        .update_webhook_endpoint(
            &acme(),
            &endpoint,
            WebhookEndpointFields {
                url: Some("http://10.0.0.1/".into()),
                event_types: Some(vec!["*.installed".into()]),
                description: Some("x".repeat(1025)),
                enabled: Some(true),
                ..WebhookEndpointFields::default()
            },
        )
        .await
        .expect_err("malformed filters and description");
    assert_eq!(refused_fields(refused), ["description", "event_types.0"]);
    let kept = service.webhook_endpoint(&acme(), &endpoint).await.expect("endpoint");
    assert_eq!(kept.event_types, ["plugin.installed"]);
    assert!(!kept.enabled, "a refused update changes nothing");
    let moved = service
        .update_webhook_endpoint(&acme(), &endpoint, at("http://127.0.0.2/hook"))
        .await
        .expect_err("127.0.0.2 is not on acme's allowlist");
    assert_eq!(refused_fields(moved), ["url"]);

    assert_eq!(created.endpoint.previous_secret_expires_at, None);
    let rotated = service
        .rotate_webhook_endpoint_secret(&acme(), &endpoint)
        .await
        .expect("rotate");
    assert!(rotated.secret.starts_with("whsec_"));
    assert_ne!(rotated.secret, created.secret);
    assert!(
        rotated.endpoint.previous_secret_expires_at.is_some(),
        "the old secret still signs"
    );

    service
        .delete_webhook_endpoint(&acme(), &endpoint)
        .await
        .expect("delete");
    let gone = service.webhook_endpoint(&acme(), &endpoint).await.expect_err("deleted");
    assert!(matches!(gone, ServiceError::WebhookEndpointNotFound), "{gone:?}");
    let twice = service
        .delete_webhook_endpoint(&acme(), &endpoint)
        .await
        .expect_err("deleted");
    assert!(matches!(twice, ServiceError::WebhookEndpointNotFound), "{twice:?}");
    assert!(stored_urls(&service, &acme()).await.is_empty());
}

#[tokio::test]
async fn another_tenants_endpoint_is_not_found() {
    let Harness { service, _dir, .. } = harness(200).await;
    create_tenant(&service, &globex()).await;
    allow_loopback(&service, &acme()).await;
    let created = create(&service, &acme(), "http://127.0.0.1:9/hook").await;
    let endpoint = id(&created);
    let not_found = |outcome: Result<(), ServiceError>, what: &str| match outcome {
        Err(ServiceError::WebhookEndpointNotFound) => {}
        other => panic!("{what}: not found expected, got {other:?}"),
    };
    not_found(service.webhook_endpoint(&globex(), &endpoint).await.map(drop), "read");
    not_found(
        service
            .update_webhook_endpoint(&globex(), &endpoint, at("https://globex.example/stolen"))
            .await
            .map(drop),
        "update",
    );
    not_found(
        service
            .rotate_webhook_endpoint_secret(&globex(), &endpoint)
            .await
            .map(drop),
        "rotate",
    );
    not_found(
        service
            .list_webhook_attempts(&globex(), &endpoint, None, 10)
            .await
            .map(drop),
        "attempts",
    );
    not_found(service.delete_webhook_endpoint(&globex(), &endpoint).await, "delete");
    assert!(stored_urls(&service, &globex()).await.is_empty());

    let kept = service.webhook_endpoint(&acme(), &endpoint).await.expect("acme's");
    assert_eq!(kept.url, "http://127.0.0.1:9/hook");
    assert_eq!(kept.updated_at, created.endpoint.updated_at);
    assert_eq!(kept.previous_secret_expires_at, None, "not rotated");
}
