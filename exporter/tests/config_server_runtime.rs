//! The exporter against a Config Server: fetched at start-up and on reload (falling back to
//! config.yaml when the server is down, slow or sends garbage) and pushed after every change.
//! The server is a small loopback HTTP server run by the test.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use edge_metrics_exporter::config;

/// How the fake Config Server answers `GET /config/{id}`.
#[derive(Clone)]
enum Mode {
    /// 200 with this JSON.
    Serve(String),
    /// Waits this long before answering the JSON.
    Slow(Duration, String),
    /// 200 with a body that is not JSON.
    Garbage,
}

struct FakeServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// (method, path, body) of every request.
    seen: Arc<Mutex<Vec<(String, String, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    fn start(mode: Mode) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s, st) = (mode.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: the test stops it on drop; a minute is the hard limit.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !st.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (m, s) = (m.clone(), s.clone());
                        std::thread::spawn(move || answer(stream, &m, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeServer {
            addr,
            mode,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn requests(&self) -> Vec<(String, String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: TcpStream, mode: &Mutex<Mode>, seen: &Mutex<Vec<(String, String, String)>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    seen.lock().unwrap().push((
        method.clone(),
        path,
        String::from_utf8_lossy(&body).to_string(),
    ));
    let current = mode.lock().unwrap().clone();
    let (status, body) = if method == "PUT" {
        ("200 OK", "{}".to_string())
    } else {
        match current {
            Mode::Serve(json) => ("200 OK", json),
            Mode::Slow(wait, json) => {
                std::thread::sleep(wait);
                ("200 OK", json)
            }
            Mode::Garbage => ("200 OK", "<html>not json</html>".to_string()),
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// The JSON a Config Server holds for this setup: the base config plus `extra`.
fn server_json(setup: &Setup, extra: &str) -> String {
    let cfg = config::parse(&setup.config_text(extra), "server").unwrap();
    config::to_json(&cfg).to_string()
}

fn server_section(url: &str, timeout: f64) -> String {
    format!("config_server:\n  url: {url}\n  timeout: {timeout}\n")
}

const LOCAL: &str = "metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n";

#[test]
fn start_up_and_reload_use_the_server_and_changes_are_pushed() {
    let setup = Setup::new(&orin_corpus(), LOCAL);
    let server = FakeServer::start(Mode::Garbage);
    setup.write_config(&format!("{LOCAL}{}", server_section(&server.url(), 2.0)));
    let remote = format!(
        "metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: true\n{}",
        server_section(&server.url(), 2.0)
    );
    server.set(Mode::Serve(server_json(&setup, &remote)));
    let exp = setup.start();
    let health = exp.api("GET", "/health", &[], None).json();
    assert_eq!(health["config_source"], "server", "{health}");
    let list = exp.api("GET", "/metrics/list", &[], None).json();
    assert_eq!(list["source"], "server");
    assert_eq!(list["metrics"]["jetson_ram_total_mb"], true);
    // The device id is the hostname label; the local file keeps a copy.
    assert!(server
        .requests()
        .iter()
        .any(|(m, p, _)| m == "GET" && p == "/config/edge-01"));
    let local = config::parse(&std::fs::read_to_string(&setup.config_path).unwrap(), "c").unwrap();
    assert!(local.metrics["jetson_ram_total_mb"]);

    // A change is pushed in the background.
    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_used_mb": false}"#);
    assert_eq!(r.status, 200);
    // Discovery pushes too; wait for the push that carries the change.
    let pushed = wait_for(Duration::from_secs(5), "a PUT with the change", || {
        server
            .requests()
            .into_iter()
            .rev()
            .find_map(|(m, p, body)| {
                let json: serde_json::Value = serde_json::from_str(&body).ok()?;
                (m == "PUT"
                    && p == "/config/edge-01"
                    && json["metrics"]["jetson_ram_used_mb"] == false)
                    .then_some(json)
            })
    });
    assert!(pushed.get("api_token").is_none());
    wait_for(Duration::from_secs(5), "pushes_total success", || {
        exp.scrape()
            .sample("edge_metrics_exporter_config_server_pushes_total{result=\"success\"}")
            .filter(|n| *n >= 1.0)
    });

    // Reload: the server's new device type applies.
    let xavier_json = server_json(&setup, &remote).replace("\"jetson_orin\"", "\"jetson_xavier\"");
    server.set(Mode::Serve(xavier_json));
    let r = exp.api("POST", "/reload", &[], None).json();
    assert_eq!(r["source"], "server", "{r}");
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["collector"],
        "JetsonXavierCollector"
    );

    // Server sending garbage on reload: the local file is used, and said so.
    server.set(Mode::Garbage);
    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["source"], "local");
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["config_source"],
        "local"
    );
    exp.wait_log(
        "Config Server unavailable; using the local config.",
        Duration::from_secs(2),
    );
}

#[test]
fn start_up_falls_back_to_the_local_file_when_the_server_is_down_slow_or_garbage() {
    // Down: a port nothing listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow = FakeServer::start(Mode::Garbage);
    let garbage = FakeServer::start(Mode::Garbage);
    for (what, url) in [
        ("down", format!("http://{closed}")),
        ("slow", slow.url()),
        ("garbage", garbage.url()),
    ] {
        let setup = Setup::new(&orin_corpus(), "");
        setup.write_config(&format!("{LOCAL}{}", server_section(&url, 0.5)));
        slow.set(Mode::Slow(Duration::from_secs(3), server_json(&setup, "")));
        let started = std::time::Instant::now();
        let exp = setup.start();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: start-up waited {:?}",
            started.elapsed()
        );
        let health = exp.api("GET", "/health", &[], None).json();
        assert_eq!(health["config_source"], "local", "{what}");
        let list = exp.api("GET", "/metrics/list", &[], None).json();
        assert_eq!(list["source"], "local", "{what}");
        assert_eq!(list["metrics"]["jetson_ram_used_mb"], true, "{what}");
        exp.wait_log(
            "Config Server unavailable; using the local config.",
            Duration::from_secs(2),
        );
        if what == "down" {
            // Pushes to a down server are counted as failures; the enable itself succeeds.
            assert_eq!(
                exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#)
                    .status,
                200
            );
            wait_for(Duration::from_secs(5), "a failed push", || {
                exp.scrape()
                    .sample("edge_metrics_exporter_config_server_pushes_total{result=\"error\"}")
                    .filter(|n| *n >= 1.0)
            });
        }
    }
}
