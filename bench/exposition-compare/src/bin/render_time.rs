//! Time per render (store the cycle's 76 values + encode the whole body), in process.
//!
//! `cargo run --release --bin render_time -- [ITERATIONS [ROUNDS]]` (default 20,000 × 5).
//! Each round runs every variant for 1,000 untimed cycles, then ITERATIONS cycles each timed
//! with `Instant` (mean, p50, p99 of wall time), then ITERATIONS more cycles whose thread CPU
//! time is divided by ITERATIONS (CPU time does not count the time other processes held the
//! core, so it is the figure least moved by a loaded machine). The variants' order rotates
//! between rounds; the table gives the median over rounds of each figure.

use std::time::{Duration, Instant};

use exposition_compare::client::Client;
use exposition_compare::handwritten::Handwritten;
use exposition_compare::prom::Prom;
use exposition_compare::stats::{median, percentile};
use exposition_compare::{loadavg, snapshot, thread_cpu_ns, Render};

struct Round {
    mean: f64,
    p50: f64,
    p99: f64,
    cpu: f64,
}

fn time(r: &mut dyn Render, iterations: usize, first_cycle: u64) -> (Round, usize) {
    let mut values = vec![0.0; snapshot::NAMES.len()];
    let mut cycle = first_cycle;
    for _ in 0..1_000 {
        snapshot::values_at(cycle, &mut values);
        std::hint::black_box(r.render(&values));
        cycle += 1;
    }
    let mut times = Vec::with_capacity(iterations);
    let mut bytes = 0;
    for _ in 0..iterations {
        snapshot::values_at(cycle, &mut values);
        let t = Instant::now();
        let body = r.render(std::hint::black_box(&values));
        times.push(t.elapsed());
        bytes = std::hint::black_box(body).len();
        cycle += 1;
    }
    let cpu_start = thread_cpu_ns();
    for _ in 0..iterations {
        snapshot::values_at(cycle, &mut values);
        std::hint::black_box(r.render(std::hint::black_box(&values)));
        cycle += 1;
    }
    let cpu = (thread_cpu_ns() - cpu_start) as f64 / iterations as f64 / 1e3;
    let mean = times.iter().sum::<Duration>() / iterations as u32;
    times.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (
        Round {
            mean: us(mean),
            p50: us(percentile(&times, 0.5)),
            p99: us(percentile(&times, 0.99)),
            cpu,
        },
        bytes,
    )
}

/// CPU time of generating one cycle's values alone (included in the CPU column).
fn values_only_cpu_us(iterations: usize) -> f64 {
    let mut values = vec![0.0; snapshot::NAMES.len()];
    let start = thread_cpu_ns();
    for cycle in 0..iterations as u64 {
        snapshot::values_at(cycle, &mut values);
        std::hint::black_box(&values);
    }
    (thread_cpu_ns() - start) as f64 / iterations as f64 / 1e3
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let mut variants: Vec<Box<dyn Render>> = vec![
        Box::new(Handwritten::new()),
        Box::new(Prom::new()),
        Box::new(Client::new()),
    ];
    let n = variants.len();
    let mut results: Vec<Vec<Round>> = (0..n).map(|_| Vec::new()).collect();
    let mut bytes = vec![0; n];
    println!(
        "{} families, {iterations} renders per variant per round, {rounds} rounds; load average before: {}",
        snapshot::NAMES.len(),
        loadavg()
    );
    for round in 0..rounds {
        for k in 0..n {
            let v = (round + k) % n;
            let first = (round * (2 * iterations + 1_000)) as u64;
            let (r, b) = time(variants[v].as_mut(), iterations, first);
            println!(
                "round {round} {:<18} mean {:7.2} µs  p50 {:7.2} µs  p99 {:7.2} µs  CPU {:7.2} µs",
                variants[v].name(),
                r.mean,
                r.p50,
                r.p99,
                r.cpu
            );
            results[v].push(r);
            bytes[v] = b;
        }
    }
    println!("load average after: {}", loadavg());
    println!(
        "generating the values alone: {:.2} µs CPU per cycle (included in the CPU column)",
        values_only_cpu_us(iterations)
    );
    println!();
    println!("| variant | body bytes | mean µs | p50 µs | p99 µs | CPU µs/render |");
    println!("|---|---:|---:|---:|---:|---:|");
    for v in 0..n {
        let pick = |f: fn(&Round) -> f64| median(&results[v].iter().map(f).collect::<Vec<_>>());
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            variants[v].name(),
            bytes[v],
            pick(|r| r.mean),
            pick(|r| r.p50),
            pick(|r| r.p99),
            pick(|r| r.cpu)
        );
    }
}
