//! Rejections → the spec's JSON error body `{"error": "..."}` with a fitting status.
//! Client mistakes are not logged; server faults are logged once where they happen. A body
//! never carries the `Debug` form of an internal type, and text the client sent is shown only
//! through [`printable`](crate::collector::printable) (escaped, cut to 64 characters).

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

/// `503` for a request the exporter could not answer in time.
pub fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: message.into(),
    }
}

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
        // The rejection's Debug form names warp's internal types: for the log, not the client.
        tracing::debug!(?err, "Unhandled rejection.");
        (
            StatusCode::BAD_REQUEST,
            "Bad request: the request could not be read; check its headers and body".to_string(),
        )
    };
    Ok(json_error(status, &message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::Filter;

    #[tokio::test]
    async fn an_unexpected_rejection_does_not_show_internal_types() {
        // A query that does not deserialise is a rejection no branch names.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Q {
            n: u32,
        }
        let route = warp::query::<Q>().map(|_| "ok").recover(handle_rejection);
        let r = warp::test::request().path("/?n=x").reply(&route).await;
        assert_eq!(r.status(), 400);
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        let text = body["error"].as_str().unwrap();
        assert!(text.starts_with("Bad request:"), "{text}");
        for internal in ["Rejection", "InvalidQuery", "Known", "{", "::"] {
            assert!(!text.contains(internal), "{text}");
        }
    }
}
