//! Inputs the fuzzers found (fuzz/regressions/<target>/), replayed through the same functions
//! and with the same checks as the fuzz targets in fuzz/fuzz_targets/, so a fixed crash stays
//! fixed without nightly. `scripts/proof/fuzz.sh` adds new finds here.

use std::path::PathBuf;

use edge_metrics_exporter::collector::jetson::read_line;
use edge_metrics_exporter::config;
use edge_metrics_exporter::tegrastats::parse::parse_line;
use serde_json::Value;
use shelly_bridge::rpc::{choose_metering, parse_frame, readings, Frame, Metering};

/// The fuzz targets in fuzz/fuzz_targets/, each replayed by one test below.
const TARGETS: [&str; 3] = ["config_parse", "shelly_frame", "tegrastats_line"];

/// The regression inputs of `target`, sorted by path. Panics when the directory is missing or
/// holds no file: a replay over nothing would pass without checking anything.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = e2e::proof::repo_root()
        .join("fuzz/regressions")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; every fuzz target needs its regression inputs there \
             (scripts/proof/fuzz.sh adds what the fuzzer finds)",
            dir.display()
        )
    });
    let mut out: Vec<(PathBuf, Vec<u8>)> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert!(
        !out.is_empty(),
        "{} holds no input: the replay would check nothing",
        dir.display()
    );
    out.sort();
    out
}

#[test]
fn every_fuzz_target_is_replayed_from_a_directory_with_inputs() {
    let dir = e2e::proof::repo_root().join("fuzz/fuzz_targets");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found, TARGETS,
        "a fuzz target without a replay here (or a replay without its target)"
    );
    for target in TARGETS {
        inputs(target);
    }
}

#[test]
fn tegrastats_line_regressions() {
    for (path, data) in inputs("tegrastats_line") {
        let text = String::from_utf8_lossy(&data);
        for line in text.split('\n') {
            let published = parse_line(line).is_ok_and(|l| l.has_readings());
            let read = read_line(line);
            assert_eq!(
                read.is_ok(),
                published,
                "{}: published and valued disagree on {line:?}",
                path.display()
            );
            if let Ok(reading) = read {
                for (name, value) in &reading.values {
                    assert!(value.is_finite(), "{}: {name} = {value}", path.display());
                    assert!(!name.is_empty(), "{}: an empty metric name", path.display());
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
