//! `/metrics` end to end: the real binary, a fake tegrastats replaying the Orin corpus.

mod common;

use std::time::Duration;

use common::*;

const USED: &str = "jetson_ram_used_mb{device_type=\"jetson_orin\",hostname=\"edge-01\"}";
const TOTAL: &str = "jetson_ram_total_mb{device_type=\"jetson_orin\",hostname=\"edge-01\"}";
const UP: &str = "edge_metrics_exporter_collector_up{collector=\"JetsonOrinCollector\"}";

fn wait_sample(exp: &Exporter, series: &str) -> f64 {
    wait_for(Duration::from_secs(10), series, || {
        exp.scrape().sample(series)
    })
}

#[test]
fn values_labels_help_and_enable_flags() {
    let setup = Setup::new(
        &orin_corpus(),
        "metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n",
    );
    let exp = setup.start();
    let used = wait_sample(&exp, USED);
    let corpus = corpus_ram(&orin_corpus());
    assert!(
        corpus.iter().any(|(u, _)| *u == used),
        "{used} is not a corpus value"
    );
    let r = exp.scrape();
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    // Disabled metrics are not exposed; every family has HELP and TYPE just before its sample.
    assert_eq!(r.sample(TOTAL), None, "{}", r.body);
    let lines: Vec<&str> = r.body.lines().collect();
    let at = lines.iter().position(|l| l.starts_with(USED)).unwrap();
    assert!(lines[at - 2].starts_with("# HELP jetson_ram_used_mb "));
    assert_eq!(lines[at - 1], "# TYPE jetson_ram_used_mb gauge");
    assert_eq!(r.sample(UP), Some(1.0));
    assert_eq!(
        r.sample("edge_metrics_exporter_build_info{version=\"0.1.0\"}"),
        Some(1.0)
    );
    assert!(r.sample("process_resident_memory_bytes").unwrap() > 0.0);
    // Every device sample carries exactly the two spec labels.
    for l in r.body.lines().filter(|l| l.starts_with("jetson_")) {
        assert!(
            l.contains("{device_type=\"jetson_orin\",hostname=\"edge-01\"} "),
            "{l}"
        );
    }
    // The fake was started once with the interval in milliseconds.
    let seen = std::fs::read_to_string(setup.dir.path().join("interval_seen")).unwrap();
    assert_eq!(seen.trim(), "1000");
    // Enabling shows from the next cycle.
    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let total = wait_sample(&exp, TOTAL);
    assert!(corpus.iter().any(|(_, t)| *t == total));
}

#[test]
fn stale_readings_disappear_and_come_back() {
    let setup = Setup::new(&orin_corpus(), "metrics:\n  jetson_ram_used_mb: true\n");
    let exp = setup.start();
    wait_sample(&exp, USED);
    setup.control("silent");
    // Three intervals (3 s) without a line, plus up to one cycle.
    wait_for(Duration::from_secs(8), "collector_up 0", || {
        let r = exp.scrape();
        (r.sample(UP) == Some(0.0)).then_some(r)
    });
    let r = exp.scrape();
    assert_eq!(
        r.sample(USED),
        None,
        "a stale series must disappear:\n{}",
        r.body
    );
    let h = exp.api("GET", "/health", &[], None).json();
    assert_eq!(h["status"], "degraded");
    assert!(h["reason"].as_str().unwrap().contains("old"), "{h}");
    setup.control("normal");
    wait_sample(&exp, USED);
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["status"],
        "healthy"
    );
}

