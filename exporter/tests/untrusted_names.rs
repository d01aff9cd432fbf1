//! What arrives from the address in `shelly.server_url` cannot change what the next start
//! does, with the real binary against a fake bridge on loopback: names that are not metric
//! names are dropped, counted and logged once; a source that makes up names fills `metrics:`
//! only up to its limit; an oversized answer fails the poll.

mod common;

use std::time::Duration;

use common::*;

const POWER: &str = "power_total_watts{device_type=\"jetson_orin\",hostname=\"edge-01\"}";
const INVALID: &str = "edge_metrics_exporter_invalid_metric_names_total";
const SHELLY_UP: &str = "edge_metrics_exporter_collector_up{collector=\"ShellyCollector\"}";

/// The rogue answer: two keys that would break config.yaml, and a real reading.
const ROGUE: &str = r#"{"device_id":"x","metrics": {"bad name{x=\"1\"}": 1, "power_x\nfake_metric 1": 2, "power_total_watts": 5}}"#;

/// The base test config with Shelly polling `url`, `metrics:` left to discovery (a fresh
/// install: power_total_watts comes up enabled).
fn with_bridge(setup: &Setup, url: &str) {
    let text = setup.config_text("").replace(
        "shelly:\n  enabled: false\n",
        &format!("shelly:\n  enabled: true\n  server_url: {url}\n"),
    );
    std::fs::write(&setup.config_path, text).unwrap();
}

fn parse_saved(setup: &Setup) -> edge_metrics_exporter::config::Config {
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    edge_metrics_exporter::config::parse(&text, "config.yaml")
        .unwrap_or_else(|e| panic!("config.yaml is not loadable: {e}\n{text}"))
}

#[test]
fn a_rogue_bridge_answer_is_not_saved_and_the_next_start_succeeds() {
    let bridge = FakeHttp::start(|_| Reply::json(200, ROGUE));
    let setup = Setup::new(&orin_corpus(), "");
    with_bridge(&setup, &bridge.url());
    let exp = setup.start();
    assert_eq!(
        exp.wait_sample("power_total_watts", Duration::from_secs(20)),
        5.0
    );
    // Three cycles at least, each dropping both names again.
    let r = wait_for(Duration::from_secs(20), "six dropped values", || {
        let r = exp.scrape();
        (r.sample(INVALID)? >= 6.0).then_some(r)
    });
    assert_eq!(r.sample(POWER), Some(5.0));
    assert_eq!(r.sample(SHELLY_UP), Some(1.0));
    assert!(
        !r.body.contains("fake_metric") && !r.body.contains("bad name"),
        "{}",
        r.body
    );
    wait_listed(&exp, "power_total_watts", true);
    let list = exp.api("GET", "/metrics/list", &[], None).json();
    let names: Vec<&String> = list["metrics"].as_object().unwrap().keys().collect();
    assert!(
        names
            .iter()
            .all(|n| edge_metrics_exporter::config::is_metric_name(n)),
        "{names:?}"
    );
    // Neither name can be enabled either.
    let r = exp.post_json("/metrics/enable", r#"{"power_x\nfake_metric 1": true}"#);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "Invalid metric name: power_x\\nfake_metric 1"
    );

    // Logged once per name, escaped: no log line of its own for the injected sample.
    let log = exp.proc.log();
    let drops: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Dropped a value whose name is not a metric name"))
        .collect();
    assert_eq!(drops.len(), 2, "{log}");
    assert!(
        drops.iter().any(|l| l.contains(r"power_x\nfake_metric 1")),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("fake_metric")),
        "a log line was injected:\n{log}"
    );

    // config.yaml stays loadable and holds the real reading's name only.
    assert_eq!(exp.proc.terminate().and_then(|s| s.code()), Some(0));
    let saved = parse_saved(&setup);
    assert_eq!(saved.metrics.get("power_total_watts"), Some(&true));
    assert!(saved
        .metrics
        .keys()
        .all(|n| edge_metrics_exporter::config::is_metric_name(n)));

    // A second start on the same file, with the same bridge, starts and serves.
    let again = setup.start();
    assert_eq!(
        again.wait_sample("power_total_watts", Duration::from_secs(20)),
        5.0
    );
    assert_eq!(again.proc.terminate().and_then(|s| s.code()), Some(0));
    parse_saved(&setup);
}

#[test]
fn a_bridge_that_makes_up_names_fills_metrics_only_to_the_limit() {
    // 1,500 made-up names besides the real one: more than a cycle adds and than metrics: holds.
    let mut metrics = serde_json::Map::new();
    metrics.insert("power_total_watts".into(), 5.into());
    for i in 0..1500 {
        metrics.insert(format!("power_made_up_{i:04}"), 1.into());
    }
    let body = serde_json::json!({"device_id": "x", "metrics": metrics}).to_string();
    let bridge = FakeHttp::start(move |_| Reply::json(200, body.clone()));
    let setup = Setup::new(&orin_corpus(), "");
    with_bridge(&setup, &bridge.url());
    // Short cycles, so the limit is reached within a few seconds.
    setup.set_interval(0.2);
    let exp = setup.start();
    let total = "edge_metrics_exporter_discovery_dropped_total{limit=\"total\"}";
    let r = wait_for(Duration::from_secs(30), "the total limit hit", || {
        let r = exp.scrape();
        (r.sample(total)? > 0.0).then_some(r)
    });
    assert!(
        r.sample("edge_metrics_exporter_discovery_dropped_total{limit=\"cycle\"}") > Some(0.0),
        "{}",
        r.body
    );
    let list = exp.api("GET", "/metrics/list", &[], None).json();
    assert_eq!(list["metrics"].as_object().unwrap().len(), 1000);
    assert_eq!(list["metrics"]["power_total_watts"], true);
    exp.proc.wait_line(
        &["The metrics: map holds as many names as discovery may add"],
        Duration::from_secs(5),
    );
    assert_eq!(exp.proc.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(parse_saved(&setup).metrics.len(), 1000);
}

#[test]
fn an_oversized_bridge_answer_fails_the_poll_and_says_so() {
    let huge = format!(
        "{{\"metrics\": {{\"power_total_watts\": 5}}, \"pad\": \"{}\"}}",
        "x".repeat(300 * 1024)
    );
    let bridge = FakeHttp::start(move |_| Reply::json(200, huge.clone()));
    let setup = Setup::new(&orin_corpus(), "");
    with_bridge(&setup, &bridge.url());
    let exp = setup.start();
    // Until tegrastats' first reading the reason also names the device collector, first; wait
    // for the Shelly problem to be the only one.
    let health = wait_for(
        Duration::from_secs(20),
        "the oversized answer reported",
        || {
            let h = exp.health();
            h["reason"]
                .as_str()
                .is_some_and(|r| {
                    r.starts_with("ShellyCollector: ") && r.contains("body over 256 KiB")
                })
                .then_some(h)
        },
    );
    let reason = health["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("ShellyCollector: ") && reason.contains("shelly.server_url"),
        "{reason}"
    );
    exp.proc.wait_line(
        &["Shelly readings unavailable.", "256 KiB"],
        Duration::from_secs(5),
    );
    let r = exp.scrape();
    assert_eq!(r.sample(SHELLY_UP), Some(0.0));
    assert_eq!(r.sample(POWER), None);
}
