//! What every test package of the workspace shares, written once: the exporter's and the
//! bridge's integration tests and the end-to-end package (`tests/`) all start the real
//! binaries on 127.0.0.1 with port 0 and talk to them over loopback.
//!
//! - [`bins`]: where a workspace binary is (`CARGO_BIN_EXE_<name>` when cargo gives it, else
//!   beside the test executable) and a [`Command`](std::process::Command) that runs it through
//!   the cargo runner when one is set (qemu for the aarch64 run). Tests never build.
//! - [`daemon`]: a started binary whose output goes to a log file; killed on drop, its log
//!   printed when the test failed; bound addresses read from its log lines. [`Exporter`],
//!   [`Bridge`] and the simulated plug know the log lines of the workspace's daemons.
//! - [`wait`]: bounded polling that says what it waited for when time runs out.
//! - [`http`]: a minimal HTTP/1.1 client for loopback (GET, POST, raw requests).
//! - [`fake_http`]: a loopback HTTP server answering from a handler the test can swap.
//! - [`prom`]: reading samples out of Prometheus text.
//! - [`require`]: a program or capability a test needs; missing, it fails the test unless
//!   `EDGE_METRICS_ALLOW_SKIP` names it for the run (then a loud skip, written to a ledger).
//! - [`temp`]: a temporary directory removed on drop.

pub mod bins;
pub mod daemon;
pub mod fake_http;
pub mod golden;
pub mod http;
pub mod pg;
pub mod pki;
pub mod procfs;
pub mod prom;
pub mod require;
pub mod temp;
pub mod wait;

pub use bins::{command, daemon_command, locate, run_to_end};
pub use daemon::{Bridge, Daemon, Exporter};
pub use fake_http::{FakeHttp, Reply, Request};
pub use http::Response;
pub use prom::{sample, scrape};
pub use temp::{copy_tree, TempDir};
pub use wait::{try_wait_for, wait_for, wait_for_async, TimedOut};

/// An environment as the daemons read it (name → value), from pairs: tests pass a map rather
/// than changing the process's own variables.
pub fn env(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
