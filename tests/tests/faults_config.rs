//! Faults around config.yaml, against the real exporter binary: its directory read-only, the
//! disk full (a small tmpfs; the tests need root, as CI has), and the file edited to invalid
//! YAML before POST /reload. Expected outcomes are in docs/RELIABILITY.md ("configuration");
//! each test asserts exactly that.

use std::path::Path;
use std::time::Duration;

use e2e::proof::{corpus, exporter_config, start_exporter, Tmpfs};
use serde_json::Value;
use test_support::http::{get, post_json, request, Response};
use test_support::{sample, scrape, wait_for, Exporter, TempDir};

fn start_on(dir: &Path, log_dir: &Path) -> Exporter {
    let cfg = exporter_config(
        dir,
        &format!("replay: {}", corpus("orin-agx-jp6.log").display()),
        "shelly:\n  enabled: false\nmetrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n",
    );
    let exp = start_exporter(&cfg, log_dir);
    exp.wait_sample("jetson_ram_used_mb", Duration::from_secs(10));
    // Let the first cycles write the discovered metrics, so later writes are ours alone.
    wait_for(Duration::from_secs(10), "discovered metrics saved", || {
        let text = std::fs::read_to_string(&cfg).ok()?;
        text.contains("jetson_cpu_avg_usage_percent").then_some(())
    });
    exp
}

/// `POST /metrics/enable {"jetson_ram_total_mb": true}`.
fn enable_ram_total(exp: &Exporter) -> Response {
    post_json(
        exp.api,
        "/metrics/enable",
        r#"{"jetson_ram_total_mb": true}"#,
    )
    .expect("the management API answers")
}

fn list(exp: &Exporter) -> Value {
    get(exp.api, "/metrics/list").unwrap().json()["metrics"].clone()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn read_only_config_directory_refuses_changes_and_loses_nothing() {
    let tmp = TempDir::new("ro-config");
    let fs = Tmpfs::new(tmp.join("etc"), "1m");
    let exp = start_on(&fs.dir, tmp.path());
    let config = fs.dir.join("config.yaml");
    let before_text = std::fs::read_to_string(&config).unwrap();
    let before = list(&exp);

    fs.remount("remount,ro");
    let r = enable_ram_total(&exp);
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap_or("").to_string();
    assert!(
        msg.contains("nothing was changed") && msg.contains("Read-only"),
        "the error says it was not saved and why: {msg}"
    );
    assert_eq!(
        list(&exp),
        before,
        "a refused change must not show in /metrics/list"
    );
    assert_eq!(sample(&scrape(exp.metrics), "jetson_ram_total_mb"), None);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before_text);
    // The API and /metrics keep answering meanwhile.
    assert_eq!(get(exp.api, "/health").unwrap().status, 200);

    fs.remount("remount,rw");
    let r = enable_ram_total(&exp);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("jetson_ram_total_mb: true"));
    exp.wait_sample("jetson_ram_total_mb", Duration::from_secs(5));
}

#[test]
fn disk_full_refuses_changes_keeps_the_old_file_whole_and_leaves_no_temp_files() {
    let tmp = TempDir::new("disk-full");
    let fs = Tmpfs::new(tmp.join("etc"), "256k");
    let exp = start_on(&fs.dir, tmp.path());
    let config = fs.dir.join("config.yaml");
    let before_text = std::fs::read_to_string(&config).unwrap();
    let before = list(&exp);
    let files_before = files_in(&fs.dir);

    let filler = fs.fill();
    let r = enable_ram_total(&exp);
    assert_eq!(r.status, 500, "{}", r.text());
    let msg = r.json()["error"].as_str().unwrap_or("").to_string();
    assert!(
        msg.contains("nothing was changed") && msg.to_lowercase().contains("space"),
        "the error says it was not saved and why: {msg}"
    );
    assert_eq!(list(&exp), before);
    let after_text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        after_text, before_text,
        "config.yaml must stay whole on a full disk"
    );
    let mut expected_files = files_before.clone();
    expected_files.push("filler".into());
    expected_files.sort();
    assert_eq!(
        files_in(&fs.dir),
        expected_files,
        "no temp file may be left behind"
    );
    // POST /reload reads the (intact) file fine while the disk is full.
    let r = request(exp.api, "POST", "/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());

    std::fs::remove_file(filler).unwrap();
    let r = enable_ram_total(&exp);
    assert_eq!(r.status, 200, "{}", r.text());
    exp.wait_sample("jetson_ram_total_mb", Duration::from_secs(5));
}

#[test]
fn invalid_yaml_before_reload_is_refused_and_the_running_config_stays() {
    let tmp = TempDir::new("bad-reload");
    let exp = start_on(tmp.path(), tmp.path());
    let config = tmp.join("config.yaml");
    let good = std::fs::read_to_string(&config).unwrap();
    let running = get(exp.api, "/config").unwrap().json();

    for (text, names) in [
        (
            "device_type: jetson_orin\nmetrics: [unclosed\n",
            vec!["config.yaml:3", "not valid YAML"],
        ),
        ("device_type: jetson_orin\ninterval: 0\n", vec!["interval"]),
        (
            "device_type: jetson_potato\n",
            vec!["device_type", "jetson_orin"],
        ),
        ("\u{0}\u{1}binary\u{ff}", vec![]),
    ] {
        std::fs::write(&config, text).unwrap();
        let r = request(exp.api, "POST", "/reload", &[], b"").unwrap();
        assert_eq!(r.status, 400, "{text:?}: {}", r.text());
        let msg = r.json()["error"].as_str().unwrap_or("").to_string();
        assert!(
            msg.contains("config.yaml"),
            "{text:?}: the error names the file: {msg}"
        );
        for n in names {
            assert!(msg.contains(n), "{text:?}: the error mentions {n}: {msg}");
        }
        assert_eq!(
            get(exp.api, "/config").unwrap().json(),
            running,
            "the running config changed"
        );
        assert!(sample(&scrape(exp.metrics), "jetson_ram_used_mb").is_some());
        assert_eq!(exp.health()["status"], "healthy");
    }
    std::fs::write(&config, &good).unwrap();
    let r = request(exp.api, "POST", "/reload", &[], b"").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A read-only config directory (a ConfigMap mounted read-only is a common deployment) must
/// not cost a WARN line per collection cycle while discovered metrics wait to be saved.
#[test]
fn read_only_config_directory_at_start_is_warned_about_once_not_every_cycle() {
    let tmp = TempDir::new("ro-start");
    let fs = Tmpfs::new(tmp.join("etc"), "1m");
    let replay = format!("replay: {}", corpus("orin-agx-jp6.log").display());
    let cfg = exporter_config(&fs.dir, &replay, "");
    fs.remount("remount,ro");
    let exp = start_exporter(&cfg, tmp.path());
    // Discovery wants to write on every cycle, and a cycle runs on every reading: let 20 go by.
    let read = || {
        sample(
            &scrape(exp.metrics),
            "edge_metrics_exporter_tegrastats_lines_read_total",
        )
    };
    let first = wait_for(Duration::from_secs(10), "a first reading", read);
    wait_for(Duration::from_secs(20), "20 more readings", || {
        read().filter(|n| *n >= first + 20.0)
    });
    assert_eq!(get(exp.api, "/health").unwrap().status, 200);
    let warns = exp
        .proc
        .log()
        .matches("Could not save the configuration")
        .count();
    fs.remount("remount,rw");
    assert!(
        warns <= 3,
        "{warns} WARN lines in 4 s about the same read-only directory"
    );
}
