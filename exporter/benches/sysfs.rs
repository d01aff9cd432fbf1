//! Cost of one sysfs-mode reading: every fixture tree in `testdata/sysfs/`, read by the Jetson
//! sysfs reader many times and mapped to values, as the source does once per interval.
//!
//! Run: `cargo bench -p edge-metrics-exporter --bench sysfs`. Per tree it prints the files
//! opened per read, the CPU time of this thread per read (`/proc/thread-self/schedstat`, not
//! inflated by waiting for a core) and the fastest wall-clock read. The fixture files sit in the
//! page cache; on a device the kernel builds each attribute when it is read, and the INA3221
//! driver may talk to the chip over I2C, so the figures are the exporter's own share.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use edge_metrics_exporter::collector::jetson::line_values;
use edge_metrics_exporter::sysfs::fs::Root;
use edge_metrics_exporter::sysfs::jetson::Reader;

const READS: u32 = 2000;

fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Files opened by this process so far (`syscr` counts reads, not opens; `/proc/self/io`'s
/// read calls are the closest portable figure).
fn read_calls() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("syscr: "))
        .and_then(|v| v.trim().parse().ok())
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/sysfs");
    let mut models: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("root").is_dir())
        .collect();
    models.sort();
    println!(
        "{:<10} {:>7} {:>8} {:>12} {:>12}",
        "tree", "values", "reads", "cpu µs/read", "min µs/read"
    );
    for model in models {
        let name = model.file_name().unwrap().to_string_lossy().into_owned();
        let mut reader = Reader::new(Root::new(model.join("root")));
        let values = line_values(&reader.read()).len();
        let calls_before = read_calls();
        let cpu_before = thread_cpu_ns();
        let mut fastest = Duration::MAX;
        for _ in 0..READS {
            let start = Instant::now();
            black_box(line_values(&reader.read()));
            fastest = fastest.min(start.elapsed());
        }
        let cpu = match (cpu_before, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / f64::from(READS) / 1e3),
            _ => "n/a".into(),
        };
        let calls = match (calls_before, read_calls()) {
            (Some(a), Some(b)) => format!("{}", (b - a) / u64::from(READS)),
            _ => "n/a".into(),
        };
        println!(
            "{name:<10} {values:>7} {calls:>8} {cpu:>12} {:>12.1}",
            fastest.as_secs_f64() * 1e6
        );
    }
}
