//! What the reliability tests (`openapi`, `faults_*`) add to `test_support`: the exporter's
//! test configuration, the processes behind a pid (`/proc`), stand-in tegrastats scripts, a
//! tmpfs to fill or make read-only, and WebSocket by hand so a test can send what no
//! well-behaved client would (silent upgrades, oversized frames). Every wait is bounded.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use test_support::{bin, daemon_command, Bridge, Exporter};

/// Root of the repository (for `testdata/`, `docs/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("invariant: tests/ sits in the repository root")
        .to_path_buf()
}

/// A tegrastats capture of `testdata/tegrastats/`, e.g. `orin-agx-jp6.log`.
pub fn corpus(name: &str) -> PathBuf {
    let path = repo_root().join("testdata/tegrastats").join(name);
    assert!(path.is_file(), "corpus file {} is missing", path.display());
    path
}

/// The exporter binary with `--config config`, as a daemon under test.
pub fn exporter_command(config: &Path) -> Command {
    let mut cmd = daemon_command(&bin!("edge-metrics-exporter"));
    cmd.arg("--config").arg(config);
    cmd
}

/// Starts the exporter on `config`, logging into `log_dir`; waits for both addresses.
pub fn start_exporter(config: &Path, log_dir: &Path) -> Exporter {
    Exporter::start(exporter_command(config), Some(log_dir))
}

/// Starts the bridge as `name` on loopback with `extra` flags (ports 0 unless given there),
/// logging into `log_dir`; waits for both addresses.
pub fn start_bridge(log_dir: &Path, name: &str, extra: &[&str]) -> Bridge {
    let mut cmd = daemon_command(&bin!("shelly-bridge"));
    cmd.args(Bridge::args(extra));
    Bridge::start(name, cmd, Some(log_dir))
}

/// Writes an exporter config.yaml in `dir` with loopback ports 0, the given `tegrastats:`
/// section body (indented two spaces) and extra top-level YAML; returns its path. Shelly is
/// off unless `extra` has its own `shelly:` section (a missing bridge makes /health degraded),
/// and the hostname is `proof` unless `extra` names one.
pub fn exporter_config(dir: &Path, tegrastats: &str, extra: &str) -> PathBuf {
    exporter_config_every(dir, 0.2, tegrastats, extra)
}

/// [`exporter_config`] with a reading every `interval` seconds instead of every 0.2 s.
pub fn exporter_config_every(dir: &Path, interval: f64, tegrastats: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    let unless_given = |key: &str, default: &'static str| {
        if extra.lines().any(|l| l.starts_with(key)) {
            ""
        } else {
            default
        }
    };
    let shelly = unless_given("shelly:", "shelly:\n  enabled: false\n");
    let hostname = unless_given("hostname:", "hostname: proof\n");
    let text = format!(
        "device_type: jetson_orin\ninterval: {interval}\nport: 0\nreload_port: 0\n\
         bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\n{hostname}\
         {shelly}tegrastats:\n  {tegrastats}\n{extra}"
    );
    std::fs::write(&path, text).expect("config is writable");
    path
}

pub use test_support::procfs::status_kib as proc_status_kib;

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    proc_status_kib(pid, "VmRSS:")
}

/// Number of open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
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

/// A tmpfs mounted on a fresh directory, unmounted on drop. Mounting needs root (as in CI).
pub struct Tmpfs {
    /// The mount point.
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`1m`, `256k`) on `dir`, creating it.
    pub fn new(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).expect("mount point is creatable");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "mount -t tmpfs on {} failed: these tests need root (as in CI)",
            dir.display()
        );
        Tmpfs { dir }
    }

    /// `mount -o opts` on it, e.g. `remount,ro`.
    pub fn remount(&self, opts: &str) {
        let ok = Command::new("mount")
            .args(["-o", opts])
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "mount -o {opts} {} failed", self.dir.display());
    }

    /// Fills the file system to the last byte; returns the filler's path.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler is creatable");
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Opens a WebSocket by hand (RFC 6455 upgrade) and returns the socket after the `101`, or the
/// status the server answered instead. The caller then sends (or withholds) frames itself.
pub fn ws_upgrade(addr: SocketAddr, path: &str) -> io::Result<Result<TcpStream, u16>> {
    let timeout = test_support::http::TIMEOUT;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
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