#[test]
fn a_reading_is_served_when_it_arrives_not_at_the_next_interval() {
    // Interval 10 s; the stand-in prints one reading, a second one 6 s later, then nothing.
    let setup = Setup::new(&orin_corpus(), "");
    std::fs::write(
        &setup.fake,
        "#!/bin/sh\necho 'RAM 1000/8000MB'\nsleep 6\necho 'RAM 2000/8000MB'\nexec sleep 600\n",
    )
    .unwrap();
    std::fs::write(
        &setup.config_path,
        setup
            .config_text("metrics:\n  jetson_ram_used_mb: true\n")
            .replace("interval: 1\n", "interval: 10\n"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let exp = setup.start();
    assert_eq!(wait_sample(&exp, USED), 1000.0);
    let second = wait_for(Duration::from_secs(12), "the second reading", || {
        exp.scrape().sample(USED).filter(|v| *v == 2000.0)
    });
    assert_eq!(second, 2000.0);
    // Shown about 6 s after start: on arrival, not at the next 10 s tick.
    let after = started.elapsed();
    assert!(
        after < Duration::from_millis(8500),
        "the second reading took {after:?} to show"
    );
}

#[test]
fn a_first_reading_after_the_start_up_cycle_is_not_held_back() {
    // The start-up cycle runs before tegrastats prints anything (1 s later here): the first
    // reading is served at once, and so the second one (6 s after it) is too, instead of
    // both being pushed back to half an interval after the cycle before.
    let setup = Setup::new(&orin_corpus(), "");
    std::fs::write(
        &setup.fake,
        "#!/bin/sh\nsleep 1\necho 'RAM 1000/8000MB'\nsleep 6\necho 'RAM 2000/8000MB'\nexec sleep 600\n",
    )
    .unwrap();
    std::fs::write(
        &setup.config_path,
        setup
            .config_text("metrics:\n  jetson_ram_used_mb: true\n")
            .replace("interval: 1\n", "interval: 10\n"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let exp = setup.start();
    assert_eq!(wait_sample(&exp, USED), 1000.0);
    let first = started.elapsed();
    wait_for(Duration::from_secs(14), "the second reading", || {
        exp.scrape().sample(USED).filter(|v| *v == 2000.0)
    });
    let second = started.elapsed();
    assert!(
        first < Duration::from_millis(3500),
        "the first reading took {first:?}"
    );
    assert!(
        second < Duration::from_millis(9500),
        "the second reading took {second:?} to show"
    );
}

#[test]
fn garbage_lines_count_as_parse_errors() {
    let setup = Setup::new(&orin_corpus(), "metrics:\n  jetson_ram_used_mb: true\n");
    let exp = setup.start();
    wait_sample(&exp, USED);
    setup.control("garbage");
    let errors = wait_for(Duration::from_secs(8), "parse errors", || {
        exp.scrape()
            .sample("edge_metrics_exporter_tegrastats_parse_errors_total")
            .filter(|n| *n >= 2.0)
    });
    assert!(errors >= 2.0);
    assert!(
        exp.scrape()
            .sample("edge_metrics_exporter_tegrastats_lines_read_total")
            .unwrap()
            >= 3.0
    );
}

#[test]
fn tegrastats_is_restarted_after_it_is_killed_or_exits() {
    let setup = Setup::new(&orin_corpus(), "metrics:\n  jetson_ram_used_mb: true\n");
    let exp = setup.start();
    wait_sample(&exp, USED);
    let first = setup.fake_pids();
    assert_eq!(first.len(), 1);
    assert!(send_signal(first[0], "KILL"), "kill -KILL {}", first[0]);
    wait_for(Duration::from_secs(8), "a second tegrastats", || {
        (setup.fake_pids().len() >= 2).then_some(())
    });
    wait_for(Duration::from_secs(8), "restarts_total 1", || {
        exp.scrape()
            .sample("edge_metrics_exporter_tegrastats_restarts_total")
            .filter(|n| *n >= 1.0)
    });
    exp.proc.wait_line(
        &["tegrastats stopped; restarting it."],
        Duration::from_secs(2),
    );
    // An exit with an error and stderr output is logged and restarted too.
    setup.control("exit");
    exp.proc
        .wait_line(&["fake tegrastats exiting"], Duration::from_secs(8));
    setup.control("normal");
    wait_for(Duration::from_secs(10), "restarts_total 2", || {
        exp.scrape()
            .sample("edge_metrics_exporter_tegrastats_restarts_total")
            .filter(|n| *n >= 2.0)
    });
    wait_sample(&exp, USED);
    assert!(
        exp.proc.log().contains("exit status: 3"),
        "{}",
        exp.proc.log()
    );
}

#[test]
fn discovered_metrics_are_added_as_false_and_user_choices_kept() {
    let setup = Setup::new(
        &orin_corpus(),
        "metrics:\n  jetson_ram_used_mb: false\n  made_up_user_metric: true\n",
    );
    let exp = setup.start();
    let on_disk = wait_for(Duration::from_secs(10), "discovery written", || {
        let text = std::fs::read_to_string(&setup.config_path).unwrap();
        text.contains("jetson_ram_total_mb: false").then_some(text)
    });
    assert!(on_disk.contains("jetson_ram_used_mb: false"), "{on_disk}");
    assert!(on_disk.contains("made_up_user_metric: true"), "{on_disk}");
    wait_for(Duration::from_secs(5), "discovery in /metrics/list", || {
        let list = exp.api("GET", "/metrics/list", &[], None).json();
        (list["metrics"]["jetson_ram_total_mb"] == false).then_some(())
    });
    assert_eq!(exp.scrape().sample(USED), None);
}

#[test]
fn a_new_rail_is_discovered_when_tegrastats_starts_printing_it() {
    let setup = Setup::new(&orin_corpus(), "metrics:\n  jetson_ram_used_mb: true\n");
    let exp = setup.start();
    wait_sample(&exp, USED);
    let before = exp.api("GET", "/metrics/list", &[], None).json();
    assert!(before["metrics"]
        .get("jetson_power_vdd_test_rail_watts")
        .is_none());
    setup.control("newrail");
    wait_for(
        Duration::from_secs(10),
        "the new rail in config.yaml",
        || {
            std::fs::read_to_string(&setup.config_path)
                .unwrap()
                .contains("jetson_power_vdd_test_rail_watts: false")
                .then_some(())
        },
    );
    // Written to disk first, then published: wait for the API to show it too.
    wait_listed(&exp, "jetson_power_vdd_test_rail_watts", false);
    let r = exp.post_json(
        "/metrics/enable",
        r#"{"jetson_power_vdd_test_rail_watts": true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let w = wait_sample(
        &exp,
        "jetson_power_vdd_test_rail_watts{device_type=\"jetson_orin\",hostname=\"edge-01\"}",
    );
    assert_eq!(w, 1.234);
}

/// `promtool check metrics` reports nothing but the spec's `_mb`/`_kb` names.
#[test]
fn promtool_accepts_the_output() {
    let Some(promtool) = test_support::require::tool(
        "promtool",
        "apt-get install -y prometheus (or scripts/setup/deps.sh)",
    ) else {
        return;
    };
    let setup = Setup::new(&orin_corpus(), "");
    let exp = setup.start();
    // Enable everything the collectors produce, then lint a full scrape.
    let names = wait_for(Duration::from_secs(10), "discovered metrics", || {
        let list = exp.api("GET", "/metrics/list", &[], None).json();
        let names: Vec<String> = list["metrics"].as_object()?.keys().cloned().collect();
        (!names.is_empty()).then_some(names)
    });
    let body = format!(
        "{{{}}}",
        names
            .iter()
            .map(|n| format!("\"{n}\": true"))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(exp.post_json("/metrics/enable", &body).status, 200);
    let scrape = wait_for(Duration::from_secs(10), "enabled samples", || {
        let r = exp.scrape();
        r.body.contains("jetson_ram_used_mb{").then_some(r)
    });
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The spec fixes these names; promtool flags their abbreviated units.
    let allowed = |line: &str| {
        let name = line.split_whitespace().next().unwrap_or("");
        (name.ends_with("_mb") || name.ends_with("_kb")) && name.starts_with("jetson_")
    };
    let problems: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !allowed(l))
        .collect();
    assert!(
        problems.is_empty(),
        "promtool:\n{report}\nbody:\n{}",
        scrape.body
    );
}
