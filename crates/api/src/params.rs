//! Path and query extractors whose rejections are problem responses like every other error.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use integrations_problems::RequestError;
use integrations_service::{EndpointId, JobId, PluginName, ServiceError, ToolName};
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

/// The identifier a path names, checked once here; one that cannot be of its kind is answered
/// as its resource's not-found, exactly like a well-formed one that does not exist.
pub struct PathId<T>(pub T);

/// An identifier a path may name, and the not-found answer for a string that cannot be one.
pub trait PathIdentifier: Sized {
    fn parse_or_absent(text: String) -> Result<Self, ServiceError>;
}

impl PathIdentifier for PluginName {
    fn parse_or_absent(text: String) -> Result<Self, ServiceError> {
        PluginName::parse(&text).map_err(|_| ServiceError::PluginNotFound(text))
    }
}

impl PathIdentifier for ToolName {
    fn parse_or_absent(text: String) -> Result<Self, ServiceError> {
        ToolName::parse(&text).map_err(|_| ServiceError::ToolNotFound(text))
    }
}

impl PathIdentifier for EndpointId {
    fn parse_or_absent(text: String) -> Result<Self, ServiceError> {
        EndpointId::parse(&text).map_err(|_| ServiceError::WebhookEndpointNotFound)
    }
}

impl PathIdentifier for JobId {
    fn parse_or_absent(text: String) -> Result<Self, ServiceError> {
        JobId::parse(&text).map_err(|_| ServiceError::JobNotFound)
    }
}

impl<S: Send + Sync, T: PathIdentifier> FromRequestParts<S> for PathId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ApiPath(text) = ApiPath::<String>::from_request_parts(parts, state).await?;
        Ok(Self(T::parse_or_absent(text)?))
    }
}
