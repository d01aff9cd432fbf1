//! The Grafana dashboard (`grafana/edge-metrics.json`) against the real exporter: every metric
//! name its PromQL uses must be one the exporter exposes. The exporter binary runs in replay
//! mode on corpus files of three Jetson models (port 0 on 127.0.0.1, addresses read from its
//! `Listening.` log lines); the names come from its `/metrics/list` (every discovered metric)
//! and `/metrics` (self-metrics), plus the Shelly names that the API document lists for the
//! bridge's plug readings, plus Prometheus' own `up`.
//!
//! The binary is `edge-metrics-exporter` beside this test's target directory (`cargo test
//! --workspace`, or `cargo build -p edge-metrics-exporter`).

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::proof::{corpus, repo_root, start_exporter};
use regex::Regex;
use serde_json::Value;
use test_support::http::get;
use test_support::{wait_for, TempDir};

/// Readings the exporter takes from the plug through shelly-bridge (API document, Shelly
/// integration): exposed only while a plug is connected.
const SHELLY_METRICS: [&str; 3] = [
    "power_total_watts",
    "power_voltage_volts",
    "power_current_amps",
];
/// Series Prometheus makes itself for every target.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

/// Every metric name one exporter run exposes: discovered (`/metrics/list`) and self-metrics.
fn exposed_names(device_type: &str, corpus_file: &str) -> BTreeSet<String> {
    let dir = TempDir::new(&format!("grafana-{device_type}"));
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "device_type: {device_type}\ninterval: 1\nport: 0\nreload_port: 0\n\
             bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\n\
             hostname: grafana-test\n\
             tegrastats:\n  replay: {}\nshelly:\n  enabled: false\nmetrics: {{}}\n",
            corpus(corpus_file).display()
        ),
    )
    .unwrap();
    let ex = start_exporter(&config, dir.path());
    let list = wait_for(Duration::from_secs(20), "metrics discovered", || {
        let r = get(ex.api, "/metrics/list").ok()?;
        let m = r.json()["metrics"].as_object().cloned().unwrap_or_default();
        (r.status == 200 && !m.is_empty()).then_some(m)
    });
    let text = ex.scrape();
    assert_eq!(text.status, 200);
    let mut names: BTreeSet<String> = list.keys().cloned().collect();
    for line in text
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        names.insert(name.to_string());
    }
    names
}

/// One `__name__` matcher or plain metric name found in an expression.
#[derive(Debug)]
enum NameUse {
    Exact(String),
    Regex { negated: bool, pattern: String },
}

