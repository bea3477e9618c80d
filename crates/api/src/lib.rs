//! The REST API: one router per resource over [`Service`], authentication as extractors, and one
//! place ([`problem`]) that answers errors as the RFC 9457 problems `integrations-problems` maps
//! them to.

mod admin;
mod auth;
mod body;
mod events;
mod jobs;
mod params;
mod plugins;
pub mod problem;
mod tools;
mod webhook_endpoints;
mod webhook_events;
mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use integrations_problems::RequestError;
use integrations_secrets_digest::AdminToken;
use integrations_service::Service;
use serde_json::json;

pub use auth::CurrentTenant;
pub use problem::ApiError;

/// Largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How tenants are identified on the tenant API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenantAuth {
    /// `Authorization: Bearer <api key>`.
    ApiKey,
    /// `X-Tenant-Id` set by a trusted gateway that has authenticated the caller.
    TrustedHeader,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub service: Arc<Service>,
    /// Digest of the operator's admin token; `None` disables the admin API.
    pub admin_token: Option<AdminToken>,
    /// How tenants authenticate.
    pub tenant_auth: TenantAuth,
}

/// The whole API, shared by the binary and the tests.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(admin::router())
        .merge(plugins::router())
        .merge(tools::router())
        .merge(events::router())
        .merge(jobs::router())
        .merge(webhook_endpoints::router())
        .merge(webhook_events::router())
        .merge(webhooks::router())
        .fallback(|| async { ApiError::from(RequestError::RouteNotFound) })
        .method_not_allowed_fallback(|| async { ApiError::from(RequestError::MethodNotAllowed) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

mod integrations_secrets_digest {
    use integrations_secrets::{token_digest, verify_token, TokenDigest};

    /// The admin token, kept only as a digest and compared in constant time.
    #[derive(Clone)]
    pub struct AdminToken(TokenDigest);

    impl AdminToken {
        /// Wraps the configured token.
        pub fn new(token: &str) -> Self {
            Self(token_digest(token))
        }

        /// Whether `presented` is the admin token.
        pub fn matches(&self, presented: &str) -> bool {
            verify_token(presented, &self.0)
        }
    }

    impl std::fmt::Debug for AdminToken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("AdminToken([redacted])")
        }
    }
}

pub use integrations_secrets_digest::AdminToken as AdminTokenDigest;
