//! `shelly-sim` against a real bridge: the simulator binary dials a bridge served in-process
//! (the `shelly-bridge` library) on 127.0.0.1 with ports picked by the system; real sockets.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use shelly_bridge::config::BridgeConfig;
use shelly_bridge::Listeners;
use test_support::{wait_for_async, Daemon};
use tokio_util::sync::CancellationToken;

const SIM: &str = env!("CARGO_BIN_EXE_shelly-sim");

/// Starts the simulator dialling `url` for at most a minute, without jitter, then `extra`,
/// under test-support's guard: its output goes to a log file, it is killed on drop, and its
/// log is printed when the test failed.
fn start_sim(url: &str, extra: &[&str]) -> Daemon {
    let alias = url.rsplit('/').next().unwrap_or("sim");
    let alias = alias.split('?').next().unwrap_or(alias);
    let mut cmd = test_support::daemon_command(std::path::Path::new(SIM));
    cmd.args(["--url", url, "--run-for", "60", "--jitter", "0"])
        .args(extra);
    Daemon::start(&format!("shelly-sim-{alias}"), cmd, None)
}

/// A bridge served on the test's runtime; stopped on drop.
struct Bridge {
    ws: String,
    http: String,
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    client: reqwest::Client,
}

impl Bridge {
    /// A bridge on 127.0.0.1 with free ports; `extra` flags as on the command line.
    async fn start(extra: &[&str]) -> Bridge {
        let base = ["--bind", "127.0.0.1", "--ws-port", "0", "--http-port", "0"];
        Self::start_with(&base, extra).await
    }

