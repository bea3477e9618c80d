//! The two servers the bench runs itself on 127.0.0.1: the baseline (an empty axum handler, the
//! ceiling for this machine, HTTP stack and load generator) and a fast Jira stand-in that the
//! service under test calls for `jira_get_issue`.

use std::net::SocketAddr;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::BenchError;

/// The stand-in's answer to `GET /rest/api/3/issue/{key}`: small and fixed.
const ISSUE_JSON: &str = r#"{"id":"10001","key":"ABC-1","self":"http://127.0.0.1/rest/api/3/issue/10001","fields":{"summary":"Printer on fire","status":{"name":"To Do"}}}"#;

/// Serves the baseline: any request answers 200 with an empty body.
pub async fn start_baseline() -> Result<SocketAddr, BenchError> {
    serve(Router::new().fallback(|| async { StatusCode::OK })).await
}

/// Serves the Jira stand-in.
pub async fn start_vendor() -> Result<SocketAddr, BenchError> {
    let router = Router::new().route(
        "/rest/api/3/issue/{key}",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], ISSUE_JSON).into_response() }),
    );
    serve(router).await
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
