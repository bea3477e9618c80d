//! What can go wrong and how it is reported: [`ServiceError`], every failure of the service, and
//! [`RequestError`], the failures of a request itself, each mapped to one [`Problem`] with a stable
//! RFC 9457 `type`. No axum: the REST API, MCP, the job worker and the console all report a
//! failure with the same document.

mod error;
mod fields;
mod problem;
mod rate;
mod request;
mod service;

pub use error::ServiceError;
pub use fields::{FieldError, FieldErrors, MAX_REPORTED_ERRORS};
pub use problem::{Problem, PROBLEM_TYPE_PREFIX};
pub use rate::{RateLimited, RateScope};
pub use request::RequestError;

#[cfg(test)]
mod tests;
