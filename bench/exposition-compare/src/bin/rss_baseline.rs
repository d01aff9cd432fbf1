//! The common part of the three memory binaries without any rendering: the snapshot's values
//! for 1,000 cycles, each family's HELP text built once (as every variant does), and a body of
//! the same size held. Its size and memory are subtracted from the variants' to get what the
//! rendering itself costs.
use exposition_compare::{memory_kib, snapshot};

fn main() {
    let helps: Vec<String> = snapshot::NAMES
        .iter()
        .map(|n| snapshot::help(n).to_string())
        .collect();
    let mut values = vec![0.0; snapshot::NAMES.len()];
    let mut sum = 0.0;
    for cycle in 0..1_000 {
        snapshot::values_at(cycle, &mut values);
        sum += std::hint::black_box(&values).iter().sum::<f64>();
    }
    let body = "x".repeat(exposition_compare::body_capacity(values.len()));
    let (rss, hwm, anon) = memory_kib();
    println!(
        "variant=baseline VmRSS_kB={rss} VmHWM_kB={hwm} RssAnon_kB={anon} body_bytes={} help_bytes={} checksum={sum}",
        std::hint::black_box(&body).len(),
        helps.iter().map(String::len).sum::<usize>(),
    );
}
