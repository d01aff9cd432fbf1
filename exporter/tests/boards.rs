//! The real binary on each board fixture tree in `testdata/boards/` (as `host_root`): with
//! `device_type: auto` it detects the board, runs its collector (shown by `/health`), starts no
//! tegrastats, and serves the board's default metrics with the `device_type` and `hostname`
//! labels; a named type reads the same tree. The values themselves are pinned by the golden
//! tests (`boards_golden.rs`); here the point is the running process.

mod common;

use std::time::Duration;

use common::{orin_corpus, testdata, wait_for, Exporter, Setup};

/// (tree, device_type, collector, names a fresh install serves).
const BOARDS: &[(&str, &str, &str, &[&str])] = &[
    (
        "raspberry-pi-5",
        "raspberry_pi",
        "RaspberryPiCollector",
        &[
            "rpi_power_ina219_watts",
            "rpi_power_ina219_joules_total",
            "rpi_power_usb_5v_watts",
            "rpi_power_usb_5v_joules_total",
            "rpi_temp_cpu_celsius",
            "rpi_cpu_active_cores",
            "rpi_ram_used_mb",
            "rpi_ram_total_mb",
            "rpi_ram_used_percent",
        ],
    ),
    (
        "lattepanda-3-delta",
        "lattepanda",
        "LattePandaCollector",
        &[
            "lattepanda_rapl_package_0_joules_total",
            "lattepanda_rapl_package_0_watts",
            "lattepanda_rapl_package_0_core_joules_total",
            "lattepanda_rapl_psys_joules_total",
            "lattepanda_temp_x86_pkg_temp_celsius",
            "lattepanda_temp_acpitz_celsius",
            "lattepanda_cpu_active_cores",
            "lattepanda_ram_used_mb",
        ],
    ),
    (
        "orange-pi-5",
        "orange_pi",
        "OrangePiCollector",
        &[
            "orangepi_temp_soc_celsius",
            "orangepi_temp_bigcore0_celsius",
            "orangepi_temp_bigcore1_celsius",
            "orangepi_temp_littlecore_celsius",
            "orangepi_temp_center_celsius",
            "orangepi_temp_gpu_celsius",
            "orangepi_temp_npu_celsius",
            "orangepi_gpu_usage_percent",
            "orangepi_npu_usage_percent",
            "orangepi_cpu_active_cores",
            "orangepi_ram_used_mb",
        ],
    ),
];

/// A setup whose config says `device_type` and `host_root: <tree>` (and still names the fake
/// tegrastats, which a board must not start).
fn setup(device_type: &str, tree: &str) -> Setup {
    let root = testdata("boards").join(tree);
    let setup = Setup::new(&orin_corpus(), "");
    let text = setup
        .config_text(&format!("host_root: {}\n", root.display()))
        .replace(
            "device_type: jetson_orin\n",
            &format!("device_type: {device_type}\n"),
        );
    std::fs::write(&setup.config_path, text).unwrap();
    setup
}

fn check_board(exp: &Exporter, setup: &Setup, device_type: &str, collector: &str, names: &[&str]) {
    let labels = format!("{{device_type=\"{device_type}\",hostname=\"edge-01\"}}");
    let body = wait_for(
        Duration::from_secs(10),
        &format!("{collector}: every default metric labelled {labels}"),
        || {
            let body = exp.scrape().body;
            names
                .iter()
                .all(|n| body.contains(&format!("\n{n}{labels} ")))
                .then_some(body)
        },
    );
    let health = exp.health();
    assert_eq!(health["collector"], collector, "{health}");
    assert_eq!(health["device_type"], device_type, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    // Every device sample carries both labels; energy counters are counters.
    for line in body.lines().filter(|l| {
        ["rpi_", "lattepanda_", "orangepi_"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        assert!(line.contains(&labels), "{line}");
    }
    for name in names.iter().filter(|n| n.ends_with("_joules_total")) {
        assert!(
            body.contains(&format!("# TYPE {name} counter")),
            "{name}:\n{body}"
        );
    }
    // No Jetson series, and no tegrastats was started.
    assert!(!body.contains("\njetson_"), "{body}");
    assert!(setup.fake_pids().is_empty(), "tegrastats was started");
    assert!(!exp.proc.log().contains("tegrastats not found"));
}

#[test]
fn each_board_is_detected_and_serves_its_metrics() {
    for (tree, device_type, collector, names) in BOARDS {
        let setup = setup("auto", tree);
        let exp = setup.start();
        check_board(&exp, &setup, device_type, collector, names);
        assert_eq!(exp.health()["device_type_source"], "detected");
    }
}

#[test]
fn a_named_board_type_reads_its_tree_without_tegrastats() {
    let (tree, device_type, collector, names) = BOARDS[1];
    let setup = setup(device_type, tree);
    let exp = setup.start();
    check_board(&exp, &setup, device_type, collector, names);
    assert_eq!(exp.health()["device_type_source"], "configured");
}

#[test]
fn a_board_on_a_tree_without_its_sensors_says_so_once_and_serves_the_rest() {
    // A Raspberry Pi 4 tree with the identity files and /proc/meminfo only: no INA chip.
    let setup = setup("auto", "../devices/raspberry-pi-4");
    setup.set_interval(0.2);
    let exp = setup.start();
    exp.wait_sample("rpi_ram_used_mb", Duration::from_secs(10));
    let health = exp.health();
    assert_eq!(health["collector"], "RaspberryPiCollector", "{health}");
    let said = exp
        .proc
        .wait_line(&["No INA2xx power monitor"], Duration::from_secs(5));
    assert!(said.contains("INFO"), "{said}");
    // Several cycles later (each timed anew, so the duration sample changes), still said once.
    let duration =
        "edge_metrics_exporter_collector_duration_seconds{collector=\"RaspberryPiCollector\"}";
    let mut seen = std::collections::BTreeSet::new();
    wait_for(
        Duration::from_secs(10),
        "five cycles of the collector",
        || {
            let body = exp.scrape().body;
            let line = body.lines().find(|l| l.starts_with(duration))?;
            seen.insert(line.to_string());
            (seen.len() >= 5).then_some(())
        },
    );
    assert_eq!(
        exp.proc.log().matches("No INA2xx power monitor").count(),
        1,
        "{}",
        exp.proc.log()
    );
    assert!(!exp.scrape().body.contains("rpi_power_"));
}
