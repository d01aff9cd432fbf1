//! The Grafana dashboard (`grafana/edge-metrics.json`) against the real exporter: every metric
//! name its PromQL uses must be one the exporter exposes. The exporter binary runs in replay
//! mode on corpus files of three Jetson models (port 0 on 127.0.0.1, addresses read from its
//! `Listening.` log lines); the names come from its `/metrics/list` (every discovered metric)
//! and `/metrics` (self-metrics), plus the Shelly names that the API document lists for the
//! bridge's plug readings, plus Prometheus' own `up`.
//!
//! The Fleet overview row is checked against data: three exporters (distinct hostnames, one
//! plug each by its name on one bridge) scraped by a real `prometheus` with and without the
//! `cluster`/`site`/`node` labels of a remote-write agent; every panel query, with the
//! variables filled in as Grafana does, must return all three nodes.
//!
//! The binaries are `edge-metrics-exporter`, `shelly-bridge` and `shelly-sim` beside this
//! test's target directory (`cargo test --workspace`, or `cargo build -p
//! edge-metrics-exporter -p shelly-bridge -p shelly-sim`); `prometheus` comes from the Debian
//! package (a missing one fails unless `EDGE_METRICS_ALLOW_SKIP` names it).

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::proof::{corpus, repo_root, start_exporter};
use regex::Regex;
use serde_json::Value;
use test_support::http::get;
use test_support::{copy_tree, wait_for, TempDir};

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

