//! Benchmark: a simulated fleet against the real server. Prints numbers; asserts nothing.
//!
//! Each of `--devices` exporters (default 10,000) fetches its config (`GET /config/{device}`)
//! and pushes it (`PUT /config/{device}`) once per `--period` seconds (60), the fetch and the
//! push half a period apart and the devices spread evenly over the period, so each route runs
//! at an even 10,000 / 60 ≈ 167 requests/s from the first second, 333 in all. Every request is a new connection with the device token, the headers the
//! exporter sends and, for a push, a body shaped like an Orin exporter's config with 80 metrics;
//! every push changes one metric, so each one is a write with a history row (the worst case:
//! a real exporter pushes only after a change).
//!
//! Before the measured window each device is seeded with one push (not measured; its duration
//! is printed) under a fleet and a `jetson_orin` layer. Then, for `--seconds` (90): latency per
//! route (p50/p90/p99/max, from sending to the full answer), achieved rate, errors, requests
//! that started late, and the server's RSS (VmRSS, VmHWM) and CPU (from `/proc/PID/stat`).
//! Finally the device list as an operator reads it: every page of `GET /devices` at the
//! default size (100) and at the largest (1000), and a filtered page; latency per page,
//! bytes per page, and the server's VmHWM after each walk.
//!
//! Usage (`scripts/bench-config-server.sh` builds the release server and runs this):
//!   fleet_load SERVER_BINARY [--backend sqlite|postgres|both] [--devices N] [--period S]
//!              [--seconds S] [--workers N]
//! PostgreSQL is a throwaway cluster started with `test_support::pg` (Debian's `postgresql`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use test_support::Daemon;

const OPERATOR_TOKEN: &str = "bench:0123456789abcdef0123456789abcdef";
const DEVICE_TOKEN: &str = "fedcba9876543210fedcba9876543210";

struct Args {
    server: PathBuf,
    backends: Vec<String>,
    devices: usize,
    period: f64,
    seconds: f64,
    workers: usize,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        server: PathBuf::new(),
        backends: vec!["sqlite".into(), "postgres".into()],
        devices: 10_000,
        period: 60.0,
        seconds: 90.0,
        workers: 32,
    };
    let usage = "usage: fleet_load SERVER_BINARY [--backend sqlite|postgres|both] [--devices N] \
                 [--period S] [--seconds S] [--workers N]";
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| panic!("{a} needs a value; {usage}"))
        };
        match a.as_str() {
            "--backend" => {
                args.backends = match value().as_str() {
                    "both" => vec!["sqlite".into(), "postgres".into()],
                    b @ ("sqlite" | "postgres") => vec![b.to_string()],
                    other => panic!("unknown backend {other}; {usage}"),
                }
            }
            "--devices" => args.devices = value().parse().expect("--devices: a number"),
            "--period" => args.period = value().parse().expect("--period: seconds"),
            "--seconds" => args.seconds = value().parse().expect("--seconds: seconds"),
            "--workers" => args.workers = value().parse().expect("--workers: a number"),
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            _ if args.server.as_os_str().is_empty() && !a.starts_with('-') => {
                args.server = PathBuf::from(a)
            }
            _ => panic!("unexpected argument {a}; {usage}"),
        }
    }
    assert!(!args.server.as_os_str().is_empty(), "{usage}");
    args
}

