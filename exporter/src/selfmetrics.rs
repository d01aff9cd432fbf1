//! Self-metrics, prefix `edge_metrics_exporter_`, and the standard `process_*` family read from
//! `/proc/self` (no unsafe code, no extra crate).
//!
//! - `edge_metrics_exporter_build_info{version,revision}`
//! - `edge_metrics_exporter_device_info{model,soc,l4t,jetpack}`: the identity files (an empty
//!   label where a file is missing or unknown)
//! - `edge_metrics_exporter_collector_up{collector}`, `…_collector_duration_seconds{collector}`
//! - `edge_metrics_exporter_power_mode_info{id,name}`: the nvpmodel mode of a fresh sysfs
//!   reading (absent in tegrastats mode and when the board has none)
//! - `edge_metrics_exporter_tegrastats_lines_read_total`, `…_parse_errors_total`,
//!   `…_restarts_total`, `…_last_reading_timestamp_seconds`
//! - `edge_metrics_exporter_sysfs_read_errors_total`: sysfs/procfs files that existed but
//!   could not be read or parsed
//! - `edge_metrics_exporter_config_writes_total{result}`,
//!   `edge_metrics_exporter_config_server_pushes_total{result}`
//! - bounds that were hit: `edge_metrics_exporter_invalid_metric_names_total`,
//!   `edge_metrics_exporter_discovery_dropped_total{limit}`,
//!   `edge_metrics_exporter_api_timeouts_total`,
//!   `edge_metrics_exporter_connections_refused_total{server}`, with
//!   `edge_metrics_exporter_open_connections{server}` and `…_max_connections{server}` beside it

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use edge_metrics_common::limit::ConnectionLimit;

use crate::collector::{CollectorStatus, INVALID_NAMES};
use crate::device::Identity;
use crate::exposition::{escape_label, write_header, write_value};
use crate::sysfs::fs::read_errors;
use crate::tegrastats::line::PowerMode;
use crate::tegrastats::source::SourceStats;

/// This build's version: `git describe` at build time (scripts/build-version.rs), else the
/// Cargo version. Shown by `--version` and `edge_metrics_exporter_build_info`.
pub const VERSION: &str = env!("EDGE_METRICS_VERSION");
/// This build's git commit (full id), or `unknown` when built without git.
pub const REVISION: &str = env!("EDGE_METRICS_REVISION");

/// Counters the runtime keeps outside the source.
#[derive(Debug, Default)]
pub struct Counters {
    /// config.yaml writes that succeeded.
    pub config_writes_ok: AtomicU64,
    /// config.yaml writes that failed.
    pub config_writes_failed: AtomicU64,
    /// Management requests answered 503 because the owner task did not answer in time.
    pub api_timeouts: AtomicU64,
    /// The connection caps of the servers (`metrics`, `management`), whose accept loops count
    /// what they refuse; each is shown under its name as the `server` label.
    pub connections: Vec<ConnectionLimit>,
}

/// Limits hit inside the owner task, by parts it builds itself (discovery); process-wide, like
/// the collectors' [`INVALID_NAMES`].
#[derive(Debug)]
pub struct Limits {
    /// New names not added in their cycle because the cycle's share was used up.
    pub discovery_over_cycle: AtomicU64,
    /// New names not added because the `metrics:` map reached the total limit.
    pub discovery_over_total: AtomicU64,
}

/// The process's [`Limits`].
pub static LIMITS: Limits = Limits {
    discovery_over_cycle: AtomicU64::new(0),
    discovery_over_total: AtomicU64::new(0),
};

/// What one render of the self-metrics needs.
pub struct SelfInput<'a> {
    /// How each collector fared in the cycle.
    pub statuses: &'a [CollectorStatus],
    /// The tegrastats source's counters.
    pub source: &'a SourceStats,
    /// Wall time of the latest reading, if any.
    pub last_reading: Option<SystemTime>,
    /// Runtime counters.
    pub counters: &'a Counters,
    /// Config Server pushes (succeeded, failed).
    pub pushes: (u64, u64),
    /// What the identity files say (`edge_metrics_exporter_device_info`).
    pub device: &'a Identity,
    /// The power mode of a fresh sysfs reading (`edge_metrics_exporter_power_mode_info`).
    pub power_mode: Option<&'a PowerMode>,
}

fn family(out: &mut String, name: &str, help: &str, kind: &str, labels: &str, v: f64) {
    write_header(out, name, help, kind);
    out.push_str(name);
    out.push_str(labels);
    out.push(' ');
    write_value(out, v);
    out.push('\n');
}

