//! Parse speed: every corpus line, many times, per model; prints nanoseconds per line.
//!
//! Run: `cargo bench -p edge-metrics-exporter --bench parse`. The target is under 5 µs per line
//! (tegrastats prints one line per second, so this is about CPU share on a small board, not
//! throughput). Three figures per row:
//! - `cpu mean`: CPU time of this thread per line over all batches (from
//!   `/proc/thread-self/schedstat`), which time spent waiting for a core on a busy machine does
//!   not inflate;
//! - `wall mean`: wall-clock time per line over all batches;
//! - `wall min`: the fastest batch, the one least disturbed by other work.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_metrics_exporter::collector::jetson::{line_values, read_line};
use edge_metrics_exporter::tegrastats::parse::parse_line;

const BATCHES: usize = 2000;
/// Short batches, so that some run without being preempted on a shared machine.
const BATCH_TARGET: Duration = Duration::from_micros(500);

fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tegrastats");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).expect("readable corpus file");
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

/// CPU time this thread has run, in ns (Linux); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

struct Figures {
    cpu_mean: Option<f64>,
    wall_mean: f64,
    wall_min: f64,
}

/// Runs `f` over the lines in batches of about [`BATCH_TARGET`].
fn measure(lines: &[String], mut f: impl FnMut(&str)) -> Figures {
    // Warm up, and find how many lines fill a batch.
    let start = Instant::now();
    let mut per_batch = 0usize;
    while start.elapsed() < BATCH_TARGET {
        f(&lines[per_batch % lines.len()]);
        per_batch += 1;
    }
    let mut next = 0usize;
    let mut wall_total = Duration::ZERO;
    let mut wall_min = f64::INFINITY;
    let cpu_start = thread_cpu_ns();
    for _ in 0..BATCHES {
        let t = Instant::now();
        for _ in 0..per_batch {
            f(&lines[next]);
            next = (next + 1) % lines.len();
        }
        let took = t.elapsed();
        wall_total += took;
        wall_min = wall_min.min(took.as_nanos() as f64 / per_batch as f64);
    }
    let count = (per_batch * BATCHES) as f64;
    let cpu_mean = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| b.saturating_sub(a) as f64 / count);
    Figures {
        cpu_mean,
        wall_mean: wall_total.as_nanos() as f64 / count,
        wall_min,
    }
}

fn row(what: &str, f: &Figures) {
    let cpu = f
        .cpu_mean
        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0}"));
    println!(
        "{what:<34} {cpu:>14} {:>14.0} {:>14.0}",
        f.wall_mean, f.wall_min
    );
}

fn main() {
    let lines = corpus();
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "tegrastats parse benchmark: {} corpus lines, {} bytes on average, {} batches of ~{} µs",
        lines.len(),
        bytes / lines.len().max(1),
        BATCHES,
        BATCH_TARGET.as_micros()
    );
    println!(
        "{:<34} {:>14} {:>14} {:>14}",
        "ns per line", "cpu mean", "wall mean", "wall min"
    );
    let figures = measure(&lines, |l| {
        let _ = black_box(parse_line(black_box(l)));
    });
    row("parse_line (text -> Line)", &figures);
    let parsed: Vec<_> = lines.iter().filter_map(|l| parse_line(l).ok()).collect();
    let mut next = 0;
    let figures = measure(&lines, |_| {
        let _ = black_box(line_values(black_box(&parsed[next])));
        next = (next + 1) % parsed.len();
    });
    row("line_values (Line -> values)", &figures);
    let figures = measure(&lines, |l| {
        let _ = black_box(read_line(black_box(l)));
    });
    row("read_line (text -> values)", &figures);
}
