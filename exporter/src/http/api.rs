//! Management API on `reload_bind_address:reload_port` (9101):
//! - GET /health: `healthy`, or `degraded` with a `reason` (never needs a token);
//! - GET /config: the running configuration;
//! - GET /metrics/list: every known metric and whether it is enabled;
//! - POST /metrics/enable: `{"<metric>": bool, ...}`, all or nothing, saved to config.yaml
//!   before the reply;
//! - POST /reload: re-read the configuration (Config Server first when configured).
//!
//! With an API token configured every endpoint but /health needs `Authorization: Bearer
//! <token>`. The server may listen beyond loopback only with a token (checked at start-up);
//! should a reload take the token away, requests other than /health are refused until it is
//! back.
//!
//! /metrics/enable and /reload wait for the owner task; after [`OWNER_WAIT`] (for /reload, plus
//! the Config Server's timeout when one is configured: [`reload_wait`]) they give up with `503`
//! (counted in `edge_metrics_exporter_api_timeouts_total`). The other endpoints read published
//! state and never wait.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::error::{handle_rejection, unavailable, ApiError};
use crate::collector::{printable, SHOWN_CHARS};
use crate::config;
use crate::owner::{Command, CommandError, OwnerHandle};
use crate::selfmetrics::Counters;

/// Largest accepted request body.
pub const BODY_LIMIT: u64 = 64 * 1024;

/// How long a handler waits for the owner task before it answers `503`.
pub const OWNER_WAIT: Duration = Duration::from_secs(10);

/// The spec's message for an unknown name, followed by the name.
const INVALID_NAME: &str = "Invalid metric name: ";

/// What the management routes need besides the owner's handle.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// Whether the server listens beyond loopback. Then a request is refused while no token
    /// is configured.
    pub beyond_loopback: bool,
    /// How long a handler waits for the owner task ([`OWNER_WAIT`]).
    pub owner_wait: Duration,
    /// Where requests that gave up waiting are counted.
    pub counters: Arc<Counters>,
}

impl ApiOptions {
    /// Options for a server bound to `address` (a loopback address or not), waiting
    /// [`OWNER_WAIT`].
    pub fn new(address: &str, counters: Arc<Counters>) -> ApiOptions {
        ApiOptions {
            beyond_loopback: !config::is_loopback(address),
            owner_wait: OWNER_WAIT,
            counters,
        }
    }
}

/// The routes of the management server.
pub fn routes(
    handle: OwnerHandle,
    options: ApiOptions,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    health(handle.clone())
        .or(config(handle.clone(), &options))
        .unify()
        .or(metrics_list(handle.clone(), &options))
        .unify()
        .or(metrics_enable(handle.clone(), &options))
        .unify()
        .or(reload(handle, options))
        .unify()
        .recover(handle_rejection)
        .unify()
}

fn with_handle(
    handle: OwnerHandle,
) -> impl Filter<Extract = (OwnerHandle,), Error = Infallible> + Clone {
    warp::any().map(move || handle.clone())
}

fn with_options(
    options: ApiOptions,
) -> impl Filter<Extract = (ApiOptions,), Error = Infallible> + Clone {
    warp::any().map(move || options.clone())
}