const KEYWORDS_WITH_LABEL_LIST: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 6] = ["bool", "and", "or", "unless", "offset", "inf"];
/// Aggregations may put `by (...)` before their parenthesis: `sum by (x) (...)`.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// A small PromQL scan: identifiers outside `{}` and `[]` that are not functions or keywords
/// are metric names; `__name__` matchers inside `{}` are collected with their operator.
fn metric_names(expr: &str) -> Vec<NameUse> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(b, i);
        } else if c == '[' {
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let end = find_close(b, i, b'{', b'}');
            out.extend(name_matchers(&expr[i + 1..end]));
            i = end + 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < b.len()
                && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
            {
                i += 1;
            }
            let word = &expr[start..i];
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let next = b.get(j).copied();
            if KEYWORDS_WITH_LABEL_LIST.contains(&word) {
                if next == Some(b'(') {
                    i = find_close(b, j, b'(', b')') + 1;
                }
            } else if KEYWORDS.contains(&word) || AGGREGATIONS.contains(&word) || next == Some(b'(')
            {
                // function or aggregation name, or an operator word
            } else {
                out.push(NameUse::Exact(word.to_string()));
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

fn skip_string(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() && b[i] != q {
        if b[i] == b'\\' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

fn find_close(b: &[u8], open_at: usize, open: u8, close: u8) -> usize {
    let mut depth = 0;
    let mut i = open_at;
    while i < b.len() {
        match b[i] {
            b'"' | b'\'' | b'`' => {
                i = skip_string(b, i);
                continue;
            }
            x if x == open => depth += 1,
            x if x == close => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unbalanced {} in {:?}",
        open as char,
        String::from_utf8_lossy(b)
    );
}

fn name_matchers(inner: &str) -> Vec<NameUse> {
    let re = Regex::new(r#"__name__\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)""#).unwrap();
    re.captures_iter(inner)
        .map(|c| match &c[1] {
            "=" => NameUse::Exact(c[2].to_string()),
            "=~" => NameUse::Regex {
                negated: false,
                pattern: c[2].replace("\\\\", "\\"),
            },
            "!~" => NameUse::Regex {
                negated: true,
                pattern: c[2].replace("\\\\", "\\"),
            },
            _ => NameUse::Regex {
                negated: true,
                pattern: regex::escape(&c[2]),
            },
        })
        .collect()
}

/// Every PromQL expression in the dashboard: panel targets (rows included) and query
/// variables (`label_values(metric{...}, label)` yields its metric selector).
fn dashboard_exprs(dash: &Value) -> Vec<(String, String)> {
    fn panels(v: &Value, out: &mut Vec<(String, String)>) {
        for p in v.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(e) = t["expr"].as_str() {
                    out.push((title.clone(), e.to_string()));
                }
            }
            panels(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dash["panels"], &mut out);
    let lv = Regex::new(r"^label_values\((.*),\s*\w+\)$").unwrap();
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] != "query" {
            continue;
        }
        let q = var["query"]["query"]
            .as_str()
            .or(var["query"].as_str())
            .unwrap_or_default();
        let sel = lv
            .captures(q)
            .unwrap_or_else(|| panic!("variable {} uses an unsupported query {q:?}", var["name"]));
        out.push((format!("variable {}", var["name"]), sel[1].to_string()));
    }
    out
}

fn load_dashboard() -> Value {
    let path = repo_root().join("grafana/edge-metrics.json");
    let text = std::fs::read_to_string(&path).expect("grafana/edge-metrics.json exists");
    serde_json::from_str(&text).expect("dashboard is valid JSON")
}

#[test]
fn the_promql_scanner_finds_names_and_skips_functions_labels_and_strings() {
    let names = |e: &str| -> Vec<String> {
        metric_names(e)
            .into_iter()
            .map(|n| match n {
                NameUse::Exact(s) => s,
                NameUse::Regex { negated, pattern } => {
                    format!("{}{pattern}", if negated { "!" } else { "~" })
                }
            })
            .collect()
    };
    assert_eq!(
        names(
            r#"sum by (hostname) (rate(foo_total{job=~"a|b", x="y{z}"}[5m])) / on (hostname) bar"#
        ),
        ["foo_total", "bar"]
    );
    assert_eq!(
        names(r#"{__name__=~"jetson_temp_.+_celsius", __name__!~".*_avg", h="$h"} > -100"#),
        ["~jetson_temp_.+_celsius", "!.*_avg"]
    );
    assert_eq!(names("time() - last_ts offset 5m"), ["last_ts"]);
}

#[test]
fn every_dashboard_metric_is_one_the_exporter_exposes() {
    let dash = load_dashboard();
    assert_eq!(dash["uid"].as_str(), Some("edge-metrics-jetson"));
    let exprs = dashboard_exprs(&dash);
    assert!(
        exprs.len() >= 15,
        "expected a full dashboard, found {} expressions",
        exprs.len()
    );

    let mut exposed = BTreeSet::new();
    for (device_type, corpus) in [
        ("jetson_orin", "orin-agx-jp6.log"),
        ("jetson_xavier", "xavier-agx-jp5.log"),
        ("jetson_nano", "nano-jp4.log"),
    ] {
        let names = exposed_names(device_type, corpus);
        assert!(
            names.iter().any(|n| n.starts_with("jetson_temp_")),
            "{corpus}: no temperatures discovered: {names:?}"
        );
        exposed.extend(names);
    }
    for extra in SHELLY_METRICS.iter().chain(&PROMETHEUS_SERIES) {
        exposed.insert((*extra).to_string());
    }

    let mut problems = Vec::new();
    let mut used_exact = BTreeSet::new();
    for (title, expr) in &exprs {
        let uses = metric_names(expr);
        if uses.is_empty() {
            problems.push(format!("{title}: no metric in {expr:?}"));
        }
        for u in uses {
            match u {
                NameUse::Exact(name) => {
                    if !exposed.contains(&name) {
                        problems.push(format!("{title}: {name} is not exposed by the exporter"));
                    }
                    used_exact.insert(name);
                }
                NameUse::Regex { negated, pattern } => {
                    let re = Regex::new(&format!("^(?:{pattern})$"))
                        .unwrap_or_else(|e| panic!("{title}: bad regex {pattern:?}: {e}"));
                    if !negated && !exposed.iter().any(|n| re.is_match(n)) {
                        problems.push(format!(
                            "{title}: __name__=~{pattern:?} matches no exposed metric"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );

    // What the dashboard is for: rails next to wall power, temperatures, load, memory, health.
    let all: String = exprs
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "jetson_power_.+_watts",
        "power_total_watts",
        "jetson_temp_.+_celsius",
        "jetson_cpu_avg_usage_percent",
        "jetson_gpu_usage_percent",
        "jetson_ram_used_mb",
        "edge_metrics_exporter_collector_up",
    ] {
        assert!(all.contains(needle), "dashboard lacks {needle}");
    }
    // Panels name the Prometheus data source through the variable, so imports can pick one.
    fn check_ds(v: &Value, bad: &mut Vec<String>) {
        for p in v.as_array().into_iter().flatten() {
            if p["type"] != "row" && p["datasource"]["uid"] != "${datasource}" {
                bad.push(p["title"].to_string());
            }
            check_ds(&p["panels"], bad);
        }
    }
    let mut bad = Vec::new();
    check_ds(&dash["panels"], &mut bad);
    assert!(
        bad.is_empty(),
        "panels without the ${{datasource}} variable: {bad:?}"
    );
}

#[test]
fn a_misspelt_metric_is_caught() {
    // Guards the check above: a name the exporter never exposes must be reported.
    let exposed: BTreeSet<String> = ["jetson_temp_cpu_celsius".to_string()].into();
    let uses = metric_names(r#"jetson_temp_cpu_celcius{hostname=~"$hostname"}"#);
    let missing: Vec<_> = uses
        .iter()
        .filter(|u| matches!(u, NameUse::Exact(n) if !exposed.contains(n)))
        .collect();
    assert_eq!(missing.len(), 1, "{uses:?}");
}
