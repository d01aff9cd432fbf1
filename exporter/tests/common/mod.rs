//! Test harness: runs the real `edge-metrics-exporter` binary on 127.0.0.1 with `port: 0` and
//! a fake `tegrastats` script replaying a corpus file. Starting it, waiting, HTTP and the fake
//! HTTP server come from `test-support`.
//!
//! The fake honours `--interval <ms>` and reads a control file before every line:
//! `normal` (the corpus, in a loop), `garbage`, `newrail` (the corpus line plus a rail no
//! corpus line has), `silent` (prints nothing), `exit` (exits with status 3). Each start
//! appends its pid to `pids`.

// Each test file uses a part of this module and of what it passes on.
#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use test_support::daemon::send_signal;
pub use test_support::http::{post_json, request, Response};
pub use test_support::{wait_for, Exporter, FakeHttp, Reply, Request, TempDir};

/// The repository's test data.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(rel)
}

/// The Orin corpus file the fake replays.
pub fn orin_corpus() -> PathBuf {
    testdata("tegrastats/orin-agx-jp5.log")
}

/// `RAM used/total` of every line of a corpus file.
pub fn corpus_ram(path: &Path) -> Vec<(f64, f64)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find("RAM ")? + 4..];
            let tok = rest.split_whitespace().next()?.trim_end_matches("MB");
            let (u, t) = tok.split_once('/')?;
            Some((u.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

const FAKE_TEGRASTATS: &str = r#"#!/bin/bash
# Fake tegrastats for tests: --interval <ms>, lines from $CORPUS, behaviour from $DIR/control.
interval=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --interval) interval="$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "$@" > /dev/null
echo $$ >> "__DIR__/pids"
echo "$interval" > "__DIR__/interval_seen"
secs=$(awk "BEGIN { printf \"%.3f\", $interval / 1000 }")
mapfile -t lines < "__CORPUS__"
i=0
while true; do
  mode=$(cat "__DIR__/control" 2>/dev/null)
  line="${lines[$((i % ${#lines[@]}))]}"
  case "$mode" in
    garbage) echo "this is not tegrastats output" ;;
    newrail) echo "$line VDD_TEST_RAIL 1234mW/1000mW" ;;
    silent) ;;
    exit) echo "fake tegrastats exiting" >&2; exit 3 ;;
    *) echo "$line" ;;
  esac
  i=$((i + 1))
  sleep "$secs"
done
"#;

/// A temp directory with config.yaml, the fake tegrastats and its control file.
pub struct Setup {
    /// Kept alive for the test's duration.
    pub dir: TempDir,
    /// config.yaml.
    pub config_path: PathBuf,
    /// The fake tegrastats script.
    pub fake: PathBuf,
}

impl Setup {
    /// A setup replaying `corpus`, with `extra` YAML appended to the base config (which binds
    /// 127.0.0.1 port 0 for both servers, hostname edge-01, Shelly off, the fake tegrastats).
    pub fn new(corpus: &Path, extra: &str) -> Setup {
        let dir = TempDir::new("exporter");
        let fake = dir.path().join("tegrastats");
        let script = FAKE_TEGRASTATS
            .replace("__DIR__", dir.path().to_str().unwrap())
            .replace("__CORPUS__", corpus.to_str().unwrap());
        std::fs::write(&fake, script).unwrap();
        let mut perm = std::fs::metadata(&fake).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&fake, perm).unwrap();
        let config_path = dir.path().join("config.yaml");
        let setup = Setup {
            dir,
            config_path,
            fake,
        };
        setup.write_config(extra);
        setup
    }

    /// The base config plus `extra`.
    pub fn config_text(&self, extra: &str) -> String {
        format!(
            "device_type: jetson_orin\ninterval: 1\nport: 0\nreload_port: 0\nbind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: edge-01\nshelly:\n  enabled: false\ntegrastats:\n  path: {}\n{extra}",
            self.fake.display()
        )
    }

    /// Writes config.yaml as the base config plus `extra`.
    pub fn write_config(&self, extra: &str) {
        std::fs::write(&self.config_path, self.config_text(extra)).unwrap();
    }

    /// Rewrites config.yaml's `interval: 1` as `interval: <seconds>`, for tests that need
    /// many cycles in a few seconds.
    pub fn set_interval(&self, seconds: f64) {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        assert!(
            text.contains("interval: 1\n"),
            "no `interval: 1` in:\n{text}"
        );
        let text = text.replace("interval: 1\n", &format!("interval: {seconds}\n"));
        std::fs::write(&self.config_path, text).unwrap();
    }

    /// Switches the fake tegrastats (`normal`, `garbage`, `newrail`, `silent`, `exit`).
    pub fn control(&self, mode: &str) {
        std::fs::write(self.dir.path().join("control"), mode).unwrap();
    }

    /// Pids of every fake tegrastats started so far.
    pub fn fake_pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.dir.path().join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Starts the exporter on this setup's config and waits for both servers.
    pub fn start(&self) -> Exporter {
        self.start_with_env(&[])
    }

    /// Starts the exporter with extra environment variables.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Exporter {
        let mut cmd = command();
        cmd.arg("--config")
            .arg(&self.config_path)
            .envs(env.iter().copied());
        Exporter::start(cmd, None)
    }
}

/// Waits until `GET /metrics/list` shows `metric` as `enabled`.
pub fn wait_listed(exp: &Exporter, metric: &str, enabled: bool) {
    wait_for(
        Duration::from_secs(5),
        &format!("{metric}: {enabled} in /metrics/list"),
        || {
            let list = exp.api("GET", "/metrics/list", &[], None).json();
            (list["metrics"][metric] == enabled).then_some(())
        },
    );
}

/// A command for the exporter binary with a clean environment for its variables.
pub fn command() -> Command {
    let mut cmd = test_support::daemon_command(&test_support::bin!("edge-metrics-exporter"));
    for var in [
        "LOCAL_CONFIG_PATH",
        "EDGE_METRICS_API_TOKEN",
        "EDGE_METRICS_HOSTNAME",
        "CONFIG_SERVER_URL",
        "CONFIG_TIMEOUT",
        "EDGE_METRICS_HOST_ROOT",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs the exporter with `cmd`'s arguments to its end (at most 10 s) and returns its output.
pub fn run_to_end(cmd: &mut Command) -> std::process::Output {
    test_support::run_to_end(cmd, Duration::from_secs(10))
}
