//! Harness for the reliability tests (`openapi`, `faults_*`): start the real binaries on
//! 127.0.0.1 with port 0, read the bound addresses from their logs, and talk HTTP and WebSocket
//! by hand so a test can send what no well-behaved client would (half requests, huge headers,
//! silent upgrades). Every wait is bounded by a deadline.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The exporter's binary name.
pub const EXPORTER: &str = "edge-metrics-exporter";
/// The bridge's binary name.
pub const BRIDGE: &str = "shelly-bridge";

/// Path of a workspace binary, found beside the test executable (`target/<profile>/`).
///
/// Panics with the build command when it is missing: tests never build.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("invariant: the test knows its own path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("invariant: test executables live in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first with `cargo build -p {name}` (same profile as the tests)",
        path.display()
    );
    path
}

/// Root of the repository (for `testdata/`, `docs/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("invariant: tests/ sits in the repository root")
        .to_path_buf()
}

/// A fresh directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/edge-proof-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("edge-proof-{}-{n}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir is creatable");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self.path().join(rel)`.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running child process whose stdout and stderr go to one log file. Killed on drop; its log
/// is printed when the test is failing, so a red test shows what the server said.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `bin` with `args` and `env` (added to a clean `RUST_LOG=info` environment),
    /// logging to `<log_dir>/<name>.log`.
    pub fn start(
        name: &str,
        bin: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log_dir: &Path,
    ) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let file = File::create(&log).expect("log file is creatable");
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle clones"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything logged so far, with ANSI colour codes removed.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until `find` returns something for the log so far; panics with the log after
    /// `timeout`, or at once if the process exits first.
    pub fn wait_log<T>(&mut self, timeout: Duration, mut find: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(found) = find(&log) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                if let Some(found) = find(&log) {
                    return found;
                }
                panic!(
                    "{} exited ({status}) before the expected log line:\n{log}",
                    self.name
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log the expected line within {timeout:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a log line that contains `needle` and a loopback address; returns the address.
    pub fn wait_addr(&mut self, needle: &str) -> SocketAddr {
        self.wait_log(Duration::from_secs(10), |log| {
            log.lines()
                .filter(|l| l.contains(needle))
                .find_map(loopback_addr)
        })
    }

    /// Whether the process has exited, and how.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("child status is readable")
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends SIGTERM and waits up to 5 s for a clean exit; returns the status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.wait_exit(Duration::from_secs(5))
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident set size in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// Number of open file descriptors.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Number of threads.
    pub fn threads(&self) -> u64 {
        proc_status_kib(self.pid(), "Threads:")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}",
                self.name,
                self.log.display(),
                self.log()
            );
        }
    }
}

/// A numeric field of `/proc/<pid>/status` (e.g. `VmRSS:`), 0 when absent.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The first `127.0.0.1:<port>` or `[::1]:<port>` in `line` with a non-zero port.
pub fn loopback_addr(line: &str) -> Option<SocketAddr> {
    for start in ["127.0.0.1:", "[::1]:"] {
        let mut rest = line;
        while let Some(i) = rest.find(start) {
            let tail = &rest[i..];
            let end = tail[start.len()..]
                .find(|c: char| !c.is_ascii_digit())
                .map_or(tail.len(), |e| e + start.len());
            if let Ok(addr) = tail[..end].parse::<SocketAddr>() {
                if addr.port() != 0 {
                    return Some(addr);
                }
            }
            rest = &tail[start.len()..];
        }
    }
    None
}

/// Removes ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Polls `f` every 20 ms until it returns `Some`, for at most `timeout`; panics with `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An HTTP response read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header (lower-cased name, value) pairs in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Default timeout for one request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let mut has_type = false;
    for (k, v) in headers {
        has_type |= k.eq_ignore_ascii_case("content-type");
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        if !has_type && !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    read_response(&mut BufReader::new(s))
}

