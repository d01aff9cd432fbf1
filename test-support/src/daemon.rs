//! Started binaries under a guard.
//!
//! A [`Daemon`] writes stdout and stderr to one log file, is killed (and reaped) on drop, and
//! prints that log when it is dropped while the test is failing, so a red test shows what the
//! server said. Servers bind port 0 and log the address they got (`address=127.0.0.1:PORT`);
//! [`Daemon::wait_addr`] reads it back. [`Exporter`] and [`Bridge`] wrap a daemon with the
//! addresses the workspace's two servers log; [`Bridge::plug`] starts a simulated plug.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::http::{self, Response};
use crate::temp::TempDir;
use crate::wait::{try_wait_for, wait_for};

/// How long a server may take to log its bound addresses (generous: under qemu the binaries
/// start several times slower).
pub const STARTUP: Duration = Duration::from_secs(20);

/// A running child process whose stdout and stderr go to one log file.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Mutex<Child>,
    pid: u32,
    log: PathBuf,
    _own_dir: Option<TempDir>,
}

impl Daemon {
    /// Starts `cmd` with stdin closed and its output in `<log_dir>/<name>.log` (a fresh
    /// temporary directory of its own when `log_dir` is `None`).
    pub fn start(name: &str, mut cmd: Command, log_dir: Option<&Path>) -> Daemon {
        let own_dir = log_dir
            .is_none()
            .then(|| TempDir::new(&format!("{name}-log")));
        let dir = match &own_dir {
            Some(own) => own.path(),
            None => log_dir.expect("invariant: a log directory was given"),
        };
        let log = dir.join(format!("{name}.log"));
        let file =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let out = file.try_clone().expect("a log file handle clones");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Daemon {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
            log,
            _own_dir: own_dir,
        }
    }

