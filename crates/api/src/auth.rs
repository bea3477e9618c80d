use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use integrations_service::ServiceError;

use crate::{ApiError, AppState, TenantAuth};

/// The authenticated tenant of a tenant-API request.
pub struct CurrentTenant(pub String);

/// Proof that the request carries the admin token.
pub struct Admin;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for CurrentTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let tenant = match state.tenant_auth {
            TenantAuth::ApiKey => {
                let key = bearer(parts).ok_or(ServiceError::Unauthorized)?;
                state.service.authenticate(key).await?
            }
            TenantAuth::TrustedHeader => {
                let id = parts
                    .headers
                    .get("x-tenant-id")
                    .and_then(|v| v.to_str().ok())
                    .ok_or(ServiceError::Unauthorized)?;
                state.service.trusted_tenant(id).await?
            }
        };
        Ok(Self(tenant))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // With no admin token configured the admin API does not exist.
        let expected = state.admin_token.as_ref().ok_or(ApiError::RouteNotFound)?;
        match bearer(parts) {
            Some(presented) if expected.matches(presented) => Ok(Admin),
            _ => Err(ApiError::AdminUnauthorized),
        }
    }
}