fn load(c: &AtomicU64) -> f64 {
    c.load(Ordering::Relaxed) as f64
}

/// Appends the exporter's own metrics and the `process_*` family.
pub fn write_self_metrics(out: &mut String, input: &SelfInput<'_>) {
    const P: &str = "edge_metrics_exporter_";
    family(
        out,
        &format!("{P}build_info"),
        "Build information of edge-metrics-exporter",
        "gauge",
        &format!("{{version=\"{VERSION}\",revision=\"{REVISION}\"}}"),
        1.0,
    );
    let id = input.device;
    family(
        out,
        &format!("{P}device_info"),
        "The board, SoC, L4T and JetPack releases read from the device tree and \
         /etc/nv_tegra_release under host_root; empty where unknown",
        "gauge",
        &format!(
            "{{model=\"{}\",soc=\"{}\",l4t=\"{}\",jetpack=\"{}\"}}",
            escape_label(&id.model),
            escape_label(&id.soc),
            escape_label(&id.l4t),
            escape_label(&id.jetpack),
        ),
        1.0,
    );
    if let Some(mode) = input.power_mode {
        family(
            out,
            &format!("{P}power_mode_info"),
            "The nvpmodel power mode in force, read from /var/lib/nvpmodel/status (id) and \
             /etc/nvpmodel.conf (name, empty when unnamed) in sysfs mode",
            "gauge",
            &format!(
                "{{id=\"{}\",name=\"{}\"}}",
                mode.id,
                escape_label(mode.name.as_deref().unwrap_or(""))
            ),
            1.0,
        );
    }
    let up = format!("{P}collector_up");
    write_header(
        out,
        &up,
        "Whether the collector produced current values in the last cycle (1) or not (0)",
        "gauge",
    );
    for s in input.statuses {
        let _ = writeln!(out, "{up}{{collector=\"{}\"}} {}", s.name, u8::from(s.up()));
    }
    let dur = format!("{P}collector_duration_seconds");
    write_header(
        out,
        &dur,
        "Time the collector took in the last cycle",
        "gauge",
    );
    for s in input.statuses {
        let _ = write!(out, "{dur}{{collector=\"{}\"}} ", s.name);
        write_value(out, s.duration.as_secs_f64());
        out.push('\n');
    }
    family(
        out,
        &format!("{P}tegrastats_lines_read_total"),
        "tegrastats lines read",
        "counter",
        "",
        load(&input.source.lines_read),
    );
    family(
        out,
        &format!("{P}tegrastats_parse_errors_total"),
        "tegrastats lines and tokens that did not parse",
        "counter",
        "",
        load(&input.source.parse_errors),
    );
    family(
        out,
        &format!("{P}tegrastats_restarts_total"),
        "Times tegrastats was started again after it exited",
        "counter",
        "",
        load(&input.source.restarts),
    );
    family(
        out,
        &format!("{P}sysfs_read_errors_total"),
        "sysfs and procfs files that existed but could not be read or parsed",
        "counter",
        "",
        read_errors() as f64,
    );
    if let Some(wall) = input.last_reading {
        let ts = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        family(
            out,
            &format!("{P}last_reading_timestamp_seconds"),
            "Unix time the latest tegrastats line was read",
            "gauge",
            "",
            ts,
        );
    }
    let writes = format!("{P}config_writes_total");
    write_header(out, &writes, "config.yaml writes by result", "counter");
    let _ = writeln!(
        out,
        "{writes}{{result=\"success\"}} {}",
        input.counters.config_writes_ok.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "{writes}{{result=\"error\"}} {}",
        input.counters.config_writes_failed.load(Ordering::Relaxed)
    );
    let pushes = format!("{P}config_server_pushes_total");
    write_header(out, &pushes, "Config Server pushes by result", "counter");
    let _ = writeln!(out, "{pushes}{{result=\"success\"}} {}", input.pushes.0);
    let _ = writeln!(out, "{pushes}{{result=\"error\"}} {}", input.pushes.1);
    family(
        out,
        &format!("{P}invalid_metric_names_total"),
        "Values dropped because their source named them with something that is not a metric name",
        "counter",
        "",
        INVALID_NAMES.rejected() as f64,
    );
    let dropped = format!("{P}discovery_dropped_total");
    write_header(
        out,
        &dropped,
        "New metric names not added to metrics: by discovery, by the limit that was reached",
        "counter",
    );
    let _ = writeln!(
        out,
        "{dropped}{{limit=\"cycle\"}} {}",
        LIMITS.discovery_over_cycle.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "{dropped}{{limit=\"total\"}} {}",
        LIMITS.discovery_over_total.load(Ordering::Relaxed)
    );
    family(
        out,
        &format!("{P}api_timeouts_total"),
        "Management API requests answered 503 because the exporter did not answer in time",
        "counter",
        "",
        load(&input.counters.api_timeouts),
    );
    write_connection_limits(out, &input.counters.connections);
    if let Some(p) = ProcessStats::read() {
        p.write(out);
    }
}

