//! HTTP servers: [`metrics`] (Prometheus, `port`) and [`api`] (management, `reload_port`).
//! Both are bound by the caller (so the bound address of `port: 0` can be logged) and stop
//! gracefully when the shutdown token fires.
//!
//! Connections are served with hyper's HTTP/1 server directly (the warp filters as the
//! service) so that a client that opens a connection and never completes its request head is
//! dropped after [`HEADER_READ_TIMEOUT`] instead of holding a socket forever.

pub mod api;
pub mod error;
pub mod metrics;

use std::convert::Infallible;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Filter;

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
        let (io, _peer) = match accepted {
            Ok(pair) => pair,
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
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error.");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
