//! Harness for end-to-end tests that run both binaries together on loopback.
//!
//! - [`bin`]: a workspace binary beside the test executable (`target/<profile>/`), as built by
//!   `cargo test --workspace`; never built from here.
//! - [`Proc`]: a child process whose stdout/stderr lines are collected; killed on drop, its
//!   log printed if the test failed.
//! - [`http_get`]: a tiny blocking HTTP/1.1 client (loopback only).
//! - [`wait_for`]: bounded polling.
//! - [`proof`]: process and raw-HTTP helpers for fault tests.

pub mod proof;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the workspace binary `name`, beside the running test executable.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("invariant: a test knows its executable");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("invariant: tests run from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the binaries are built",
        path.display()
    );
    path
}

/// Polls `f` every 20 ms until it returns `Some`, or panics with `what` after `timeout`.
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
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running child process with its output lines collected.
pub struct Proc {
    /// Short name for messages.
    pub name: String,
    /// The child.
    pub child: Child,
    /// Every line it printed (stdout and stderr), in arrival order.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `program` with `args` and extra `env`.
    pub fn start(name: &str, program: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("invariant: stdout is piped");
        let err = child.stderr.take().expect("invariant: stderr is piped");
        for stream in [Box::new(out) as Box<dyn Read + Send>, Box::new(err)] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    /// Waits for a line containing every one of `needles` and returns it.
    pub fn wait_line(&self, needles: &[&str], timeout: Duration) -> String {
        wait_for(
            timeout,
            &format!("{} to log {needles:?}", self.name),
            || {
                self.log
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .find(|l| needles.iter().all(|n| l.contains(n)))
                    .cloned()
            },
        )
    }

    /// Waits for a line with all `needles` and returns the `address=HOST:PORT` it names.
    pub fn wait_address(&self, needles: &[&str], timeout: Duration) -> String {
        let line = self.wait_line(needles, timeout);
        address_in(&line).unwrap_or_else(|| panic!("no address= in {line:?}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---", self.name);
            for l in self.log.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                eprintln!("{l}");
            }
        }
    }
}

/// The `HOST:PORT` after `address=` in a log line.
pub fn address_in(line: &str) -> Option<String> {
    let rest = &line[line.find("address=")? + "address=".len()..];
    Some(
        rest.split_whitespace()
            .next()?
            .trim_matches('"')
            .to_string(),
    )
}

/// `GET http://{addr}{path}`: status and body. Errors are connection failures.
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the first sample of `metric` in Prometheus text, if present.
pub fn sample(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(metric)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_addresses() {
        let text = "# HELP power_total_watts x\npower_total_watts{hostname=\"e\"} 45.3\npower_total_watts_x 1\n";
        assert_eq!(sample(text, "power_total_watts"), Some(45.3));
        assert_eq!(sample(text, "power_voltage_volts"), None);
        assert_eq!(
            address_in("INFO Listening. server=metrics address=127.0.0.1:4000").as_deref(),
            Some("127.0.0.1:4000")
        );
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
