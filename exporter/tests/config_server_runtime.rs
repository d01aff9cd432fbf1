//! The exporter against a Config Server: fetched at start-up and on reload (falling back to
//! config.yaml when the server is down, slow or sends garbage) and pushed after every change.
//! The server is a small loopback HTTP server run by the test.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;
use edge_metrics_exporter::config;
use test_support::fake_http::config_server;

/// Config Server answers with `json`.
fn serve(json: String) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    config_server(Reply::json(200, json), Duration::ZERO)
}

/// Config Server answers that are not JSON.
fn garbage() -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    config_server(Reply::json(200, "<html>not json</html>"), Duration::ZERO)
}

/// The JSON a Config Server holds for this setup: the base config plus `extra`.
fn server_json(setup: &Setup, extra: &str) -> String {
    let cfg = config::parse(&setup.config_text(extra), "server").unwrap();
    config::to_json(&cfg).to_string()
}

fn server_section(url: &str, timeout: f64) -> String {
    format!("config_server:\n  url: {url}\n  timeout: {timeout}\n")
}

const LOCAL: &str = "metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n";

#[test]
fn start_up_and_reload_use_the_server_and_changes_are_pushed() {
    let setup = Setup::new(&orin_corpus(), LOCAL);
    let server = FakeHttp::start(garbage());
    setup.write_config(&format!("{LOCAL}{}", server_section(&server.url(), 2.0)));
    let remote = format!(
        "metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: true\n{}",
        server_section(&server.url(), 2.0)
    );
    server.set(serve(server_json(&setup, &remote)));
    let exp = setup.start();
    let health = exp.api("GET", "/health", &[], None).json();
    assert_eq!(health["config_source"], "server", "{health}");
    let list = exp.api("GET", "/metrics/list", &[], None).json();
    assert_eq!(list["source"], "server");
    assert_eq!(list["metrics"]["jetson_ram_total_mb"], true);
    // The device id is the hostname label; the local file keeps a copy.
    assert!(server
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == "/config/edge-01"));
    let local = config::parse(&std::fs::read_to_string(&setup.config_path).unwrap(), "c").unwrap();
    assert!(local.metrics["jetson_ram_total_mb"]);

    // A change is pushed in the background.
    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_used_mb": false}"#);
    assert_eq!(r.status, 200);
    // Discovery pushes too; wait for the push that carries the change.
    let pushed = wait_for(Duration::from_secs(5), "a PUT with the change", || {
        server.requests().into_iter().rev().find_map(|r| {
            let json: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            (r.method == "PUT"
                && r.path == "/config/edge-01"
                && json["metrics"]["jetson_ram_used_mb"] == false)
                .then_some(json)
        })
    });
    assert!(pushed.get("api_token").is_none());
    wait_for(Duration::from_secs(5), "pushes_total success", || {
        exp.scrape()
            .sample("edge_metrics_exporter_config_server_pushes_total{result=\"success\"}")
            .filter(|n| *n >= 1.0)
    });

    // Reload: the server's new device type applies.
    let xavier_json = server_json(&setup, &remote).replace("\"jetson_orin\"", "\"jetson_xavier\"");
    server.set(serve(xavier_json));
    let r = exp.api("POST", "/reload", &[], None).json();
    assert_eq!(r["source"], "server", "{r}");
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["collector"],
        "JetsonXavierCollector"
    );

    // Server sending garbage on reload: the local file is used, and said so.
    server.set(garbage());
    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["source"], "local");
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["config_source"],
        "local"
    );
    exp.proc.wait_line(
        &["Config Server unavailable; using the local config."],
        Duration::from_secs(2),
    );
}

#[test]
fn start_up_falls_back_to_the_local_file_when_the_server_is_down_slow_or_garbage() {
    // Down: a port nothing listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let slow = FakeHttp::start(garbage());
    let garbage = FakeHttp::start(garbage());
    for (what, url) in [
        ("down", format!("http://{closed}")),
        ("slow", slow.url()),
        ("garbage", garbage.url()),
    ] {
        let setup = Setup::new(&orin_corpus(), "");
        setup.write_config(&format!("{LOCAL}{}", server_section(&url, 0.5)));
        let late = Reply::json(200, server_json(&setup, ""));
        slow.set(config_server(late, Duration::from_secs(3)));
        let started = std::time::Instant::now();
        let exp = setup.start();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: start-up waited {:?}",
            started.elapsed()
        );
        let health = exp.api("GET", "/health", &[], None).json();
        assert_eq!(health["config_source"], "local", "{what}");
        let list = exp.api("GET", "/metrics/list", &[], None).json();
        assert_eq!(list["source"], "local", "{what}");
        assert_eq!(list["metrics"]["jetson_ram_used_mb"], true, "{what}");
        exp.proc.wait_line(
            &["Config Server unavailable; using the local config."],
            Duration::from_secs(2),
        );
        if what == "down" {
            // Pushes to a down server are counted as failures; the enable itself succeeds.
            assert_eq!(
                exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#)
                    .status,
                200
            );
            wait_for(Duration::from_secs(5), "a failed push", || {
                exp.scrape()
                    .sample("edge_metrics_exporter_config_server_pushes_total{result=\"error\"}")
                    .filter(|n| *n >= 1.0)
            });
        }
    }
}

