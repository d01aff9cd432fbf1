//! What the energy counters and the board sources add to a cycle; prints nanoseconds.
//!
//! Run: `cargo bench -p edge-metrics-exporter --bench energy`. Rows:
//! - `line_values`: a parsed corpus line → values, the Jetson collector's work per cycle before
//!   energy counters (for comparison);
//! - `rail_energy`: what the counters add per cycle: every rail of the line integrated;
//! - `board pass <tree>`: one read pass of a board source over a fixture tree in
//!   `testdata/boards/` (file reads; runs once per interval on the blocking pool, not in the
//!   cycle), and `board values <tree>`: its reading → values, the board collector's work.
//!
//! Each figure is the CPU time of this thread per call (`/proc/thread-self/schedstat`), which
//! waiting for a core on a busy machine does not inflate, and the fastest batch's wall time.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_metrics_exporter::boards::{Board, Reader, Sample};
use edge_metrics_exporter::collector::boards::sample_values;
use edge_metrics_exporter::collector::jetson::{line_values, rail_energy};
use edge_metrics_exporter::collector::Values;
use edge_metrics_exporter::energy::EnergyMeter;
use edge_metrics_exporter::sysfs::fs::Root;
use edge_metrics_exporter::tegrastats::line::Line;
use edge_metrics_exporter::tegrastats::parse::parse_line;

const BATCHES: usize = 500;
const BATCH_TARGET: Duration = Duration::from_micros(500);

fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Runs `f` in batches; prints CPU mean and fastest-batch wall time per call.
fn report(label: &str, mut f: impl FnMut()) {
    let start = Instant::now();
    let mut per_batch = 0usize;
    while start.elapsed() < BATCH_TARGET {
        f();
        per_batch += 1;
    }
    let mut wall_min = f64::INFINITY;
    let cpu_start = thread_cpu_ns();
    for _ in 0..BATCHES {
        let t = Instant::now();
        for _ in 0..per_batch {
            f();
        }
        wall_min = wall_min.min(t.elapsed().as_nanos() as f64 / per_batch as f64);
    }
    let calls = (per_batch * BATCHES) as f64;
    let cpu = cpu_start
        .zip(thread_cpu_ns())
        .map_or("-".to_string(), |(a, b)| {
            format!("{:.0}", b.saturating_sub(a) as f64 / calls)
        });
    println!("{label:<34} cpu mean {cpu:>8} ns   wall min {wall_min:>8.0} ns");
}

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tegrastats");
    let mut lines: Vec<Line> = Vec::new();
    for name in ["orin-agx-jp6.log", "xavier-nx-jp5.log", "nano-jp4.log"] {
        let text = std::fs::read_to_string(corpus.join(name)).expect("corpus file");
        lines.extend(text.lines().filter_map(|l| parse_line(l).ok()));
    }
    let mut n = 0usize;
    report("line_values (per line)", || {
        n = (n + 1) % lines.len();
        black_box(line_values(&lines[n]));
    });
    let meter = EnergyMeter::new();
    let base = Instant::now();
    let mut tick = 0u64;
    let mut out = Values::new();
    report("rail_energy (per line)", || {
        tick += 1;
        n = (n + 1) % lines.len();
        out.clear();
        rail_energy(
            &meter,
            &lines[n],
            base + Duration::from_millis(tick),
            Duration::from_secs(3),
            &mut out,
        );
        black_box(&out);
    });
    let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/boards");
    for (tree, board) in [
        ("raspberry-pi-5", Board::RaspberryPi),
        ("lattepanda-3-delta", Board::LattePanda),
        ("orange-pi-5", Board::OrangePi),
    ] {
        let mut reader = Reader::new(board, Root::new(boards.join(tree)));
        report(&format!("board pass {tree}"), || {
            black_box(reader.read(Instant::now()));
        });
        let sample = Sample {
            reading: reader.read(Instant::now()),
            at: Instant::now(),
        };
        report(&format!("board values {tree}"), || {
            let mut out = Values::new();
            sample_values(board, &sample, Duration::from_secs(3), &meter, &mut out);
            black_box(out);
        });
    }
}
