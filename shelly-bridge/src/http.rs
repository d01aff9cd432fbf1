//! HTTP API (default port 8766): GET /metrics, GET /metrics/{device}, GET /devices,
//! GET /health, and the bridge's own Prometheus metrics on GET /bridge/metrics.
//!
//! Every reading is fetched from the plug when asked (no cache). Errors are JSON
//! `{"error": "..."}`: 404 no such plug connected, 409 several plugs and none named, 500 the
//! plug answered with an RPC error or an unusable reply, 502 the connection was lost while
//! waiting, 504 no answer within the RPC timeout.
//!
//! Connections are served by hyper's HTTP/1 server with the routes as the service, so a client
//! that opens a connection and never completes its request head is dropped after
//! [`HEADER_READ_TIMEOUT`] instead of holding a socket forever.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use serde_json::{json, Value};
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::device::Shared;
use crate::registry::{Call, CallError};
use crate::stats::Outcome;

/// How long a client may take to send a complete request head (also between keep-alive
/// requests).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `routes` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve<F>(listener: TcpListener, routes: F, shutdown: CancellationToken)
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let io = match accepted {
            Ok((io, _peer)) => io,
            Err(error) => {
                // Out of descriptors and the like: back off briefly instead of spinning.
                tracing::debug!(%error, "Accept failed.");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(warp::service(routes.clone()));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Client mistakes (malformed requests, timeouts) are not the operator's problem.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error.");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
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
                s.stats.render(),
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
                        "error": format!("No Shelly device '{n}' connected; connected: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") }),
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
                    let names: Vec<&str> = list.iter().map(|l| l.name()).collect();
                    return json_reply(
                        StatusCode::CONFLICT,
                        json!({
                            "error": format!("{} Shelly devices are connected; ask GET /metrics/{{device}} with one of: {}", names.len(), names.join(", ")),
                            "devices": names,
                        }),
                    );
                }
            }
        }
    };
    let (device_id, calls) = target;
    let (tx, rx) = oneshot::channel();
    let timeout = s.config.rpc_timeout;
    let waited = tokio::time::timeout(timeout, async move {
        if calls.send(Call { reply: tx }).await.is_err() {
            return None;
        }
        rx.await.ok()
    })
    .await;
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
