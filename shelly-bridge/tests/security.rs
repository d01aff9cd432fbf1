//! Who may be a plug, and who may reach the API: the plug token (401 on upgrade, constant-time
//! compare, never logged or listed), the allow-list, `wss://` with a CA made here, and the HTTP
//! API bound to loopback by default. The real binary on 127.0.0.1 with real WebSocket and TLS
//! clients; every wait is on something observable and bounded.

mod common;
mod hardening;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use hardening::{addr_of, wait_metric};
use serde_json::json;
use test_support::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_tungstenite::tungstenite::{self, Message};

const PLUG: &str = "shellyplugsg3-8cbfea99a7f8";
const TOKEN: &str = "c0ffee-7e57-70ken-1234567890abcdef";

/// Writes `token` (with the newline `echo` would add) to a file in `dir`.
fn token_file(dir: &TempDir, token: &str) -> PathBuf {
    let path = dir.join("ws-token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path
}

/// A bridge whose plugs need [`TOKEN`], given as a file (so it is not even on the command
/// line), plus `extra` flags.
fn bridge_with_token(dir: &TempDir, extra: &[&str]) -> Bridge {
    let file = token_file(dir, TOKEN);
    let mut args = vec!["--ws-token-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    Bridge::start(&args)
}

/// A test plug dialling `/edge` with the token, listed once connected.
async fn plug_with_token(b: &Bridge) -> Plug {
    let path = format!("/edge?token={TOKEN}");
    let plug = Plug::connect(&b.ws, &path, PLUG, Some(plug_full_status())).await;
    b.wait_devices(&["edge"]).await;
    plug
}

/// The HTTP status a WebSocket upgrade to `url` was refused with.
async fn refused_status(url: &str) -> u16 {
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(other) => panic!("{url}: expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("{url}: the upgrade was accepted"),
    }
}

#[tokio::test]
async fn a_client_without_the_token_cannot_register_or_displace_a_plug() {
    let dir = TempDir::new("bridge-token");
    let b = bridge_with_token(&dir, &[]);
    let mut plug = plug_with_token(&b).await;

    // Same path, no token; a wrong one; a near miss; the right one twice (ambiguous); the
    // right one under another name. Each is refused with 401 before any frame is read.
    for query in [
        String::new(),
        "?token=wrong-but-long-enough-123".to_string(),
        format!("?token={}", &TOKEN[..TOKEN.len() - 1]),
        format!("?token={TOKEN}&token={TOKEN}"),
        format!("?tok={TOKEN}"),
    ] {
        let url = format!("{}/edge{query}", b.ws);
        assert_eq!(refused_status(&url).await, 401, "{url}");
    }
    wait_metric(&b, "shelly_bridge_ws_rejected_total{reason=\"token\"}", 5.0).await;

    // The plug that has the token was neither displaced nor disturbed: it still answers.
    let http = b.spawn_get("/metrics/edge");
    let req = plug.next_request().await;
    plug.reply_raw(&req, &corpus("switch-getstatus-result-plus-1pm.json"));
    let (status, v) = http.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["device_id"], PLUG);
    assert!(
        plug.closed.try_recv().is_err(),
        "the plug's socket was closed"
    );
    assert_eq!(b.own_metric("shelly_bridge_connected_plugs").await, 1.0);
    assert_eq!(
        b.own_metric("shelly_bridge_plug_connections_total").await,
        1.0
    );
}

#[tokio::test]
async fn with_the_token_a_reconnect_replaces_the_old_connection() {
    let dir = TempDir::new("bridge-token");
    let b = bridge_with_token(&dir, &[]);
    let path = format!("/edge?id=1&token={TOKEN}");
    let mut old = Plug::connect(&b.ws, &path, PLUG, Some(plug_full_status())).await;
    b.wait_devices(&["edge"]).await;
    let mut new = Plug::connect(&b.ws, &path, PLUG, Some(plug_full_status())).await;
    let code = tokio::time::timeout(Duration::from_secs(5), old.closed.recv())
        .await
        .expect("the old connection is closed")
        .unwrap();
    assert_eq!(code, Some(1008));
    b.wait_devices(&["edge"]).await;
    let http = b.spawn_get("/metrics/edge");
    let req = new.next_request().await;
    assert_eq!(req["id"], 1, "the new connection answers");
    new.reply_raw(&req, &corpus("switch-getstatus-result-plus-1pm.json"));
    assert_eq!(http.await.unwrap().0, 200);
    assert_eq!(
        b.own_metric("shelly_bridge_ws_rejected_total{reason=\"token\"}")
            .await,
        0.0
    );
}

#[tokio::test]
async fn the_token_is_never_logged_listed_or_exported() {
    let dir = TempDir::new("bridge-token");
    let b = bridge_with_token(&dir, &[]);
    let wrong = "wrong-guess-of-the-token-0000";
    let _plug = plug_with_token(&b).await;
    // A refused attempt is logged, with its path but not its query.
    assert_eq!(
        refused_status(&format!("{}/intruder?token={wrong}", b.ws)).await,
        401
    );
    let line = b
        .proc()
        .wait_line(&["Turned a plug connection away"], Duration::from_secs(10));
    assert!(
        line.contains("WARN") && line.contains("/intruder"),
        "{line}"
    );
    // Debug lines as well: the test bridge logs shelly_bridge at DEBUG.
    b.proc()
        .wait_line(&["Plug connected.", PLUG], Duration::from_secs(10));

    let devices = b.text("/devices").await;
    let metrics = b.text("/bridge/metrics").await;
    let health = b.text("/health").await;
    let log = b.proc().log();
    for (what, text) in [
        ("/devices", &devices),
        ("/bridge/metrics", &metrics),
        ("/health", &health),
        ("the log", &log),
    ] {
        for secret in [TOKEN, wrong, "token="] {
            assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
        }
    }
    assert!(devices.contains("\"edge\""), "{devices}");
    assert!(
        !log.contains("No plug token is set"),
        "a token is set, so no warning"
    );
}

#[tokio::test]
async fn without_a_token_any_plug_is_accepted_and_the_start_warns_once() {
    let b = Bridge::start(&[]);
    let _plug = b.plug("/edge", PLUG).await;
    b.wait_devices(&["edge"]).await;
    let log = b.proc().log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("No plug token is set"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(warnings[0].contains("SHELLY_WS_TOKEN"), "{}", warnings[0]);
}

#[tokio::test]
async fn a_device_off_the_allow_list_is_closed_and_counted() {
    let allowed = "shellyplugsg3-000000000001";
    let b = Bridge::start(&["--allow-device", allowed, "--allow-device", "other-id"]);
    let _ok = b.plug("/good", allowed).await;
    b.wait_devices(&["good"]).await;
    let mut stranger = b.plug("/bad", "shellyplugsg3-0000000000ff").await;
    let code = tokio::time::timeout(Duration::from_secs(5), stranger.closed.recv())
        .await
        .expect("the stranger is closed")
        .unwrap();
    assert_eq!(code, Some(1008));
    assert_eq!(
        b.own_metric("shelly_bridge_ws_rejected_total{reason=\"allow_list\"}")
            .await,
        1.0
    );
    b.wait_devices(&["good"]).await;
    assert_eq!(
        b.own_metric("shelly_bridge_plug_connections_total").await,
        1.0
    );
}

/// A CA, and a certificate for `localhost` and 127.0.0.1 signed by it, written as PEM files.
struct Pki {
    ca_der: rustls::pki_types::CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let pki = test_support::pki::make("edge-metrics test CA", &["localhost", "127.0.0.1"]);
    let cert = dir.join("bridge.crt");
    let key = dir.join("bridge.key");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    Pki {
        ca_der: pki.ca_der.into(),
        cert,
        key,
    }
}

/// A TLS client that trusts only `ca` (the plug's `ssl_ca: "user_ca.pem"`), speaking only
/// `versions`.
fn tls_client(
    ca: &rustls::pki_types::CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn a_wss_plug_connects_with_a_ca_the_test_made() {
    let dir = TempDir::new("bridge-tls");
    let pki = make_pki(dir.path());
    let b = bridge_with_token(
        &dir,
        &[
            "--ws-tls-cert",
            pki.cert.to_str().unwrap(),
            "--ws-tls-key",
            pki.key.to_str().unwrap(),
        ],
    );
    b.proc().wait_line(
        &["Listening for plug WebSocket", "scheme=\"wss\""],
        Duration::from_secs(10),
    );
    let ws_addr = addr_of(&b.ws);

    // A plug with TLS 1.2 only (what a plug's TLS stack may offer), checking the certificate
    // against the CA, with the token.
    let tls = tls_client(&pki.ca_der, &[&rustls::version::TLS12]);
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the bridge's certificate verifies against the test CA");
    let url = format!("wss://localhost:{}/secure?token={TOKEN}", ws_addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("the upgrade over TLS succeeds");
    let hello = json!({"src": PLUG, "dst": "ws", "method": "NotifyFullStatus", "params": plug_full_status()});
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    b.wait_devices(&["secure"]).await;
    let http = b.spawn_get("/metrics/secure");
    let req = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a request within 10 s")
            .expect("the connection stays open")
            .unwrap();
        if let Message::Text(t) = frame {
            break serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap();
        }
    };
    assert_eq!(req["method"], "Switch.GetStatus");
    let answer = format!(
        r#"{{"id":{},"src":"{PLUG}","dst":{},"result":{}}}"#,
        req["id"],
        req["src"],
        corpus("switch-getstatus-result-plus-1pm.json")
    );
    ws.send(Message::Text(answer.into())).await.unwrap();
    let (status, v) = http.await.unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["device_id"], PLUG);

    // TLS 1.3 works too, and the token is still required over TLS.
    let tls13 = tls_client(&pki.ca_der, &[&rustls::version::TLS13]);
    let tcp = TcpStream::connect(ws_addr).await.unwrap();
    let stream = tls13
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/secure", ws_addr.port());
    match tokio_tungstenite::client_async(url, stream).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!(
            "expected 401 over TLS without the token, got {:?}",
            other.err()
        ),
    }

    // Plain ws:// to the TLS port: no upgrade, counted as a TLS failure.
    assert!(
        tokio_tungstenite::connect_async(format!("ws://{ws_addr}/plain"))
            .await
            .is_err()
    );
    wait_metric(&b, "shelly_bridge_ws_rejected_total{reason=\"tls\"}", 1.0).await;
    b.wait_devices(&["secure"]).await;
}

#[test]
fn an_unusable_certificate_or_key_stops_the_bridge_with_64_naming_the_file() {
    let dir = TempDir::new("bridge-tls-bad");
    let pki = make_pki(dir.path());
    let missing = dir.join("missing.crt");
    let other = make_pki(&{
        let d = dir.join("other");
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    let cases: [(&Path, &Path, &str); 3] = [
        (&missing, &pki.key, "missing.crt"),
        (&pki.key, &pki.key, "holds no PEM certificate"),
        (&pki.cert, &other.key, "cannot serve the certificate"),
    ];
    for (cert, key, says) in cases {
        let out = run_to_end(command().args(test_support::Bridge::args(&[
            "--ws-tls-cert",
            cert.to_str().unwrap(),
            "--ws-tls-key",
            key.to_str().unwrap(),
        ])));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(
            !stderr.contains("Listening for plug"),
            "no port is opened: {stderr}"
        );
    }
    // Only one of the two files: a usage error naming what is missing.
    let out = run_to_end(command().args(["--ws-tls-cert", pki.cert.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ws-tls-key"));
}

#[test]
fn the_http_api_answers_on_loopback_only_by_default() {
    // No --bind, no --http-bind: the HTTP API's default address. The plug listener is put on
    // loopback for the test (its own default is 0.0.0.0).
    let mut cmd = test_support::daemon_command(&test_support::bin!("shelly-bridge"));
    cmd.args([
        "--ws-bind",
        "127.0.0.1",
        "--ws-port",
        "0",
        "--http-port",
        "0",
    ]);
    let b = test_support::Bridge::start("bridge", cmd, None);
    assert_eq!(b.http.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST), "{}", b.http);
    let r = test_support::http::get(b.http, "/health").unwrap();
    assert_eq!(r.status, 200);
    // Other loopback addresses on the same port get no answer: nothing listens there.
    for other in [
        SocketAddr::from(([127, 0, 0, 2], b.http.port())),
        SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, b.http.port())),
    ] {
        let result = std::net::TcpStream::connect_timeout(&other, Duration::from_secs(3));
        assert!(result.is_err(), "{other} answered");
    }
    // The container probe finds the API with the same defaults.
    let port = b.http.port().to_string();
    let out = run_to_end(command().args(["healthcheck", "--http-port", &port]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_device_name_in_an_error_is_truncated_and_escaped() {
    let b = Bridge::start(&[]);
    let long = "a".repeat(300);
    let (status, v) = b.get(&format!("/metrics/{long}")).await;
    assert_eq!(status, 404, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("'{}...'", "a".repeat(64))),
        "{error}"
    );
    assert!(!error.contains(&"a".repeat(65)), "{error}");
    let (status, v) = b.get("/metrics/it's%0A").await;
    assert_eq!(status, 404, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(error.contains(r"'it\'s%0A'"), "{error}");
}
