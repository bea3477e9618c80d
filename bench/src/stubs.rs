//! The two servers the bench runs itself on 127.0.0.1: the baseline (an empty axum handler, the
//! ceiling for this machine, HTTP stack and load generator) and a fast Jira stand-in that the
//! service under test calls for `jira_get_issue` (and for the credential check at install).

use std::net::SocketAddr;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::BenchError;

/// The stand-in's answer to `GET /rest/api/3/issue/{key}`: small and fixed.
const ISSUE_JSON: &str = r#"{"id":"10001","key":"ABC-1","self":"http://127.0.0.1/rest/api/3/issue/10001","fields":{"summary":"Printer on fire","status":{"name":"To Do"}}}"#;

/// The stand-in's answer to the install-time credential check, `GET /rest/api/3/myself`.
const MYSELF_JSON: &str =
    r#"{"accountId":"5b10a2844c20165700ede21g","emailAddress":"bot@example.com","displayName":"Bench","active":true}"#;

/// Serves the baseline: any request answers 200 with an empty body.
pub async fn start_baseline() -> Result<SocketAddr, BenchError> {
    serve(Router::new().fallback(|| async { StatusCode::OK })).await
}

/// Serves the Jira stand-in.
pub async fn start_vendor() -> Result<SocketAddr, BenchError> {
    let router = Router::new()
        .route("/rest/api/3/issue/{key}", get(issue))
        .route("/rest/api/3/myself", get(|| json(MYSELF_JSON)));
    serve(router).await
}

/// An issue; the `DOWN` project's issues fail (P7 opens a tenant's breaker with them).
async fn issue(axum::extract::Path(key): axum::extract::Path<String>) -> axum::response::Response {
    if key.starts_with("DOWN-") {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    json(ISSUE_JSON).await
}

async fn json(body: &'static str) -> axum::response::Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn serve(router: Router) -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            eprintln!("bench: stand-in server stopped: {error}");
        }
    });
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The service under test checks Jira credentials at install; the stand-in must pass it.
    #[tokio::test]
    async fn jira_stand_in_answers_the_credential_check_and_get_issue() {
        let address = start_vendor().await.unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        for (path, field) in [("/rest/api/3/myself", "accountId"), ("/rest/api/3/issue/ABC-1", "key")] {
            let response = client.get(format!("http://{address}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert!(body[field].is_string(), "{path}: {body}");
        }
    }
}
