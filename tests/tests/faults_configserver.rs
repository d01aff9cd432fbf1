//! The Config Server failing while the exporter runs on a configuration it gave: down, slow,
//! answering 500, or answering garbage at the moment of `POST /reload`. Expected outcomes are
//! in docs/RELIABILITY.md ("Config Server"); the test asserts exactly that.
//!
//! Covered by the exporter's own tests and not repeated (exporter/tests/
//! config_server_runtime.rs, configserver.rs): start-up with the server down, slow or
//! answering garbage falls back to the local file; client time-outs, oversized bodies, push
//! retries.

use std::time::{Duration, Instant};

use e2e::proof::{corpus, exporter_config, start_exporter};
use test_support::fake_http::config_server;
use test_support::http::{get, request};
use test_support::{sample, scrape, FakeHttp, Reply, TempDir};

#[test]
fn config_server_failing_at_reload_falls_back_to_the_local_file_in_time() {
    let tmp = TempDir::new("config-server");
    let corpus = corpus("orin-agx-jp6.log");
    // The server's configuration enables jetson_ram_total_mb; the local file does not.
    let server_json = serde_json::json!({
        "device_type": "jetson_orin",
        "interval": 0.2,
        "port": 0,
        "reload_port": 0,
        "bind_address": "127.0.0.1",
        "reload_bind_address": "127.0.0.1",
        "tegrastats": {"replay": corpus.display().to_string()},
        "shelly": {"enabled": false},
        "metrics": {"jetson_ram_used_mb": true, "jetson_ram_total_mb": true},
    })
    .to_string();
    let serve = || config_server(Reply::json(200, server_json.clone()), Duration::ZERO);
    let server = FakeHttp::start(serve());
    let cfg = exporter_config(
        tmp.path(),
        &format!("replay: {}", corpus.display()),
        &format!(
            "shelly:\n  enabled: false\nconfig_server:\n  url: http://{}\n  timeout: 0.5\n\
             metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n",
            server.addr
        ),
    );
    let exp = start_exporter(&cfg, tmp.path());
    assert_eq!(
        exp.health()["config_source"],
        "server",
        "{}",
        exp.proc.log()
    );
    exp.wait_sample("jetson_ram_total_mb", Duration::from_secs(10));

    let reload = |what: &str| {
        let t = Instant::now();
        let r = request(exp.api, "POST", "/reload", &[], b"").unwrap();
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(2500),
            "{what}: POST /reload took {took:?} with a 0.5 s server timeout"
        );
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        (r.json()["source"].as_str().unwrap_or("").to_string(), took)
    };

    for (what, answer, delay) in [
        (
            "500",
            Reply::json(500, "{\"error\":\"boom\"}"),
            Duration::ZERO,
        ),
        (
            "garbage",
            Reply::json(200, "<html>\u{0}not a config"),
            Duration::ZERO,
        ),
        ("slow", Reply::json(200, "{}"), Duration::from_secs(3)),
    ] {
        server.set(config_server(answer, delay));
        let (source, took) = reload(what);
        assert_eq!(source, "local", "{what}: falls back to the local file");
        let list = get(exp.api, "/metrics/list").unwrap().json();
        assert_eq!(list["source"], "local", "{what}");
        // The local file applies: whatever config.yaml holds (the exporter keeps it as the
        // last configuration it ran, so it may be the server's).
        let on_disk: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
        let disk_metrics = serde_json::to_value(&on_disk["metrics"]).unwrap();
        assert_eq!(
            list["metrics"], disk_metrics,
            "{what}: the local file applies"
        );
        assert!(
            sample(&scrape(exp.metrics), "jetson_ram_used_mb").is_some(),
            "{what}"
        );
        eprintln!("Config Server {what}: reload fell back to local in {took:?}");
        // Back to serving: the server's configuration applies again.
        server.set(serve());
        let (source, _) = reload("serving again");
        assert_eq!(source, "server");
    }
    // Down: nothing listens any more.
    drop(server);
    let (source, took) = reload("down");
    assert_eq!(source, "local");
    eprintln!("Config Server down: reload fell back to local in {took:?}");
    assert!(
        exp.proc.log().contains("Config Server unavailable"),
        "{}",
        exp.proc.log()
    );
    assert_eq!(exp.health()["config_source"], "local");
}
