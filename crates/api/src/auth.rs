use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use integrations_core::TenantId;
use integrations_problems::RequestError;
use integrations_service::{validate_tenant_id, RateScope, ServiceError};

use crate::{ApiError, AppState, TenantAuth};

/// The header a trusted gateway names the authenticated tenant in.
const TENANT_HEADER: &str = "x-tenant-id";

/// The authenticated tenant of a tenant-API request, admitted by its rate limit.
pub struct CurrentTenant(pub TenantId);

/// Proof that the request carries the admin token.
pub struct Admin;

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The gateway's `X-Tenant-Id`, `None` when absent. More than one, an empty one or one that is not
/// a tenant id is refused rather than guessed at: a gateway that appends its header instead of
/// replacing the client's would otherwise let the client's own value through.
fn trusted_tenant_header(headers: &HeaderMap) -> Result<Option<TenantId>, ApiError> {
    let mut values = headers.get_all(TENANT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::from(RequestError::InvalidTenantHeader("more than one")));
    }
    let id = value
        .to_str()
        .map_err(|_| RequestError::InvalidTenantHeader("not text"))?;
    if id.is_empty() {
        return Err(ApiError::from(RequestError::InvalidTenantHeader("empty")));
    }
    let tenant = validate_tenant_id(id).map_err(|_| RequestError::InvalidTenantHeader("not a tenant id"))?;
    Ok(Some(tenant))
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
                let id = trusted_tenant_header(&parts.headers)?.ok_or(ServiceError::Unauthorized)?;
                state.service.trusted_tenant(id).await?
            }
        };
        state.service.admit(&tenant, RateScope::Api).await?;
        Ok(Self(tenant))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // With no admin token configured the admin API does not exist.
        let expected = state.admin_token.as_ref().ok_or(RequestError::RouteNotFound)?;
        match bearer(parts) {
            Some(presented) if expected.matches(presented) => Ok(Admin),
            _ => Err(ApiError::from(RequestError::AdminUnauthorized)),
        }
    }
}