/// One request with exactly the given headers and body bytes (no Content-Length or
/// Content-Type added), e.g. a chunked body.
pub fn http_raw_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    read_response(&mut BufReader::new(s))
}

/// `GET path`.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    http(addr, "GET", path, &[], b"")
}

/// `POST path` with a JSON body.
pub fn post_json(addr: SocketAddr, path: &str, body: &str) -> io::Result<Response> {
    http(addr, "POST", path, &[], body.as_bytes())
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or until close).
pub fn read_response(r: &mut impl BufRead) -> io::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            break;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if status >= 200 && status != 204 && status != 304 {
        r.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Opens a WebSocket by hand (RFC 6455 upgrade) and returns the socket after the `101`, or the
/// status the server answered instead. The caller then sends (or withholds) frames itself.
pub fn ws_upgrade(addr: SocketAddr, path: &str) -> io::Result<Result<TcpStream, u16>> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: json-rpc\r\n\r\n"
    );
    s.write_all(req.as_bytes())?;
    // Read the head byte by byte so no frame bytes after it are swallowed by a buffer.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the upgrade",
            ));
        }
        head.push(byte[0]);
        if head.len() > 16 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "huge upgrade answer",
            ));
        }
    }
    let head = String::from_utf8_lossy(&head);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(if status == 101 { Ok(s) } else { Err(status) })
}

/// Writes one masked text frame (clients must mask).
pub fn ws_send_text(s: &mut TcpStream, text: &str) -> io::Result<()> {
    let payload = text.as_bytes();
    let mut frame = vec![0x81u8];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame)
}

/// Reads one frame sent by the server (unmasked); returns (opcode, payload).
pub fn ws_read_frame(s: &mut TcpStream) -> io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    let opcode = h[0] & 0x0f;
    let mut len = u64::from(h[1] & 0x7f);
    if len == 126 {
        let mut b = [0u8; 2];
        s.read_exact(&mut b)?;
        len = u64::from(u16::from_be_bytes(b));
    } else if len == 127 {
        let mut b = [0u8; 8];
        s.read_exact(&mut b)?;
        len = u64::from_be_bytes(b);
    }
    let mut mask = [0u8; 4];
    let masked = h[1] & 0x80 != 0;
    if masked {
        s.read_exact(&mut mask)?;
    }
    if len > 16 * 1024 * 1024 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "huge frame"));
    }
    let mut payload = vec![0u8; len as usize];
    s.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Ok((opcode, payload))
}

/// Whether the peer has closed `s` (EOF or reset) within `timeout`; data read is discarded.
pub fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = s.set_read_timeout(Some(left.min(Duration::from_millis(200))));
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
}

/// The value of the first sample of `name` (any labels) in Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        l.rsplit(' ').next()?.parse().ok()
    })
}

/// `GET /metrics` on `addr`, returning the text (panics on a non-200).
pub fn scrape(addr: SocketAddr) -> String {
    let r = get(addr, "/metrics").expect("GET /metrics answers");
    assert_eq!(r.status, 200, "GET /metrics: {}", r.text());
    r.text()
}

/// Writes an executable `/bin/sh` script at `path` (for stand-in tegrastats programs).
pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("script is writable");
    set_mode(path, 0o755);
}

/// `chmod mode path`.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Pids of `pid`'s direct children and, for each, whether it is a zombie.
pub fn children(pid: u32) -> Vec<(u32, bool)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces, so split after the last ')'.
        let Some(tail) = stat.rsplit_once(')').map(|(_, t)| t) else {
            continue;
        };
        let mut f = tail.split_whitespace();
        let state = f.next().unwrap_or("");
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            out.push((child, state == "Z"));
        }
    }
    out
}

/// Sends `signal` (e.g. "KILL") to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

