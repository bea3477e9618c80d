//! Tenants and their API keys, driven on the service directly: ids checked, a duplicate refused,
//! an update changing only what it names, keys that authenticate as their own tenant only, and a
//! deleted tenant leaving nothing behind.

mod support;

use integrations_service::{
    KeyId, LimitsUpdate, PluginState, ServiceError, TenantId, TenantUpdate, WebhookEndpointFields,
};
use serde_json::{json, Map};
use support::{acme, config, create_tenant, crm, event_types, find_things, globex, harness, Harness};

#[tokio::test]
async fn a_tenant_id_is_checked_and_taken_once() {
    let Harness { service, _dir, .. } = harness(200).await;
    let too_long = "a".repeat(64);
    for bad in ["", "Acme", "-acme", "acme corp", "acme/x", too_long.as_str()] {
        let refused = service
            .create_tenant(bad, Map::new(), &[], LimitsUpdate::default())
            .await
            .expect_err(bad);
        assert!(
            matches!(refused, ServiceError::InvalidTenantId(_)),
            "{bad:?}: {refused:?}"
        );
    }
    let again = service
        .create_tenant("acme", Map::new(), &[], LimitsUpdate::default())
        .await
        .expect_err("acme exists");
    assert!(matches!(again, ServiceError::TenantExists), "{again:?}");
    let ids: Vec<String> = service
        .list_tenants()
        .await
        .expect("tenants")
        .into_iter()
        .map(|tenant| tenant.id)
        .collect();
    assert_eq!(ids, ["acme"]);
    assert_eq!(
        service.store().count_data_keys().await.expect("data keys"),
        1,
        "refused creations wrote no data key"
    );
}

#[tokio::test]
async fn an_update_changes_what_it_names_and_null_resets_a_limit() {
    let Harness { service, _dir, .. } = harness(200).await;
    let traits = json!({"plan": "pro"}).as_object().cloned().expect("traits");
    let set = service
        .update_tenant(
            &acme(),
            TenantUpdate {
                traits: Some(traits.clone()),
                outbound_allow_cidrs: Some(vec![" 10.1.0.0/16".into(), "192.0.2.7".into()]),
                limits: LimitsUpdate {
                    max_queued_jobs: Some(Some(5)),
                    max_webhook_endpoints: Some(Some(3)),
                    ..LimitsUpdate::default()
                },
            },
        )
        .await
        .expect("update");
    assert_eq!(set.traits, traits);
    assert_eq!(set.outbound_allow_cidrs, ["10.1.0.0/16", "192.0.2.7/32"]);
    assert_eq!(set.limits.max_queued_jobs, Some(5));
    assert_eq!(set.effective_limits.max_webhook_endpoints, 3);

    // As the admin API reads a body: a field left out keeps, `null` returns to the default.
    let update: TenantUpdate = serde_json::from_value(json!({"max_queued_jobs": null})).expect("body");
    let reset = service.update_tenant(&acme(), update).await.expect("update");
    assert_eq!(reset.traits, traits, "traits left out are kept");
    assert_eq!(reset.outbound_allow_cidrs, ["10.1.0.0/16", "192.0.2.7/32"]);
    assert_eq!(reset.limits.max_queued_jobs, None);
    assert_eq!(reset.effective_limits.max_queued_jobs, 10_000, "the deployment's");
    assert_eq!(reset.limits.max_webhook_endpoints, Some(3), "left out, kept");

    let refused = service
        .update_tenant(
            &acme(),
            TenantUpdate {
                traits: Some(json!({"plugin.crm": "enabled"}).as_object().cloned().expect("traits")),
                ..TenantUpdate::default()
            },
        )
        .await
        .expect_err("plugin.* traits are the service's");
    assert!(matches!(refused, ServiceError::InvalidRequest(_)), "{refused:?}");
    let bad_cidr = TenantUpdate {
        outbound_allow_cidrs: Some(vec!["10.0.0.0/33".into()]),
        ..TenantUpdate::default()
    };
    let refused = service
        .update_tenant(&acme(), bad_cidr)
        .await
        .expect_err("no such CIDR");
    assert!(matches!(refused, ServiceError::InvalidRequest(_)), "{refused:?}");
    let kept = service.get_tenant(&acme()).await.expect("tenant");
    assert_eq!(kept.traits, traits);
    assert_eq!(kept.outbound_allow_cidrs, ["10.1.0.0/16", "192.0.2.7/32"]);

    let nobody = TenantId::parse("nobody").expect("an id");
    let missing = service
        .update_tenant(&nobody, TenantUpdate::default())
        .await
        .expect_err("no such tenant");
    assert!(matches!(missing, ServiceError::TenantNotFound), "{missing:?}");
}

