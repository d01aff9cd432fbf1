//! HTTP API (default port 8766): GET /metrics, GET /metrics/{device}, GET /devices,
//! GET /health, and the bridge's own Prometheus metrics on GET /bridge/metrics.
//!
//! Every reading is fetched from the plug when asked (no cache). Errors are JSON
//! `{"error": "..."}`: 404 no such plug connected, 409 several plugs and none named, 500 the
//! plug answered with an RPC error or an unusable reply, 502 the connection was lost while
//! waiting, 503 too many requests already wait for that plug, 504 no answer within the RPC
//! timeout. A device name from the path is shown truncated and escaped ([`shown`]).
//!
//! [`routes`] is served by `edge_metrics_common::serve_limited` (header-read timeout, graceful
//! shutdown, the `--max-http-connections` cap), the loop the exporter uses too. A request
//! whose client goes away is dropped by that loop; its place among the plug's waiting
//! requests is freed there and then, and the plug's task forgets it at once.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::device::Shared;
use crate::registry::{Call, CallError};
use crate::stats::Outcome;

pub use edge_metrics_common::{serve_limited, HEADER_READ_TIMEOUT};

/// Longest piece of client-supplied text an error message repeats.
pub const SHOWN_MAX_CHARS: usize = 64;

/// How many connected plugs a 404 or 409 message names (the `devices` field has them all).
const NAMES_IN_MESSAGE: usize = 20;

/// Client-supplied text as an error message may show it: at most [`SHOWN_MAX_CHARS`]
/// characters (then `...`), quotes, backslashes, control and non-ASCII characters escaped.
pub fn shown(text: &str) -> String {
    edge_metrics_common::text::shown(text, SHOWN_MAX_CHARS)
}

/// `names` for a message: the first few, then how many more.
fn listed(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    let mut text = names
        .iter()
        .take(NAMES_IN_MESSAGE)
        .map(|n| shown(n))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > NAMES_IN_MESSAGE {
        text.push_str(&format!(" and {} more", names.len() - NAMES_IN_MESSAGE));
    }
    text
}

/// All routes.
pub fn routes(
    shared: Arc<Shared>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with = move || {
        let s = shared.clone();
        warp::any().map(move || s.clone())
    };
    let metrics_one = warp::path!("metrics" / String)
        .and(warp::get())
        .and(with())
        .then(|name: String, s: Arc<Shared>| async move { read_device(&s, Some(name)).await });
    let metrics_any = warp::path!("metrics")
        .and(warp::get())
        .and(with())
        .then(|s: Arc<Shared>| async move { read_device(&s, None).await });
    let devices = warp::path!("devices")
        .and(warp::get())
        .and(with())
        .map(|s: Arc<Shared>| devices(&s));
    let health = warp::path!("health")
        .and(warp::get())
        .and(with())
        .map(|s: Arc<Shared>| {
            json_reply(
                StatusCode::OK,
                json!({
                    "status": "healthy",
                    "connected_plugs": s.registry.len(),
                    "version": env!("CARGO_PKG_VERSION"),
                }),
            )
        });
    let own = warp::path!("bridge" / "metrics")
        .and(warp::get())
        .and(with())
        .map(|s: Arc<Shared>| {
            warp::reply::with_header(
                s.render_metrics(),
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        });
    metrics_one
        .or(metrics_any)
        .unify()
        .or(devices)
        .unify()
        .or(health)
        .unify()
        .or(own)
        .unify()
        .recover(|_rej: warp::Rejection| async move {
            Ok::<_, Infallible>(json_reply(
                StatusCode::NOT_FOUND,
                json!({"error": "Unknown path; use GET /metrics, /metrics/{device}, /devices, /health or /bridge/metrics"}),
            ))
        })
        .unify()
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

fn error_reply(status: StatusCode, message: String) -> Response {
    json_reply(status, json!({ "error": message }))
}

fn devices(s: &Shared) -> Response {
    let list = s.registry.list();
    let names: Vec<&str> = list.iter().map(|l| l.name()).collect();
    json_reply(
        StatusCode::OK,
        json!({ "devices": names, "count": list.len(), "plugs": list }),
    )
}

fn unix_now() -> f64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    (t * 1000.0).round() / 1000.0
}

/// A reading request's place among those waiting for one plug; leaving it (answered,
/// failed, or dropped because the client went away) frees the place at once.
struct Waiting<'a> {
    shared: &'a Shared,
    count: Arc<AtomicUsize>,
    answered: bool,
}

