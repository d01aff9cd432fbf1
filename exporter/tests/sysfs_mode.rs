//! The sysfs mode (`tegrastats: {sysfs: true}`) of the real binary on loopback:
//!
//! - parity: over a fixture tree it serves the same series (names, labels, values) as the
//!   tegrastats mode replaying the line written for the same state (`testdata/sysfs/<model>/
//!   tegrastats.log`), for AGX Orin (root, debugfs), Orin Nano (unprivileged) and Nano
//!   (JetPack 4 IIO rails); the only differences are the documented ones below;
//! - this machine's real `/sys` and `/proc` (no hwmon power monitor, no devfreq GPU): it starts,
//!   serves CPU and RAM, says once what it could not find, and keeps running;
//! - a tree that stops yielding readings goes stale after three intervals like tegrastats.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::{command, testdata, wait_for, Exporter, TempDir};
use edge_metrics_exporter::collector::jetson::read_line;
use test_support::copy_tree;

/// Series only the sysfs mode has: fields tegrastats does not print (docs/METRICS.md).
const SYSFS_ONLY: &[&str] = &[
    "jetson_clocks_active",
    "jetson_fan_pwm_percent",
    "jetson_fan_rpm",
    "jetson_nvpmodel_id",
];

/// Series only tegrastats has: the EMC load (actmon is not read) and the second GPC's clock
/// (devfreq has one clock for the GPU); docs/METRICS.md says so.
const TEGRASTATS_ONLY: &[&str] = &["jetson_emc_usage_percent", "jetson_gpu_freq1_mhz"];

const WAIT: Duration = Duration::from_secs(20);

/// Writes config.yaml in `dir`: `config` plus the test's ports, binding and hostname.
fn write_config(dir: &TempDir, config: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    fs::write(
        &path,
        format!(
            "interval: 0.2\nport: 0\nreload_port: 0\nbind_address: 127.0.0.1\n\
             reload_bind_address: 127.0.0.1\nhostname: edge-01\nshelly:\n  enabled: false\n\
             {config}"
        ),
    )
    .unwrap();
    path
}

/// Starts the exporter on `config` (see [`write_config`]).
fn start(dir: &TempDir, config: &str) -> Exporter {
    let path = write_config(dir, config);
    let mut cmd = command();
    cmd.arg("--config").arg(&path).env("RUST_LOG", "info");
    Exporter::start(cmd, None)
}

/// `metrics:` enabling every name in `names`.
fn metrics_map<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("metrics:\n");
    for n in names {
        out.push_str(&format!("  {n}: true\n"));
    }
    out
}

/// Device series (`jetson_*`, energy counters aside: they depend on time) → value.
fn device_series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| l.starts_with("jetson_") && !l.contains("_joules_total"))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn name_of(series: &str) -> &str {
    series.split('{').next().unwrap_or(series)
}

/// Waits until every name in `names` has a sample; returns the device series then.
fn wait_all(exp: &Exporter, names: &[String], what: &str) -> BTreeMap<String, f64> {
    wait_for(WAIT, what, || {
        let series = device_series(&exp.scrape().body);
        let have: Vec<&str> = series.keys().map(|s| name_of(s)).collect();
        names
            .iter()
            .all(|n| have.contains(&n.as_str()))
            .then_some(series)
    })
}

