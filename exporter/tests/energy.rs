//! Energy counters with the real binary: the exporter replays a recorded tegrastats log
//! (`tegrastats.replay`) and every rail gets `jetson_power_{rail}_joules_total`, a counter
//! that grows by the integral of the replayed power between two scrapes; JetPack 7's
//! three-value rails are read, a rail reading below zero (Thor's `VDD_GPU -392mW` at idle) is
//! exposed as read and adds no energy; a new process starts its counters at zero; the plug's
//! own Wh total is given in joules too.
//!
//! The exact arithmetic (trapezoids, gaps, negative readings) is unit-tested in
//! `src/energy.rs`; here the bounds leave room for when exactly the samples fell between the
//! scrapes (one interval and a cycle's delay at each end, 0.6 s in all at a 0.1 s interval, so
//! that a loaded machine does not fail them), still far tighter than a wrong unit or a counter
//! counted twice or reset would pass.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{orin_corpus, testdata, wait_for, Exporter, FakeHttp, Reply, Request, Setup, TempDir};
use test_support::prom;

const INTERVAL: f64 = 0.1;

/// Starts the exporter replaying `log` every [`INTERVAL`].
fn replaying(log: &Path) -> (Setup, Exporter) {
    let setup = Setup::new(log, "");
    let text = setup
        .config_text(&format!("  replay: {}\n", log.display()))
        .replace("interval: 1\n", &format!("interval: {INTERVAL}\n"));
    std::fs::write(&setup.config_path, text).unwrap();
    let exp = setup.start();
    (setup, exp)
}

/// The value of `name` (labels of the test setup) in a scrape.
fn value(body: &str, name: &str) -> Option<f64> {
    prom::series(
        body,
        &format!("{name}{{device_type=\"jetson_orin\",hostname=\"edge-01\"}}"),
    )
}

/// Every rail's current power in a recorded log, in watts: (rail, values in line order).
fn rails(log: &Path) -> Vec<(String, Vec<f64>)> {
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            let (name, value) = (pair[0], pair[1]);
            let is_rail = name.starts_with("VDD_") || name.starts_with("VIN_");
            let Some(mw) = value.split('/').next().and_then(|v| v.strip_suffix("mW")) else {
                continue;
            };
            if !is_rail {
                continue;
            }
            let w = mw.parse::<f64>().unwrap() / 1000.0;
            let rail = name.to_ascii_lowercase();
            match out.iter_mut().find(|(r, _)| *r == rail) {
                Some((_, v)) => v.push(w),
                None => out.push((rail, vec![w])),
            }
        }
    }
    assert!(!out.is_empty(), "no rails in {}", log.display());
    out
}

/// Two scrapes at least `span` apart: (first body, second body, time between them).
fn two_scrapes(exp: &Exporter, first_name: &str, span: Duration) -> (String, String, f64) {
    let first = wait_for(Duration::from_secs(10), first_name, || {
        let body = exp.scrape().body;
        value(&body, first_name).map(|_| body)
    });
    let start = Instant::now();
    // Bounded polling on the exporter's own output: the counter must have moved and the span
    // have passed.
    let second = wait_for(
        span + Duration::from_secs(10),
        "the counter to grow",
        || {
            let body = exp.scrape().body;
            let moved = value(&body, first_name) != value(&first, first_name);
            (moved && start.elapsed() >= span).then_some(body)
        },
    );
    (first, second, start.elapsed().as_secs_f64())
}

#[test]
fn rail_counters_grow_by_the_integral_of_the_replayed_power() {
    let log = testdata("tegrastats/orin-agx-jp6.log");
    let rails = rails(&log);
    let (_setup, exp) = replaying(&log);
    let loop_secs = rails[0].1.len() as f64 * INTERVAL;
    let first = format!("jetson_power_{}_joules_total", rails[0].0);
    // Two whole loops of the file, so the mean power of the file is what the counter sees.
    let (a, b, elapsed) = two_scrapes(&exp, &first, Duration::from_secs_f64(loop_secs * 2.0));
    assert!(b.contains(&format!("# TYPE {first} counter")), "{b}");
    let slack = 2.0 * INTERVAL + 0.4;
    for (rail, watts) in &rails {
        let name = format!("jetson_power_{rail}_joules_total");
        let gained = value(&b, &name).unwrap() - value(&a, &name).unwrap();
        let min = watts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = watts.iter().copied().fold(0.0, f64::max);
        let mean = watts.iter().sum::<f64>() / watts.len() as f64;
        assert!(
            gained >= min * (elapsed - slack) && gained <= max * (elapsed + slack),
            "{rail}: {gained} J in {elapsed:.2} s, power {min}..{max} W"
        );
        // Over whole loops the average is the file's mean power, within the slack at both
        // ends.
        let expect = mean * elapsed;
        assert!(
            (gained - expect).abs() <= max * slack,
            "{rail}: {gained} J in {elapsed:.2} s, expected about {expect:.3} J (mean {mean} W)"
        );
    }
}