/// What each server's connection cap did: refusals since start, connections open at render
/// time, and the cap. Nothing when no cap is in place (a test's `Counters::default()`).
fn write_connection_limits(out: &mut String, limits: &[ConnectionLimit]) {
    if limits.is_empty() {
        return;
    }
    type Value = fn(&ConnectionLimit) -> f64;
    let families: [(&str, &str, &str, Value); 3] = [
        (
            "edge_metrics_exporter_connections_refused_total",
            "Connections closed at once, unanswered, because their server was at max_connections",
            "counter",
            |l| l.refused() as f64,
        ),
        (
            "edge_metrics_exporter_open_connections",
            "Connections open when the metrics were rendered, by server",
            "gauge",
            |l| l.open() as f64,
        ),
        (
            "edge_metrics_exporter_max_connections",
            "The cap on open connections of each server (max_connections)",
            "gauge",
            |l| l.max() as f64,
        ),
    ];
    for (name, help, kind, value) in families {
        write_header(out, name, help, kind);
        for limit in limits {
            let _ = write!(out, "{name}{{server=\"{}\"}} ", limit.listener());
            write_value(out, value(limit));
            out.push('\n');
        }
    }
}

/// The standard `process_*` values of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Resident set size in bytes.
    pub resident_bytes: f64,
    /// Virtual memory size in bytes.
    pub virtual_bytes: f64,
    /// Open file descriptors.
    pub open_fds: f64,
    /// The soft limit on open file descriptors.
    pub max_fds: Option<f64>,
    /// Start time, seconds since the Unix epoch.
    pub start_time: f64,
}

/// Linux reports `/proc/*/stat` times in USER_HZ, which the kernel ABI fixes at 100.
const USER_HZ: f64 = 100.0;

/// `AT_PAGESZ` in the auxiliary vector.
const AT_PAGESZ: usize = 6;

/// The page size, from the auxiliary vector the kernel handed this process (`/proc/self/auxv`:
/// native-endian `(type, value)` word pairs, ended by type 0). Read once: it cannot change.
fn page_size() -> Option<f64> {
    static PAGE: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| page_size_from_auxv(&std::fs::read("/proc/self/auxv").ok()?))
}

fn page_size_from_auxv(auxv: &[u8]) -> Option<f64> {
    const W: usize = std::mem::size_of::<usize>();
    for pair in auxv.chunks_exact(2 * W) {
        let key = usize::from_ne_bytes(pair[..W].try_into().ok()?);
        match key {
            0 => break,
            AT_PAGESZ => return Some(usize::from_ne_bytes(pair[W..].try_into().ok()?) as f64),
            _ => {}
        }
    }
    None
}

/// `(VmRSS, VmSize)` in bytes from `/proc/*/status`.
fn memory_from_status(status: &str) -> Option<(f64, f64)> {
    let kib = |key: &str| -> Option<f64> {
        let value = status.lines().find_map(|l| l.strip_prefix(key))?;
        let n: f64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(n * 1024.0)
    };
    Some((kib("VmRSS:")?, kib("VmSize:")?))
}

/// How long a read of `/proc/self/limits` is reused.
const LIMITS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// `/proc/self/limits`, re-read when older than [`LIMITS_TTL`] (formatting it costs the kernel
/// more than the rest of the `process_*` family together).
fn limits_text() -> Option<std::sync::Arc<String>> {
    type Cached = Option<(std::time::Instant, Option<std::sync::Arc<String>>)>;
    static LIMITS: std::sync::Mutex<Cached> = std::sync::Mutex::new(None);
    let mut cached = LIMITS.lock().unwrap_or_else(|p| p.into_inner());
    match &*cached {
        Some((at, text)) if at.elapsed() < LIMITS_TTL => text.clone(),
        _ => {
            let text = std::fs::read_to_string("/proc/self/limits")
                .ok()
                .map(std::sync::Arc::new);
            *cached = Some((std::time::Instant::now(), text.clone()));
            text
        }
    }
}

