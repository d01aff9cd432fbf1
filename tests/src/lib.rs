//! End-to-end tests: the real binaries together on loopback (127.0.0.1, port 0, addresses
//! read from their logs).
//!
//! The harness every test package shares (finding and starting the binaries, bounded waits,
//! the HTTP client, the fake HTTP server) is the `test-support` crate; [`proof`] adds what only
//! the tests of this package need.

pub mod proof;