/// 80 metric names of an Orin AGX exporter (12 cores × 3, plus the rest).
fn metric_names() -> Vec<String> {
    let mut names = Vec::new();
    for core in 0..12 {
        for what in ["freq_mhz", "status", "usage_percent"] {
            names.push(format!("jetson_cpu_core{core}_{what}"));
        }
    }
    for n in [
        "jetson_ram_used_mb",
        "jetson_ram_total_mb",
        "jetson_ram_used_percent",
        "jetson_swap_used_mb",
        "jetson_swap_total_mb",
        "jetson_swap_cached_mb",
        "jetson_lfb_blocks",
        "jetson_lfb_total_mb",
        "jetson_cpu_avg_usage_percent",
        "jetson_cpu_active_cores",
        "jetson_emc_freq_mhz",
        "jetson_emc_usage_percent",
        "jetson_gpu_usage_percent",
        "jetson_gpu_freq_mhz",
        "jetson_gpu_gpc1_usage_percent",
        "jetson_nvenc_freq_mhz",
        "jetson_nvdec_freq_mhz",
        "jetson_nvjpg0_freq_mhz",
        "jetson_nvjpg1_freq_mhz",
        "jetson_ofa_freq_mhz",
        "jetson_ape_freq_mhz",
        "jetson_nvdla0_usage_percent",
        "jetson_nvdla1_usage_percent",
        "jetson_temp_cpu_celsius",
        "jetson_temp_gpu_celsius",
        "jetson_temp_soc0_celsius",
        "jetson_temp_soc1_celsius",
        "jetson_temp_soc2_celsius",
        "jetson_temp_tj_celsius",
        "jetson_temp_cv0_celsius",
        "jetson_temp_cv1_celsius",
        "jetson_temp_cv2_celsius",
        "jetson_power_vdd_gpu_soc_watts",
        "jetson_power_vdd_gpu_soc_avg_watts",
        "jetson_power_vdd_cpu_cv_watts",
        "jetson_power_vdd_cpu_cv_avg_watts",
        "jetson_power_vin_sys_5v0_watts",
        "jetson_power_vin_sys_5v0_avg_watts",
        "power_total_watts",
        "power_voltage_volts",
        "power_current_amps",
        "power_energy_wh",
        "jetson_mts_fg_percent",
        "jetson_mts_bg_percent",
    ] {
        names.push(n.to_string());
    }
    names
}

/// The JSON an exporter pushes: its full config, every default included. `flip` selects
/// which metric this push turns on (the others of the first 16 are on, the rest off).
fn push_body(names: &[String], flip: usize) -> String {
    let metrics: BTreeMap<&str, bool> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i < 16 || i == 16 + flip % (names.len() - 16)))
        .collect();
    serde_json::json!({
        "device_type": "jetson_orin",
        "interval": 1,
        "port": 9102,
        "reload_port": 9101,
        "bind_address": "0.0.0.0",
        "reload_bind_address": "127.0.0.1",
        "max_connections": 256,
        "shelly": {"enabled": true, "server_url": "http://localhost:8766"},
        "tegrastats": {"path": "/usr/bin/tegrastats"},
        "metrics": metrics,
    })
    .to_string()
}

/// One answered request: route, status (0: no answer), latency, started more than 10 ms late.
type Sample = (Route, u16, Duration, bool);

fn device_id(i: usize) -> String {
    format!("orin-{i:05}")
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Route {
    Fetch,
    Push,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Fetch => "GET /config/{device}",
            Route::Push => "PUT /config/{device}",
        }
    }
}

/// One request as a device; the status (0 for a connection failure).
fn call(addr: SocketAddr, route: Route, device: &str, body: &str) -> u16 {
    let path = format!("/config/{device}");
    let bearer = format!("Bearer {DEVICE_TOKEN}");
    let mut headers = vec![
        ("Authorization", bearer.as_str()),
        ("User-Agent", "edge-metrics-exporter/0.1.0"),
        ("X-Edge-Metrics-Version", "0.1.0"),
        ("X-Edge-Metrics-Device-Type", "jetson_orin"),
        ("Accept", "application/json"),
    ];
    let (method, body) = match route {
        Route::Fetch => ("GET", ""),
        Route::Push => {
            headers.push(("Content-Type", "application/json"));
            ("PUT", body)
        }
    };
    test_support::http::request(addr, method, &path, &headers, body.as_bytes())
        .map(|r| r.status)
        .unwrap_or(0)
}

