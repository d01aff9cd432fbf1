//! The Grafana dashboard (`grafana/edge-metrics.json`) against the real exporter: every metric
//! name its PromQL uses must be one the exporter exposes. The exporter binary runs in replay
//! mode on corpus files of three Jetson models (port 0 on 127.0.0.1, addresses read from its
//! `Listening.` log lines); the names come from its `/metrics/list` (every discovered metric)
//! and `/metrics` (self-metrics), plus the Shelly names that the API document lists for the
//! bridge's plug readings, plus Prometheus' own `up`.
//!
//! The binary is `EDGE_METRICS_EXPORTER_BIN`, else `edge-metrics-exporter` beside this test's
//! target directory (`cargo build -p edge-metrics-exporter`, or `cargo test --workspace`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::Value;

/// Readings the exporter takes from the plug through shelly-bridge (API document, Shelly
/// integration): exposed only while a plug is connected.
const SHELLY_METRICS: [&str; 3] = [
    "power_total_watts",
    "power_voltage_volts",
    "power_current_amps",
];
/// Series Prometheus makes itself for every target.
const PROMETHEUS_SERIES: [&str; 1] = ["up"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository root")
        .to_path_buf()
}

fn exporter_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGE_METRICS_EXPORTER_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/grafana-<hash> → target/<profile>/edge-metrics-exporter
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable sits in target/<profile>/deps");
    let bin = dir.join("edge-metrics-exporter");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build -p edge-metrics-exporter` first (or set EDGE_METRICS_EXPORTER_BIN)",
        bin.display()
    );
    bin
}

/// Kills the exporter when the test ends, and prints its log if the test failed.
struct Exporter {
    child: Child,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    metrics: SocketAddr,
    management: SocketAddr,
    _dir: TempDir,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- exporter log ---");
            for l in self.log.lock().unwrap().iter() {
                eprintln!("{l}");
            }
        }
    }
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "edge-metrics-grafana-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_exporter(device_type: &str, corpus: &str) -> Exporter {
    let dir = TempDir::new(device_type);
    let replay = repo_root().join("testdata/tegrastats").join(corpus);
    assert!(replay.is_file(), "corpus file {} missing", replay.display());
    let config = dir.0.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "device_type: {device_type}\ninterval: 1\nport: 0\nreload_port: 0\n\
             bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\n\
             hostname: grafana-test\n\
             tegrastats:\n  replay: {}\nshelly:\n  enabled: false\nmetrics: {{}}\n",
            replay.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(exporter_bin())
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("exporter starts");
    let stderr = child.stderr.take().unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log2.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    let addr_re = Regex::new(r#"Listening\. server="(\w+)" address=(\S+)"#).unwrap();
    let (mut metrics, mut management) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while metrics.is_none() || management.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "exporter did not log both Listening lines within 20 s: {:?}",
                log.lock().unwrap()
            )
        });
        if let Some(c) = addr_re.captures(&line) {
            let addr: SocketAddr = c[2].parse().expect("bound address");
            match &c[1] {
                "metrics" => metrics = Some(addr),
                "management" => management = Some(addr),
                _ => {}
            }
        }
    }
    Exporter {
        child,
        log,
        metrics: metrics.unwrap(),
        management: management.unwrap(),
        _dir: dir,
    }
}

/// A plain HTTP/1.1 GET; returns the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // The exporter answers with Content-Length; chunked bodies would need decoding.
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked response from {path}"
    );
    Ok((code, body.to_string()))
}

/// Every metric name one exporter run exposes: discovered (`/metrics/list`) and self-metrics.
fn exposed_names(device_type: &str, corpus: &str) -> BTreeSet<String> {
    let ex = start_exporter(device_type, corpus);
    let deadline = Instant::now() + Duration::from_secs(20);
    let list = loop {
        if let Ok((200, body)) = http_get(ex.management, "/metrics/list") {
            let v: Value = serde_json::from_str(&body).expect("/metrics/list is JSON");
            let m = v["metrics"].as_object().cloned().unwrap_or_default();
            if !m.is_empty() {
                break m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no metrics discovered within 20 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (code, text) = http_get(ex.metrics, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    let mut names: BTreeSet<String> = list.keys().cloned().collect();
    for line in text
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