/// Passes when the request carries the configured bearer token, or when no token is
/// configured and the server listens on loopback only.
fn authorized(
    handle: OwnerHandle,
    options: &ApiOptions,
) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    let beyond_loopback = options.beyond_loopback;
    warp::header::headers_cloned()
        .and(with_handle(handle))
        .and_then(move |headers: HeaderMap, handle: OwnerHandle| async move {
            let expected = handle.api_token();
            let Some(expected) = expected else {
                if beyond_loopback {
                    return Err(warp::reject::custom(ApiError {
                        status: StatusCode::UNAUTHORIZED,
                        message: "No API token is configured and this API listens beyond \
                                  loopback, so it answers nobody: set api_token (or \
                                  EDGE_METRICS_API_TOKEN) and restart"
                            .into(),
                    }));
                }
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
fn config(
    handle: OwnerHandle,
    options: &ApiOptions,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("config")
        .and(warp::get())
        .and(authorized(handle.clone(), options))
        .map(move || {
            let running = handle.running.borrow();
            let mut shown = config::to_json(&running.config);
            // `device_type` is the config's own value (possibly `auto`); these two say what it
            // resolved to. Neither is a config key.
            if let serde_json::Value::Object(map) = &mut shown {
                map.insert(
                    "resolved_device_type".into(),
                    running.device.kind.as_str().into(),
                );
                map.insert(
                    "device_type_source".into(),
                    running.device.source.as_str().into(),
                );
            }
            json(&shown)
        })
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
    options: &ApiOptions,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics" / "list")
        .and(warp::get())
        .and(authorized(handle.clone(), options))
        .map(move || {
            let running = handle.running.borrow();
            json(&MetricsList {
                metrics: &running.config.metrics,
                device_type: running.device.kind.as_str(),
                source: running.origin.as_str(),
            })
        })
}

/// POST /metrics/enable   body: {"<metric>": bool, ...}
fn metrics_enable(
    handle: OwnerHandle,
    options: &ApiOptions,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics" / "enable")
        .and(warp::post())
        .and(authorized(handle.clone(), options))
        .and(warp::body::content_length_limit(BODY_LIMIT))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::bytes())
        .and(with_handle(handle))
        .and(with_options(options.clone()))
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
    options: ApiOptions,
) -> Response {
    let changes = match parse_enable_body(content_type.as_deref(), &body) {
        Ok(changes) => changes,
        Err(e) => return e.into_response(),
    };
    let wait = options.owner_wait;
    match ask_within(&handle, &options, "enable", wait, |reply| Command::Enable {
        changes,
        reply,
    })
    .await
    {
        Ok(done) => json(&EnableReply {
            status: "success",
            updated: done.updated,
            metrics: done.metrics,
        }),
        Err(e) => e.into_response(),
    }
}

/// Asks the owner as [`OwnerHandle::ask`] does, but gives up after `wait` with `503`: a busy
/// owner never holds a request (and its connection) for long. A command already handed over
/// may still be carried out, which the message says. `what` names the request in the log line.
pub async fn ask_within<T>(
    handle: &OwnerHandle,
    options: &ApiOptions,
    what: &'static str,
    wait: Duration,
    make: impl FnOnce(oneshot::Sender<Result<T, CommandError>>) -> Command,
) -> Result<T, ApiError> {
    match tokio::time::timeout(wait, handle.ask(make)).await {
        Ok(answer) => answer.map_err(command_error),
        Err(_) => {
            let before = options
                .counters
                .api_timeouts
                .fetch_add(1, Ordering::Relaxed);
            let wait_secs = wait.as_secs_f64();
            // The first one is worth a warning; the counter shows the rest.
            if before == 0 {
                tracing::warn!(
                    request = what,
                    wait_secs,
                    "A management request gave up waiting for the exporter and answered 503."
                );
            } else {
                tracing::debug!(request = what, wait_secs, "Management request timed out.");
            }
            Err(unavailable(format!(
                "The exporter did not answer within {wait_secs} s because it is busy with \
                 earlier requests; this one may still be applied, so check GET /config or \
                 GET /metrics/list before you retry"
            )))
        }
    }
}

/// Checks the content type and shape of an enable request: an object whose values are
/// `true`/`false` and whose keys are metric names. Whether a name is known is the owner's
/// to say. Client text in a message is escaped and cut ([`printable`]).
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
            content_type.map_or_else(|| "none".to_string(), |ct| printable(ct, SHOWN_CHARS))
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "Malformed JSON body: {e}. Send an object such as {{\"jetson_gpu_usage_percent\": true}}"
        ))
    })?;
    let map = match value {
        serde_json::Value::Object(map) => map,
        other => {
            return Err(ApiError::bad_request(format!(
                "Body must be a JSON object of metric names to true or false, got {}",
                json_kind(&other)
            )))
        }
    };
    // The owner checks in this order too (value, then name), so the first bad entry is named.
    for (name, value) in &map {
        if !value.is_boolean() {
            return Err(ApiError::bad_request(format!(
                "Invalid value for {}: expected true or false, got {}",
                printable(name, SHOWN_CHARS),
                printable(&value.to_string(), SHOWN_CHARS)
            )));
        }
        if !config::is_metric_name(name) {
            return Err(ApiError::bad_request(format!(
                "{INVALID_NAME}{}",
                printable(name, SHOWN_CHARS)
            )));
        }
    }
    Ok(map)
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
        // The owner names the unknown entry; the request was checked to hold metric names
        // only, so all a long one needs is a cut.
        CommandError::BadRequest(message) => match message.strip_prefix(INVALID_NAME) {
            Some(name) => format!("{INVALID_NAME}{}", printable(name, SHOWN_CHARS)),
            None => printable(&message, 4 * SHOWN_CHARS),
        },
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

