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
        r.sample(&format!(
            "edge_metrics_exporter_build_info{{version=\"{}\",revision=\"{}\"}}",
            edge_metrics_exporter::selfmetrics::VERSION,
            edge_metrics_exporter::selfmetrics::REVISION
        )),
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

/// Seconds since the Unix epoch, as `date +%s.%N` prints them.
fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A stand-in tegrastats that runs `steps` (shell) with `stamp NAME` stamping the time into
/// `NAME` in the setup's directory; each reading is stamped just before it is printed.
fn stamping_fake(setup: &Setup, steps: &str) {
    let dir = setup.dir.path().display();
    std::fs::write(
        &setup.fake,
        format!("#!/bin/sh\nstamp() {{ date +%s.%N > {dir}/$1; }}\n{steps}exec sleep 600\n"),
    )
    .unwrap();
}

/// How long ago the fake printed the reading it stamped as `name`: the time from its print to
/// the moment the test sees it served, measured on events (the print, the scrape) instead of
/// from the start of the test, which a slow start-up would stretch.
fn since_stamp(setup: &Setup, name: &str) -> Duration {
    let path = setup.dir.path().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let printed: f64 = text.trim().parse().unwrap();
    Duration::from_secs_f64((epoch_now() - printed).max(0.0))
}

/// A reading on arrival is served within this much of its print. Served at the next timer
/// cycle instead, it would wait 3 s or more in each test below.
const ON_ARRIVAL: Duration = Duration::from_secs(2);

#[test]
fn a_reading_is_served_when_it_arrives_not_at_the_next_interval() {
    // Interval 10 s; the stand-in prints one reading, a second one 6 s later (more than the
    // half interval within which readings are coalesced), then nothing. Waiting for the timer,
    // the second would show 15 s after the first (1.5 intervals), 9 s after it was printed.
    let setup = Setup::new(&orin_corpus(), "");
    stamping_fake(
        &setup,
        "echo 'RAM 1000/8000MB'\nsleep 6\nstamp second\necho 'RAM 2000/8000MB'\n",
    );
    setup.write_config("metrics:\n  jetson_ram_used_mb: true\n");
    setup.set_interval(10.0);
    let exp = setup.start();
    assert_eq!(wait_sample(&exp, USED), 1000.0);
    let second = wait_for(Duration::from_secs(20), "the second reading", || {
        exp.scrape().sample(USED).filter(|v| *v == 2000.0)
    });
    assert_eq!(second, 2000.0);
    let after = since_stamp(&setup, "second");
    assert!(
        after < ON_ARRIVAL,
        "the second reading showed {after:?} after it was printed"
    );
}

#[test]
fn a_first_reading_after_the_start_up_cycle_is_not_held_back() {
    // The start-up cycle runs before tegrastats prints anything (1 s later here): the first
    // reading is served at once, and so the second one (6 s after it) is too, instead of
    // both being pushed back to half an interval after the cycle before (the first about
    // 4 s after its print, the second about 3 s).
    let setup = Setup::new(&orin_corpus(), "");
    stamping_fake(
        &setup,
        "sleep 1\nstamp first\necho 'RAM 1000/8000MB'\nsleep 6\nstamp second\necho 'RAM 2000/8000MB'\n",
    );
    setup.write_config("metrics:\n  jetson_ram_used_mb: true\n");
    setup.set_interval(10.0);
    let exp = setup.start();
    assert_eq!(wait_sample(&exp, USED), 1000.0);
    let first = since_stamp(&setup, "first");
    wait_for(Duration::from_secs(20), "the second reading", || {
        exp.scrape().sample(USED).filter(|v| *v == 2000.0)
    });
    let second = since_stamp(&setup, "second");
    assert!(
        first < ON_ARRIVAL,
        "the first reading showed {first:?} after it was printed"
    );
    assert!(
        second < ON_ARRIVAL,
        "the second reading showed {second:?} after it was printed"
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
