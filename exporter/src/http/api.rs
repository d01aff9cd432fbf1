//! Management API on `reload_bind_address:reload_port` (9101):
//! - GET /health: `healthy`, or `degraded` with a `reason` (never needs a token);
//! - GET /config: the running configuration;
//! - GET /metrics/list: every known metric and whether it is enabled;
//! - POST /metrics/enable: `{"<metric>": bool, ...}`, all or nothing, saved to config.yaml
//!   before the reply;
//! - POST /reload: re-read the configuration (Config Server first when configured).
//!
//! With an API token configured every endpoint but /health needs `Authorization: Bearer
//! <token>`.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use serde::Serialize;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::{handle_rejection, ApiError};
use crate::config;
use crate::owner::{Command, CommandError, OwnerHandle};

/// Largest accepted request body.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// The routes of the management server.
pub fn routes(
    handle: OwnerHandle,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    health(handle.clone())
        .or(config(handle.clone()))
        .unify()
        .or(metrics_list(handle.clone()))
        .unify()
        .or(metrics_enable(handle.clone()))
        .unify()
        .or(reload(handle))
        .unify()
        .recover(handle_rejection)
        .unify()
}

fn with_handle(
    handle: OwnerHandle,
) -> impl Filter<Extract = (OwnerHandle,), Error = Infallible> + Clone {
    warp::any().map(move || handle.clone())
}

/// Passes when no token is configured or the request carries the right bearer token.
fn authorized(handle: OwnerHandle) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(with_handle(handle))
        .and_then(|headers: HeaderMap, handle: OwnerHandle| async move {
            let expected = handle.api_token();
            let Some(expected) = expected else {
                return Ok(());
            };
            let given = headers
                .get(warp::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
                Ok(())
            } else {
                Err(warp::reject::custom(ApiError {
                    status: StatusCode::UNAUTHORIZED,
                    message:
                        "Missing or wrong API token: send the header Authorization: Bearer <token>"
                            .into(),
                }))
            }
        })
        .untuple_one()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

/// GET /health
fn health(handle: OwnerHandle) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("health")
        .and(warp::get())
        .map(move || json(&handle.snapshot.borrow().health))
}

/// GET /config
fn config(handle: OwnerHandle) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("config")
        .and(warp::get())
        .and(authorized(handle.clone()))
        .map(move || json(&config::to_json(&handle.running.borrow().config)))
}

#[derive(Serialize)]
struct MetricsList<'a> {
    metrics: &'a BTreeMap<String, bool>,
    device_type: &'a str,
    source: &'a str,
}

/// GET /metrics/list
fn metrics_list(
    handle: OwnerHandle,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics" / "list")
        .and(warp::get())
        .and(authorized(handle.clone()))
        .map(move || {
            let running = handle.running.borrow();
            json(&MetricsList {
                metrics: &running.config.metrics,
                device_type: running.config.device_type.as_str(),
                source: running.origin.as_str(),
            })
        })
}

/// POST /metrics/enable   body: {"<metric>": bool, ...}
fn metrics_enable(
    handle: OwnerHandle,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics" / "enable")
        .and(warp::post())
        .and(authorized(handle.clone()))
        .and(warp::body::content_length_limit(BODY_LIMIT))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .and(with_handle(handle))
        .then(enable_handler)
}

#[derive(Serialize)]
struct EnableReply {
    status: &'static str,
    updated: usize,
    metrics: BTreeMap<String, bool>,
}

async fn enable_handler(
    content_type: Option<String>,
    body: Bytes,
    handle: OwnerHandle,
) -> Response {
    match parse_enable_body(content_type.as_deref(), &body) {
        Err(e) => e.into_response(),
        Ok(changes) => match handle.ask(|reply| Command::Enable { changes, reply }).await {
            Ok(done) => json(&EnableReply {
                status: "success",
                updated: done.updated,
                metrics: done.metrics,
            }),
            Err(e) => command_error(e).into_response(),
        },
    }
}

/// Checks the content type and shape of an enable request.
pub fn parse_enable_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let is_json = content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::bad_request(format!(
            "Content-Type must be application/json, got {}",
            content_type.unwrap_or("none")
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Malformed JSON body: {e}. Send an object such as {{\"jetson_gpu_usage_percent\": true}}"
        ))
    })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(ApiError::bad_request(format!(
            "Body must be a JSON object of metric names to true or false, got {}",
            json_kind(&other)
        ))),
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn command_error(e: CommandError) -> ApiError {
    let status = match &e {
        CommandError::BadRequest(_) | CommandError::InvalidConfig(_) => StatusCode::BAD_REQUEST,
        CommandError::WriteFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        CommandError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    };
    let message = match e {
        CommandError::WriteFailed(reason) => {
            format!("Could not save the configuration, nothing was changed: {reason}")
        }
        CommandError::InvalidConfig(reason) => {
            format!("Reload refused, the running configuration stays: {reason}")
        }
        other => other.to_string(),
    };
    ApiError { status, message }
}

#[derive(Serialize)]
struct ReloadReply {
    status: &'static str,
    source: &'static str,
    metrics_count: usize,
}

/// POST /reload
fn reload(handle: OwnerHandle) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("reload")
        .and(warp::post())
        .and(authorized(handle.clone()))
        .and(with_handle(handle))
        .then(|handle: OwnerHandle| async move {
            match handle.ask(|reply| Command::Reload { reply }).await {
                Ok(done) => json(&ReloadReply {
                    status: "success",
                    source: done.origin.as_str(),
                    metrics_count: done.metrics_count,
                }),
                Err(e) => command_error(e).into_response(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enable_body_checks() {
        let ok = parse_enable_body(Some("application/json; charset=utf-8"), br#"{"a": true}"#);
        assert_eq!(ok.unwrap().len(), 1);
        let e = parse_enable_body(Some("text/plain"), b"{}").unwrap_err();
        assert!(e.message.contains("Content-Type must be application/json"));
        let e = parse_enable_body(Some("application/json"), b"{").unwrap_err();
        assert!(e.message.starts_with("Malformed JSON body"));
        let e = parse_enable_body(Some("application/json"), b"[1]").unwrap_err();
        assert!(e.message.contains("got an array"));
    }
}
