//! Inputs the fuzzers found (fuzz/regressions/<target>/), replayed through the same functions
//! and with the same checks as the fuzz targets in fuzz/fuzz_targets/, so a fixed crash stays
//! fixed without nightly. `scripts/proof/fuzz.sh` adds new finds here.

use std::path::PathBuf;

use edge_metrics_exporter::collector::jetson::read_line;
use edge_metrics_exporter::config;
use serde_json::Value;
use shelly_bridge::rpc::{choose_metering, parse_frame, readings, Frame, Metering};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = e2e::proof::repo_root()
        .join("fuzz/regressions")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .map(|p| {
                    let bytes = std::fs::read(&p).unwrap();
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn tegrastats_line_regressions() {
    for (path, data) in inputs("tegrastats_line") {
        let text = String::from_utf8_lossy(&data);
        for line in text.split('\n') {
            if let Ok(reading) = read_line(line) {
                for (name, value) in &reading.values {
                    assert!(value.is_finite(), "{}: {name} = {value}", path.display());
                }
            }
        }
    }
}

#[test]
fn config_parse_regressions() {
    for (path, data) in inputs("config_parse") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        let Ok(parsed) = config::parse(text, "fuzz.yaml") else {
            continue;
        };
        let saved = serde_yaml::to_string(&parsed).expect("serialises");
        let again = config::parse(&saved, "saved.yaml")
            .unwrap_or_else(|e| panic!("{}: saved config no longer loads: {e}", path.display()));
        assert_eq!(
            parsed,
            again,
            "{}: changed across save and load",
            path.display()
        );
    }
}

fn check_readings(status: &Value) {
    let mut candidates = vec![
        Metering::Switch(0),
        Metering::Pm1(0),
        Metering::Em(0),
        Metering::Em1(0),
        Metering::Cover(0),
    ];
    if let Some(m) = choose_metering(status) {
        candidates.push(m);
        if let Some(component) = status.get(m.key()) {
            let _ = readings(m, component);
        }
    }
    for m in candidates {
        if let Ok(out) = readings(m, status) {
            for (name, v) in &out {
                assert!(v.as_f64().is_some_and(f64::is_finite), "{m:?} {name} = {v}");
            }
        }
    }
}

#[test]
fn shelly_frame_regressions() {
    for (path, data) in inputs("shelly_frame") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        eprintln!("replaying {}", path.display());
        match parse_frame(text) {
            Ok(Frame::Notification { params, .. }) => check_readings(&params),
            Ok(Frame::Response {
                outcome: Ok(result),
                ..
            }) => check_readings(&result),
            Ok(_) | Err(_) => {}
        }
    }
}