impl ProcessStats {
    /// Reads `/proc/self`; `None` where there is no procfs. Every render reads `stat` and the
    /// `fd` directory; `limits` (which only `prlimit` from outside could change) at most once a
    /// minute; the boot time and the page size once.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let limits = limits_text();
        // The boot time never changes, and /proc/stat is long (interrupt counts): read it once.
        static BTIME_LINE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let btime = BTIME_LINE.get_or_init(|| {
            let text = std::fs::read_to_string("/proc/stat").ok()?;
            text.lines()
                .find(|l| l.starts_with("btime "))
                .map(str::to_string)
        });
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let mut stats = Self::parse(
            &stat,
            page_size()?,
            limits.as_deref().map(String::as_str),
            btime.as_deref()?,
            open_fds,
        )?;
        // A running process always has resident pages: 0 means a synthesized `stat` (user-mode
        // emulation such as qemu-user fills only a few fields). `status` has the real figures.
        if stats.resident_bytes == 0.0 {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            (stats.resident_bytes, stats.virtual_bytes) = memory_from_status(&status)?;
        }
        Some(stats)
    }

    /// Parses the procfs texts (separate from reading, for tests).
    pub fn parse(
        stat: &str,
        page_size: f64,
        limits: Option<&str>,
        proc_stat: &str,
        open_fds: f64,
    ) -> Option<ProcessStats> {
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest starts at field 3 (state): utime is field 14, stime 15, starttime 22,
        // vsize (bytes) 23, rss (pages) 24.
        let field = |n: usize| -> Option<f64> { f.get(n - 3)?.parse().ok() };
        let btime: f64 = proc_stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        let max_fds = limits.and_then(|l| {
            let line = l.lines().find(|l| l.starts_with("Max open files"))?;
            line["Max open files".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
            resident_bytes: field(24)? * page_size,
            virtual_bytes: field(23)?,
            open_fds,
            max_fds,
            start_time: btime + field(22)? / USER_HZ,
        })
    }

    fn write(&self, out: &mut String) {
        family(
            out,
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            "counter",
            "",
            self.cpu_seconds,
        );
        family(
            out,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            "gauge",
            "",
            self.resident_bytes,
        );
        family(
            out,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            "gauge",
            "",
            self.virtual_bytes,
        );
        family(
            out,
            "process_open_fds",
            "Number of open file descriptors.",
            "gauge",
            "",
            self.open_fds,
        );
        if let Some(max) = self.max_fds {
            family(
                out,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                "gauge",
                "",
                max,
            );
        }
        family(
            out,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            "",
            self.start_time,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(source: &'a SourceStats, counters: &'a Counters) -> SelfInput<'a> {
        SelfInput {
            statuses: &[],
            source,
            last_reading: None,
            counters,
            pushes: (0, 0),
            device: &NO_DEVICE,
            power_mode: None,
        }
    }

    static NO_DEVICE: Identity = Identity {
        model: String::new(),
        compatible: Vec::new(),
        soc: String::new(),
        l4t: String::new(),
        jetpack: String::new(),
    };

    #[test]
    fn power_mode_info_shows_only_when_a_mode_is_known() {
        let source = SourceStats::default();
        let counters = Counters::default();
        let mut out = String::new();
        write_self_metrics(&mut out, &input(&source, &counters));
        assert!(!out.contains("power_mode_info"), "{out}");
        assert!(
            out.contains("\nedge_metrics_exporter_sysfs_read_errors_total "),
            "{out}"
        );
        let mode = PowerMode {
            id: 2,
            name: Some("MAXN_SUPER".into()),
        };
        let mut out = String::new();
        write_self_metrics(
            &mut out,
            &SelfInput {
                power_mode: Some(&mode),
                ..input(&source, &counters)
            },
        );
        assert!(
            out.contains("edge_metrics_exporter_power_mode_info{id=\"2\",name=\"MAXN_SUPER\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn device_info_escapes_its_labels_and_shows_unknowns_as_empty() {
        let source = SourceStats::default();
        let counters = Counters::default();
        let mut out = String::new();
        write_self_metrics(&mut out, &input(&source, &counters));
        assert!(
            out.contains(
                "edge_metrics_exporter_device_info{model=\"\",soc=\"\",l4t=\"\",jetpack=\"\"} 1\n"
            ),
            "{out}"
        );
        let odd = Identity::parse(b"Board \"7\" \\ x", b"nvidia,tegra234", "");
        let mut out = String::new();
        write_self_metrics(
            &mut out,
            &SelfInput {
                device: &odd,
                ..input(&source, &counters)
            },
        );
        assert!(
            out.contains(
                "edge_metrics_exporter_device_info{model=\"Board \\\"7\\\" \\\\ x\",soc=\"tegra234\",l4t=\"\",jetpack=\"\"} 1\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn each_server_shows_its_refusals_open_connections_and_cap() {
        let metrics = ConnectionLimit::new("metrics", 2);
        let management = ConnectionLimit::new("management", 1);
        let peer = "127.0.0.1:1".parse().unwrap();
        let _held = (metrics.admit(peer), management.admit(peer));
        for _ in 0..3 {
            assert!(management.admit(peer).is_none());
        }
        let counters = Counters {
            connections: vec![metrics, management],
            ..Counters::default()
        };
        let source = SourceStats::default();
        let mut out = String::new();
        write_self_metrics(&mut out, &input(&source, &counters));
        for line in [
            "# TYPE edge_metrics_exporter_connections_refused_total counter\n",
            "edge_metrics_exporter_connections_refused_total{server=\"metrics\"} 0\n",
            "edge_metrics_exporter_connections_refused_total{server=\"management\"} 3\n",
            "# TYPE edge_metrics_exporter_open_connections gauge\n",
            "edge_metrics_exporter_open_connections{server=\"metrics\"} 1\n",
            "edge_metrics_exporter_open_connections{server=\"management\"} 1\n",
            "edge_metrics_exporter_max_connections{server=\"metrics\"} 2\n",
            "edge_metrics_exporter_max_connections{server=\"management\"} 1\n",
        ] {
            assert!(out.contains(line), "{line:?} missing from:\n{out}");
        }
        // Without caps (tests that build their own counters) the families are left out.
        let mut out = String::new();
        write_self_metrics(&mut out, &input(&source, &Counters::default()));
        assert!(!out.contains("connections"), "{out}");
    }

    #[test]
    fn parses_procfs_texts() {
        let stat = "1234 (edge metrics) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 12288000 1000 18446744073709551615";
        let limits = "Limit Soft Limit Hard Limit Units\nMax open files            1024                 524288               files\n";
        let p = ProcessStats::parse(
            stat,
            4096.0,
            Some(limits),
            "cpu 1 2\nbtime 1700000000\n",
            7.0,
        )
        .unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.resident_bytes, 1000.0 * 4096.0);
        assert_eq!(p.virtual_bytes, 12288000.0);
        assert_eq!(p.max_fds, Some(1024.0));
        assert_eq!(p.start_time, 1700000010.0);
        assert_eq!(p.open_fds, 7.0);
    }

    #[test]
    fn reads_this_process_in_agreement_with_status() {
        let p = ProcessStats::read().expect("procfs on Linux");
        assert!(p.resident_bytes > 0.0 && p.open_fds >= 3.0);
        // VmSize in /proc/self/status is the same figure, and moves little between reads.
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let (_, vsz) = memory_from_status(&status).unwrap();
        assert!(
            (p.virtual_bytes - vsz).abs() < vsz * 0.2,
            "{} vs {vsz}",
            p.virtual_bytes
        );
    }

    #[test]
    fn memory_falls_back_to_status() {
        let status = "Name:\tx\nVmSize:\t   12000 kB\nVmRSS:\t    4000 kB\n";
        assert_eq!(
            memory_from_status(status),
            Some((4000.0 * 1024.0, 12000.0 * 1024.0))
        );
        assert_eq!(memory_from_status("Name:\tx\n"), None);
    }

    #[test]
    fn page_size_comes_from_the_auxiliary_vector() {
        const W: usize = std::mem::size_of::<usize>();
        let mut auxv = Vec::new();
        for (k, v) in [(3usize, 0x40usize), (AT_PAGESZ, 65536), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(page_size_from_auxv(&auxv), Some(65536.0));
        assert_eq!(page_size_from_auxv(&auxv[2 * W..]), Some(65536.0));
        assert_eq!(page_size_from_auxv(&auxv[4 * W..]), None);
        assert_eq!(page_size_from_auxv(&[1, 2, 3]), None);
        let real = page_size().expect("procfs on Linux");
        assert!(real >= 4096.0 && (real as u64).is_power_of_two(), "{real}");
    }
}
