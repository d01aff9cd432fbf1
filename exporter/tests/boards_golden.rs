//! Golden tests over the board fixture trees in `testdata/boards/`: each tree is copied to a
//! scratch directory, read once, then the files under its `SECOND_PASS/` (a later
//! `/proc/stat`, later RAPL counters) are laid over it and it is read again one second later;
//! the values of both passes are rendered and compared with
//! `tests/golden/boards/<tree>.golden`. The second pass is what shows CPU usage (a difference of
//! two `/proc/stat` reads), RAPL power and energy (a wrap-around included on the LattePanda)
//! and INA2xx energy.
//!
//! Rewrite after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p edge-metrics-exporter --test boards_golden` and read the diff.
//! A tree without an expectation here or without a golden file fails; nothing is skipped.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_metrics_exporter::boards::{Board, Reader, Sample};
use edge_metrics_exporter::collector::boards::{collector_name, sample_values};
use edge_metrics_exporter::collector::{help_text, Values};
use edge_metrics_exporter::device::{Device, DeviceKind};
use edge_metrics_exporter::energy::EnergyMeter;
use edge_metrics_exporter::sysfs::fs::Root;
use test_support::{copy_tree, TempDir};

const UPDATE_COMMAND: &str =
    "UPDATE_GOLDEN=1 cargo test -p edge-metrics-exporter --test boards_golden";

/// Tree → (board, the type `auto` detects, what it is).
const TREES: &[(&str, Board, DeviceKind, &str)] = &[
    (
        "raspberry-pi-5",
        Board::RaspberryPi,
        DeviceKind::RaspberryPi,
        "Raspberry Pi 5 with an INA219 (no label) and an INA238 labelled usb_5v.",
    ),
    (
        "lattepanda-3-delta",
        Board::LattePanda,
        DeviceKind::LattePanda,
        "LattePanda 3 Delta (Intel N5105): RAPL package-0 (wraps between the passes), core, \
         uncore, psys; two acpitz zones.",
    ),
    (
        "orange-pi-5",
        Board::OrangePi,
        DeviceKind::OrangePi,
        "Orange Pi 5 (RK3588S): seven thermal zones, Mali GPU and NPU devfreq, rknpu/load readable.",
    ),
];

fn boards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/boards")
}

fn render(out: &mut String, title: &str, values: &Values) {
    writeln!(out, "\n## {title}").unwrap();
    for (name, value) in values {
        assert!(
            !help_text(name).starts_with("Board value"),
            "{name} has no HELP text of its own"
        );
        writeln!(out, "{name} {value}").unwrap();
    }
}

fn golden_text(dir: &str, board: Board, about: &str) -> String {
    let scratch = TempDir::new("boards-golden");
    copy_tree(&boards_dir().join(dir), scratch.path());
    let mut reader = Reader::new(board, Root::new(scratch.path()));
    let energy = EnergyMeter::new();
    let gap = Duration::from_secs(3);
    let t0 = Instant::now();
    let mut text = format!(
        "# Golden output for testdata/boards/{dir}\n# {about}\n# Collector: {}. Regenerate: \
         {UPDATE_COMMAND}\n",
        collector_name(board)
    );
    let mut values = Values::new();
    let first = Sample {
        reading: reader.read(t0),
        at: t0,
    };
    sample_values(board, &first, gap, &energy, &mut values);
    render(&mut text, "first pass", &values);
    copy_tree(&scratch.path().join("SECOND_PASS"), scratch.path());
    let at = t0 + Duration::from_secs(1);
    let second = Sample {
        reading: reader.read(at),
        at,
    };
    values.clear();
    sample_values(board, &second, gap, &energy, &mut values);
    render(&mut text, "second pass, 1 s later", &values);
    text
}

#[test]
fn board_trees_match_golden_files() {
    let mut dirs: Vec<String> = std::fs::read_dir(boards_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let known: Vec<&str> = TREES.iter().map(|t| t.0).collect();
    for dir in &dirs {
        assert!(
            known.contains(&dir.as_str()),
            "tree {dir} has no expectation in TREES"
        );
    }
    let mut failures = Vec::new();
    for (dir, board, kind, about) in TREES {
        let device = Device::resolve(
            edge_metrics_exporter::config::DeviceType::Auto,
            &boards_dir().join(dir),
        );
        assert_eq!(device.kind, *kind, "{dir}: auto detected {}", device.found);
        let text = golden_text(dir, *board, about);
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/boards")
            .join(format!("{dir}.golden"));
        failures.extend(test_support::golden::check(&path, &text, UPDATE_COMMAND));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
