//! Test harness: runs the real `edge-metrics-exporter` binary on 127.0.0.1 with `port: 0`,
//! a fake `tegrastats` script replaying a corpus file, and a tiny HTTP client.
//!
//! The fake honours `--interval <ms>` and reads a control file before every line:
//! `normal` (the corpus, in a loop), `garbage`, `newrail` (the corpus line plus a rail no
//! corpus line has), `silent` (prints nothing), `exit` (exits with status 3). Each start
//! appends its pid to `pids`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's test data.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

/// The Orin corpus file the fake replays.
pub fn orin_corpus() -> PathBuf {
    testdata("tegrastats/orin-agx-jp5.log")
}

/// `RAM used/total` of every line of a corpus file.
pub fn corpus_ram(path: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("RAM ")? + 4..];
            let tok = rest.split_whitespace().next()?.trim_end_matches("MB");
            let (u, t) = tok.split_once('/')?;
            Some((u.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

/// Polls `f` every 25 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

const FAKE_TEGRASTATS: &str = r#"#!/bin/bash
# Fake tegrastats for tests: --interval <ms>, lines from $CORPUS, behaviour from $DIR/control.
interval=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --interval) interval="$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "$@" > /dev/null
echo $$ >> "__DIR__/pids"
echo "$interval" > "__DIR__/interval_seen"
secs=$(awk "BEGIN { printf \"%.3f\", $interval / 1000 }")
mapfile -t lines < "__CORPUS__"
i=0
while true; do
  mode=$(cat "__DIR__/control" 2>/dev/null)
  line="${lines[$((i % ${#lines[@]}))]}"
  case "$mode" in
    garbage) echo "this is not tegrastats output" ;;
    newrail) echo "$line VDD_TEST_RAIL 1234mW/1000mW" ;;
    silent) ;;
    exit) echo "fake tegrastats exiting" >&2; exit 3 ;;
    *) echo "$line" ;;
  esac
  i=$((i + 1))
  sleep "$secs"
done
"#;

/// A temp directory with config.yaml, the fake tegrastats and its control file.
pub struct Setup {
    /// Kept alive for the test's duration.
    pub dir: tempfile::TempDir,
    /// config.yaml.
    pub config_path: PathBuf,
    /// The fake tegrastats script.
    pub fake: PathBuf,
}

impl Setup {
    /// A setup replaying `corpus`, with `extra` YAML appended to the base config (which binds
    /// 127.0.0.1 port 0 for both servers, hostname edge-01, Shelly off, the fake tegrastats).
    pub fn new(corpus: &Path, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("tegrastats");
        let script = FAKE_TEGRASTATS
            .replace("__DIR__", dir.path().to_str().unwrap())
            .replace("__CORPUS__", corpus.to_str().unwrap());
        std::fs::write(&fake, script).unwrap();
        let mut perm = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&fake, perm).unwrap();
        let config_path = dir.path().join("config.yaml");
        let setup = Setup {
            dir,
            config_path,
            fake,
        };
        setup.write_config(extra);
        setup
    }

    /// The base config plus `extra`.
    pub fn config_text(&self, extra: &str) -> String {
        format!(
            "device_type: jetson_orin\ninterval: 1\nport: 0\nreload_port: 0\nbind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: edge-01\nshelly:\n  enabled: false\ntegrastats:\n  path: {}\n{extra}",
            self.fake.display()
        )
    }

    /// Writes config.yaml as the base config plus `extra`.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(&self.config_path, self.config_text(extra)).unwrap();
    }

    /// Switches the fake tegrastats (`normal`, `garbage`, `newrail`, `silent`, `exit`).
    pub fn control(&self, mode: &str) {
        std::fs::write(self.dir.path().join("control"), mode).unwrap();
    }

    /// Pids of every fake tegrastats started so far.
    pub fn fake_pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.path().join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Starts the exporter on this setup's config and waits for both servers.
    pub fn start(&self) -> Exporter {
        Exporter::start(&self.config_path, &[])
    }

    /// Starts the exporter with extra environment variables.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Exporter {
        Exporter::start(&self.config_path, env)
    }
}

