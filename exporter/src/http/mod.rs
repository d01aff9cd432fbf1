//! HTTP servers: [`metrics`] (Prometheus, `port`) and [`api`] (management, `reload_port`).
//! Both are bound by the caller (so the bound address of `port: 0` can be logged) and stop
//! gracefully when the shutdown token fires.

pub mod api;
pub mod error;
pub mod metrics;

use std::convert::Infallible;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Filter;

/// Serves `routes` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve<F>(listener: TcpListener, routes: F, shutdown: CancellationToken)
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    warp::serve(routes)
        .incoming(listener)
        .graceful(async move { shutdown.cancelled_owned().await })
        .run()
        .await;
}
