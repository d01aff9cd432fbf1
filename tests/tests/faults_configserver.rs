//! The Config Server failing while the exporter runs on a configuration it gave: down, slow,
//! answering 500, or answering garbage at the moment of `POST /reload`. Expected outcomes are
//! in docs/RELIABILITY.md ("Config Server"); the test asserts exactly that.
//!
//! Covered by the exporter's own tests and not repeated (exporter/tests/
//! config_server_runtime.rs, configserver.rs): start-up with the server down, slow or
//! answering garbage falls back to the local file; client time-outs, oversized bodies, push
//! retries.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::proof::{exporter_config, get, http, repo_root, sample, scrape, Exporter, TempDir};

#[derive(Clone)]
enum Mode {
    Serve(String),
    Status500,
    Garbage,
    Slow(Duration),
}

/// A loopback Config Server whose answers the test switches; PUTs are accepted.
struct FakeServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeServer {
    fn start(mode: Mode) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mode.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let m = m.clone();
                        std::thread::spawn(move || answer(stream, &m));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        FakeServer {
            addr,
            mode,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
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

fn answer(stream: TcpStream, mode: &Mutex<Mode>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let method = line.split_whitespace().next().unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    let _ = reader.read_exact(&mut body);
    let current = mode.lock().unwrap().clone();
    let (status, body) = if method == "PUT" {
        ("200 OK", "{}".to_string())
    } else {
        match current {
            Mode::Serve(json) => ("200 OK", json),
            Mode::Status500 => ("500 Internal Server Error", "{\"error\":\"boom\"}".into()),
            Mode::Garbage => ("200 OK", "<html>\u{0}not a config".into()),
            Mode::Slow(wait) => {
                std::thread::sleep(wait);
                ("200 OK", "{}".into())
            }
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn config_server_failing_at_reload_falls_back_to_the_local_file_in_time() {
    let tmp = TempDir::new("config-server");
    let corpus = repo_root().join("testdata/tegrastats/orin-agx-jp6.log");
    // The server's configuration enables jetson_ram_total_mb; the local file does not.
    let server_json = serde_json::json!({
        "device_type": "jetson_orin",
        "interval": 0.2,
        "port": 0,
        "reload_port": 0,
        "bind_address": "127.0.0.1",
        "reload_bind_address": "127.0.0.1",
        "tegrastats": {"replay": corpus.display().to_string()},
        "shelly": {"enabled": false},
        "metrics": {"jetson_ram_used_mb": true, "jetson_ram_total_mb": true},
    })
    .to_string();
    let server = FakeServer::start(Mode::Serve(server_json.clone()));
    let cfg = exporter_config(
        tmp.path(),
        &format!("replay: {}", corpus.display()),
        &format!(
            "shelly:\n  enabled: false\nconfig_server:\n  url: http://{}\n  timeout: 0.5\n\
             metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n",
            server.addr
        ),
    );
    let exp = Exporter::start(&cfg, tmp.path());
    assert_eq!(
        exp.health()["config_source"],
        "server",
        "{}",
        exp.proc.log()
    );
    exp.wait_sample("jetson_ram_total_mb", Duration::from_secs(10));

    let reload = |what: &str| {
        let t = Instant::now();
        let r = http(exp.api, "POST", "/reload", &[], b"").unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(2500),
            "{what}: POST /reload took {took:?} with a 0.5 s server timeout"
        );
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        (r.json()["source"].as_str().unwrap_or("").to_string(), took)
    };

    for (what, mode) in [
        ("500", Mode::Status500),
        ("garbage", Mode::Garbage),
        ("slow", Mode::Slow(Duration::from_secs(3))),
    ] {
        server.set(mode);
        let (source, took) = reload(what);
        assert_eq!(source, "local", "{what}: falls back to the local file");
        let list = get(exp.api, "/metrics/list").unwrap().json();
        assert_eq!(list["source"], "local", "{what}");
        // The local file applies: whatever config.yaml holds (the exporter keeps it as the
        // last configuration it ran, so it may be the server's).
        let on_disk: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        let disk_metrics = serde_json::to_value(&on_disk["metrics"]).unwrap();
        assert_eq!(
            list["metrics"], disk_metrics,
            "{what}: the local file applies"
        );
        assert!(
            sample(&scrape(exp.metrics), "jetson_ram_used_mb").is_some(),
            "{what}"
        );
        eprintln!("Config Server {what}: reload fell back to local in {took:?}");
        // Back to serving: the server's configuration applies again.
        server.set(Mode::Serve(server_json.clone()));
        let (source, _) = reload("serving again");
        assert_eq!(source, "server");
    }
    // Down: nothing listens any more.
    drop(server);
    let (source, took) = reload("down");
    assert_eq!(source, "local");
    eprintln!("Config Server down: reload fell back to local in {took:?}");
    assert!(
        exp.proc.log().contains("Config Server unavailable"),
        "{}",
        exp.proc.log()
    );
    assert_eq!(exp.health()["config_source"], "local");
}