#[test]
fn a_negative_idle_rail_is_shown_as_read_and_three_value_rails_are_counted() {
    let dir = TempDir::new("energy-thor");
    let log = dir.join("thor-idle.log");
    // Thor at idle (JetPack 7): VDD_GPU below zero; VIN_SYS_5V0 in the cur/avg/max form.
    let line = "05-17-2026 10:00:32 RAM 4208/125773MB (lfb 31x4MB) SWAP 0/2048MB (cached 0MB) \
                CPU [1%@972,0%@972] cpu@34.468C tj@34.5C VDD_GPU -392mW/-392mW \
                VDD_CPU_SOC_MSS 4165mW/4165mW VIN_SYS_5V0 4000mW/4000mW/4500mW\n";
    std::fs::write(&log, line.repeat(5)).unwrap();
    let started = Instant::now();
    let (_setup, exp) = replaying(&log);
    let first_seen = exp.wait_sample(
        "jetson_power_vin_sys_5v0_joules_total",
        Duration::from_secs(10),
    );
    // A new process starts at zero: what it has counted fits the time it has run.
    assert!(
        first_seen <= 4.0 * started.elapsed().as_secs_f64() + 0.5,
        "{first_seen} J right after start"
    );
    let (a, b, elapsed) = two_scrapes(
        &exp,
        "jetson_power_vin_sys_5v0_joules_total",
        Duration::from_secs(2),
    );
    assert_eq!(value(&b, "jetson_power_vdd_gpu_watts"), Some(-0.392), "{b}");
    assert_eq!(
        value(&a, "jetson_power_vdd_gpu_joules_total"),
        Some(0.0),
        "{a}"
    );
    assert_eq!(
        value(&b, "jetson_power_vdd_gpu_joules_total"),
        Some(0.0),
        "{b}"
    );
    let gained = value(&b, "jetson_power_vin_sys_5v0_joules_total").unwrap()
        - value(&a, "jetson_power_vin_sys_5v0_joules_total").unwrap();
    let slack = 2.0 * INTERVAL + 0.4;
    assert!(
        (gained - 4.0 * elapsed).abs() <= 4.0 * slack,
        "{gained} J in {elapsed:.2} s at 4 W"
    );
    assert_eq!(value(&b, "jetson_power_vin_sys_5v0_watts"), Some(4.0));
}

/// A bridge whose plug has counted `wh` watt-hours.
fn bridge(wh: f64) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |request: &Request| {
        if request.path.starts_with("/metrics") {
            Reply::json(
                200,
                format!(
                    r#"{{"device_id": "shellyplus1pm-441793ce3f08", "metrics": {{"power_total_watts": 45.3, "power_energy_watt_hours_total": {wh}}}, "timestamp": 1733140800.123}}"#
                ),
            )
        } else {
            Reply::json(404, r#"{"error": "not found"}"#)
        }
    }
}

#[test]
fn the_plugs_own_energy_total_is_also_given_in_joules() {
    let plug = FakeHttp::start(bridge(15761.124));
    let setup = Setup::new(&orin_corpus(), "");
    // A fresh install (no metrics map): the plug's joules counter is on by default.
    let text = setup.config_text("").replace(
        "shelly:\n  enabled: false\n",
        &format!("shelly:\n  enabled: true\n  server_url: {}\n", plug.url()),
    );
    std::fs::write(&setup.config_path, text).unwrap();
    let exp = setup.start();
    let joules = exp.wait_sample("power_energy_joules_total", Duration::from_secs(10));
    assert!((joules - 15761.124 * 3600.0).abs() < 1e-3, "{joules}");
    let body = exp.scrape().body;
    assert!(
        body.contains("# TYPE power_energy_joules_total counter"),
        "{body}"
    );
    assert!(body
        .contains("power_energy_joules_total{device_type=\"jetson_orin\",hostname=\"edge-01\"} "));
}