impl<'a> Waiting<'a> {
    /// A place, unless `--max-pending-requests` requests already wait for this plug.
    fn enter(shared: &'a Shared, count: Arc<AtomicUsize>) -> Option<Waiting<'a>> {
        let max = shared.config.max_pending_requests;
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        shared.stats.pending_inc();
        Some(Waiting {
            shared,
            count,
            answered: false,
        })
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        self.shared.stats.pending_dec();
        if !self.answered {
            self.shared.stats.outcome(Outcome::Abandoned, None);
            tracing::debug!("A reading request was abandoned by its client; its place is free.");
        }
    }
}

/// Reads one plug: the named one, or the only one connected.
async fn read_device(s: &Shared, name: Option<String>) -> Response {
    let started = Instant::now();
    let target = match name {
        Some(n) => match s.registry.resolve(&n) {
            Some(t) => t,
            None => {
                s.stats.outcome(Outcome::NotFound, None);
                let known: Vec<String> = s
                    .registry
                    .list()
                    .iter()
                    .map(|l| l.name().to_string())
                    .collect();
                return json_reply(
                    StatusCode::NOT_FOUND,
                    json!({
                        "error": format!("No Shelly device '{}' connected; connected: {}", shown(&n), listed(&known)),
                        "devices": known,
                    }),
                );
            }
        },
        None => {
            let list = s.registry.list();
            match list.len() {
                0 => {
                    s.stats.outcome(Outcome::NotFound, None);
                    return error_reply(
                        StatusCode::NOT_FOUND,
                        "No Shelly device connected; point the plug's outbound WebSocket \
                         (Ws.SetConfig) at this bridge"
                            .to_string(),
                    );
                }
                1 => match s.registry.resolve(&list[0].device_id) {
                    Some(t) => t,
                    None => {
                        s.stats.outcome(Outcome::NotFound, None);
                        return error_reply(
                            StatusCode::NOT_FOUND,
                            "No Shelly device connected (it just left)".to_string(),
                        );
                    }
                },
                _ => {
                    s.stats.outcome(Outcome::Ambiguous, None);
                    let names: Vec<String> = list.iter().map(|l| l.name().to_string()).collect();
                    return json_reply(
                        StatusCode::CONFLICT,
                        json!({
                            "error": format!("{} Shelly devices are connected; ask GET /metrics/{{device}} with one of: {}", names.len(), listed(&names)),
                            "devices": names,
                        }),
                    );
                }
            }
        }
    };
    let device_id = target.device_id;
    let calls = target.calls;
    let Some(mut waiting) = Waiting::enter(s, target.waiting) else {
        s.stats.outcome(Outcome::Overloaded, None);
        let max = s.config.max_pending_requests;
        tracing::debug!(device_id = %device_id, max, "Refused a reading request: too many wait for this plug.");
        let mut resp = json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "error": format!("Too many requests are waiting for device {device_id} ({max} at most, --max-pending-requests); try again shortly"),
                "device_id": device_id,
            }),
        );
        resp.headers_mut()
            .insert("retry-after", warp::http::HeaderValue::from_static("1"));
        return resp;
    };
    let (tx, rx) = oneshot::channel();
    let timeout = s.config.rpc_timeout;
    let waited = tokio::time::timeout(timeout, async move {
        if calls.send(Call { reply: tx }).await.is_err() {
            return None;
        }
        rx.await.ok()
    })
    .await;
    // From here on the request has an outcome of its own; only a dropped handler (the client
    // went away while waiting) counts as abandoned.
    waiting.answered = true;
    match waited {
        Err(_) => {
            s.stats.outcome(Outcome::Timeout, None);
            tracing::debug!(device_id = %device_id, "A reading request timed out.");
            error_reply(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "RPC request timeout: device {device_id} did not answer within {:.1}s",
                    timeout.as_secs_f64()
                ),
            )
        }
        Ok(None) => {
            s.stats.outcome(Outcome::ConnectionLost, None);
            error_reply(
                StatusCode::BAD_GATEWAY,
                format!("Device connection lost: {device_id} disconnected before answering"),
            )
        }
        Ok(Some(Err(e))) => {
            let outcome = match e {
                CallError::Rpc { .. } => Outcome::RpcError,
                CallError::BadReply { .. } => Outcome::BadReply,
            };
            s.stats.outcome(outcome, Some(started.elapsed()));
            json_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": format!("Invalid RPC response: {e}"), "device_id": device_id }),
            )
        }
        Ok(Some(Ok(r))) => {
            s.stats.outcome(Outcome::Ok, Some(r.rtt));
            json_reply(
                StatusCode::OK,
                json!({
                    "device_id": r.device_id,
                    "alias": r.alias,
                    "component": r.component,
                    "metrics": r.metrics,
                    "timestamp": unix_now(),
                }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_truncated_and_escaped() {
        assert_eq!(shown("it's"), r"it\'s");
        let long = "a".repeat(1000);
        assert_eq!(shown(&long), format!("{}...", "a".repeat(SHOWN_MAX_CHARS)));
        assert_eq!(
            shown(&"a".repeat(SHOWN_MAX_CHARS)),
            "a".repeat(SHOWN_MAX_CHARS)
        );
    }

    #[test]
    fn long_lists_are_cut_in_messages() {
        assert_eq!(listed(&[]), "none");
        let names: Vec<String> = (0..25).map(|i| format!("p{i}")).collect();
        let text = listed(&names);
        assert!(text.starts_with("p0, p1,"), "{text}");
        assert!(text.ends_with("p19 and 5 more"), "{text}");
    }
}
