//! Parse speed: every corpus line, many times, per model; prints nanoseconds per line.
//!
//! Run: `cargo bench -p edge-metrics-exporter --bench parse`. The target is under 5 µs per line
//! (tegrastats prints one line per second, so this is about CPU share on a small board, not
//! throughput). Two figures per row: the mean over all batches and the fastest batch (the least
//! disturbed by other work on the machine).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_metrics_exporter::collector::jetson::{read_line, Model};
use edge_metrics_exporter::tegrastats::parse::parse_line;

const BATCHES: usize = 200;
const BATCH_TARGET: Duration = Duration::from_millis(5);

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

/// Runs `f` over all lines in batches; returns (mean, min) nanoseconds per line.
fn measure(lines: &[String], mut f: impl FnMut(&str)) -> (f64, f64) {
    // Warm up and size a batch to about BATCH_TARGET.
    let start = Instant::now();
    let mut rounds = 0u32;
    while start.elapsed() < BATCH_TARGET {
        for line in lines {
            f(line);
        }
        rounds += 1;
    }
    let per_batch = f64::from(rounds) * lines.len() as f64;
    let mut total = Duration::ZERO;
    let mut best = f64::INFINITY;
    for _ in 0..BATCHES {
        let t = Instant::now();
        for _ in 0..rounds {
            for line in lines {
                f(line);
            }
        }
        let took = t.elapsed();
        total += took;
        best = best.min(took.as_nanos() as f64 / per_batch);
    }
    let mean = total.as_nanos() as f64 / (per_batch * BATCHES as f64);
    (mean, best)
}

fn main() {
    let lines = corpus();
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "tegrastats parse benchmark: {} corpus lines, {} bytes on average, {} batches",
        lines.len(),
        bytes / lines.len().max(1),
        BATCHES
    );
    println!(
        "{:<34} {:>14} {:>14}",
        "what", "mean ns/line", "min ns/line"
    );
    let (mean, min) = measure(&lines, |l| {
        let _ = black_box(parse_line(black_box(l)));
    });
    println!(
        "{:<34} {:>14.0} {:>14.0}",
        "parse_line (text -> Line)", mean, min
    );
    for model in Model::ALL {
        let (mean, min) = measure(&lines, |l| {
            let _ = black_box(read_line(model, black_box(l)));
        });
        let what = format!("read_line {model:?} (text -> values)");
        println!("{what:<34} {mean:>14.0} {min:>14.0}");
    }
}