/// Every metric name one exporter run on a board fixture tree (`testdata/boards/<tree>`, read
/// from sysfs) exposes. The tree is copied and its `SECOND_PASS/` files laid over it once the
/// first names are discovered, so the names that need two reads (CPU usage, RAPL power) are
/// there too.
fn board_names(device_type: &str, tree: &str) -> BTreeSet<String> {
    let dir = TempDir::new(&format!("grafana-{device_type}"));
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    copy_tree(&repo_root().join("testdata/boards").join(tree), &root);
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "device_type: {device_type}\ninterval: 0.2\nport: 0\nreload_port: 0\n\
             bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\n\
             hostname: grafana-test\nhost_root: {}\n\
             shelly:\n  enabled: false\nmetrics: {{}}\n",
            root.display()
        ),
    )
    .unwrap();
    let ex = start_exporter(&config, dir.path());
    let list = || {
        let r = get(ex.api, "/metrics/list").ok()?;
        let m = r.json()["metrics"].as_object().cloned().unwrap_or_default();
        (r.status == 200).then_some(m)
    };
    wait_for(Duration::from_secs(20), "board metrics discovered", || {
        list().filter(|m| !m.is_empty())
    });
    copy_tree(&root.join("SECOND_PASS"), &root);
    let found = wait_for(Duration::from_secs(20), "CPU usage discovered", || {
        list().filter(|m| m.keys().any(|k| k.ends_with("_cpu_avg_usage_percent")))
    });
    found.keys().cloned().collect()
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
    for (device_type, tree) in [
        ("raspberry_pi", "raspberry-pi-5"),
        ("lattepanda", "lattepanda-3-delta"),
        ("orange_pi", "orange-pi-5"),
    ] {
        let names = board_names(device_type, tree);
        assert!(
            names.iter().any(|n| n.contains("_temp_")),
            "{tree}: no temperatures discovered: {names:?}"
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

// --- The fleet overview against a real Prometheus --------------------------------------------

/// One simulated node: its replayed board, its name and the power its plug reports.
struct FleetNode {
    hostname: &'static str,
    device_type: &'static str,
    corpus: &'static str,
    site: &'static str,
    watts: &'static str,
}

const FLEET: [FleetNode; 3] = [
    FleetNode {
        hostname: "fleet-orin",
        device_type: "jetson_orin",
        corpus: "orin-agx-jp6.log",
        site: "site-a",
        watts: "31",
    },
    FleetNode {
        hostname: "fleet-xavier",
        device_type: "jetson_xavier",
        corpus: "xavier-agx-jp5.log",
        site: "site-a",
        watts: "22",
    },
    FleetNode {
        hostname: "fleet-nano",
        device_type: "jetson_nano",
        corpus: "nano-jp4.log",
        site: "site-b",
        watts: "9",
    },
];

/// The panels of the "Fleet overview" row: (title, PromQL) of each target.
fn fleet_exprs(dash: &Value) -> Vec<(String, String)> {
    let panels = dash["panels"].as_array().expect("panels");
    let row = panels
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "Fleet overview")
        .expect("a Fleet overview row");
    panels[row + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_string();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// `expr` with Grafana's variables replaced: each by the regex the dashboard would put there
/// (`.*` for All).
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = expr.to_string();
    // Longest names first, so $node never eats the start of a longer name.
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in vars {
        out = out.replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "a variable is left in {out}");
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server of this machine's `prometheus` binary on 127.0.0.1.
struct Prometheus {
    _proc: test_support::Daemon,
    addr: std::net::SocketAddr,
}

impl Prometheus {
    /// An instant query; the result vector (panics on an error answer).
    fn query(&self, expr: &str) -> Vec<Value> {
        let r = get(
            self.addr,
            &format!("/api/v1/query?query={}", url_encode(expr)),
        )
        .expect("Prometheus answers");
        let body = r.json();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The values of `label` on the series of `selector` (what Grafana's `label_values` asks).
    fn label_values(&self, label: &str, selector: &str) -> BTreeSet<String> {
        let r = get(
            self.addr,
            &format!(
                "/api/v1/label/{label}/values?match[]={}",
                url_encode(selector)
            ),
        )
        .expect("Prometheus answers");
        let body = r.json();
        assert_eq!(body["status"], "success", "{selector}: {body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }
}

/// `label` of every series of a query result.
fn label_set(result: &[Value], label: &str) -> BTreeSet<String> {
    result
        .iter()
        .map(|s| s["metric"][label].as_str().unwrap_or("").to_string())
        .collect()
}

/// Three exporters (replayed Orin, Xavier and Nano, distinct hostnames), each with its plug on
/// one bridge by its name, scraped by a real Prometheus twice: as job `fleet` with the
/// `cluster`/`site`/`node` labels a remote-write agent adds (and, as the agent scrapes its own
/// node's loopback, the same `instance` for every node), and as job `local` without them.
/// Every query of the Fleet overview row, with the dashboard's variables filled in as Grafana
/// would, returns series for all three nodes in both cases; a site narrows it; the variables'
/// own queries list what is there; and a stopped exporter shows as down under its node's name.
#[test]
fn fleet_panels_show_every_node_from_a_real_prometheus() {
    let Some(prometheus) =
        test_support::require::tool("prometheus", "apt-get install -y prometheus")
    else {
        return;
    };
    let dash = load_dashboard();
    let exprs = fleet_exprs(&dash);
    let titles: BTreeSet<_> = exprs.iter().map(|(t, _)| t.as_str()).collect();
    for want in [
        "Power per node",
        "Hottest nodes",
        "Exporter down or tegrastats stale, per node",
        "Wall plug against on-board rails",
    ] {
        assert!(titles.contains(want), "no fleet panel {want:?}: {titles:?}");
    }

    let dir = TempDir::new("grafana-fleet");
    let bridge = e2e::proof::start_bridge(dir.path(), "bridge", &[]);
    let mut plugs = Vec::new();
    let mut exporters = Vec::new();
    for (i, n) in FLEET.iter().enumerate() {
        plugs.push(bridge.plug(
            n.hostname,
            &["--power", n.watts, "--jitter", "0"],
            Some(dir.path()),
        ));
        bridge.wait_devices(i as u64 + 1, Duration::from_secs(30));
        let node_dir = dir.join(n.hostname);
        std::fs::create_dir_all(&node_dir).unwrap();
        let config = node_dir.join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "device_type: {}\ninterval: 1\nport: 0\nreload_port: 0\n\
                 bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: {}\n\
                 tegrastats:\n  replay: {}\n\
                 shelly:\n  server_url: http://{}\n  device_id: {}\nmetrics: {{}}\n",
                n.device_type,
                n.hostname,
                corpus(n.corpus).display(),
                bridge.http,
                n.hostname,
            ),
        )
        .unwrap();
        exporters.push(start_exporter(&config, &node_dir));
    }

    // Prometheus scrapes each exporter every second, as two jobs.
    let mut fleet_targets = String::new();
    let mut local_targets = Vec::new();
    for (n, e) in FLEET.iter().zip(&exporters) {
        fleet_targets.push_str(&format!(
            "      - targets: ['{}']\n        labels: {{cluster: lab, site: {}, node: {}}}\n",
            e.metrics, n.site, n.hostname
        ));
        local_targets.push(format!("'{}'", e.metrics));
    }
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: fleet\n    static_configs:\n{fleet_targets}\
             \x20   relabel_configs:\n      - target_label: instance\n        replacement: 127.0.0.1:9102\n\
             \x20 - job_name: local\n    static_configs:\n      - targets: [{}]\n",
            local_targets.join(", ")
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = std::process::Command::new(prometheus);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn");
    let prom = Prometheus {
        _proc: test_support::Daemon::start("prometheus", cmd, Some(dir.path())),
        addr,
    };
    wait_for(Duration::from_secs(60), "Prometheus ready", || {
        get(addr, "/-/ready").ok().filter(|r| r.status == 200)
    });
    let hosts: BTreeSet<String> = FLEET.iter().map(|n| n.hostname.to_string()).collect();

    let all = |job: &str| -> Vec<(&'static str, String)> {
        vec![
            ("cluster", ".*".into()),
            ("site", ".*".into()),
            ("node", ".*".into()),
            ("job", job.into()),
            ("hostname", ".*".into()),
        ]
    };
    let run = |vars: &[(&str, String)], title: &str, expr: &str| -> Vec<Value> {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        prom.query(&substitute(expr, &vars))
            .into_iter()
            .inspect(|s| assert!(s["value"][1].is_string(), "{title}: {s}"))
            .collect()
    };

    // Every fleet query sees all three nodes, with and without the external labels. The plug
    // and the rails take a few scrapes to arrive: wait for the slowest.
    for job in ["fleet", "local"] {
        for (title, expr) in &exprs {
            let found = test_support::try_wait_for(
                Duration::from_secs(60),
                &format!("{title} for all three nodes ({job})"),
                || {
                    let result = run(&all(job), title, expr);
                    (label_set(&result, "hostname") == hosts).then_some(result)
                },
            )
            .unwrap_or_else(|e| {
                panic!(
                    "{e}: {title} ({job}) returned {:?}\nquery: {expr}",
                    run(&all(job), title, expr)
                )
            });
            if job == "fleet" {
                assert_eq!(label_set(&found, "cluster"), ["lab".to_string()].into());
            } else {
                assert_eq!(label_set(&found, "cluster"), ["".to_string()].into());
            }
        }
    }

    // The values are each node's own: its plug's power, a real temperature, healthy.
    let power = run(&all("fleet"), "power", &exprs[0].1);
    for n in &FLEET {
        let v: f64 = power
            .iter()
            .find(|s| s["metric"]["hostname"] == n.hostname)
            .unwrap()["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            v,
            n.watts.parse::<f64>().unwrap(),
            "{} read another plug",
            n.hostname
        );
    }
    let health: Vec<_> = exprs
        .iter()
        .filter(|(t, _)| t.starts_with("Exporter down"))
        .collect();
    assert_eq!(health.len(), 2, "exporter and tegrastats");
    for (title, expr) in &health {
        for s in run(&all("fleet"), title, expr) {
            assert_eq!(s["value"][1], "1", "{title}: {s}");
        }
    }

    // A site narrows every panel to its nodes.
    let mut site_b = all("fleet");
    site_b[1].1 = "site-b".into();
    for (title, expr) in &exprs {
        let result = run(&site_b, title, expr);
        assert_eq!(
            label_set(&result, "hostname"),
            ["fleet-nano".to_string()].into(),
            "{title} with site=site-b"
        );
    }

    // The variables' queries (label_values) list the labels there are, and none without them.
    let vars = dashboard_exprs(&dash);
    let var = |name: &str| -> String {
        vars.iter()
            .find(|(t, _)| t == &format!("variable \"{name}\""))
            .unwrap_or_else(|| panic!("no variable {name}: {vars:?}"))
            .1
            .clone()
    };
    let fill = |s: &str| {
        substitute(
            s,
            &[
                ("cluster", ".*"),
                ("site", ".*"),
                ("node", ".*"),
                ("job", ".*"),
            ],
        )
    };
    assert_eq!(
        prom.label_values("cluster", &fill(&var("cluster"))),
        ["lab".to_string()].into()
    );
    assert_eq!(
        prom.label_values("site", &fill(&var("site"))),
        ["site-a".to_string(), "site-b".to_string()].into()
    );
    assert_eq!(prom.label_values("node", &fill(&var("node"))), hosts);
    assert_eq!(
        prom.label_values("job", &fill(&var("job"))),
        ["fleet".to_string(), "local".to_string()].into()
    );
    assert_eq!(
        prom.label_values("hostname", &fill(&var("hostname"))),
        hosts
    );

    // The Xavier's exporter stops: the health panel shows that node, by name, as down.
    exporters[1].proc.kill();
    let (title, expr) = health[0];
    test_support::wait_for(
        Duration::from_secs(30),
        "fleet-xavier's exporter shown down",
        || {
            let result = run(&all("fleet"), title, expr);
            let value = |host: &str| {
                result
                    .iter()
                    .find(|s| s["metric"]["hostname"] == host)
                    .map(|s| s["value"][1].as_str().unwrap().to_string())
            };
            (value("fleet-xavier").as_deref() == Some("0")
                && value("fleet-orin").as_deref() == Some("1")
                && value("fleet-nano").as_deref() == Some("1"))
            .then_some(())
        },
    );
    drop(plugs);
}
