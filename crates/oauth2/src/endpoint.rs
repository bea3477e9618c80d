//! One exchange with a token endpoint (RFC 6749 §4.4 and §6): the form we send, the answer we read.

use std::time::Duration;

use http::header::{ACCEPT, CONTENT_TYPE};
use http::Method;
use integrations_core::{HttpClient, Secret, TokenError, TokenGrant, TokenRequest};
use serde_json::Value;

/// A token response is a few kilobytes; anything far larger is not one.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Lifetime assumed when the endpoint leaves out `expires_in` (RFC 6749 makes it optional); short,
/// so that a wrong guess costs one early refresh, not a run of 401s.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// What a successful exchange gave.
pub(crate) struct Issued {
    pub access_token: Secret,
    pub lifetime: Duration,
    /// A new refresh token, when the endpoint rotated it.
    pub refresh_token: Option<Secret>,
}

/// Why an exchange failed, before the manager decides what that means for the installation.
pub(crate) enum Refusal {
    /// `invalid_grant`: the grant (a refresh token) is dead.
    InvalidGrant(String),
    /// Anything else.
    Other(TokenError),
}

/// Posts the grant to the token endpoint and reads its answer.
pub(crate) async fn exchange(
    http: &dyn HttpClient,
    request: &TokenRequest,
    refresh_token: Option<&Secret>,
) -> Result<Issued, Refusal> {
    let body = form_body(request, refresh_token)?;
    let http_request = http::Request::builder()
        .method(Method::POST)
        .uri(&request.token_url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(body)
        .map_err(|e| Refusal::Other(TokenError::Unavailable(format!("token_url: {e}"))))?;
    let response = http
        .send_limited(http_request, MAX_TOKEN_RESPONSE_BYTES)
        .await
        .map_err(|e| Refusal::Other(TokenError::Http(e)))?;
    let status = response.status().as_u16();
    let body: Option<Value> = serde_json::from_slice(response.body()).ok();
    if response.status().is_success() {
        return issued(body.as_ref()).ok_or(Refusal::Other(TokenError::Malformed { status }));
    }
    let Some(body) = body else {
        return Err(Refusal::Other(TokenError::Malformed { status }));
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (code, description) = (field("error"), field("error_description"));
    if code.is_empty() {
        return Err(Refusal::Other(TokenError::Malformed { status }));
    }
    if code == "invalid_grant" {
        return Err(Refusal::InvalidGrant(description));
    }
    Err(Refusal::Other(TokenError::Refused {
        status,
        code,
        description,
    }))
}

fn issued(body: Option<&Value>) -> Option<Issued> {
    let body = body?;
    let access_token = body.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    // Azure AD v1 sent `expires_in` as a string; accept both.
    let lifetime = match body.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64().map(Duration::from_secs),
        Some(Value::String(s)) => s.parse().ok().map(Duration::from_secs),
        _ => None,
    }
    .unwrap_or(DEFAULT_LIFETIME);
    let refresh_token = body
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(Secret::new);
    Some(Issued {
        access_token: Secret::new(access_token),
        lifetime,
        refresh_token,
    })
}

/// The form, in the parameter order of the Microsoft identity platform's documentation.
fn form_body(request: &TokenRequest, refresh_token: Option<&Secret>) -> Result<Vec<u8>, Refusal> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    match (&request.grant, refresh_token) {
        (TokenGrant::ClientCredentials, _) => {
            form.append_pair("client_id", &request.client_id)
                .append_pair("client_secret", request.client_secret.expose())
                .append_pair("scope", &request.scope)
                .append_pair("grant_type", "client_credentials");
        }
        (TokenGrant::RefreshToken { .. }, Some(refresh_token)) => {
            form.append_pair("client_id", &request.client_id)
                .append_pair("client_secret", request.client_secret.expose())
                .append_pair("scope", &request.scope)
                .append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", refresh_token.expose());
        }
        (TokenGrant::RefreshToken { secret_field }, None) => {
            return Err(Refusal::Other(TokenError::Unavailable(format!(
                "{secret_field} is not set"
            ))));
        }
    }
    Ok(form.finish().into_bytes())
}
