//! The WebSocket listener plugs dial (default port 8765), optionally behind TLS (`wss://`).
//!
//! Any path is accepted (devices dial exactly what was typed into their `server` setting); a
//! single-segment path such as `/jetson-01` becomes the plug's alias. The `json-rpc`
//! subprotocol is echoed when offered. Buffers are small so that thousands of idle plugs cost
//! little memory.
//!
//! In order, each connection: gets a place under the `--max-plugs` cap or is dropped at once;
//! finishes TLS (when configured) and the upgrade within [`HANDSHAKE_TIMEOUT`]; shows the
//! token in its URL (`?token=`, when one is set) or gets 401 before any frame is read. Only
//! then does it reach [`run_connection`], which identifies it. A URL's query is never logged:
//! [`loggable_target`] cuts it off.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_metrics_common::limit::Slot;
use edge_metrics_common::text::shown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device::{run_connection, Shared};
use crate::stats::Refusal;

/// How long TLS and the WebSocket upgrade may take together.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The alias a URL path gives: one segment of `[A-Za-z0-9._~-]`, else none.
pub fn alias_from_path(path: &str) -> Option<String> {
    let path = loggable_target(path);
    let seg = path.trim_matches('/');
    let ok = !seg.is_empty()
        && seg.len() <= 128
        && seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~'));
    ok.then(|| seg.to_string())
}

/// A request target as it may be logged: the path without its query or fragment, which may
/// carry the token.
pub fn loggable_target(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or("")
}

/// The value of the one `token` parameter of a URL query; `None` when there is none or more
/// than one (a plug sends its URL as configured, with one).
pub fn token_in_query(query: Option<&str>) -> Option<&str> {
    let mut found = None;
    for pair in query?.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "token" {
            if found.is_some() {
                return None;
            }
            found = Some(value);
        }
    }
    found
}

/// WebSocket settings for plug connections.
pub fn ws_config(max_frame_bytes: usize) -> WebSocketConfig {
    // Frames above `max_frame_bytes` are dropped by the connection task and the connection
    // kept; only frames above the hard limit (16x, at least 1 MiB) end the connection, because
    // the protocol library cannot skip them.
    let hard = (max_frame_bytes * 16).max(1 << 20);
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(hard)
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard))
}

/// Accepts plug connections until `shutdown`; each runs in its own task tracked by `tasks`.
/// With `tls`, every connection must complete a TLS handshake first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let next_conn = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "Could not accept a plug connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Over the cap: closed before any TLS or upgrade work (counted, logged by the limit).
        let Some(slot) = shared.ws_limit.admit(remote) else {
            continue;
        };
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tasks.spawn(async move {
            accept_connection(stream, tls, remote, conn, shared, shutdown, slot).await;
        });
    }
}

async fn accept_connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    remote: std::net::SocketAddr,
    conn: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    match tls {
        None => upgrade(stream, deadline, remote, conn, shared, shutdown).await,
        // Boxed: a TLS session's state is several KiB, and every plug's task would otherwise
        // reserve room for it, TLS or not (1,000 plain plugs: 19.1 → 13.4 MiB).
        Some(acceptor) => {
            Box::pin(async move {
                match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        upgrade(stream, deadline, remote, conn, shared, shutdown).await
                    }
                    Ok(Err(error)) => shared.refuse(
                        Refusal::Tls,
                        remote,
                        &format!("the TLS handshake failed: {error}"),
                    ),
                    Err(_) => shared.refuse(
                        Refusal::Tls,
                        remote,
                        "the TLS handshake did not finish within 10 s",
                    ),
                }
            })
            .await
        }
    }
    // The connection's place under --max-plugs is free again.
    drop(slot);
}

/// The answer to an upgrade without the right token: 401, saying what is missing, echoing
/// nothing the client sent.
fn unauthorized() -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(
        "401 Unauthorized: this bridge needs the plug token in the URL \
         (ws://HOST:8765/NAME?token=...)\n"
            .to_string(),
    ));
    *resp.status_mut() = StatusCode::UNAUTHORIZED;
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn upgrade<S>(
    stream: S,
    deadline: tokio::time::Instant,
    remote: std::net::SocketAddr,
    conn: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut path = String::new();
    let mut bad_token = false;
    let token = shared.config.ws_token.as_ref();
    // The error type is fixed by tungstenite's handshake callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
        if let Some(token) = token {
            // Checked before the upgrade completes: no frame of an unauthenticated client is
            // ever read.
            if !token_in_query(req.uri().query()).is_some_and(|t| token.matches(t)) {
                bad_token = true;
                return Err(unauthorized());
            }
        }
        let offers_json_rpc = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case("json-rpc"));
        if offers_json_rpc {
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static("json-rpc"),
            );
        }
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(ws_config(shared.config.max_frame_bytes)),
    );
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(_)) if bad_token => {
            shared.refuse(
                Refusal::Token,
                remote,
                &format!(
                    "the upgrade of {} lacked the right plug token (answered 401)",
                    shown(&path, 64)
                ),
            );
            return;
        }
        Ok(Err(error)) => {
            shared.refuse(
                Refusal::Handshake,
                remote,
                &format!("the WebSocket upgrade failed: {error}"),
            );
            return;
        }
        Err(_) => {
            shared.refuse(
                Refusal::Handshake,
                remote,
                "the WebSocket upgrade did not finish within 10 s",
            );
            return;
        }
    };
    let alias = alias_from_path(&path);
    if alias.is_none() && !path.trim_matches('/').is_empty() {
        tracing::debug!(%remote, path = %shown(&path, 64), "Path is not usable as an alias; the plug is listed by id.");
    }
    run_connection(ws, conn, remote, alias, shared, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases() {
        assert_eq!(alias_from_path("/jetson-01").as_deref(), Some("jetson-01"));
        assert_eq!(alias_from_path("/jetson-01/").as_deref(), Some("jetson-01"));
        assert_eq!(
            alias_from_path("/orin.lab?x=1").as_deref(),
            Some("orin.lab")
        );
        assert_eq!(alias_from_path("/"), None);
        assert_eq!(alias_from_path(""), None);
        assert_eq!(alias_from_path("/api/shelly/ws"), None);
        assert_eq!(alias_from_path("/a%20b"), None);
        assert_eq!(
            alias_from_path("/edge?token=0123456789abcdef").as_deref(),
            Some("edge")
        );
    }

    #[test]
    fn the_query_never_reaches_a_log_line() {
        assert_eq!(loggable_target("/edge?token=secret-secret-1234"), "/edge");
        assert_eq!(loggable_target("/a/b?x=1&token=s#frag"), "/a/b");
        assert_eq!(loggable_target("/plain"), "/plain");
        assert_eq!(loggable_target("?token=s"), "");
        assert_eq!(loggable_target("/x#token=s"), "/x");
    }

    #[test]
    fn the_token_parameter_is_found_once_or_not_at_all() {
        assert_eq!(token_in_query(Some("token=abc")), Some("abc"));
        assert_eq!(token_in_query(Some("id=1&token=abc&x")), Some("abc"));
        assert_eq!(token_in_query(Some("token=")), Some(""));
        assert_eq!(token_in_query(Some("tokens=abc")), None);
        assert_eq!(token_in_query(Some("token=a&token=b")), None);
        assert_eq!(token_in_query(Some("")), None);
        assert_eq!(token_in_query(None), None);
    }
}
