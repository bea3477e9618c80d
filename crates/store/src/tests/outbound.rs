//! Outbound webhook storage: the fan-out's compare-and-set cursor, exclusive leases, and the
//! endpoint health an attempt records.

use serde_json::json;

use super::*;

fn endpoint(id: &str, tenant: &str) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        tenant_id: tenant.into(),
        url: "https://example.com/hook".into(),
        event_types: vec!["jira.*".into()],
        description: "d".into(),
        enabled: true,
        disabled_reason: None,
        secret: vec![1, 2, 3],
        previous_secret: None,
        previous_secret_expires_at: None,
        failing_since: None,
        start_seq: -1,
        created_at: 1,
        updated_at: 1,
        rate_limit_per_sec: None,
    }
}

async fn append(store: &Store, tenant: &str, n: usize) -> i64 {
    let event = NewEvent {
        id: format!("evt_out_{tenant}_{n}"),
        tenant_id: tenant.into(),
        plugin: None,
        event_type: "order.created".into(),
        occurred_at: 1_000,
        data: EventData::Json(json!({"n": n})),
        idempotency_key: None,
    };
    store.append_tenant_event(&event).await.unwrap();
    store.last_event_seq().await.unwrap()
}

fn delivery(endpoint: &str, seq: i64) -> NewDelivery {
    NewDelivery {
        tenant_id: "acme".into(),
        endpoint_id: endpoint.into(),
        event_seq: seq,
        next_attempt_at: 0,
    }
}

fn attempt(delivery_id: i64, endpoint: &str, succeeded: bool) -> AttemptRecord {
    AttemptRecord {
        delivery_id,
        endpoint_id: endpoint.into(),
        event_id: "evt".into(),
        attempt: 1,
        attempted_at: 5,
        status_code: Some(if succeeded { 200 } else { 500 }),
        error: None,
        latency_ms: 3,
        response_body: "ok".into(),
        succeeded,
    }
}

on_both_backends!(
    outbound_storage_on_sqlite,
    outbound_storage_on_postgres,
    "store_outbound",
    outbound_storage
);

