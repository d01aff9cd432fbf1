//! One Orin + Shelly snapshot rendered to Prometheus text three ways, for the decision record
//! docs/decisions/exposition.md:
//!
//! - [`handwritten`]: the exporter's own renderer, linked from its library;
//! - [`prom`]: the `prometheus` crate (a `GaugeVec` per family in a `Registry`, `TextEncoder`);
//! - [`client`]: the `prometheus-client` crate (`Family<Labels, Gauge<f64, AtomicU64>>`,
//!   `encoding::prometheus_text::encode`, format 0.0.4 like the exporter's).
//!
//! Every variant is set up once (registration, label handles) and then, per cycle, takes the
//! new values and returns the whole body as a fresh `String`, which is what the exporter does
//! once per collection cycle.

pub mod client;
pub mod handwritten;
pub mod parse;
pub mod prom;
pub mod snapshot;
pub mod stats;

/// A renderer of the snapshot: set up once, then called once per cycle.
pub trait Render {
    /// Short name used in the output tables.
    fn name(&self) -> &'static str;
    /// Stores `values` (one per [`snapshot::NAMES`] entry, same order) and renders the body.
    fn render(&mut self, values: &[f64]) -> String;
}

/// The body's initial capacity, as `edge_metrics_exporter::cycle::render` sizes it.
pub fn body_capacity(values: usize) -> usize {
    256 + values * 200
}

/// `VmRSS`, `VmHWM` and `RssAnon` (heap, stacks: what the process allocated rather than the
/// binary's and libraries' mapped pages) of this process, in KiB, from `/proc/self/status`.
pub fn memory_kib() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"), field("RssAnon:"))
}

/// CPU time this thread has run, in nanoseconds (`/proc/thread-self/schedstat`): unlike wall
/// time it does not grow while other processes hold the CPU.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` prints them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The memory binaries' common body: set up `r`, render 1,000 cycles, print the memory figures.
pub fn rss_main(mut r: impl Render) {
    let mut values = vec![0.0; snapshot::NAMES.len()];
    let mut body = String::new();
    for cycle in 0..1_000 {
        snapshot::values_at(cycle, &mut values);
        body = r.render(std::hint::black_box(&values));
    }
    let (rss, hwm, anon) = memory_kib();
    println!(
        "variant={} VmRSS_kB={rss} VmHWM_kB={hwm} RssAnon_kB={anon} body_bytes={}",
        r.name(),
        std::hint::black_box(&body).len()
    );
}
