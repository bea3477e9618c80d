//! The Microsoft identity platform and Graph as the Teams and SharePoint tests need them: a token
//! endpoint on wiremock that answers only the exact form the documentation gives, and Graph's
//! change-notification deliveries.

use std::collections::BTreeMap;

use axum::body::Body;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

pub const TENANT_ID: &str = "84bd8158-6d4d-4958-8b9f-9d6445542f95";
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const CLIENT_SECRET: &str = "app-secret-value";
pub const CLIENT_STATE: &str = "client-state-s3cret";
pub const APP_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Matches a form body holding exactly these fields (in any order), each once.
pub struct FormExactly(BTreeMap<String, String>);

impl FormExactly {
    pub fn new(fields: &[(&str, &str)]) -> Self {
        Self(fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }
}

impl Match for FormExactly {
    fn matches(&self, request: &Request) -> bool {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&request.body).into_owned().collect();
        let fields: BTreeMap<String, String> = pairs.iter().cloned().collect();
        pairs.len() == fields.len() && fields == self.0
    }
}

/// The client-credentials form for the test app, as the identity platform documents it.
pub fn app_form(client_secret: &str) -> FormExactly {
    FormExactly::new(&[
        ("client_id", CLIENT_ID),
        ("client_secret", client_secret),
        ("scope", APP_SCOPE),
        ("grant_type", "client_credentials"),
    ])
}

/// The refresh-token form for the test app.
pub fn refresh_form(scope: &str, refresh_token: &str) -> FormExactly {
    FormExactly::new(&[
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
        ("scope", scope),
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ])
}

/// A token response as the identity platform sends it.
pub fn token_answer(access_token: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": access_token}),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token` with exactly `form`; answers `answer`, `times` times at most
/// when given (later mounts answer after that).
pub async fn mount_token_endpoint(login: &MockServer, form: FormExactly, answer: ResponseTemplate, times: Option<u64>) {
    let mut mock = Mock::given(method("POST"))
        .and(path(format!("/{TENANT_ID}/oauth2/v2.0/token")))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(form)
        .respond_with(answer);
    if let Some(times) = times {
        mock = mock.up_to_n_times(times);
    }
    mock.mount(login).await;
}

/// The identity platform's refusal, e.g. `invalid_client` with an `AADSTS` description.
pub fn token_refusal(status: u16, code: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": code,
        "error_description": description,
        "error_codes": [7000215],
        "timestamp": "2024-05-01 10:00:00Z",
        "trace_id": "0c5d4b3a-1111-2222-3333-444455556666",
        "correlation_id": "7a8b9c0d-1111-2222-3333-444455556666"
    }))
}

/// The shared Graph app fields of an install body, pointed at the two mock servers.
pub fn app_config(login: &MockServer, graph: &MockServer) -> Value {
    json!({
        "tenant_id": TENANT_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "client_state": CLIENT_STATE,
        "login_base_url": login.uri(),
        "graph_base_url": graph.uri(),
    })
}

/// Graph's subscription validation: `POST {notificationUrl}?validationToken=…`, empty body.
pub fn validation_request(plugin: &str, encoded_token: &str) -> http::Request<Body> {
    http::Request::post(format!("/v1/webhooks/{plugin}/acme?validationToken={encoded_token}"))
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::empty())
        .unwrap()
}

/// A change notification delivery.
pub fn notification_request(plugin: &str, body: &Value) -> http::Request<Body> {
    http::Request::post(format!("/v1/webhooks/{plugin}/acme"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}
