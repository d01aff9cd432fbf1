//! Rejections → the spec's JSON error body `{"error": "..."}` with a fitting status.
//! Client mistakes are not logged; server faults are logged once where they happen.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// An error answer: status and message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What was wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl warp::reject::Reject for ApiError {}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// A JSON error response.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    let mut response =
        warp::reply::with_status(warp::reply::json(&ErrorBody { error: message }), status)
            .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        json_error(self.status, &self.message)
    }
}

/// Maps every rejection to a JSON error.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if let Some(e) = err.find::<ApiError>() {
        (e.status, e.message.clone())
    } else if err.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "Not found. Endpoints: GET /health, GET /config, GET /metrics/list, POST /metrics/enable, POST /reload".to_string(),
        )
    } else if err.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body is larger than 64 KiB; send fewer metrics per request".to_string(),
        )
    } else if err.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "Request needs a Content-Length header".to_string(),
        )
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed for this path".to_string(),
        )
    } else {
        tracing::debug!(?err, "Unhandled rejection.");
        (StatusCode::BAD_REQUEST, format!("Bad request: {err:?}"))
    };
    Ok(json_error(status, &message))
}
