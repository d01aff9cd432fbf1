//! What the tests of the real binary share: starting a server on 127.0.0.1 with a database,
//! requests to it, and a config as the exporter pushes it.

#![allow(dead_code)] // each test file uses its own part of this

use std::net::SocketAddr;
use std::process::Command;

use serde_json::{json, Value};
use test_support::daemon::STARTUP;
use test_support::http::{self, Response};
use test_support::{Daemon, TempDir};

/// The operator token as configured (`name:token`).
pub const OPERATOR: &str = "alice:aaaaaaaaaaaaaaaaaaaa";
/// The operator token's secret.
pub const OPERATOR_SECRET: &str = "aaaaaaaaaaaaaaaaaaaa";
/// The fleet device token.
pub const DEVICE_SECRET: &str = "dddddddddddddddddddd";

/// Every variable the server reads, so the test's own environment cannot leak in.
const VARIABLES: [&str; 8] = [
    "CONFIG_SERVER_LISTEN",
    "CONFIG_SERVER_DATABASE",
    "CONFIG_SERVER_MAX_CONNECTIONS",
    "CONFIG_SERVER_OPERATOR_TOKEN",
    "CONFIG_SERVER_OPERATOR_TOKEN_FILE",
    "CONFIG_SERVER_DEVICE_TOKEN",
    "CONFIG_SERVER_DEVICE_TOKEN_FILE",
    "RUST_LOG",
];

/// The server binary with `args`, `env` and nothing of the test's own server variables.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = test_support::daemon_command(&test_support::bin!("edge-metrics-config-server"));
    for v in VARIABLES {
        cmd.env_remove(v);
    }
    cmd.env("RUST_LOG", "info").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running server with its database.
pub struct Server {
    /// The process.
    pub daemon: Daemon,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database URL.
    pub database: String,
    /// The directory of a SQLite file, removed with the server.
    pub dir: Option<TempDir>,
}

impl Server {
    /// Starts a server on `database` with `env`; `dir` is kept alive with it.
    pub fn start_on(database: &str, env: &[(&str, &str)], dir: Option<TempDir>) -> Server {
        let cmd = command(&["--listen", "127.0.0.1:0", "--database", database], env);
        let daemon = Daemon::start("config-server", cmd, None);
        let addr = daemon.wait_addr(&["Listening"], STARTUP);
        Server {
            daemon,
            addr,
            database: database.to_string(),
            dir,
        }
    }

    /// A server on a fresh SQLite file.
    pub fn sqlite(env: &[(&str, &str)]) -> Server {
        let dir = TempDir::new("config-server");
        let db = format!("sqlite://{}", dir.join("config.db").display());
        Server::start_on(&db, env, Some(dir))
    }

    /// One request; panics when the server does not answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        http::request(self.addr, method, path, headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], "")
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(headers);
        self.request("PUT", path, &h, &body.to_string())
    }
}

/// Asserts the status, showing the body when it differs.
pub fn assert_status(r: &Response, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {} {}", r.status, r.body);
}

/// A full config as an Orin's exporter pushes it, with `metrics`.
pub fn orin(metrics: Value) -> Value {
    json!({
        "device_type": "jetson_orin",
        "interval": 1,
        "port": 9102,
        "reload_port": 9101,
        "shelly": {"enabled": true, "server_url": "http://localhost:8766"},
        "metrics": metrics,
    })
}

/// The exporter of `device`, replaying an Orin's tegrastats every 0.2 s on loopback ports 0,
/// synced with `server` using the fleet device token; its config.yaml is written in `dir`.
pub fn start_exporter(
    dir: &std::path::Path,
    server: &Server,
    device: &str,
) -> test_support::Exporter {
    start_exporter_as(dir, server, device, "jetson_orin", "")
}

/// [`start_exporter`] with `device_type: {device_type}` and `extra` config lines (each ending
/// in a newline).
pub fn start_exporter_as(
    dir: &std::path::Path,
    server: &Server,
    device: &str,
    device_type: &str,
    extra: &str,
) -> test_support::Exporter {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/tegrastats/orin-agx-jp6.log");
    assert!(corpus.is_file(), "{} is missing", corpus.display());
    let config = dir.join("config.yaml");
    let text = format!(
        "device_type: {device_type}\n{extra}interval: 0.2\nport: 0\nreload_port: 0\n\
         bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: {device}\n\
         shelly:\n  enabled: false\ntegrastats:\n  replay: {}\n\
         config_server:\n  url: http://{}\n  timeout: 5\n  token: {DEVICE_SECRET}\n\
         metrics:\n  jetson_ram_used_mb: true\n",
        corpus.display(),
        server.addr
    );
    std::fs::write(&config, text).expect("config.yaml is written");
    let mut cmd = test_support::daemon_command(&test_support::bin!("edge-metrics-exporter"));
    cmd.arg("--config").arg(&config);
    for v in [
        "CONFIG_SERVER_URL",
        "CONFIG_SERVER_TOKEN",
        "CONFIG_TIMEOUT",
        "EDGE_METRICS_HOST_ROOT",
    ] {
        cmd.env_remove(v);
    }
    test_support::Exporter::start(cmd, Some(dir))
}
