use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use integrations_problems::RequestError;
use serde_json::Value;

use crate::ApiError;

/// A JSON body: 400 when malformed, 413 when over the limit, as problem responses.
pub struct JsonBody(pub Value);

/// Like [`JsonBody`], but an empty body means `{}` (tools without arguments).
pub struct JsonBodyOrEmpty(pub Value);

pub async fn read_bytes<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|rejection| {
        ApiError::from(if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            RequestError::PayloadTooLarge
        } else {
            RequestError::BadBody
        })
    })
}

fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::from(RequestError::MalformedJson(format!(
            "line {} column {}",
            e.line(),
            e.column()
        )))
    })
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parse(&read_bytes(request, state).await?)?))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonBodyOrEmpty {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bytes(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Value::Object(Default::default())));
        }
        Ok(Self(parse(&bytes)?))
    }
}
