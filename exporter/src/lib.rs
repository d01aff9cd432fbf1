//! edge-metrics-exporter: runs the host's tegrastats, parses it with per-model collectors and
//! serves Prometheus metrics plus a JSON management API.

pub mod collector;
pub mod config;
pub mod configserver;
pub mod tegrastats;