fn operator(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> test_support::http::Response {
    let bearer = format!("Bearer {}", OPERATOR_TOKEN.split_once(':').unwrap().1);
    test_support::http::request(
        addr,
        method,
        path,
        &[
            ("Authorization", bearer.as_str()),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// (utime + stime in clock ticks, VmRSS KiB, VmHWM KiB) of `pid`.
fn proc_stats(pid: u32) -> (u64, u64, u64) {
    use test_support::procfs::{cpu_ticks, status_kib};
    (
        cpu_ticks(pid),
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "VmHWM:"),
    )
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn start_server(binary: &Path, database: &str) -> (Daemon, SocketAddr) {
    let mut cmd = test_support::daemon_command(binary);
    cmd.args(["--listen", "127.0.0.1:0", "--database", database])
        .env("CONFIG_SERVER_OPERATOR_TOKEN", OPERATOR_TOKEN)
        .env("CONFIG_SERVER_DEVICE_TOKEN", DEVICE_TOKEN)
        .env("RUST_LOG", "warn,edge_metrics_config_server=info");
    let daemon = Daemon::start("config-server", cmd, None);
    let addr = daemon.wait_addr(&["Listening."], Duration::from_secs(60));
    (daemon, addr)
}

/// Walks every page of `GET /devices?{query}` by its `next` cursor: pages, devices, latency
/// per page, the largest body, and the server's VmHWM after the walk.
fn walk_pages(addr: SocketAddr, pid: u32, query: &str) {
    let mut lat = Vec::new();
    let (mut listed, mut biggest, mut total) = (0u64, 0usize, 0u64);
    let mut path = format!("/devices?{query}");
    for _ in 0..100_000 {
        let t = Instant::now();
        let r = operator(addr, "GET", &path, "");
        lat.push(t.elapsed());
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        let v = r.json();
        listed += v["count"].as_u64().unwrap_or(0);
        total = v["total"].as_u64().unwrap_or(0);
        biggest = biggest.max(r.body.len());
        match v["next"].as_str() {
            Some(next) => path = format!("/devices?{query}&after={next}"),
            None => break,
        }
    }
    let pages = lat.len();
    lat.sort();
    println!(
        "GET /devices?{query}: {pages} pages, {listed} of {total} devices listed; per page p50 {} ms, p99 {} ms, max {} ms; largest body {} bytes; VmHWM after {:.1} MiB",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default()),
        biggest,
        proc_stats(pid).2 as f64 / 1024.0
    );
}

fn run_backend(args: &Args, backend: &str, database: &str) {
    println!("\n== {backend} ({database})");
    let (daemon, addr) = start_server(&args.server, database);
    let pid = daemon.pid();
    let names = Arc::new(metric_names());

    // Layers an operator would have set.
    let fleet = serde_json::json!({"interval": 1, "metrics": {"jetson_ram_used_mb": true}});
    let r = operator(addr, "PUT", "/defaults", &fleet.to_string());
    assert!(r.status < 300, "PUT /defaults: {} {}", r.status, r.text());
    let orin = serde_json::json!({"metrics": {"jetson_gpu_usage_percent": true}});
    let r = operator(addr, "PUT", "/defaults/jetson_orin", &orin.to_string());
    assert!(
        r.status < 300,
        "PUT /defaults/jetson_orin: {} {}",
        r.status,
        r.text()
    );

    // Seed: one push per device, as fast as the workers go.
    let seed_start = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let seed_errors = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..args.workers.min(16))
        .map(|_| {
            let (next, errors, names) = (next.clone(), seed_errors.clone(), names.clone());
            let devices = args.devices;
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= devices {
                    break;
                }
                let status = call(addr, Route::Push, &device_id(i), &push_body(&names, i));
                if !(200..300).contains(&status) {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("seed worker");
    }
    let seed = seed_start.elapsed();
    println!(
        "seeded {} devices in {:.1} s ({:.0} pushes/s, 16 connections at a time), {} errors",
        args.devices,
        seed.as_secs_f64(),
        args.devices as f64 / seed.as_secs_f64(),
        seed_errors.load(Ordering::Relaxed)
    );

    // The measured window: every device on its schedule.
    let (ticks0, _, _) = proc_stats(pid);
    let start = Instant::now() + Duration::from_millis(200);
    let window = Duration::from_secs_f64(args.seconds);
    let results: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let peak_rss = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let peak = peak_rss.clone();
        std::thread::spawn(move || {
            while Instant::now() < start + window {
                let (_, rss, _) = proc_stats(pid);
                peak.fetch_max(rss as usize, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let threads: Vec<_> = (0..args.workers)
        .map(|w| {
            let (results, names) = (results.clone(), names.clone());
            let (devices, period, workers) = (args.devices, args.period, args.workers);
            std::thread::spawn(move || {
                // This worker's events in time order: (offset, route, device).
                let mut events = Vec::new();
                let span = window.as_secs_f64();
                for i in (w..devices).step_by(workers) {
                    // The fetch at its phase, the push half a period away (earlier when that
                    // fits in the period), so both routes run at an even rate from the start.
                    let fetch = period * i as f64 / devices as f64;
                    let push = (fetch + period / 2.0) % period;
                    for (first, route) in [(fetch, Route::Fetch), (push, Route::Push)] {
                        let mut t = first;
                        while t < span {
                            events.push((t, route, i));
                            t += period;
                        }
                    }
                }
                events.sort_by(|a, b| a.0.total_cmp(&b.0));
                let mut mine = Vec::with_capacity(events.len());
                let mut round = vec![0usize; devices];
                for (offset, route, i) in events {
                    let due = start + Duration::from_secs_f64(offset);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    let late = Instant::now().duration_since(due) > Duration::from_millis(10);
                    round[i] += 1;
                    let body = match route {
                        Route::Push => push_body(&names, i + round[i]),
                        Route::Fetch => String::new(),
                    };
                    let sent = Instant::now();
                    let status = call(addr, route, &device_id(i), &body);
                    mine.push((route, status, sent.elapsed(), late));
                }
                results.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("load worker");
    }
    let elapsed = start.elapsed();
    sampler.join().expect("sampler");
    let (ticks1, rss, hwm) = proc_stats(pid);
    let cpu_s = (ticks1 - ticks0) as f64 / clock_ticks();

    let results = results.lock().unwrap();
    let total = results.len();
    println!(
        "load: {} devices, a fetch and a push each per {} s, {:.0} s window; {} requests in {:.1} s = {:.1} requests/s",
        args.devices,
        args.period,
        args.seconds,
        total,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "{:<22} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}  statuses",
        "route", "count", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "late"
    );
    for route in [Route::Fetch, Route::Push] {
        let mine: Vec<_> = results.iter().filter(|r| r.0 == route).collect();
        let mut lat: Vec<Duration> = mine.iter().map(|r| r.2).collect();
        lat.sort();
        let errors = mine.iter().filter(|r| !(200..300).contains(&r.1)).count();
        let late = mine.iter().filter(|r| r.3).count();
        let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
        for r in &mine {
            *statuses.entry(r.1).or_default() += 1;
        }
        println!(
            "{:<22} {:>7} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6}  {:?}",
            route.name(),
            mine.len(),
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.90)),
            ms(percentile(&lat, 0.99)),
            ms(lat.last().copied().unwrap_or_default()),
            errors,
            late,
            statuses
        );
    }
    println!(
        "server: CPU {:.2} s in the window ({:.1} % of one core, {:.2} ms per request); VmRSS {:.1} MiB at the end, {:.1} MiB peak sampled, VmHWM {:.1} MiB",
        cpu_s,
        100.0 * cpu_s / elapsed.as_secs_f64(),
        1000.0 * cpu_s / total.max(1) as f64,
        rss as f64 / 1024.0,
        peak_rss.load(Ordering::Relaxed) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    for limit in [100, 1000] {
        walk_pages(addr, pid, &format!("limit={limit}"));
    }
    // A filter that matches every device but reads the seen times of each row.
    walk_pages(addr, pid, "limit=100&device_type=jetson_orin&seen=recent");
    drop(daemon);
}

fn main() {
    let args = parse_args();
    println!(
        "machine: {} cores, load {}, server {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        args.server.display()
    );
    for backend in &args.backends {
        match backend.as_str() {
            "sqlite" => {
                let dir = test_support::TempDir::new("fleet-load");
                let url = format!("sqlite://{}", dir.join("config-server.db").display());
                run_backend(&args, "SQLite", &url);
            }
            _ => {
                let Some(pg) = test_support::pg::Cluster::start() else {
                    println!("\n== PostgreSQL: skipped (not installed)");
                    continue;
                };
                let url = pg.database("fleet_load");
                run_backend(&args, "PostgreSQL", &url);
            }
        }
    }
}
