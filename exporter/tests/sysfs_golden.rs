//! Golden test of the Jetson sysfs source: each fixture tree in `testdata/sysfs/<model>/root`
//! read twice (the second time after `/proc/stat` moved on to `stat.after`, so CPU usage has a
//! window), mapped to values by the collector's one mapping, and compared with
//! `tests/golden/sysfs/<model>.golden`. Also prints what one read of each tree costs.
//!
//! Rewrite the golden files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p edge-metrics-exporter --test sysfs_golden`, then read the
//! diff against the fixture files it names (testdata/sysfs/SOURCES.md says where each value
//! comes from).
//!
//! Fails on: a fixture directory without a case below or without a golden file, a golden file
//! without a fixture, a name without a specific HELP text, a non-finite value, a fixture file
//! that counted as a read error, and any difference from the golden text.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use edge_metrics_exporter::collector::jetson::{help_text, line_values};
use edge_metrics_exporter::sysfs::fs::{read_errors, Root};
use edge_metrics_exporter::sysfs::jetson::Reader;
use test_support::{copy_tree, TempDir};

const UPDATE_COMMAND: &str =
    "UPDATE_GOLDEN=1 cargo test -p edge-metrics-exporter --test sysfs_golden";

/// Fixture → what it stands for.
const CASES: &[(&str, &str)] = &[
    (
        "orin-agx",
        "Jetson AGX Orin 64GB, JetPack 6, read as root (debugfs EMC and engine clocks), \
         8 of 12 cores online, two INA3221 chips with NC channels, CV zones powered off.",
    ),
    (
        "orin-nano",
        "Jetson Orin Nano 8GB (Super), JetPack 6.2, unprivileged (no debugfs), jetson_clocks on.",
    ),
    (
        "xavier-nx",
        "Jetson Xavier NX, JetPack 5, unprivileged, 4 of 6 cores online, *-therm zone names.",
    ),
    (
        "nano",
        "Jetson Nano, JetPack 4: rails through the INA3221 IIO driver, 2 of 4 cores online.",
    ),
    (
        "thor",
        "Jetson AGX Thor, JetPack 7: INA238 module input in µW, a negative VDD_GPU reading, GPU \
         clock from gpu-gpc-0 without load, fan PWM and tachometer on separate chips.",
    ),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/sysfs")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/sysfs")
}

fn render(model: &str, note: &str, failures: &mut Vec<String>) -> String {
    let dir = fixtures().join(model);
    let tmp = TempDir::new(&format!("sysfs-golden-{model}"));
    copy_tree(&dir.join("root"), tmp.path());
    let mut out = String::new();
    let _ = writeln!(out, "# Golden output for testdata/sysfs/{model}");
    let _ = writeln!(out, "# Device: {note}");
    let _ = writeln!(out, "# Regenerate: {UPDATE_COMMAND}");
    let mut reader = Reader::new(Root::new(tmp.path()));
    for read in 1..=2 {
        if read == 2 {
            fs::copy(dir.join("stat.after"), tmp.join("proc/stat")).unwrap();
        }
        let errors = read_errors();
        let line = reader.read();
        // Other tests in this binary do not read files, so any count is this fixture's.
        if read_errors() != errors {
            failures.push(format!(
                "testdata/sysfs/{model}: {} file(s) counted as read errors on read {read}; run \
                 with RUST_LOG=debug to see which",
                read_errors() - errors
            ));
        }
        let _ = writeln!(out, "\n## read {read}");
        let missing: Vec<String> = reader.missing().iter().map(|p| format!("{p:?}")).collect();
        let _ = writeln!(out, "missing {}", missing.join(" "));
        for (name, value) in line_values(&line) {
            if !value.is_finite() {
                failures.push(format!("{model} read {read}: {name} is {value}"));
            }
            if help_text(&name).starts_with("Jetson tegrastats value") {
                failures.push(format!(
                    "{model}: {name} has no specific HELP text; add one in \
                     exporter/src/collector/jetson/help.rs"
                ));
            }
            let _ = writeln!(out, "{name} {value}");
        }
    }
    out
}

#[test]
fn fixture_trees_match_golden_files() {
    let mut found = BTreeSet::new();
    for entry in fs::read_dir(fixtures()).expect("testdata/sysfs is missing") {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            found.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    let cases: BTreeSet<String> = CASES.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(
        found, cases,
        "every fixture tree needs a case in CASES and every case a tree"
    );
    let mut failures = Vec::new();
    for (model, note) in CASES {
        let got = render(model, note, &mut failures);
        let golden = golden_dir().join(format!("{model}.golden"));
        failures.extend(test_support::golden::check(&golden, &got, UPDATE_COMMAND));
    }
    for entry in fs::read_dir(golden_dir()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".golden");
        if !cases.contains(stem) {
            failures.push(format!("golden file {name} has no fixture tree"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What one read of each fixture tree costs (files from the page cache, as on a device where
/// sysfs attributes are generated in memory). Printed, not asserted: the figures go to
/// docs/PERFORMANCE.md. Run with `--nocapture` to see them.
#[test]
fn cost_of_one_read_per_fixture() {
    const READS: u32 = 200;
    for (model, _) in CASES {
        let root = fixtures().join(model).join("root");
        let mut reader = Reader::new(Root::new(&root));
        reader.read();
        let start = Instant::now();
        let mut values = 0;
        for _ in 0..READS {
            values += line_values(&reader.read()).len();
        }
        let per_read = start.elapsed() / READS;
        assert!(values > 0);
        println!(
            "sysfs read {model:10} {:>8.1} µs per read (files + mapping), {} values",
            per_read.as_secs_f64() * 1e6,
            values / READS as usize
        );
    }
}