fn parity(model: &str, power_mode: &str) {
    let fixture = testdata(&format!("sysfs/{model}"));
    let line = fs::read_to_string(fixture.join("tegrastats.log")).unwrap();
    let expected = read_line(line.trim())
        .expect("the pair's line parses")
        .values;
    let all: Vec<&str> = expected
        .keys()
        .map(String::as_str)
        .chain(SYSFS_ONLY.iter().copied())
        .collect();

    // tegrastats mode, replaying the line; the same identity files, so the same device type.
    let tdir = TempDir::new(&format!("parity-tegrastats-{model}"));
    let tegra = start(
        &tdir,
        &format!(
            "host_root: {}\ntegrastats:\n  replay: {}\n{}",
            fixture.join("root").display(),
            fixture.join("tegrastats.log").display(),
            metrics_map(all.iter().copied())
        ),
    );
    let tegra_names: Vec<String> = expected.keys().cloned().collect();
    let from_tegrastats = wait_all(&tegra, &tegra_names, "every tegrastats value served");

    // sysfs mode over a copy of the tree; /proc/stat moves on after the first reading.
    let sdir = TempDir::new(&format!("parity-sysfs-{model}"));
    let root = sdir.join("root");
    copy_tree(&fixture.join("root"), &root);
    let sysfs = start(
        &sdir,
        &format!(
            "host_root: {}\ntegrastats:\n  sysfs: true\n{}",
            root.display(),
            metrics_map(all.iter().copied())
        ),
    );
    sysfs.wait_sample("jetson_ram_used_mb", WAIT);
    fs::copy(fixture.join("stat.after"), root.join("proc/stat")).unwrap();
    let sysfs_names: Vec<String> = expected
        .keys()
        .filter(|n| !TEGRASTATS_ONLY.contains(&n.as_str()))
        .cloned()
        .collect();
    let from_sysfs = wait_all(&sysfs, &sysfs_names, "every sysfs value served");

    let mut problems = Vec::new();
    for (series, want) in &from_tegrastats {
        let name = name_of(series);
        match from_sysfs.get(series) {
            _ if TEGRASTATS_ONLY.contains(&name) => {
                if from_sysfs.contains_key(series) {
                    problems.push(format!(
                        "{series}: listed as tegrastats-only but sysfs has it"
                    ));
                }
            }
            Some(got) if (got - want).abs() <= 1e-9 * want.abs().max(1.0) => {}
            Some(got) => problems.push(format!("{series}: tegrastats {want}, sysfs {got}")),
            None => problems.push(format!("{series}: tegrastats {want}, sysfs nothing")),
        }
    }
    for series in from_sysfs.keys() {
        let name = name_of(series);
        if !from_tegrastats.contains_key(series) && !SYSFS_ONLY.contains(&name) {
            problems.push(format!(
                "{series}: only in sysfs mode and not documented as such"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{model}: sysfs and tegrastats modes differ:\n{}\n\ntegrastats:\n{from_tegrastats:#?}\n\
         sysfs:\n{from_sysfs:#?}",
        problems.join("\n")
    );
    // The extras are really there, and both modes ran as the same detected device.
    let extras = from_sysfs
        .keys()
        .filter(|s| SYSFS_ONLY.contains(&name_of(s)))
        .count();
    assert!(
        extras >= 3,
        "{model}: sysfs extras missing: {from_sysfs:#?}"
    );
    assert_eq!(sysfs.health()["device_type"], tegra.health()["device_type"]);
    assert_eq!(sysfs.health()["status"], "healthy", "{}", sysfs.health());
    // The power mode's name, as an info metric beside device_info, only in sysfs mode.
    let info = format!("edge_metrics_exporter_power_mode_info{power_mode} 1\n");
    assert!(sysfs.scrape().body.contains(&info), "{info}");
    assert!(!tegra.scrape().body.contains("power_mode_info"));
}

#[test]
fn parity_agx_orin_as_root() {
    parity("orin-agx", r#"{id="0",name="MAXN"}"#);
}

#[test]
fn parity_orin_nano_unprivileged() {
    parity("orin-nano", r#"{id="2",name="MAXN_SUPER"}"#);
}

#[test]
fn parity_nano_jetpack4_iio_rails() {
    parity("nano", r#"{id="1",name="5W"}"#);
}

/// How many log lines contain `needle`.
fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn this_machine_serves_cpu_and_ram_and_says_once_what_is_missing() {
    let dir = TempDir::new("sysfs-host");
    let exp = start(&dir, "host_root: /\ntegrastats:\n  sysfs: true\n");
    let ram = exp.wait_sample("jetson_ram_total_mb", WAIT);
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
    let total_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(ram, (total_kb / 1024.0).floor());
    assert!(exp.wait_sample("jetson_ram_used_mb", WAIT) > 0.0);
    let cores = exp.wait_sample("jetson_cpu_active_cores", WAIT);
    assert!(cores >= 1.0, "{cores}");
    // Usage needs two readings of /proc/stat, which moves on by itself here.
    let usage = exp.wait_sample("jetson_cpu_avg_usage_percent", WAIT);
    assert!((0.0..=100.0).contains(&usage), "{usage}");
    // Several more readings, then the log still has exactly one line saying what is missing.
    let mut seen = Vec::new();
    wait_for(WAIT, "five more readings", || {
        let t = exp.wait_sample("edge_metrics_exporter_last_reading_timestamp_seconds", WAIT);
        if seen.last() != Some(&t) {
            seen.push(t);
        }
        (seen.len() >= 5).then_some(())
    });
    let log = exp.proc.log();
    assert_eq!(
        count(&log, "sysfs: not found on this host"),
        1,
        "one INFO line about what is missing:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("sysfs: not found on this host"))
        .unwrap();
    assert!(line.contains("INFO"), "{line}");
    // No INA3221/INA238 and no Tegra GPU devfreq device here.
    assert!(line.contains("power rails"), "{line}");
    assert!(line.contains("GPU load and clock"), "{line}");
    assert!(exp.proc.try_wait().is_none(), "the exporter exited:\n{log}");
    assert_eq!(exp.health()["status"], "healthy", "{}", exp.health());
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_tree_without_readings_goes_stale_after_three_intervals() {
    let fixture = testdata("sysfs/orin-nano");
    let dir = TempDir::new("sysfs-stale");
    let root: PathBuf = dir.join("root");
    copy_tree(&fixture.join("root"), &root);
    let exp = start(
        &dir,
        &format!(
            "host_root: {}\ntegrastats:\n  sysfs: true\n",
            root.display()
        ),
    );
    exp.wait_sample("jetson_ram_used_mb", WAIT);
    // Everything the reading is made of goes away (a host_root unmounted under the exporter).
    for sub in ["sys", "proc"] {
        fs::remove_dir_all(root.join(sub)).unwrap();
    }
    let health = wait_for(WAIT, "/health degraded", || {
        let h = exp.health();
        (h["status"] == "degraded").then_some(h)
    });
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("old"), "{health}");
    let body = exp.scrape().body;
    assert!(
        test_support::sample(&body, "jetson_ram_used_mb").is_none(),
        "a stale reading is not shown:\n{body}"
    );
    assert!(exp.proc.try_wait().is_none(), "the exporter exited");
}

#[test]
fn a_reload_switches_between_tegrastats_and_sysfs() {
    let fixture = testdata("sysfs/orin-nano");
    let dir = TempDir::new("sysfs-reload");
    let tegrastats = format!(
        "host_root: {}\ntegrastats:\n  replay: {}\n",
        fixture.join("root").display(),
        fixture.join("tegrastats.log").display()
    );
    let sysfs = format!(
        "host_root: {}\ntegrastats:\n  sysfs: true\n",
        fixture.join("root").display()
    );
    let exp = start(&dir, &tegrastats);
    assert_eq!(exp.wait_sample("jetson_ram_used_mb", WAIT), 5969.0);
    let power_mode = "edge_metrics_exporter_power_mode_info{id=\"2\",name=\"MAXN_SUPER\"} 1";
    assert!(!exp.scrape().body.contains("power_mode_info"));

    write_config(&dir, &sysfs);
    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(WAIT, "the power mode from sysfs", || {
        exp.scrape().body.contains(power_mode).then_some(())
    });
    exp.proc
        .wait_line(&["Reading Jetson readings from sysfs"], WAIT);
    assert_eq!(exp.wait_sample("jetson_ram_used_mb", WAIT), 5969.0);

    // And back: the tegrastats reading carries no power mode.
    write_config(&dir, &tegrastats);
    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(WAIT, "the power mode gone with sysfs", || {
        (!exp.scrape().body.contains("power_mode_info")).then_some(())
    });
    assert_eq!(exp.wait_sample("jetson_ram_used_mb", WAIT), 5969.0);
    assert_eq!(exp.health()["status"], "healthy", "{}", exp.health());
}