    /// The name it was started under (used in messages and the log file's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything logged so far, with ANSI colour codes removed.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Waits until `find` returns something for the log so far and returns it; panics after
    /// `timeout`, or as soon as the process has exited without logging it.
    pub fn wait_log<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut find: impl FnMut(&str) -> Option<T>,
    ) -> T {
        wait_for(timeout, &format!("{} to log {what}", self.name), || {
            // Read the status first: a line logged just before the exit still counts.
            let exited = self.try_wait();
            if let Some(found) = find(&self.log()) {
                return Some(found);
            }
            if let Some(status) = exited {
                panic!("{} exited ({status}) before it logged {what}", self.name);
            }
            None
        })
    }

    /// Waits for a log line that contains every one of `needles`, and returns it.
    pub fn wait_line(&self, needles: &[&str], timeout: Duration) -> String {
        self.wait_log(timeout, &format!("a line with {needles:?}"), |log| {
            log.lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string)
        })
    }

    /// Waits for a log line that contains every one of `needles` and an `address=HOST:PORT`
    /// field; returns that address.
    pub fn wait_addr(&self, needles: &[&str], timeout: Duration) -> SocketAddr {
        self.wait_log(timeout, &format!("the address in {needles:?}"), |log| {
            log.lines()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .find_map(address_in)
        })
    }

    /// Its exit status if it has exited.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        self.child()
            .try_wait()
            .expect("a child's status is readable")
    }

    /// Waits up to `timeout` for the process to exit by itself; its status if it did.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        try_wait_for(timeout, &format!("{} to exit", self.name), || {
            self.try_wait()
        })
        .ok()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`); panics if `kill` fails (the process
    /// is gone, say).
    pub fn signal(&self, signal: &str) {
        assert!(
            send_signal(self.pid, signal),
            "kill -{signal} {} ({}) failed",
            self.pid,
            self.name
        );
    }

    /// Sends SIGTERM and waits up to 5 s for the process to exit; its status if it did.
    pub fn terminate(&self) -> Option<ExitStatus> {
        send_signal(self.pid, "TERM");
        self.wait_exit(Duration::from_secs(5))
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub fn kill(&self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- {} log ({}) -----\n{}\n----- end of {} log -----",
                self.name,
                self.log.display(),
                self.log(),
                self.name
            );
        }
    }
}

/// Sends `signal` (e.g. `KILL`) to `pid` with kill(1); whether it was delivered.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The socket address after `address=` in a log line (quotes allowed).
pub fn address_in(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("address=")? + "address=".len()..];
    rest.split_whitespace()
        .next()?
        .trim_matches('"')
        .parse()
        .ok()
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

/// A running `edge-metrics-exporter` and the two addresses it logged.
#[derive(Debug)]
pub struct Exporter {
    /// The process.
    pub proc: Daemon,
    /// Prometheus `/metrics`.
    pub metrics: SocketAddr,
    /// The management API.
    pub api: SocketAddr,
}

impl Exporter {
    /// Starts `cmd` (the exporter binary with its flags and environment) as "exporter" and
    /// waits for both `Listening.` lines.
    pub fn start(cmd: Command, log_dir: Option<&Path>) -> Exporter {
        let proc = Daemon::start("exporter", cmd, log_dir);
        let metrics = proc.wait_addr(&["Listening.", "server=\"metrics\""], STARTUP);
        let api = proc.wait_addr(&["Listening.", "server=\"management\""], STARTUP);
        Exporter { proc, metrics, api }
    }

    /// `GET /metrics`; panics when the server does not answer.
    pub fn scrape(&self) -> Response {
        http::get(self.metrics, "/metrics")
            .unwrap_or_else(|e| panic!("GET /metrics on {}: {e}", self.metrics))
    }

    /// A request to the management API; panics when the server does not answer.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Response {
        let body = body.map_or(&b""[..], str::as_bytes);
        http::request(self.api, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.api))
    }

    /// `POST path` with a JSON body to the management API.
    pub fn post_json(&self, path: &str, body: &str) -> Response {
        self.api(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(body),
        )
    }

    /// `GET /health` as JSON.
    pub fn health(&self) -> serde_json::Value {
        self.api("GET", "/health", &[], None).json()
    }

    /// A metric `/metrics/list` shows as discovered but switched off; panics when there is none.
    pub fn metric_off(&self) -> String {
        let list = self.api("GET", "/metrics/list", &[], None).json();
        list["metrics"]
            .as_object()
            .expect("/metrics/list has a metrics map")
            .iter()
            .find(|(_, on)| **on == serde_json::Value::Bool(false))
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| panic!("no discovered metric is off: {list}"))
    }

    /// Waits until `/metrics` has a sample of `name` (any labels); returns its value.
    pub fn wait_sample(&self, name: &str, timeout: Duration) -> f64 {
        wait_for(timeout, &format!("a sample of {name}"), || {
            crate::prom::sample(&self.scrape().body, name)
        })
    }
}

/// A running `shelly-bridge` and the two addresses it logged.
#[derive(Debug)]
pub struct Bridge {
    /// The process.
    pub proc: Daemon,
    /// Where plugs dial (WebSocket).
    pub ws: SocketAddr,
    /// The HTTP API.
    pub http: SocketAddr,
}

impl Bridge {
    /// The bridge's flags for a test: `--bind 127.0.0.1`, `--ws-port 0` and `--http-port 0`
    /// unless `extra` names its own, then `extra`.
    pub fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["--bind", "127.0.0.1"];
        for port in ["--ws-port", "--http-port"] {
            if !extra.contains(&port) {
                args.extend([port, "0"]);
            }
        }
        args.extend_from_slice(extra);
        args
    }

    /// Starts `cmd` (the bridge binary with its flags) as `name` and waits for the addresses
    /// of both listeners.
    pub fn start(name: &str, cmd: Command, log_dir: Option<&Path>) -> Bridge {
        let proc = Daemon::start(name, cmd, log_dir);
        let ws = proc.wait_addr(&["Listening for plug WebSocket"], STARTUP);
        let http = proc.wait_addr(&["Serving the HTTP API"], STARTUP);
        Bridge { proc, ws, http }
    }

    /// Waits until `GET /devices` lists `n` plugs; returns its JSON.
    pub fn wait_devices(&self, n: u64, timeout: Duration) -> serde_json::Value {
        wait_for(timeout, &format!("{n} plugs in /devices"), || {
            let d = http::get(self.http, "/devices").ok()?.json();
            (d["count"] == n).then_some(d)
        })
    }

    /// Starts a simulated plug ([`plug`]) dialling this bridge as `alias`.
    pub fn plug(&self, alias: &str, extra: &[&str], log_dir: Option<&Path>) -> Daemon {
        plug(self.ws, alias, extra, log_dir)
    }
}

/// Starts the plug simulator (`shelly-sim`) dialling `ws://<ws>/<alias>` with quick
/// reconnects (`--backoff-min-ms 100 --backoff-max-ms 500`) for at most five minutes, then
/// `extra` (which may override any of these).
pub fn plug(ws: SocketAddr, alias: &str, extra: &[&str], log_dir: Option<&Path>) -> Daemon {
    let url = format!("ws://{ws}/{alias}");
    let mut cmd = crate::bins::daemon_command(&crate::bin!("shelly-sim"));
    cmd.args(["--url", &url])
        .args(["--backoff-min-ms", "100", "--backoff-max-ms", "500"])
        .args(["--run-for", "300"])
        .args(extra);
    Daemon::start(&format!("plug-{alias}"), cmd, log_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_log_lines() {
        assert_eq!(
            address_in("INFO Listening. server=\"metrics\" address=127.0.0.1:4000"),
            Some("127.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(
            address_in("address=\"[::1]:80\" more"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(address_in("no address here"), None);
    }

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[3maddress\u{1b}[0m\u{1b}[2m=\u{1b}[0m1"),
            "address=1"
        );
    }

    #[test]
    fn bridge_ports_default_to_zero_unless_given() {
        assert_eq!(
            Bridge::args(&["--rpc-timeout", "2"]),
            [
                "--bind",
                "127.0.0.1",
                "--ws-port",
                "0",
                "--http-port",
                "0",
                "--rpc-timeout",
                "2"
            ]
        );
        assert_eq!(
            Bridge::args(&["--ws-port", "7"]),
            ["--bind", "127.0.0.1", "--http-port", "0", "--ws-port", "7"]
        );
    }

    #[test]
    fn a_daemon_is_waited_on_and_killed_on_drop() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo 'INFO Ready. address=127.0.0.1:9' >&2; exec sleep 30",
        ]);
        let d = Daemon::start("sh", cmd, None);
        assert_eq!(
            d.wait_addr(&["Ready."], STARTUP),
            "127.0.0.1:9".parse().unwrap()
        );
        assert!(d.try_wait().is_none());
        let pid = d.pid();
        drop(d);
        assert!(!send_signal(pid, "0"), "killed and reaped on drop");
    }

    #[test]
    #[should_panic(expected = "exited")]
    fn an_exit_before_the_line_fails_at_once() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bye; exit 3"]);
        let d = Daemon::start("sh", cmd, None);
        d.wait_line(&["never printed"], Duration::from_secs(30));
    }
}
