//! Path and query extractors whose rejections are problem responses like every other error.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use integrations_problems::RequestError;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Path parameters; a malformed one is a 400 problem.
pub struct ApiPath<T>(pub T);

/// Query parameters; a malformed one is a 400 problem.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| ApiError::from(RequestError::InvalidParameters(rejection.body_text())))
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::from(RequestError::InvalidParameters(rejection.body_text())))
    }
}

/// An identifier a path names, checked once here; one that cannot be of its kind is answered as
/// `absent`, exactly like a well-formed one that does not exist.
pub(crate) fn named<T>(
    text: &str,
    parse: fn(&str) -> Result<T, integrations_service::InvalidId>,
    absent: impl FnOnce() -> integrations_service::ServiceError,
) -> Result<T, ApiError> {
    parse(text).map_err(|_| ApiError::from(absent()))
}