#[test]
fn the_local_api_token_survives_a_config_from_the_server() {
    // The server never receives the token (pushes leave it out), so its copy has none; the
    // exporter keeps the local one rather than opening or locking the management API.
    let token = "a-long-local-secret";
    let local = format!("{LOCAL}api_token: {token}\n");
    let setup = Setup::new(&orin_corpus(), &local);
    let server = FakeHttp::start(garbage());
    setup.write_config(&format!("{local}{}", server_section(&server.url(), 2.0)));
    server.set(serve(server_json(
        &setup,
        &format!("{LOCAL}{}", server_section(&server.url(), 2.0)),
    )));
    let exp = setup.start();
    let bearer = format!("Bearer {token}");
    let list = exp.api("GET", "/metrics/list", &[("Authorization", &bearer)], None);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.json()["source"], "server");
    assert_eq!(exp.api("GET", "/metrics/list", &[], None).status, 401);
    // And after a reload from the server.
    let r = exp.api("POST", "/reload", &[("Authorization", &bearer)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(exp.api("GET", "/config", &[], None).status, 401);
    let kept = config::parse(&std::fs::read_to_string(&setup.config_path).unwrap(), "c").unwrap();
    assert_eq!(
        kept.api_token.as_deref(),
        Some(token),
        "the local copy keeps it"
    );
}

/// The value of header `name` (lower case) of a request the fake server recorded.
fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_config_server_token_goes_in_a_header_and_nowhere_else() {
    let token = "device-fleet-t0ken";
    let setup = Setup::new(&orin_corpus(), LOCAL);
    let server = FakeHttp::start(garbage());
    let section = server_section(&server.url(), 2.0);
    setup.write_config(&format!("{LOCAL}{section}  token: {token}\n"));
    // The server's copy, as the device's pushes leave it: without the token.
    server.set(serve(server_json(&setup, &format!("{LOCAL}{section}"))));
    let exp = setup.start();
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["config_source"],
        "server"
    );
    // Discovery pushes the config in the background.
    wait_for(Duration::from_secs(5), "a push", || {
        server
            .requests()
            .iter()
            .any(|r| r.method == "PUT")
            .then_some(())
    });
    let version = env!("CARGO_PKG_VERSION");
    let user_agent = format!("edge-metrics-exporter/{version}");
    let bearer = format!("Bearer {token}");
    for r in server.requests() {
        assert_eq!(header(&r, "authorization"), Some(bearer.as_str()), "{r:?}");
        assert_eq!(header(&r, "user-agent"), Some(user_agent.as_str()), "{r:?}");
        assert_eq!(header(&r, "x-edge-metrics-version"), Some(version), "{r:?}");
        assert_eq!(
            header(&r, "x-edge-metrics-device-type"),
            Some("jetson_orin"),
            "{r:?}"
        );
        assert!(
            !r.body.contains(token),
            "a push carried the token: {}",
            r.body
        );
    }
    // GET /config shows the section without the token.
    let shown = exp.api("GET", "/config", &[], None);
    assert_eq!(shown.status, 200);
    assert!(!shown.body.contains(token), "{}", shown.body);
    assert_eq!(shown.json()["config_server"]["url"], server.url());
    // The server's copy replaced the local file, which still has the token.
    let kept = config::parse(&std::fs::read_to_string(&setup.config_path).unwrap(), "c").unwrap();
    assert_eq!(kept.config_server.token.as_deref(), Some(token));

    // The server switches the device to Xavier: the reload's fetch still sends the token, and
    // the requests after it say the new device type.
    let xavier = server_json(&setup, &format!("{LOCAL}{section}"))
        .replace("\"jetson_orin\"", "\"jetson_xavier\"");
    server.set(serve(xavier));
    for _ in 0..2 {
        let r = exp.api("POST", "/reload", &[], None).json();
        assert_eq!(r["source"], "server", "{r}");
    }
    let gets: Vec<Request> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    let last = gets.last().unwrap();
    assert_eq!(header(last, "authorization"), Some(bearer.as_str()));
    assert_eq!(
        header(last, "x-edge-metrics-device-type"),
        Some("jetson_xavier")
    );
    let kept = config::parse(&std::fs::read_to_string(&setup.config_path).unwrap(), "c").unwrap();
    assert_eq!(kept.device_type, config::DeviceType::JetsonXavier);
    assert_eq!(kept.config_server.token.as_deref(), Some(token));
    // Nor does the log show it.
    assert!(!exp.proc.log().contains(token), "{}", exp.proc.log());
}