/// Writes an exporter config.yaml in `dir` with loopback ports 0, the given `tegrastats:`
/// section body (indented two spaces) and extra top-level YAML; returns its path. Shelly is
/// off unless `extra` has its own `shelly:` section (a missing bridge makes /health degraded).
pub fn exporter_config(dir: &Path, tegrastats: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    let shelly = if extra.lines().any(|l| l.starts_with("shelly:")) {
        ""
    } else {
        "shelly:\n  enabled: false\n"
    };
    let text = format!(
        "device_type: jetson_orin\ninterval: 0.2\nport: 0\nreload_port: 0\n\
         bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: proof\n\
         {shelly}tegrastats:\n  {tegrastats}\n{extra}"
    );
    std::fs::write(&path, text).expect("config is writable");
    path
}

/// A running exporter and its two bound addresses.
#[derive(Debug)]
pub struct Exporter {
    /// The process.
    pub proc: Proc,
    /// Prometheus `/metrics`.
    pub metrics: SocketAddr,
    /// The management API.
    pub api: SocketAddr,
}

impl Exporter {
    /// Starts the exporter on `config`, logging into `log_dir`, and waits for both addresses.
    pub fn start(config: &Path, log_dir: &Path) -> Exporter {
        let mut proc = Proc::start(
            "exporter",
            &bin(EXPORTER),
            &["--config", config.to_str().expect("utf-8 path")],
            &[],
            log_dir,
        );
        let metrics = proc.wait_addr("\"metrics\"");
        let api = proc.wait_addr("\"management\"");
        Exporter { proc, metrics, api }
    }

    /// Waits until `/metrics` has a sample of `name`; returns its value.
    pub fn wait_sample(&self, name: &str, timeout: Duration) -> f64 {
        wait_until(timeout, &format!("a sample of {name}"), || {
            sample(&scrape(self.metrics), name)
        })
    }

    /// GET /health as JSON.
    pub fn health(&self) -> serde_json::Value {
        get(self.api, "/health")
            .expect("GET /health answers")
            .json()
    }
}

/// A running bridge and its two bound addresses.
#[derive(Debug)]
pub struct Bridge {
    /// The process.
    pub proc: Proc,
    /// Where plugs dial.
    pub ws: SocketAddr,
    /// The HTTP API.
    pub http: SocketAddr,
}

impl Bridge {
    /// Starts the bridge on loopback with `extra` flags (ports 0 unless given there).
    pub fn start(log_dir: &Path, name: &str, extra: &[&str]) -> Bridge {
        let mut args = vec!["--bind", "127.0.0.1"];
        if !extra.contains(&"--ws-port") {
            args.extend(["--ws-port", "0"]);
        }
        if !extra.contains(&"--http-port") {
            args.extend(["--http-port", "0"]);
        }
        args.extend_from_slice(extra);
        let mut proc = Proc::start(name, &bin(BRIDGE), &args, &[], log_dir);
        let ws = proc.wait_addr("plug WebSocket");
        let http = proc.wait_addr("HTTP API");
        Bridge { proc, ws, http }
    }

    /// Starts a simulated plug dialling this bridge as `alias`, with `extra` simulate flags.
    pub fn plug(&self, log_dir: &Path, alias: &str, extra: &[&str]) -> Proc {
        let url = format!("ws://{}/{alias}", self.ws);
        let mut args = vec![
            "simulate",
            "--url",
            &url,
            "--backoff-min-ms",
            "100",
            "--backoff-max-ms",
            "500",
            "--run-for",
            "300",
        ];
        args.extend_from_slice(extra);
        Proc::start(&format!("plug-{alias}"), &bin(BRIDGE), &args, &[], log_dir)
    }

    /// Waits until `/devices` lists `n` plugs.
    pub fn wait_devices(&self, n: u64, timeout: Duration) -> serde_json::Value {
        wait_until(timeout, &format!("{n} plugs listed"), || {
            let d = get(self.http, "/devices").ok()?.json();
            (d["count"] == n).then_some(d)
        })
    }
}