#[tokio::test]
async fn a_key_authenticates_as_its_own_tenant_until_revoked() {
    let Harness {
        service,
        acme_key,
        _dir,
        ..
    } = harness(200).await;
    let globex_key = create_tenant(&service, &globex()).await;
    let second = service.create_api_key(&acme()).await.expect("another key");
    assert_ne!(second.api_key, acme_key.api_key);
    assert_eq!(service.authenticate(&acme_key.api_key).await.expect("acme"), acme());
    assert_eq!(service.authenticate(&second.api_key).await.expect("acme"), acme());
    assert_eq!(
        service.authenticate(&globex_key.api_key).await.expect("globex"),
        globex()
    );

    // A key's secret with another key's id, or mangled ones, name nobody.
    let (acme_id, _) = acme_key.api_key.split_once('.').expect("itk_<id>.<secret>");
    let (_, globex_secret) = globex_key.api_key.split_once('.').expect("itk_<id>.<secret>");
    let spliced = format!("{acme_id}.{globex_secret}");
    for malformed in [
        "",
        "itk_",
        "itk_nodot",
        "Bearer itk_x.y",
        acme_key.api_key.trim_start_matches("itk_"),
        &acme_key.api_key[..acme_key.api_key.len() - 1],
        spliced.as_str(),
    ] {
        let refused = service.authenticate(malformed).await.expect_err(malformed);
        assert!(
            matches!(refused, ServiceError::Unauthorized),
            "{malformed:?}: {refused:?}"
        );
    }

    // Another tenant cannot revoke acme's key.
    let first_id = KeyId::parse(&acme_key.key_id).expect("a key id");
    let foreign = service
        .revoke_api_key(&globex(), &first_id)
        .await
        .expect_err("not globex's key");
    assert!(matches!(foreign, ServiceError::ApiKeyNotFound), "{foreign:?}");
    assert_eq!(
        service.authenticate(&acme_key.api_key).await.expect("still acme"),
        acme()
    );

    service.revoke_api_key(&acme(), &first_id).await.expect("revoke");
    let revoked = service.authenticate(&acme_key.api_key).await.expect_err("revoked");
    assert!(matches!(revoked, ServiceError::Unauthorized), "{revoked:?}");
    assert!(service
        .store()
        .get_api_key(&acme_key.key_id)
        .await
        .expect("read")
        .is_none());
    assert_eq!(
        service.authenticate(&second.api_key).await.expect("the other key"),
        acme()
    );
    let twice = service.revoke_api_key(&acme(), &first_id).await.expect_err("gone");
    assert!(matches!(twice, ServiceError::ApiKeyNotFound), "{twice:?}");
}

#[tokio::test]
async fn a_deleted_tenant_leaves_nothing_behind() {
    let Harness {
        service,
        acme_key,
        _dir,
        ..
    } = harness(200).await;
    let globex_key = create_tenant(&service, &globex()).await;
    for tenant in [acme(), globex()] {
        service
            .install(&tenant, &crm(), config("https://one.example"))
            .await
            .expect("install");
    }
    let allow_loopback = TenantUpdate {
        outbound_allow_cidrs: Some(vec!["127.0.0.1".into()]),
        ..TenantUpdate::default()
    };
    service.update_tenant(&acme(), allow_loopback).await.expect("update");
    let endpoint = service
        .create_webhook_endpoint(
            &acme(),
            WebhookEndpointFields {
                url: Some("http://127.0.0.1:9/hook".into()),
                ..WebhookEndpointFields::default()
            },
        )
        .await
        .expect("endpoint");
    let job = service
        .call_tool_async(&acme(), &find_things(), json!({"query": "printers"}))
        .await
        .expect("queued");

    service.delete_tenant(&acme()).await.expect("delete");
    let gone = service.get_tenant(&acme()).await.expect_err("deleted");
    assert!(matches!(gone, ServiceError::TenantNotFound), "{gone:?}");
    let refused = service.authenticate(&acme_key.api_key).await.expect_err("its key went");
    assert!(matches!(refused, ServiceError::Unauthorized), "{refused:?}");
    let store = service.store();
    assert!(store.get_api_key(&acme_key.key_id).await.expect("read").is_none());
    assert!(store.list_installations("acme").await.expect("read").is_empty());
    assert!(store
        .webhook_endpoint("acme", &endpoint.endpoint.id)
        .await
        .expect("read")
        .is_none());
    assert!(store.get_job("acme", &job.id).await.expect("read").is_none());
    assert_eq!(store.count_data_keys().await.expect("data keys"), 1, "globex's alone");
    let twice = service.delete_tenant(&acme()).await.expect_err("deleted already");
    assert!(matches!(twice, ServiceError::TenantNotFound), "{twice:?}");

    // A tenant created again under the id starts empty.
    create_tenant(&service, &acme()).await;
    let details = service.plugin_details(&acme(), &crm()).await.expect("details");
    assert_eq!(details.summary.state, PluginState::NotInstalled);
    assert!(event_types(&service, &acme()).await.is_empty());
    let (endpoints, _) = service
        .list_webhook_endpoints(&acme(), None, 10)
        .await
        .expect("endpoints");
    assert!(endpoints.is_empty());
    assert!(service.jobs(&acme(), None, None, 10).await.expect("jobs").is_empty());

    // globex keeps everything.
    assert_eq!(
        service.authenticate(&globex_key.api_key).await.expect("globex"),
        globex()
    );
    let kept = service.plugin_details(&globex(), &crm()).await.expect("details");
    assert_eq!(kept.summary.state, PluginState::Enabled);
    assert_eq!(event_types(&service, &globex()).await, ["plugin.installed"]);
}