#[test]
fn the_token_comes_from_the_environment_unless_the_file_has_one() {
    let setup = Setup::new(&orin_corpus(), LOCAL);
    let server = FakeHttp::start(garbage());
    let section = server_section(&server.url(), 2.0);
    setup.write_config(&format!("{LOCAL}{section}"));
    server.set(serve(server_json(&setup, &format!("{LOCAL}{section}"))));
    let last_bearer = || {
        let requests = server.requests();
        let r = requests.last().expect("a request");
        header(r, "authorization").map(str::to_string)
    };
    {
        let _exp = setup.start_with_env(&[("CONFIG_SERVER_TOKEN", "from-env")]);
        assert_eq!(last_bearer().as_deref(), Some("Bearer from-env"));
    }
    setup.write_config(&format!("{LOCAL}{section}  token: from-file\n"));
    {
        let _exp = setup.start_with_env(&[("CONFIG_SERVER_TOKEN", "from-env")]);
        assert_eq!(last_bearer().as_deref(), Some("Bearer from-file"));
    }
    // A token that no header can carry stops the start, and is not shown.
    let mut cmd = common::command();
    cmd.arg("--config")
        .arg(&setup.config_path)
        .env("CONFIG_SERVER_TOKEN", "two words");
    setup.write_config(&format!("{LOCAL}{section}"));
    let out = run_to_end(&mut cmd);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("environment: CONFIG_SERVER_TOKEN must be one word of visible ASCII"),
        "{stderr}"
    );
    assert!(!stderr.contains("two words"), "{stderr}");
}

#[test]
fn a_ca_file_that_cannot_be_used_stops_the_start_with_exit_64() {
    let setup = Setup::new(&orin_corpus(), "");
    let missing = setup.dir.path().join("no-such-ca.pem");
    setup.write_config(&format!(
        "config_server:\n  url: https://127.0.0.1:9\n  ca_file: {}\n",
        missing.display()
    ));
    let mut cmd = common::command();
    cmd.arg("--config").arg(&setup.config_path);
    let out = run_to_end(&mut cmd);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "config_server.ca_file: Config Server CA file {} cannot be read: No such file or \
             directory (os error 2) (set config_server.ca_file to a PEM file with the \
             certificate of the CA that signed the Config Server's certificate, or remove it)",
            missing.display()
        ),
        "{stderr}"
    );
}

#[test]
fn an_enable_is_pushed_by_itself() {
    // One line, replayed: every name is discovered in the first cycle, so no later discovery
    // push can carry the change; only the enable's own push can.
    let dir = TempDir::new("one-line");
    let corpus = dir.join("one.log");
    let line = std::fs::read_to_string(orin_corpus()).unwrap();
    std::fs::write(&corpus, format!("{}\n", line.lines().next().unwrap())).unwrap();
    let setup = Setup::new(&corpus, LOCAL);
    let server = FakeHttp::start(config_server(
        Reply::json(404, r#"{"error":"none"}"#),
        Duration::ZERO,
    ));
    setup.write_config(&format!("{LOCAL}{}", server_section(&server.url(), 2.0)));
    let exp = setup.start();
    // The discovery push comes first.
    wait_for(Duration::from_secs(10), "the discovery push", || {
        server
            .requests()
            .iter()
            .any(|r| r.method == "PUT")
            .then_some(())
    });
    let before = server.requests().len();
    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for(Duration::from_secs(5), "a PUT carrying the enable", || {
        server.requests()[before..].iter().find_map(|r| {
            let json: serde_json::Value = serde_json::from_str(&r.body).ok()?;
            (r.method == "PUT" && json["metrics"]["jetson_ram_total_mb"] == true).then_some(())
        })
    });
}
