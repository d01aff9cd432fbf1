//! Benchmark: the bridge with 1 and with 1,000 simulated plugs. Prints the bridge's RSS and
//! the `/metrics/{device}` round trip (median, p90, p99) on loopback. Run through
//! `scripts/bench-bridge.sh`, which builds the binaries first.
//!
//! Usage: `bench_bridge [BRIDGE_BINARY] [PLUGS] [REQUESTS]`; the plugs are simulated by the
//! `shelly-sim` binary beside `BRIDGE_BINARY`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

use test_support::procfs::status_kib as rss_kib;

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// RSS with its split: anonymous (heap, stacks: the bridge's own) and file-backed (code of the
/// binary and libc, shared with other processes).
fn rss(pid: u32) -> String {
    format!(
        "RSS {} (anon {}, file {})",
        mib(rss_kib(pid, "VmRSS:")),
        mib(rss_kib(pid, "RssAnon:")),
        mib(rss_kib(pid, "RssFile:"))
    )
}

async fn count(client: &reqwest::Client, http: &str) -> u64 {
    match client.get(format!("{http}/devices")).send().await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .map(|v| v["count"].as_u64().unwrap_or(0))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

async fn wait_count(client: &reqwest::Client, http: &str, want: u64, limit: Duration) -> Duration {
    let t = Instant::now();
    while count(client, http).await < want {
        assert!(
            t.elapsed() < limit,
            "only {} of {want} plugs connected after {limit:?}",
            count(client, http).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release/shelly-bridge".into());
    let plugs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let requests: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let sim_bin = std::path::Path::new(&bin).with_file_name("shelly-sim");

    let mut bridge = Command::new(&bin)
        .args(["--bind", "127.0.0.1", "--ws-port", "0", "--http-port", "0"])
        .env("RUST_LOG", "warn,shelly_bridge=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let stderr = bridge.stderr.take().unwrap();
    let pid = bridge.id();
    let bridge = Kill(bridge);
    let mut lines = BufReader::new(stderr).lines();
    let (mut ws, mut http) = (String::new(), String::new());
    while ws.is_empty() || http.is_empty() {
        let line = lines.next().expect("bridge exited").unwrap();
        let addr = line
            .split("address=")
            .nth(1)
            .map(|r| r.split_whitespace().next().unwrap_or("").to_string());
        if let Some(a) = addr {
            if line.contains("WebSocket") {
                ws = format!("ws://{a}")
            } else {
                http = format!("http://{a}")
            }
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("bridge binary: {bin}");
    println!("bridge idle, no plugs: {}", rss(pid));

    let sim = |url: String, n: u64| {
        Kill(
            Command::new(&sim_bin)
                .args([
                    "--url",
                    &url,
                    "--count",
                    &n.to_string(),
                    "--run-for",
                    "600",
                    "--notify-interval",
                    "0",
                ])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", sim_bin.display())),
        )
    };
    let _one = sim(format!("{ws}/one"), 1);
    wait_count(&client, &http, 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A few requests so that every code path has run once.
    for _ in 0..20 {
        let _ = client
            .get(format!("{http}/metrics/one"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await;
    }
    println!("bridge with 1 plug:    {}", rss(pid));

    let rest = plugs.saturating_sub(1);
    if rest > 0 {
        let _bulk = sim(format!("{ws}/bulk"), rest);
        let took = wait_count(&client, &http, plugs, Duration::from_secs(120)).await;
        println!("{plugs} plugs connected in {:.2} s", took.as_secs_f64());
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!(
            "bridge with {plugs} idle plugs: {} (peak {})",
            rss(pid),
            mib(rss_kib(pid, "VmHWM:"))
        );
        run_latency(&client, &http, rest, requests).await;
        println!(
            "bridge after the requests: {} (peak {})",
            rss(pid),
            mib(rss_kib(pid, "VmHWM:"))
        );
    } else {
        run_latency(&client, &http, 0, requests).await;
    }
    drop(bridge);
}

async fn run_latency(client: &reqwest::Client, http: &str, bulk: u64, requests: usize) {
    let mut times = Vec::with_capacity(requests);
    let mut failures = 0;
    for i in 0..requests {
        let dev = if bulk == 0 {
            "one".to_string()
        } else {
            format!("bulk-{}", (i as u64 % bulk) + 1)
        };
        let t = Instant::now();
        let r = client
            .get(format!("{http}/metrics/{dev}"))
            .send()
            .await
            .unwrap();
        let ok = r.status().is_success();
        let _ = r.bytes().await;
        times.push(t.elapsed());
        if !ok {
            failures += 1;
        }
    }
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "GET /metrics/{{device}} x{requests} (keep-alive, sequential): median {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us, failures {failures}",
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.9)),
        us(percentile(&times, 0.99)),
        us(*times.last().unwrap()),
    );
}
