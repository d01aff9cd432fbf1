//! Harness for end-to-end tests that run both binaries together on loopback.
pub mod proof;
