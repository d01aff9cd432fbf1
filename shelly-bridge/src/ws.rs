//! The WebSocket listener plugs dial (default port 8765).
//!
//! Any path is accepted (devices dial exactly what was typed into their `server` setting); a
//! single-segment path such as `/jetson-01` becomes the plug's alias. The `json-rpc`
//! subprotocol is echoed when offered. Buffers are small so that thousands of idle plugs cost
//! little memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::device::{run_connection, Shared};

/// The alias a URL path gives: one segment of `[A-Za-z0-9._~-]`, else none.
pub fn alias_from_path(path: &str) -> Option<String> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let seg = path.trim_matches('/');
    let ok = !seg.is_empty()
        && seg.len() <= 128
        && seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~'));
    ok.then(|| seg.to_string())
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
pub async fn serve(
    listener: TcpListener,
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
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            accept_connection(stream, remote, conn, shared, shutdown).await;
        });
    }
}

async fn accept_connection(
    stream: TcpStream,
    remote: std::net::SocketAddr,
    conn: u64,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let mut path = String::new();
    // The error type is fixed by tungstenite's handshake callback signature.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_string();
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
    let ws = match tokio::time::timeout(Duration::from_secs(10), handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "WebSocket handshake failed.");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "WebSocket handshake timed out.");
            return;
        }
    };
    let alias = alias_from_path(&path);
    if alias.is_none() && !path.trim_matches('/').is_empty() {
        tracing::debug!(%remote, %path, "Path is not usable as an alias; the plug is listed by id.");
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
    }
}
