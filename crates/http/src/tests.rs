//! Requests go only to loopback: the allowed mock on 127.0.0.1, refusals to 127.0.0.2 and ::1.
use std::time::Duration;

use integrations_core::{HttpClient, HttpError};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;

fn client(allow: &str) -> GuardedHttpClient {
    GuardedHttpClient::new(OutboundPolicy::from_cidr_list(allow).unwrap(), Duration::from_secs(5)).unwrap()
}

fn get(url: &str) -> HttpRequest {
    http::Request::get(url).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn reaches_an_allowlisted_address() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200).set_body_string("hi"))
        .expect(1)
        .mount(&server)
        .await;
    let response = client("127.0.0.1/32")
        .send(get(&format!("{}/ok", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), b"hi");
}

#[tokio::test]
async fn refuses_loopback_outside_the_allowlist_without_sending() {
    let server = MockServer::start().await;
    let port = server.address().port();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client("127.0.0.1/32");
    for url in [
        format!("https://127.0.0.2:{port}/x"),
        format!("http://127.0.0.2:{port}/x"),
        format!("https://[::1]:{port}/x"),
    ] {
        assert!(
            matches!(client.send(get(&url)).await, Err(HttpError::Refused(_))),
            "{url}"
        );
        assert!(
            matches!(client.check_destination(&url).await, Err(HttpError::Refused(_))),
            "{url}"
        );
    }
}

#[tokio::test]
async fn refuses_names_resolving_to_internal_addresses() {
    // "localhost" resolves to loopback; without an allowlist it must be refused before connecting.
    let client = client("");
    assert!(matches!(
        client.send(get("https://localhost:9/x")).await,
        Err(HttpError::Refused(_))
    ));
}

#[tokio::test]
async fn does_not_follow_redirects() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/from"))
        .respond_with(ResponseTemplate::new(302).insert_header("location", "http://127.0.0.2:1/to"))
        .mount(&server)
        .await;
    let response = client("127.0.0.1/32")
        .send(get(&format!("{}/from", server.uri())))
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn refuses_other_schemes_and_embedded_credentials() {
    let client = client("127.0.0.1/32");
    assert!(matches!(
        client.check_destination("ftp://127.0.0.1/").await,
        Err(HttpError::Refused(_))
    ));
    assert!(matches!(
        client.check_destination("http://user:pw@127.0.0.1/").await,
        Err(HttpError::Refused(_))
    ));
}

#[test]
fn pinning_rewrites_the_address_and_keeps_the_host_header() {
    let url = Url::parse("http://jira.internal:8080/rest?q=1").unwrap();
    let pinned = pin_to_address(get(url.as_str()), &url, "10.1.2.3".parse().unwrap()).unwrap();
    assert_eq!(pinned.uri().to_string(), "http://10.1.2.3:8080/rest?q=1");
    assert_eq!(pinned.headers()["host"], "jira.internal:8080");
    let url = Url::parse("http://jira.internal/x").unwrap();
    let pinned = pin_to_address(get(url.as_str()), &url, "fd00::1".parse().unwrap()).unwrap();
    assert_eq!(pinned.uri().to_string(), "http://[fd00::1]/x");
    assert_eq!(pinned.headers()["host"], "jira.internal");
}

#[tokio::test]
async fn plain_http_to_a_name_reaches_a_checked_address() {
    let server = MockServer::start().await;
    let port = server.address().port();
    Mock::given(method("GET"))
        .and(path("/pinned"))
        .and(wiremock::matchers::header("host", format!("localhost:{port}").as_str()))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // Where localhost also names ::1 (nobody listens there), the next checked address is tried.
    let client = client("127.0.0.1/32, ::1/128");
    let response = client
        .send(get(&format!("http://localhost:{port}/pinned")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_connect_time_resolver_refuses_internal_addresses() {
    // The resolver is what reqwest asks at connect time; it must refuse on its own, whatever
    // was checked before.
    let resolver = GuardedResolver {
        policy: Arc::new(OutboundPolicy::default()),
    };
    let refused = resolver.resolve("localhost".parse().unwrap()).await;
    let error = refused.err().expect("refused");
    assert_eq!(
        error.to_string(),
        format!("destination refused: {}", policy::NOT_ALLOWED)
    );
    let allowing = GuardedResolver {
        policy: Arc::new(OutboundPolicy::from_cidr_list("127.0.0.0/8, ::1/128").unwrap()),
    };
    assert!(allowing.resolve("localhost".parse().unwrap()).await.is_ok());
}

#[tokio::test]
async fn refusals_do_not_reveal_what_a_name_resolves_to() {
    // Only names in the hosts file are used here, so no DNS query leaves the machine; an
    // unresolvable name answers with the same constant (see `resolve`).
    let client = client("");
    for url in ["https://localhost/", "https://127.0.0.9/", "https://[fd00::1]/"] {
        match client.check_destination(url).await {
            Err(HttpError::Refused(message)) => assert_eq!(message, policy::NOT_ALLOWED, "{url}"),
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn send_truncating_keeps_the_status_and_the_start_of_a_long_body() {
    let server = MockServer::start().await;
    let long = "x".repeat(100_000);
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(503).set_body_string(long.clone()))
        .mount(&server)
        .await;
    let request = http::Request::post(format!("{}/hook", server.uri()))
        .body(Vec::new())
        .unwrap();
    let client = client("127.0.0.1/32");
    let response = client.send_truncating(request, 4096).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.body(), &long.as_bytes()[..4096]);
    let request = http::Request::post(format!("{}/hook", server.uri()))
        .body(Vec::new())
        .unwrap();
    assert!(matches!(
        client.send_limited(request, 4096).await,
        Err(HttpError::BodyTooLarge(4096))
    ));
}
