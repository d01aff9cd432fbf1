//! Where the management API listens, with the real binary: on loopback by default, beyond it
//! only with an API token; without one the start is refused with the documented line (exit
//! 64). Only loopback addresses are dialled: 127.0.0.1, and 127.0.0.2, which reaches a server
//! bound to every interface but not one bound to 127.0.0.1.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// A config that leaves both bind addresses and the token at their defaults: free ports, the
/// corpus replayed, no Shelly (nothing to reach at localhost:8766).
fn defaults_but_ports(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "port: 0\nreload_port: 0\nhostname: edge-01\ntegrastats:\n  replay: {}\nshelly:\n  enabled: false\n{extra}",
            orin_corpus().display()
        ),
    )
    .unwrap();
    path
}

fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Exporter {
    let mut cmd = command();
    cmd.arg("--config").arg(config).envs(env.iter().copied());
    Exporter::start(cmd, None)
}

/// Whether a TCP connection to `ip:port` is accepted.
fn accepts(ip: [u8; 4], port: u16) -> bool {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

#[test]
fn by_default_the_management_api_listens_on_127_0_0_1_only() {
    let dir = TempDir::new("bind-default");
    let config = defaults_but_ports(&dir, "");
    let exp = start(&config, &[]);
    let line = exp.proc.wait_line(
        &["Listening.", "server=\"management\""],
        Duration::from_secs(5),
    );
    assert!(line.contains("address=127.0.0.1:"), "{line}");
    assert_eq!(exp.api.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    // Prometheus scrapes from elsewhere: the metrics server keeps every interface.
    assert_eq!(exp.metrics.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert!(accepts([127, 0, 0, 2], exp.metrics.port()));
    // 127.0.0.2 is another loopback address: a server on 0.0.0.0 would take it.
    assert!(!accepts([127, 0, 0, 2], exp.api.port()));
    assert_eq!(exp.api("GET", "/health", &[], None).status, 200);
    assert_eq!(
        exp.api("GET", "/config", &[], None).json()["reload_bind_address"],
        "127.0.0.1"
    );
    // Open, as documented, while it stays on loopback.
    assert_eq!(exp.api("GET", "/metrics/list", &[], None).status, 200);
}

#[test]
fn beyond_loopback_without_a_token_the_start_is_refused_with_the_documented_line() {
    let dir = TempDir::new("bind-open");
    for address in ["0.0.0.0", "\"::\""] {
        let config = defaults_but_ports(&dir, &format!("reload_bind_address: {address}\n"));
        let out = run_to_end(command().arg("--config").arg(&config));
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        let shown = address.trim_matches('"');
        assert_eq!(
            lines[0],
            format!(
                "{}: reload_bind_address {shown} is not a loopback address and no API token is \
                 set, so anyone who reaches port 0 could rewrite the configuration (set \
                 api_token: \"<a long random secret>\" in config.yaml or \
                 EDGE_METRICS_API_TOKEN=<secret> in the environment, or set \
                 reload_bind_address: 127.0.0.1)",
                config.display()
            )
        );
    }
    // docs/API.md shows this very line (for the default path and port).
    let config = defaults_but_ports(&dir, "reload_bind_address: 0.0.0.0\n")
        .display()
        .to_string();
    let text = std::fs::read_to_string(&config).unwrap();
    // reload_port at its default (the check comes before any port is bound).
    std::fs::write(&config, text.replace("reload_port: 0\n", "")).unwrap();
    let out = run_to_end(command().arg("--config").arg(&config));
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let line = String::from_utf8_lossy(&out.stderr)
        .trim_end()
        .replace(&config, "/etc/edge-metrics/config.yaml");
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md")).unwrap();
    assert!(
        doc.lines().any(|l| l == line),
        "docs/API.md does not show the line:\n{line}"
    );
    // A blank token is no token.
    let config = defaults_but_ports(&dir, "reload_bind_address: 0.0.0.0\n");
    let out = run_to_end(
        command()
            .arg("--config")
            .arg(&config)
            .env("EDGE_METRICS_API_TOKEN", "  "),
    );
    assert_eq!(out.status.code(), Some(64), "{out:?}");
}

#[test]
fn beyond_loopback_with_a_token_it_starts_and_asks_for_the_token() {
    let dir = TempDir::new("bind-token");
    // The token in config.yaml.
    let config = defaults_but_ports(
        &dir,
        "reload_bind_address: 0.0.0.0\napi_token: \"file-token\"\n",
    );
    let exp = start(&config, &[]);
    assert_eq!(exp.api.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert!(accepts([127, 0, 0, 2], exp.api.port()));
    assert_eq!(exp.api("GET", "/health", &[], None).status, 200);
    assert_eq!(exp.api("GET", "/config", &[], None).status, 401);
    let bearer = [("Authorization", "Bearer file-token")];
    assert_eq!(exp.api("GET", "/config", &bearer, None).status, 200);
    exp.proc.terminate().expect("exits on SIGTERM");

    // The token in the environment.
    let config = defaults_but_ports(&dir, "reload_bind_address: 0.0.0.0\n");
    let exp = start(&config, &[("EDGE_METRICS_API_TOKEN", "env-token")]);
    assert_eq!(exp.api.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(exp.api("GET", "/metrics/list", &[], None).status, 401);
    let bearer = [("Authorization", "Bearer env-token")];
    assert_eq!(exp.api("GET", "/metrics/list", &bearer, None).status, 200);
}
