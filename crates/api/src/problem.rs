//! Errors at the HTTP edge: the [`Problem`] of a service or request failure, answered as RFC 9457
//! `application/problem+json`. Which failure is which problem is decided in `integrations-problems`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use integrations_problems::{Problem, RequestError};
use integrations_service::ServiceError;

pub use integrations_problems::PROBLEM_TYPE_PREFIX;

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError(Problem);

impl ApiError {
    /// The problem this error is answered with.
    pub fn problem(&self) -> &Problem {
        &self.0
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self(Problem::from(&error))
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        Self(Problem::from(&error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.0;
        let mut response = (problem.status(), problem.to_json()).into_response();
        let challenge = problem.challenges_bearer();
        let headers = response.headers_mut();
        headers.extend(problem.into_headers());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if challenge {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