    async fn start_with(base: &[&str], extra: &[&str]) -> Bridge {
        let args: Vec<String> = base.iter().chain(extra).map(|a| a.to_string()).collect();
        let config = BridgeConfig::from_args(&args, &HashMap::new(), "test").unwrap();
        let listeners = Listeners::bind(&config).await.unwrap();
        let ws = format!("ws://{}", listeners.ws.local_addr().unwrap());
        let http = format!("http://{}", listeners.http.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(shelly_bridge::serve(config, listeners, shutdown.clone()));
        Bridge {
            ws,
            http,
            shutdown,
            task: Some(task),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    /// Stops the bridge and waits until it has closed its listeners and plug connections.
    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    /// Waits until `/devices` lists exactly `names` (sorted).
    async fn wait_devices(&self, names: &[&str]) {
        wait_for_async(
            Duration::from_secs(10),
            &format!("/devices to list {names:?}"),
            || async move {
                let (_, v) = self.get("/devices").await;
                let got: Vec<&str> = v["devices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_str().unwrap())
                    .collect();
                (got == names).then_some(())
            },
        )
        .await;
    }

    /// Value of a sample in `/bridge/metrics`.
    async fn own_metric(&self, sample: &str) -> f64 {
        let (_, v) = self.get("/bridge/metrics").await;
        let text = v.as_str().unwrap_or_default().to_string();
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{sample} missing in {text}"))
            .parse()
            .unwrap()
    }

    /// Waits until the sample `sample` of `/bridge/metrics` reaches `at_least`.
    async fn wait_metric(&self, sample: &str, at_least: f64, what: &str) {
        wait_for_async(Duration::from_secs(10), what, || async move {
            (self.own_metric(sample).await >= at_least).then_some(())
        })
        .await;
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

#[tokio::test]
async fn several_simulated_plugs_are_listed_by_alias_and_read_exactly() {
    let b = Bridge::start(&[]).await;
    let _sim = start_sim(
        &format!("{}/edge", b.ws),
        &["--count", "3", "--power", "100"],
    );
    b.wait_devices(&["edge-1", "edge-2", "edge-3"]).await;
    let (s, v) = b.get("/metrics/edge-2").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["metrics"]["power_total_watts"], 100.0);
    assert_eq!(v["metrics"]["power_voltage_volts"], 230.0);
    assert_eq!(v["metrics"]["power_current_amps"], 0.435);
    assert_eq!(v["metrics"]["power_switch_on"], 1.0);
    assert!(v["device_id"]
        .as_str()
        .unwrap()
        .starts_with("shellyplugsg3-"));
    let (s, _) = b.get("/metrics").await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn every_profile_reads_its_component_and_a_non_metering_switch_has_no_reading() {
    let b = Bridge::start(&[]).await;
    let _sims: Vec<Daemon> = [
        "plus-plug-s",
        "plug-us-gen4",
        "pm-mini",
        "pro-3em",
        "pro-em",
        "mini1-gen4",
    ]
    .iter()
    .map(|p| {
        start_sim(
            &format!("{}/{p}", b.ws),
            &["--profile", p, "--power", "-50", "--pf", "0.5"],
        )
    })
    .collect();
    b.wait_devices(&[
        "mini1-gen4",
        "plug-us-gen4",
        "plus-plug-s",
        "pm-mini",
        "pro-3em",
        "pro-em",
    ])
    .await;
    for (p, component) in [
        ("plus-plug-s", "switch:0"),
        ("plug-us-gen4", "switch:0"),
        ("pm-mini", "pm1:0"),
        ("pro-3em", "em:0"),
        ("pro-em", "em1:0"),
    ] {
        let (s, v) = b.get(&format!("/metrics/{p}")).await;
        assert_eq!(s, 200, "{p}: {v}");
        assert_eq!(v["component"], component, "{p}");
        assert_eq!(
            v["metrics"]["power_total_watts"], -50.0,
            "{p}: feed-in stays negative"
        );
        // Energy meters sign the power factor like the power; plugs report it unsigned.
        let pf = if p.starts_with("pro-") { -0.5 } else { 0.5 };
        assert_eq!(v["metrics"]["power_factor"], pf, "{p}");
    }
    let (_, v) = b.get("/metrics/plug-us-gen4").await;
    assert_eq!(v["metrics"]["power_voltage_volts"], 120.0);
    assert_eq!(v["metrics"]["power_frequency_hertz"], 60.0);
    let (s, v) = b.get("/metrics/mini1-gen4").await;
    assert_eq!(s, 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no reading"), "{v}");
}

#[tokio::test]
async fn relay_off_reads_zero_because_the_plug_is_asked_each_time() {
    let b = Bridge::start(&[]).await;
    let _sim = start_sim(
        &format!("{}/r", b.ws),
        &[
            "--relay",
            "off",
            "--notify-interval",
            "0",
            "--clock",
            "unsynced",
        ],
    );
    b.wait_devices(&["r"]).await;
    let (s, v) = b.get("/metrics/r").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["metrics"]["power_total_watts"], 0.0);
    assert_eq!(v["metrics"]["power_switch_on"], 0.0);
}

#[tokio::test]
async fn simulated_faults_map_to_504_and_500() {
    let b = Bridge::start(&["--rpc-timeout", "0.3"]).await;
    let _slow = start_sim(&format!("{}/slow", b.ws), &["--reply-delay-ms", "600"]);
    let _mute = start_sim(&format!("{}/mute", b.ws), &["--no-reply"]);
    let _err = start_sim(&format!("{}/err", b.ws), &["--error", "-105:Bad id=0"]);
    let _bad = start_sim(&format!("{}/bad", b.ws), &["--bad-json"]);
    b.wait_devices(&["bad", "err", "mute", "slow"]).await;
    let (s, v) = b.get("/metrics/bad").await;
    assert_eq!(s, 500, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    let (s, v) = b.get("/metrics/bad").await;
    assert_eq!(s, 200, "the next call works: {v}");
    for dev in ["slow", "mute"] {
        let (s, v) = b.get(&format!("/metrics/{dev}")).await;
        assert_eq!(s, 504, "{dev}: {v}");
    }
    let (s, v) = b.get("/metrics/err").await;
    assert_eq!(s, 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("-105"), "{v}");
    // The late answer of the slow plug does not confuse its next request.
    b.wait_metric(
        "shelly_bridge_late_replies_total",
        1.0,
        "the slow plug's late answer did not arrive",
    )
    .await;
    let (s, _) = b.get("/metrics/slow").await;
    assert_eq!(s, 504);
}

#[tokio::test]
async fn dropped_connection_and_bridge_restart_are_followed_by_redial() {
    let b = Bridge::start(&[]).await;
    let _sim = start_sim(
        &format!("{}/d", b.ws),
        &[
            "--drop-after",
            "0.4",
            "--backoff-min-ms",
            "100",
            "--backoff-max-ms",
            "200",
        ],
    );
    b.wait_devices(&["d"]).await;
    b.wait_metric(
        "shelly_bridge_plug_connections_total",
        3.0,
        "simulator did not re-dial",
    )
    .await;

    // Restart the bridge on the same ports: the plug comes back by itself.
    let ws_port = b.ws.rsplit(':').next().unwrap().to_string();
    let http_port = b.http.rsplit(':').next().unwrap().to_string();
    let sim2 = start_sim(
        &format!("{}/again", b.ws),
        &["--backoff-min-ms", "100", "--backoff-max-ms", "200"],
    );
    b.wait_devices(&["again", "d"]).await;
    b.stop().await;
    let b2 = Bridge::start_with(
        &[
            "--bind",
            "127.0.0.1",
            "--ws-port",
            &ws_port,
            "--http-port",
            &http_port,
        ],
        &[],
    )
    .await;
    b2.wait_devices(&["again"]).await;
    let (s, v): (u16, Value) = b2.get("/metrics/again").await;
    assert_eq!(s, 200, "{v}");
    drop(sim2);
}

/// Runs the simulator to its end with `args`: (exit code, stdout, stderr).
fn run_sim(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(SIM).args(args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn simulator_rejects_bad_options_with_exit_64() {
    let (code, _, stderr) = run_sim(&["--url", "http://x", "--run-for", "1"]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("ws://"), "{stderr}");
    let (code, _, stderr) = run_sim(&["--url", "ws://127.0.0.1:1/", "--profile", "toaster"]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("toaster"), "{stderr}");
}

#[test]
fn an_option_without_its_value_is_a_usage_error_that_names_it() {
    let (code, _, stderr) = run_sim(&["--url", "ws://127.0.0.1:1/", "--count"]);
    assert_eq!(code, Some(64));
    assert!(stderr.contains("--count: needs a value"), "{stderr}");
}

#[test]
fn help_lists_the_options() {
    let (code, help, _) = run_sim(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(help.starts_with("shelly-sim:"), "{help}");
    for flag in ["--url", "--profile", "--count", "--no-reply", "--run-for"] {
        assert!(help.contains(flag), "{flag} missing in {help}");
    }
}

#[tokio::test]
async fn plugs_dial_with_the_bridge_token_and_never_log_it() {
    const TOKEN: &str = "sim-test-token-0123456789";
    let b = Bridge::start(&["--ws-token", TOKEN]).await;
    let mut cmd = test_support::daemon_command(std::path::Path::new(SIM));
    cmd.args(["--url", &format!("{}/edge?token={TOKEN}", b.ws)])
        .args(["--count", "2", "--run-for", "60", "--jitter", "0"])
        .env("RUST_LOG", "debug");
    let with_token = Daemon::start("shelly-sim-edge", cmd, None);
    // Each numbered plug keeps the token in its URL's query.
    b.wait_devices(&["edge-1", "edge-2"]).await;
    let (s, v) = b.get("/metrics/edge-2").await;
    assert_eq!(s, 200, "{v}");
    // Without the token a plug is refused (401) and never listed.
    let _without = start_sim(&format!("{}/intruder", b.ws), &["--backoff-min-ms", "100"]);
    b.wait_metric(
        "shelly_bridge_ws_rejected_total{reason=\"token\"}",
        1.0,
        "the plug without the token is refused",
    )
    .await;
    b.wait_devices(&["edge-1", "edge-2"]).await;
    with_token.kill();
    let text = with_token.log();
    assert!(text.contains("Plug connected."), "{text}");
    assert!(
        !text.contains(TOKEN),
        "the simulator logged the token:\n{text}"
    );
}
