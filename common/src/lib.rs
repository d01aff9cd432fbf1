//! Plumbing that both daemons, `edge-metrics-exporter` and `shelly-bridge` (and the plug
//! simulator), run the same way, kept once so that a fix reaches every binary:
//!
//! - [`serve`]: the hyper HTTP/1 accept loop under warp routes, with a header-read timeout
//!   and graceful shutdown, and [`serve_limited`] with a cap on open connections;
//! - [`limit`]: that cap ([`limit::ConnectionLimit`]), shared with a daemon's own listeners,
//!   and a throttle for warnings about a bound that keeps being hit;
//! - [`init_tracing`]: `RUST_LOG` (default `info`) to stderr;
//! - [`healthcheck`]: the HTTP probe the `FROM scratch` images run;
//! - [`hostname`]: the machine's name, for the bridge's default JSON-RPC `src`;
//! - [`text`]: outside text cut and escaped before an error message repeats it;
//! - [`signal`]: waiting for SIGTERM/SIGINT;
//! - [`cli`]: command-line errors for flags parsed with `lexopt`, and the usage exit code.

pub mod cli;
pub mod healthcheck;
pub mod host;
pub mod limit;
pub mod logging;
pub mod serve;
pub mod signal;
pub mod text;

pub use host::hostname;
pub use logging::init_tracing;
pub use serve::{serve, serve_limited, HEADER_READ_TIMEOUT};