async fn outbound_storage(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let before = append(store, "acme", 0).await;
    let stored = store
        .insert_webhook_endpoint(&endpoint("ep_a", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.start_seq, before, "an endpoint starts at the log's end");
    store
        .insert_webhook_endpoint(&endpoint("ep_b", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    assert!(store.webhook_endpoint("other", "ep_a").await.unwrap().is_none());

    // The fan-out moves the cursor only from where it was read.
    let seqs = [
        append(store, "acme", 1).await,
        append(store, "acme", 2).await,
        append(store, "acme", 3).await,
    ];
    let first: Vec<NewDelivery> = seqs.iter().map(|s| delivery("ep_a", *s)).collect();
    assert!(store
        .record_fanout("outbound", (0, ""), (seqs[2], ""), &first)
        .await
        .unwrap());
    assert!(
        !store
            .record_fanout("outbound", (0, ""), (seqs[2], ""), &first)
            .await
            .unwrap(),
        "a second fan-out from the same cursor writes nothing"
    );
    assert_eq!(store.event_cursor("outbound").await.unwrap(), seqs[2]);
    store.insert_deliveries(&[delivery("ep_b", seqs[0])]).await.unwrap();

    // At most `per_endpoint` of one endpoint; a leased delivery is not claimed again.
    let ids = |claimed: Vec<(i64, String)>| claimed.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    let claimed = ids(store.claim_deliveries(10, 1_000, "one", 2, 2, 10, &[]).await.unwrap());
    assert_eq!(claimed.len(), 3, "two of ep_a, one of ep_b: {claimed:?}");
    let again = ids(store.claim_deliveries(10, 1_000, "two", 2, 2, 10, &[]).await.unwrap());
    assert_eq!(again.len(), 1, "only ep_a's third is left: {again:?}");
    assert!(claimed.iter().all(|id| !again.contains(id)));
    assert!(store
        .claim_deliveries(10, 1_000, "three", 5, 2, 10, &[])
        .await
        .unwrap()
        .is_empty());
    // A lapsed lease can be claimed again; a busy endpoint gets only the room it has left.
    let excluded = ids(store
        .claim_deliveries(2_000, 3_000, "four", 5, 2, 10, &[("ep_a".to_owned(), 0)])
        .await
        .unwrap());
    assert_eq!(excluded.len(), 1);
    let room_for_one = store
        .claim_deliveries(2_000, 3_000, "four-b", 5, 2, 10, &[("ep_a".to_owned(), 1)])
        .await
        .unwrap();
    assert_eq!(room_for_one.len(), 1);
    assert_eq!(room_for_one[0].1, "ep_a");
    let job = store.delivery_job(excluded[0]).await.unwrap().unwrap();
    assert_eq!(job.endpoint.id, "ep_b");
    assert_eq!(job.event.seq, seqs[0]);

    // The holder of a stale lease cannot move the delivery on.
    let stale = attempt(excluded[0], "ep_b", true);
    store
        .record_attempt("one", &stale, DeliveryNext::Succeeded, &EndpointHealth::Healthy)
        .await
        .unwrap();
    let failing = EndpointHealth::Failing {
        disable_after_secs: 3600,
    };
    let failed = attempt(excluded[0], "ep_b", false);
    let disabled = store
        .record_attempt("four", &failed, DeliveryNext::RetryAt(50_000), &failing)
        .await
        .unwrap();
    assert!(!disabled, "a fresh failure streak does not disable");
    let ep_b = store.webhook_endpoint("acme", "ep_b").await.unwrap().unwrap();
    assert!(ep_b.failing_since.is_some() && ep_b.enabled);
    let attempts = store.webhook_attempts("acme", "ep_b", None, 10).await.unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        attempts[0].delivery_status, "pending",
        "the lease holder's outcome counts"
    );
    assert!(attempts[0].id > attempts[1].id, "newest first");
    assert!(store
        .webhook_attempts("other", "ep_b", None, 10)
        .await
        .unwrap()
        .is_empty());

    // A streak older than the limit disables; so does 410 Gone.
    sqlx::query("UPDATE webhook_endpoints SET failing_since = 1 WHERE id = 'ep_b'")
        .execute(store.pool())
        .await
        .unwrap();
    let claimed = ids(store
        .claim_deliveries(60_000, 70_000, "five", 5, 2, 10, &[])
        .await
        .unwrap());
    let on_b: Vec<i64> = claimed.into_iter().filter(|id| *id == excluded[0]).collect();
    assert_eq!(on_b.len(), 1);
    assert!(store
        .record_attempt("five", &failed, DeliveryNext::Failed, &failing)
        .await
        .unwrap());
    let ep_b = store.webhook_endpoint("acme", "ep_b").await.unwrap().unwrap();
    assert!(!ep_b.enabled && ep_b.disabled_reason.is_some());
    let gone = EndpointHealth::Gone("410".into());
    assert!(store
        .record_attempt(
            "x",
            &attempt(claimed_first(store).await, "ep_a", false),
            DeliveryNext::Failed,
            &gone
        )
        .await
        .unwrap());
    assert!(
        store
            .claim_deliveries(i64::MAX - 1, i64::MAX, "six", 5, 2, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "disabled endpoints get nothing"
    );

    // Re-enabling clears the reason and the streak.
    let settings = WebhookEndpointSettings {
        url: ep_b.url.clone(),
        event_types: vec![],
        description: String::new(),
        enabled: true,
        rate_limit_per_sec: None,
    };
    assert!(store.update_webhook_endpoint("acme", "ep_b", &settings).await.unwrap());
    let ep_b = store.webhook_endpoint("acme", "ep_b").await.unwrap().unwrap();
    assert!(ep_b.enabled && ep_b.disabled_reason.is_none() && ep_b.failing_since.is_none());
    assert!(!store.update_webhook_endpoint("other", "ep_b", &settings).await.unwrap());

    // Rotation keeps the replaced secret; deleting removes deliveries and attempts.
    assert!(store
        .rotate_webhook_endpoint_secret("acme", "ep_b", &[9], 77)
        .await
        .unwrap());
    let ep_b = store.webhook_endpoint("acme", "ep_b").await.unwrap().unwrap();
    assert_eq!(
        (ep_b.secret, ep_b.previous_secret, ep_b.previous_secret_expires_at),
        (vec![9], Some(vec![1, 2, 3]), Some(77))
    );
    assert!(!store.delete_webhook_endpoint("other", "ep_b").await.unwrap());
    assert!(store.delete_webhook_endpoint("acme", "ep_b").await.unwrap());
    assert!(store
        .webhook_attempts("acme", "ep_b", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .tenant_event_types_since("acme", 1_000, seqs[0], 10)
            .await
            .unwrap(),
        [
            (seqs[1], "order.created".to_owned()),
            (seqs[2], "order.created".to_owned())
        ]
    );
    assert!(store
        .tenant_event_types_since("acme", 1_001, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .tenant_event_types_since("other", 0, 0, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Any delivery of ep_a, leased for the test.
async fn claimed_first(store: &Store) -> i64 {
    let row = sqlx::query("SELECT id FROM webhook_deliveries WHERE endpoint_id = 'ep_a' ORDER BY id LIMIT 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let id: i64 = sqlx::Row::get(&row, 0);
    sqlx::query("UPDATE webhook_deliveries SET lease_token = 'x' WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    id
}

on_both_backends!(
    multi_thread,
    concurrent_claims_lease_each_delivery_once_on_sqlite,
    concurrent_claims_lease_each_delivery_once_on_postgres,
    "store_outbound_claims",
    concurrent_claims
);

/// Ten dispatchers (as on ten replicas) claim at once: every delivery goes to exactly one.
async fn concurrent_claims(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_a", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    let mut deliveries = Vec::new();
    for n in 0..100 {
        deliveries.push(delivery("ep_a", append(store, "acme", n).await));
    }
    store.insert_deliveries(&deliveries).await.unwrap();
    let claims = (0..10).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .claim_deliveries(10, 1_000, &format!("replica-{n}"), 100, 2, 100, &[])
                .await
                .unwrap()
        })
    });
    let mut claimed = Vec::new();
    for claim in claims.collect::<Vec<_>>() {
        claimed.extend(claim.await.unwrap().into_iter().map(|(id, _)| id));
    }
    claimed.sort();
    let total = claimed.len();
    claimed.dedup();
    assert_eq!(claimed.len(), total, "a delivery was leased twice");
    assert_eq!(total, 100);
}

/// Leases in a SQLite file are freed when a store opens it alone (their holders died), and kept
/// while the store that took them is alive beside the new one.
#[tokio::test]
async fn leases_are_freed_only_when_their_holders_are_gone() {
    let (dir, store) = sqlite_store().await;
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_a", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    let seq = append(&store, "acme", 1).await;
    store.insert_deliveries(&[delivery("ep_a", seq)]).await.unwrap();
    let far = i64::MAX / 2;
    assert_eq!(
        store
            .claim_deliveries(10, far, "first", 5, 2, 10, &[])
            .await
            .unwrap()
            .len(),
        1
    );

    let beside = Store::connect(&url).await.unwrap();
    assert!(
        beside
            .claim_deliveries(20, far, "beside", 5, 2, 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "a store opened beside a live one leaves its leases alone"
    );
    drop(beside);
    drop(store);

    let restarted = Store::connect(&url).await.unwrap();
    let claimed = restarted
        .claim_deliveries(20, far, "restarted", 5, 2, 10, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "a store alone on the file frees what dead runs held");
}

/// Bookkeeping on the SQLite writer thread shares transactions, each task in a savepoint: a task
/// that fails leaves no write behind, and the task beside it in the same transaction still commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_writer_task_undoes_only_its_own_writes() {
    let (_dir, store) = sqlite_store().await;
    let mut shared = 0;
    for n in 0..50 {
        let before = store.webhook_commits();
        let write = |name: String, seq: i64, fail: bool| {
            store.group_commit().run_on_writer(move |connection| {
                connection.execute(
                    "INSERT INTO event_cursors (name, seq) VALUES (?1, ?2)",
                    rusqlite::params![name, seq],
                )?;
                if fail {
                    return Err(StoreError::Conflict);
                }
                Ok(seq)
            })
        };
        let (failed, kept) = tokio::join!(
            write(format!("undone-{n}"), 1, true),
            write(format!("kept-{n}"), 2, false)
        );
        assert!(matches!(failed, Some(Err(StoreError::Conflict))), "{failed:?}");
        assert!(matches!(kept, Some(Ok(2))), "{kept:?}");
        assert_eq!(
            store.event_cursor(&format!("undone-{n}")).await.unwrap(),
            0,
            "the failed task's write is undone"
        );
        assert_eq!(store.event_cursor(&format!("kept-{n}")).await.unwrap(), 2);
        if store.webhook_commits() == before + 1 {
            shared += 1;
        }
    }
    assert!(shared > 0, "no two tasks ever shared a transaction");
}

on_both_backends!(
    renewed_leases_hold_until_their_new_end_on_sqlite,
    renewed_leases_hold_until_their_new_end_on_postgres,
    "store_lease_renewal",
    renewed_leases
);

/// A dispatcher renews the leases of what it still holds; a delivery another claim leased, or
/// one already finished, is not touched.
async fn renewed_leases(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_a", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_b", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    let seq = append(store, "acme", 1).await;
    store
        .insert_deliveries(&[delivery("ep_a", seq), delivery("ep_b", seq)])
        .await
        .unwrap();
    let held = store.claim_deliveries(10, 1_000, "held", 1, 2, 1, &[]).await.unwrap();
    let other = store.claim_deliveries(10, 1_000, "other", 1, 2, 1, &[]).await.unwrap();
    assert_eq!((held.len(), other.len()), (1, 1));

    let both = [held[0].0, other[0].0];
    let renewed = store.renew_delivery_leases("held", &both, 5_000).await.unwrap();
    assert_eq!(renewed, 1, "only the deliveries that claim still holds");
    let after_old_end = store
        .claim_deliveries(2_000, 3_000, "late", 5, 2, 10, &[])
        .await
        .unwrap();
    assert_eq!(
        after_old_end.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![other[0].0],
        "the renewed lease still holds; the other one ran out"
    );
    let after_new_end = store
        .claim_deliveries(6_000, 7_000, "later", 5, 2, 10, &[])
        .await
        .unwrap();
    assert!(
        after_new_end.iter().any(|(id, _)| *id == held[0].0),
        "a lease no longer renewed runs out: {after_new_end:?}"
    );
}

on_both_backends!(
    event_routes_pair_events_with_enabled_endpoints_on_sqlite,
    event_routes_pair_events_with_enabled_endpoints_on_postgres,
    "store_event_routes",
    event_routes
);

async fn event_routes(store: &Store) {
    for id in ["acme", "beta", "other"] {
        let (t, k, d) = tenant(id);
        store.create_tenant(&t, &k, &d).await.unwrap();
    }
    let before = append(store, "acme", 0).await;
    store
        .insert_webhook_endpoint(&endpoint("ep_a", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    let every_type = WebhookEndpoint {
        event_types: vec!["*".into(), "order.*".into()],
        ..endpoint("ep_b", "acme")
    };
    store.insert_webhook_endpoint(&every_type, 100).await.unwrap().unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_c", "beta"), 100)
        .await
        .unwrap()
        .unwrap();
    let disabled = WebhookEndpointSettings {
        url: "https://example.com/hook".into(),
        event_types: vec![],
        description: "d".into(),
        enabled: false,
        rate_limit_per_sec: None,
    };
    assert!(store.update_webhook_endpoint("beta", "ep_c", &disabled).await.unwrap());
    let acme_first = append(store, "acme", 1).await;
    append(store, "other", 2).await;
    append(store, "beta", 3).await;
    let acme_last = append(store, "acme", 4).await;

    let routes = store.event_routes((0, ""), acme_last, 100).await.unwrap();
    let pairs: Vec<(i64, &str)> = routes.iter().map(|r| (r.seq, r.endpoint_id.as_str())).collect();
    assert_eq!(
        pairs,
        [
            (acme_first, "ep_a"),
            (acme_first, "ep_b"),
            (acme_last, "ep_a"),
            (acme_last, "ep_b")
        ],
        "only events after an endpoint's start, of tenants with enabled endpoints (event {before} came first)"
    );
    let route = &routes[1];
    assert_eq!(route.tenant_id, "acme");
    assert_eq!(route.event_type, "order.created");
    assert_eq!(route.event_types, ["*", "order.*"]);
    assert_eq!(routes[0].event_types, ["jira.*"]);

    // The span is (after, upto].
    assert!(store
        .event_routes((acme_first, ""), acme_last - 1, 100)
        .await
        .unwrap()
        .is_empty());
    let last: Vec<i64> = store
        .event_routes((acme_first, ""), acme_last, 100)
        .await
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(last, [acme_last, acme_last]);
}

on_both_backends!(
    multi_thread,
    concurrent_creates_never_pass_the_endpoint_quota_on_sqlite,
    concurrent_creates_never_pass_the_endpoint_quota_on_postgres,
    "store_endpoint_quota",
    endpoint_quota
);

/// Twenty creates of one tenant at once against a quota of five: five are stored, whatever the
/// interleaving; another tenant's endpoints do not count.
async fn endpoint_quota(store: &Store) {
    for id in ["acme", "beta"] {
        let (t, k, d) = tenant(id);
        store.create_tenant(&t, &k, &d).await.unwrap();
    }
    store
        .insert_webhook_endpoint(&endpoint("ep_beta", "beta"), 5)
        .await
        .unwrap()
        .unwrap();
    let creates = (0..20).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .insert_webhook_endpoint(&endpoint(&format!("ep_{n:02}"), "acme"), 5)
                .await
                .unwrap()
        })
    });
    let mut stored = 0;
    for create in creates.collect::<Vec<_>>() {
        stored += usize::from(create.await.unwrap().is_some());
    }
    assert_eq!(stored, 5);
    let listed = store.webhook_endpoints_page("acme", None, 100).await.unwrap();
    assert_eq!(listed.len(), 5);
    assert!(store
        .insert_webhook_endpoint(&endpoint("ep_late", "acme"), 5)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .insert_webhook_endpoint(&endpoint("ep_raised", "acme"), 6)
        .await
        .unwrap()
        .is_some());
}

on_both_backends!(
    endpoint_pages_follow_creation_then_id_on_sqlite,
    endpoint_pages_follow_creation_then_id_on_postgres,
    "store_endpoint_pages",
    endpoint_pages
);

async fn endpoint_pages(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    // Two created in the same second: the id breaks the tie.
    for (id, created_at) in [("ep_c", 5), ("ep_a", 7), ("ep_b", 5), ("ep_d", 9)] {
        let endpoint = WebhookEndpoint {
            created_at,
            ..endpoint(id, "acme")
        };
        store.insert_webhook_endpoint(&endpoint, 100).await.unwrap().unwrap();
    }
    let ids = |page: Vec<WebhookEndpoint>| page.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let first = ids(store.webhook_endpoints_page("acme", None, 2).await.unwrap());
    assert_eq!(first, ["ep_b", "ep_c"]);
    let second = ids(store
        .webhook_endpoints_page("acme", Some((5, "ep_c")), 2)
        .await
        .unwrap());
    assert_eq!(second, ["ep_a", "ep_d"]);
    assert!(store
        .webhook_endpoints_page("acme", Some((9, "ep_d")), 2)
        .await
        .unwrap()
        .is_empty());
    assert!(store.webhook_endpoints_page("other", None, 2).await.unwrap().is_empty());
}

on_both_backends!(
    the_fanout_cursor_can_stop_inside_an_event_on_sqlite,
    the_fanout_cursor_can_stop_inside_an_event_on_postgres,
    "store_fanout_inside_event",
    fanout_inside_event
);

/// An event with many endpoints is fanned out over several transactions: the cursor keeps the
/// last endpoint written, and routes read on after it.
async fn fanout_inside_event(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    for id in ["ep_a", "ep_b", "ep_c"] {
        store
            .insert_webhook_endpoint(&endpoint(id, "acme"), 100)
            .await
            .unwrap()
            .unwrap();
    }
    let (first, second) = (append(store, "acme", 1).await, append(store, "acme", 2).await);
    let pairs = |routes: Vec<EventRoute>| routes.into_iter().map(|r| (r.seq, r.endpoint_id)).collect::<Vec<_>>();
    let page = pairs(store.event_routes((first - 1, ""), second, 2).await.unwrap());
    assert_eq!(page, [(first, "ep_a".into()), (first, "ep_b".into())]);
    let page = pairs(store.event_routes((first - 1, "ep_b"), second, 2).await.unwrap());
    assert_eq!(page, [(first, "ep_c".into()), (second, "ep_a".into())]);
    let page = pairs(store.event_routes((first, "ep_a"), second, 5).await.unwrap());
    assert_eq!(page, [(second, "ep_b".into()), (second, "ep_c".into())]);

    assert_eq!(store.fanout_cursor("outbound").await.unwrap(), (0, String::new()));
    let to = (first - 1, "ep_b");
    let written = [delivery("ep_a", first), delivery("ep_b", first)];
    assert!(store.record_fanout("outbound", (0, ""), to, &written).await.unwrap());
    assert_eq!(
        store.fanout_cursor("outbound").await.unwrap(),
        (first - 1, "ep_b".into())
    );
    assert!(
        !store
            .record_fanout("outbound", (first - 1, ""), (second, ""), &[])
            .await
            .unwrap(),
        "the cursor is compared with its endpoint too"
    );
    assert!(store.record_fanout("outbound", to, (second, ""), &[]).await.unwrap());
    assert_eq!(store.fanout_cursor("outbound").await.unwrap(), (second, String::new()));
}

on_both_backends!(
    rate_limited_endpoints_are_claimed_and_paced_by_their_rate_on_sqlite,
    rate_limited_endpoints_are_claimed_and_paced_by_their_rate_on_postgres,
    "store_paced_endpoints",
    paced_endpoints
);

/// A claim takes only a few seconds' worth of a rate-limited endpoint's deliveries, and send
/// slots are reserved one after another from one row, whoever reserves them.
async fn paced_endpoints(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    let paced = WebhookEndpoint {
        rate_limit_per_sec: Some(1),
        ..endpoint("ep_paced", "acme")
    };
    let stored = store.insert_webhook_endpoint(&paced, 100).await.unwrap().unwrap();
    assert_eq!(stored.rate_limit_per_sec, Some(1));
    store
        .insert_webhook_endpoint(&endpoint("ep_free", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    let mut deliveries = Vec::new();
    for n in 0..10 {
        let seq = append(store, "acme", n).await;
        deliveries.extend([delivery("ep_paced", seq), delivery("ep_free", seq)]);
    }
    store.insert_deliveries(&deliveries).await.unwrap();

    let claimed = store.claim_deliveries(10, 1_000, "one", 5, 2, 100, &[]).await.unwrap();
    let count = |endpoint: &str| claimed.iter().filter(|(_, e)| e == endpoint).count();
    assert_eq!((count("ep_paced"), count("ep_free")), (2, 5), "{claimed:?}");

    // Slots follow one another; once they are in the past, reserving starts from now.
    assert_eq!(
        store.reserve_send_slots("ep_paced", 2, 500, 10_000).await.unwrap(),
        10_000
    );
    assert_eq!(
        store.reserve_send_slots("ep_paced", 3, 500, 10_100).await.unwrap(),
        11_000
    );
    assert_eq!(
        store.reserve_send_slots("ep_paced", 1, 500, 99_000).await.unwrap(),
        99_000
    );
    assert_eq!(store.reserve_send_slots("ep_gone", 1, 500, 5).await.unwrap(), 5);

    // The limit is changed like any other setting; `None` lifts it.
    let mut settings = WebhookEndpointSettings {
        url: stored.url.clone(),
        event_types: vec![],
        description: String::new(),
        enabled: true,
        rate_limit_per_sec: Some(7),
    };
    assert!(store
        .update_webhook_endpoint("acme", "ep_paced", &settings)
        .await
        .unwrap());
    let shown = store.webhook_endpoint("acme", "ep_paced").await.unwrap().unwrap();
    assert_eq!(shown.rate_limit_per_sec, Some(7));
    settings.rate_limit_per_sec = None;
    assert!(store
        .update_webhook_endpoint("acme", "ep_paced", &settings)
        .await
        .unwrap());
    let shown = store.webhook_endpoint("acme", "ep_paced").await.unwrap().unwrap();
    assert_eq!(shown.rate_limit_per_sec, None);
}

on_both_backends!(
    one_replay_at_a_time_per_endpoint_on_sqlite,
    one_replay_at_a_time_per_endpoint_on_postgres,
    "store_replay_marks",
    replay_marks
);

/// A replay marks its endpoint while it is written: a second one is refused until the first ends
/// or its mark lapses, and a lapsed replay ending late leaves the next one's mark alone.
async fn replay_marks(store: &Store) {
    let (t, k, d) = tenant("acme");
    store.create_tenant(&t, &k, &d).await.unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_a", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    store
        .insert_webhook_endpoint(&endpoint("ep_b", "acme"), 100)
        .await
        .unwrap()
        .unwrap();
    assert!(store.begin_replay("acme", "ep_a", 1_000, 5_000).await.unwrap());
    assert!(
        !store.begin_replay("acme", "ep_a", 2_000, 6_000).await.unwrap(),
        "one at a time"
    );
    assert!(
        store.begin_replay("acme", "ep_b", 2_000, 6_000).await.unwrap(),
        "per endpoint"
    );
    assert!(
        !store.begin_replay("other", "ep_a", 9_000, 9_500).await.unwrap(),
        "another tenant's"
    );
    store.end_replay("ep_a", 5_000).await.unwrap();
    assert!(
        store.begin_replay("acme", "ep_a", 3_000, 7_000).await.unwrap(),
        "free once ended"
    );
    // Lapsed: a new replay may start; the old one ending does not clear the new mark.
    assert!(store.begin_replay("acme", "ep_a", 7_000, 11_000).await.unwrap());
    store.end_replay("ep_a", 7_000).await.unwrap();
    assert!(!store.begin_replay("acme", "ep_a", 8_000, 12_000).await.unwrap());
}
