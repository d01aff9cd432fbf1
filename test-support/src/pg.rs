//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, the server on
//! 127.0.0.1 with a free port, trust authentication for the `postgres` user, stopped and
//! removed when its [`Cluster`] is dropped (or, for [`Cluster::shared`], when the test process
//! has exited: a small watchdog shell waits for that).
//!
//! The binaries are taken from `EDGE_METRICS_PG_BIN` (a directory) when set, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout), else `PATH`. Missing, the test fails
//! and says `apt-get install -y postgresql`, unless `EDGE_METRICS_ALLOW_SKIP` names
//! `postgresql` (see [`crate::require`]). `initdb` refuses to run as root, so as root every
//! server program runs as the `postgres` user (Debian's package creates it) through `runuser`,
//! and the directory is handed to that user.
//!
//! ```no_run
//! let Some(pg) = test_support::pg::Cluster::shared() else { return };
//! let url = pg.database("storage_suite"); // postgres://postgres@127.0.0.1:PORT/storage_suite_1
//! ```

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::require;
use crate::temp::TempDir;

/// The variable that names the directory of `initdb`, `pg_ctl` and `createdb`.
pub const PG_BIN: &str = "EDGE_METRICS_PG_BIN";

/// What installs PostgreSQL on Debian.
pub const INSTALL: &str = "apt-get install -y postgresql";

/// The OS user the server runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A running PostgreSQL cluster on loopback.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    as_root: bool,
}

/// The directory holding `initdb`, if PostgreSQL is installed.
pub fn find_bin() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    require::find_program(Path::new("initdb"), std::env::var_os("PATH"))
        .and_then(|p| p.parent().map(Path::to_path_buf))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs a server program from `bin`, as the `postgres` user when `as_root`.
fn run_as(bin: &Path, as_root: bool, program: &str, args: &[&str]) -> Output {
    let path = bin.join(program);
    let mut cmd = if as_root {
        let mut c = Command::new("runuser");
        c.args(["-u", SERVER_USER, "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Cluster {
    /// Starts a cluster of its own. `None` only when PostgreSQL is missing and
    /// `EDGE_METRICS_ALLOW_SKIP` names `postgresql`; a missing installation otherwise fails
    /// the test with the install command, and a cluster that does not start fails it with the
    /// server's log.
    pub fn start() -> Option<Cluster> {
        let bin = require::capability(
            "postgresql",
            find_bin(),
            &format!(
                "initdb not found in /usr/lib/postgresql/*/bin, on PATH or in {PG_BIN}; install \
                 it: {INSTALL}"
            ),
        )?;
        let as_root = is_root();
        let dir = TempDir::new("postgresql");
        if as_root {
            let status = Command::new("chown")
                .args([
                    &format!("{SERVER_USER}:"),
                    &dir.path().display().to_string(),
                ])
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "cannot hand {} to the {SERVER_USER} user (does it exist? `{INSTALL}` creates it)",
                dir.path().display()
            );
        }
        let data = dir.join("data").display().to_string();
        let out = run_as(
            &bin,
            as_root,
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let log = dir.join("server.log");
        let mut last_error = String::new();
        // The port may be taken between the probe and the start: try a few.
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
                 -c max_connections=200",
                shell_quote(&dir.path().display().to_string())
            );
            let out = run_as(
                &bin,
                as_root,
                "pg_ctl",
                &[
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    &data,
                    "-l",
                    &log.display().to_string(),
                    "-o",
                    &options,
                ],
            );
            if out.status.success() {
                let started = Cluster {
                    bin,
                    dir,
                    port,
                    as_root,
                };
                started.watch_for_exit();
                return Some(started);
            }
            last_error = format!(
                "{}{}\n--- server log ---\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("the test PostgreSQL server did not start: {last_error}");
    }

    /// One cluster for the whole test process, started at the first call and stopped after
    /// the process exits. `None` as for [`Cluster::start`].
    pub fn shared() -> Option<&'static Cluster> {
        static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
        SHARED.get_or_init(Cluster::start).as_ref()
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a fresh, empty database named after `label` (plus a number, so each call gets
    /// its own) and returns its URL.
    pub fn database(&self, label: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        let name = format!("{clean}_{n}");
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run createdb: {e}"));
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// The shell command that stops the server at once.
    fn stop_command(&self) -> String {
        let pg_ctl = shell_quote(&self.bin.join("pg_ctl").display().to_string());
        let data = shell_quote(&self.dir.join("data").display().to_string());
        let stop = format!("{pg_ctl} stop -m immediate -D {data}");
        if self.as_root {
            format!("runuser -u {SERVER_USER} -- {stop}")
        } else {
            stop
        }
    }

    /// Starts a detached shell that stops the server and removes its directory once this
    /// process has exited (a shared cluster is never dropped).
    fn watch_for_exit(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            stop = self.stop_command(),
            dir = shell_quote(&self.dir.path().display().to_string()),
        );
        let spawned = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            .spawn();
        if let Err(e) = spawned {
            eprintln!("cannot start the PostgreSQL watchdog ({e}); stop it by hand if it stays");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.stop_command()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_cluster_starts_takes_databases_and_stops() {
        let Some(pg) = Cluster::start() else { return };
        let url = pg.database("Smoke Test");
        assert!(
            url.starts_with(&format!(
                "postgres://postgres@127.0.0.1:{}/smoke_test_",
                pg.port()
            )),
            "{url}"
        );
        let port = pg.port();
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        drop(pg);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server still listens after drop"
        );
    }
}