/// How long `POST /reload` waits: [`ApiOptions::owner_wait`], plus the Config Server's request
/// timeout when one is configured, since the reload asks it first and may take that long.
pub fn reload_wait(handle: &OwnerHandle, options: &ApiOptions) -> Duration {
    let server = config::config_server(&handle.running.borrow().config, handle.env.as_ref());
    options.owner_wait + server.map_or(Duration::ZERO, |s| s.timeout)
}

#[derive(Serialize)]
struct ReloadReply {
    status: &'static str,
    source: &'static str,
    metrics_count: usize,
}

/// POST /reload
fn reload(
    handle: OwnerHandle,
    options: ApiOptions,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("reload")
        .and(warp::post())
        .and(authorized(handle.clone(), &options))
        .and(with_handle(handle))
        .and(with_options(options))
        .then(|handle: OwnerHandle, options: ApiOptions| async move {
            let wait = reload_wait(&handle, &options);
            match ask_within(&handle, &options, "reload", wait, |reply| Command::Reload {
                reply,
            })
            .await
            {
                Ok(done) => json(&ReloadReply {
                    status: "success",
                    source: done.origin.as_str(),
                    metrics_count: done.metrics_count,
                }),
                Err(e) => e.into_response(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::owner::render::Health;
    use crate::owner::{ConfigOrigin, EnvMap, Running, Snapshot};
    use tokio::sync::{mpsc, watch};

    /// A handle whose owner never reads its commands (the receiver is returned so it stays
    /// open): every ask waits until the caller gives up.
    fn stuck_owner(config: config::Config) -> (OwnerHandle, mpsc::Receiver<Command>) {
        let (commands, receiver) = mpsc::channel(4);
        let running = Running {
            config,
            origin: ConfigOrigin::Local,
            device: crate::device::Device::from_identity(
                crate::config::DeviceType::JetsonOrin,
                crate::device::Identity::default(),
            ),
        };
        let health = Health {
            status: "healthy",
            reason: None,
            device_type: "jetson_orin".into(),
            device_type_source: "configured",
            collector: "JetsonOrinCollector".into(),
            metrics_count: 0,
            config_source: "local",
        };
        let (_, running) = watch::channel(Arc::new(running));
        let (_, snapshot) = watch::channel(Arc::new(Snapshot {
            body: Bytes::new(),
            health,
        }));
        let handle = OwnerHandle {
            commands,
            running,
            snapshot,
            env: Arc::new(EnvMap::new()),
        };
        (handle, receiver)
    }

    fn options(beyond_loopback: bool, wait: Duration) -> ApiOptions {
        ApiOptions {
            beyond_loopback,
            owner_wait: wait,
            counters: Arc::new(Counters::default()),
        }
    }

    fn error_of(body: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(body).expect("a JSON body");
        v["error"].as_str().expect("an error text").to_string()
    }

    #[tokio::test]
    async fn a_stuck_owner_gets_503_after_the_wait_not_a_hang() {
        let (handle, _unread) = stuck_owner(config::Config::default());
        let opts = options(false, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let wait = reload_wait(&handle, &opts);
        assert_eq!(
            wait,
            Duration::from_millis(100),
            "no Config Server: the owner wait"
        );
        let e = ask_within(&handle, &opts, "reload", wait, |reply| Command::Reload {
            reply,
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            e.message.contains("did not answer within 0.1 s"),
            "{}",
            e.message
        );
        assert_eq!(opts.counters.api_timeouts.load(Ordering::Relaxed), 1);

        // Through the routes: both waiting endpoints answer 503 with a JSON error.
        let api = routes(handle, opts.clone());
        let r = warp::test::request()
            .method("POST")
            .path("/reload")
            .reply(&api)
            .await;
        assert_eq!(r.status(), 503);
        assert!(error_of(r.body()).contains("may still be applied"));
        let r = warp::test::request()
            .method("POST")
            .path("/metrics/enable")
            .header("content-type", "application/json")
            .body(r#"{"jetson_ram_used_mb": true}"#)
            .reply(&api)
            .await;
        assert_eq!(r.status(), 503);
        assert!(error_of(r.body()).contains("did not answer"));
        assert_eq!(opts.counters.api_timeouts.load(Ordering::Relaxed), 3);
        // What only reads published state does not wait.
        let r = warp::test::request()
            .path("/metrics/list")
            .reply(&api)
            .await;
        assert_eq!(r.status(), 200);
    }

    #[tokio::test]
    async fn a_gone_owner_is_503_at_once() {
        let (handle, unread) = stuck_owner(config::Config::default());
        drop(unread);
        let opts = options(false, Duration::from_secs(3600));
        let e = ask_within(&handle, &opts, "reload", OWNER_WAIT, |reply| {
            Command::Reload { reply }
        })
        .await
        .unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.message, "the exporter is shutting down");
        assert_eq!(opts.counters.api_timeouts.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn beyond_loopback_without_a_token_nothing_but_health_answers() {
        let (handle, _unread) = stuck_owner(config::Config::default());
        let api = routes(handle, options(true, Duration::from_millis(100)));
        for (method, path) in [
            ("GET", "/config"),
            ("GET", "/metrics/list"),
            ("POST", "/reload"),
        ] {
            let r = warp::test::request()
                .method(method)
                .path(path)
                .reply(&api)
                .await;
            assert_eq!(r.status(), 401, "{method} {path}");
            assert!(
                error_of(r.body()).contains("set api_token"),
                "{method} {path}"
            );
        }
        let r = warp::test::request().path("/health").reply(&api).await;
        assert_eq!(r.status(), 200);

        // With a token, the token decides.
        let cfg = config::Config {
            api_token: Some("t0k".into()),
            ..config::Config::default()
        };
        let (handle, _unread) = stuck_owner(cfg);
        let api = routes(handle, options(true, Duration::from_millis(100)));
        let r = warp::test::request().path("/config").reply(&api).await;
        assert_eq!(r.status(), 401);
        let r = warp::test::request()
            .path("/config")
            .header("authorization", "Bearer t0k")
            .reply(&api)
            .await;
        assert_eq!(r.status(), 200);
    }

    #[test]
    fn a_reload_also_waits_as_long_as_the_config_server_may_take() {
        let mut cfg = config::Config::default();
        cfg.config_server.url = Some("http://127.0.0.1:1".into());
        cfg.config_server.timeout = Some(45.0);
        let (handle, _unread) = stuck_owner(cfg);
        let opts = options(false, OWNER_WAIT);
        assert_eq!(reload_wait(&handle, &opts), Duration::from_secs(55));
    }

    #[test]
    fn client_text_in_errors_is_escaped_and_cut() {
        let body = serde_json::json!({"power_x\nfake_metric 1": true}).to_string();
        let e = parse_enable_body(Some("application/json"), body.as_bytes()).unwrap_err();
        assert_eq!(e.message, "Invalid metric name: power_x\\nfake_metric 1");
        let long = format!("bad name{}", "x".repeat(10_000));
        let body = serde_json::json!({ long: true }).to_string();
        let e = parse_enable_body(Some("application/json"), body.as_bytes()).unwrap_err();
        assert_eq!(
            e.message.chars().count(),
            INVALID_NAME.len() + SHOWN_CHARS + 1,
            "{}",
            e.message
        );
        let body = serde_json::json!({"jetson_ram_used_mb": ["\n".repeat(500)]}).to_string();
        let e = parse_enable_body(Some("application/json"), body.as_bytes()).unwrap_err();
        assert!(e
            .message
            .starts_with("Invalid value for jetson_ram_used_mb: expected true or false, got [\""));
        assert!(
            e.message.len() < 300 && !e.message.contains('\n'),
            "{}",
            e.message
        );
        let e = parse_enable_body(Some(&format!("text/{}", "p".repeat(500))), b"{}").unwrap_err();
        assert!(
            e.message.ends_with('…') && e.message.len() < 200,
            "{}",
            e.message
        );
        // Valid names and booleans pass; known-ness is the owner's call.
        let ok = parse_enable_body(Some("application/json"), br#"{"not_known_yet": false}"#);
        assert_eq!(ok.unwrap().len(), 1);

        // An unknown (but well-formed) long name the owner names is cut as well.
        let e = command_error(CommandError::BadRequest(format!(
            "Invalid metric name: {}",
            "a".repeat(5_000)
        )));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message.chars().count(),
            INVALID_NAME.len() + SHOWN_CHARS + 1
        );
        let e = command_error(CommandError::BadRequest(
            "Invalid metric name: invalid_metric".into(),
        ));
        assert_eq!(e.message, "Invalid metric name: invalid_metric");
    }

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
