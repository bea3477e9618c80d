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

#[tokio::test]
async fn plain_http_to_a_name_is_pinned_to_the_checked_address() {
    let server = MockServer::start().await;
    let port = server.address().port();
    Mock::given(method("GET"))
        .and(path("/pinned"))
        .and(wiremock::matchers::header("host", format!("localhost:{port}").as_str()))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    // localhost may also resolve to ::1, which this allowlist does not cover.
    let client = client("127.0.0.1/32, ::1/128");
    let response = client
        .send(get(&format!("http://localhost:{port}/pinned")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn refusals_do_not_reveal_what_a_name_resolves_to() {
    let client = client("");
    // Only names in the hosts file are used here, so no DNS query leaves the machine.
    let by_name = client.check_destination("https://localhost/").await;
    let internal = client.check_destination("https://127.0.0.9/").await;
    match (by_name, internal) {
        (Err(HttpError::Refused(a)), Err(HttpError::Refused(b))) => assert_eq!(a, b),
        other => panic!("expected two identical refusals, got {other:?}"),
    }
}