/// The exporter binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_edge-metrics-exporter")
}

/// A command for the binary with a clean environment for its variables.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    for var in [
        "LOCAL_CONFIG_PATH",
        "EDGE_METRICS_API_TOKEN",
        "EDGE_METRICS_HOSTNAME",
        "CONFIG_SERVER_URL",
        "CONFIG_TIMEOUT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// A running exporter; killed on drop, printing its log when the test failed.
pub struct Exporter {
    child: Option<Child>,
    log_path: PathBuf,
    _log_dir: tempfile::TempDir,
    /// The metrics server's bound address.
    pub metrics: SocketAddr,
    /// The management server's bound address.
    pub api: SocketAddr,
}

impl Exporter {
    /// Starts the binary with `--config path` and waits (bounded) for its `Listening.` lines.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Exporter {
        let log_dir = tempfile::tempdir().unwrap();
        let log_path = log_dir.path().join("exporter.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut cmd = command();
        cmd.arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start edge-metrics-exporter");
        let mut exporter = Exporter {
            child: Some(child),
            log_path,
            _log_dir: log_dir,
            metrics: "0.0.0.0:0".parse().unwrap(),
            api: "0.0.0.0:0".parse().unwrap(),
        };
        let (metrics, api) = wait_for(Duration::from_secs(10), "both Listening. lines", || {
            let log = exporter.log();
            Some((listening(&log, "metrics")?, listening(&log, "management")?))
        });
        exporter.metrics = metrics;
        exporter.api = api;
        exporter
    }

    /// Everything the exporter logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`).
    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    /// Waits up to `timeout` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// GET on the metrics server.
    pub fn scrape(&self) -> Response {
        http(self.metrics, "GET", "/metrics", &[], None)
    }

    /// A request to the management server.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        http(self.api, method, path, headers, body.map(str::as_bytes))
    }

    /// POST a JSON body to the management server.
    pub fn post_json(&self, path: &str, body: &str) -> Response {
        self.api(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(body),
        )
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_for(timeout, &format!("log line {needle:?}"), || {
            self.log().contains(needle).then_some(())
        });
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- exporter log ({}) -----\n{}\n-----",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Sends a signal by name with `kill`.
pub fn send_signal(pid: i32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// The address of a `Listening.` line for `server`.
fn listening(log: &str, server: &str) -> Option<SocketAddr> {
    log.lines()
        .filter(|l| l.contains("Listening.") && l.contains(&format!("server=\"{server}\"")))
        .find_map(|l| {
            let rest = &l[l.find("address=")? + "address=".len()..];
            rest.split_whitespace()
                .next()?
                .trim_matches('"')
                .parse()
                .ok()
        })
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// The value of the sample line whose name and labels are `series` exactly.
    pub fn sample(&self, series: &str) -> Option<f64> {
        self.body.lines().find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            (s == series).then(|| v.parse().ok())?
        })
    }
}

/// One HTTP/1.1 request with `Connection: close` (timeouts 5 s).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    try_http(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// Like [`http`], returning connection errors.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let timeout = Duration::from_secs(5);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    if let Some(b) = body {
        stream.write_all(b)?;
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..pos]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// What a [`FakeHttp`] answers: `(status, JSON body)` for `(method, path)`.
pub type Handler = Arc<dyn Fn(&str, &str) -> (u16, String) + Send + Sync>;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A small loopback HTTP server answering from a replaceable handler; stops on drop (and after
/// a minute at most).
pub struct FakeHttp {
    /// Its address.
    pub addr: SocketAddr,
    handler: Arc<Mutex<Handler>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHttp {
    /// Starts it on 127.0.0.1 port 0.
    pub fn start(handler: Handler) -> FakeHttp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(Mutex::new(handler));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (handler.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !st.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let current = h.lock().unwrap().clone();
                        std::thread::spawn(move || serve_one(stream, &current));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeHttp {
            addr,
            handler,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the handler.
    pub fn set(&self, handler: Handler) {
        *self.handler.lock().unwrap() = handler;
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(stream: TcpStream, handler: &Handler) {
    use std::io::BufRead;
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = std::io::BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = handler(method, path);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
