//! HTTP servers: [`metrics`] (Prometheus, `port`) and [`api`] (management, `reload_port`).
//! Both are bound by the caller (so the bound address of `port: 0` can be logged) and stop
//! gracefully when the shutdown token fires.
//!
//! Connections are served by `edge_metrics_common::serve` (hyper's HTTP/1 server with the
//! warp filters as the service), so a client that opens a connection and never completes its
//! request head is dropped after [`HEADER_READ_TIMEOUT`] instead of holding a socket forever;
//! the bridge uses the same loop.

pub mod api;
pub mod error;
pub mod metrics;

pub use edge_metrics_common::{serve, HEADER_READ_TIMEOUT};
