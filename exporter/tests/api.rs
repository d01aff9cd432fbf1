//! Management API end to end: every endpoint, every error, config.yaml on disk, reloads.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use edge_metrics_exporter::config;

const BASE: &str = "metrics:\n  jetson_ram_used_mb: true\n  jetson_ram_total_mb: false\n";

fn on_disk(setup: &Setup) -> config::Config {
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    config::parse(&text, "config.yaml").unwrap()
}

fn healthy(exp: &Exporter) {
    wait_for(Duration::from_secs(10), "healthy", || {
        (exp.api("GET", "/health", &[], None).json()["status"] == "healthy").then_some(())
    });
}

#[test]
fn endpoints_answer_field_for_field() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start();
    healthy(&exp);
    let h = exp.api("GET", "/health", &[], None);
    assert_eq!(h.status, 200);
    assert!(h
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let h = h.json();
    assert_eq!(h["device_type"], "jetson_orin");
    assert_eq!(h["collector"], "JetsonOrinCollector");
    assert_eq!(h["config_source"], "local");
    assert_eq!(h["metrics_count"], 1);
    assert!(h.get("reason").is_none());

    let c = exp.api("GET", "/config", &[], None).json();
    assert_eq!(c["device_type"], "jetson_orin");
    assert_eq!(c["interval"], serde_json::json!(1));
    assert!(
        c["interval"].is_u64(),
        "interval must echo as 1, not 1.0: {c}"
    );
    assert_eq!(c["port"], 0);
    assert_eq!(c["reload_port"], 0);
    assert_eq!(c["shelly"]["enabled"], false);
    assert_eq!(c["shelly"]["server_url"], "http://localhost:8766");
    assert_eq!(c["metrics"]["jetson_ram_used_mb"], true);

    let l = exp.api("GET", "/metrics/list", &[], None).json();
    assert_eq!(l["device_type"], "jetson_orin");
    assert_eq!(l["source"], "local");
    assert_eq!(l["metrics"]["jetson_ram_total_mb"], false);

    let r = exp.post_json(
        "/metrics/enable",
        r#"{"jetson_ram_total_mb": true, "jetson_ram_used_mb": false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "success", "updated": 2,
            "metrics": {"jetson_ram_total_mb": true, "jetson_ram_used_mb": false}})
    );
    // Saved before the reply.
    let saved = on_disk(&setup);
    assert!(saved.metrics["jetson_ram_total_mb"]);
    assert!(!saved.metrics["jetson_ram_used_mb"]);
    assert_eq!(
        exp.api("GET", "/metrics/list", &[], None).json()["metrics"]["jetson_ram_total_mb"],
        true
    );

    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "success", "source": "local", "metrics_count": 1})
    );
}

#[test]
fn bad_enable_requests_change_nothing() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start();
    healthy(&exp);
    let before_file = std::fs::read_to_string(&setup.config_path).unwrap();
    let before_list = exp.api("GET", "/metrics/list", &[], None).json();

    let r = exp.post_json(
        "/metrics/enable",
        r#"{"jetson_ram_total_mb": true, "invalid_metric": true}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": "Invalid metric name: invalid_metric"})
    );

    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": 1}"#);
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("expected true or false"),
        "{}",
        r.body
    );

    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": tru"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("Malformed JSON body"));

    let r = exp.post_json("/metrics/enable", r#"["jetson_ram_total_mb"]"#);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("JSON object"));

    let r = exp.api(
        "POST",
        "/metrics/enable",
        &[("Content-Type", "text/plain")],
        Some(r#"{"jetson_ram_total_mb": true}"#),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("Content-Type must be application/json"));

    let r = exp.api(
        "POST",
        "/metrics/enable",
        &[],
        Some(r#"{"jetson_ram_total_mb": true}"#),
    );
    assert_eq!(r.status, 400);

    let big = format!(
        r#"{{"jetson_ram_total_mb": true, "pad": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let r = exp.post_json("/metrics/enable", &big);
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("64 KiB"));

    let r = exp.api("GET", "/no/such/path", &[], None);
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());

    assert_eq!(
        std::fs::read_to_string(&setup.config_path).unwrap(),
        before_file
    );
    assert_eq!(
        exp.api("GET", "/metrics/list", &[], None).json(),
        before_list
    );
    assert!(exp
        .scrape()
        .sample("edge_metrics_exporter_config_writes_total{result=\"error\"}")
        .is_some());
}

/// Makes `dir` read-only for root too: a read-only bind mount, else `chattr +i`.
/// Returns how to undo it, or `None` when neither works here.
fn make_read_only(dir: &std::path::Path) -> Option<Box<dyn FnOnce()>> {
    use std::process::Command;
    let d = dir.to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&["mount", "--bind", &d, &d]) {
        if ok(&["mount", "-o", "remount,bind,ro", &d]) {
            return Some(Box::new(move || {
                let _ = Command::new("umount").arg(&d).status();
            }));
        }
        let _ = Command::new("umount").arg(&d).status();
    }
    if ok(&["chattr", "+i", &d]) {
        return Some(Box::new(move || {
            let _ = Command::new("chattr").args(["-i", &d]).status();
        }));
    }
    None
}

#[test]
fn a_failed_write_answers_500_and_changes_nothing() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start();
    healthy(&exp);
    // Let discovery settle so no background write is pending.
    wait_for(Duration::from_secs(5), "settled config", || {
        let c = on_disk(&setup);
        c.metrics.contains_key("jetson_ram_total_mb").then_some(())
    });
    let before = std::fs::read_to_string(&setup.config_path).unwrap();
    let Some(undo) = test_support::require::capability(
        "read-only-mount",
        make_read_only(setup.dir.path()),
        "cannot make a directory read-only: needs root for `mount --bind` + \
         `mount -o remount,bind,ro` or for `chattr +i`; run the tests as root",
    ) else {
        return;
    };
    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#);
    let list = exp.api("GET", "/metrics/list", &[], None).json();
    let after = std::fs::read_to_string(&setup.config_path).unwrap();
    undo();
    assert_eq!(r.status, 500, "{}", r.body);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("Could not save the configuration") && msg.contains("config.yaml"),
        "{msg}"
    );
    assert_eq!(after, before);
    assert_eq!(list["metrics"]["jetson_ram_total_mb"], false);
    // Writable again: the same request now succeeds.
    assert_eq!(
        exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#)
            .status,
        200
    );
}

#[test]
fn kill_9_during_a_burst_of_enables_leaves_a_valid_config() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start();
    healthy(&exp);
    let api = exp.api;
    let applied = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let applied = Arc::clone(&applied);
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..200 {
                    let body = format!(
                        r#"{{"jetson_ram_used_mb": {}, "jetson_ram_total_mb": {}}}"#,
                        (i + w) % 2 == 0,
                        i % 3 == 0
                    );
                    match post_json(api, "/metrics/enable", &body) {
                        Ok(r) if r.status == 200 => {
                            ok += 1;
                            applied.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => panic!("unexpected answer {} {}", r.status, r.body),
                        Err(_) => break, // the exporter is gone
                    }
                }
                ok
            })
        })
        .collect();
    // Kill it mid-burst: once a few enables have been applied, with many more under way.
    wait_for(Duration::from_secs(10), "the first enables applied", || {
        (applied.load(Ordering::Relaxed) >= 10).then_some(())
    });
    exp.proc.signal("KILL");
    assert!(exp.proc.wait_exit(Duration::from_secs(5)).is_some());
    let done: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(done > 0, "no enable went through before the kill");
    let cfg = on_disk(&setup);
    assert!(cfg.metrics.contains_key("jetson_ram_used_mb"));
    assert!(cfg.metrics.contains_key("jetson_ram_total_mb"));
}

#[test]
fn reload_refuses_a_broken_file_and_applies_a_good_one() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start();
    healthy(&exp);
    let before = exp.api("GET", "/config", &[], None).json();
    std::fs::write(
        &setup.config_path,
        "device_type: jetson_xavier\ninterval: [oops\n",
    )
    .unwrap();
    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("config.yaml"),
        "the error names the file: {msg}"
    );
    assert_eq!(exp.api("GET", "/config", &[], None).json(), before);
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["collector"],
        "JetsonOrinCollector"
    );
    assert!(exp
        .scrape()
        .sample("jetson_ram_used_mb{device_type=\"jetson_orin\",hostname=\"edge-01\"}")
        .is_some());

    // A good file: the device type changes the collector and the labels at once.
    let text = setup
        .config_text(BASE)
        .replace("device_type: jetson_orin", "device_type: jetson_xavier");
    std::fs::write(&setup.config_path, text).unwrap();
    let r = exp.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        exp.api("GET", "/health", &[], None).json()["collector"],
        "JetsonXavierCollector"
    );
    wait_for(Duration::from_secs(5), "xavier labels", || {
        exp.scrape()
            .sample("jetson_ram_used_mb{device_type=\"jetson_xavier\",hostname=\"edge-01\"}")
    });
}

#[test]
fn sighup_reloads_and_port_changes_only_warn() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start();
    healthy(&exp);
    let text = setup
        .config_text("metrics:\n  jetson_ram_used_mb: false\n  jetson_ram_total_mb: true\n")
        .replace("port: 0\nreload_port: 0", "port: 9103\nreload_port: 9104");
    std::fs::write(&setup.config_path, text).unwrap();
    exp.proc.signal("HUP");
    wait_for(Duration::from_secs(5), "reloaded metrics", || {
        let l = exp.api("GET", "/metrics/list", &[], None).json();
        (l["metrics"]["jetson_ram_total_mb"] == true).then_some(())
    });
    exp.proc.wait_line(
        &["⚠️  Port change detected (0 → 9103) but cannot be applied."],
        Duration::from_secs(2),
    );
    exp.proc.wait_line(
        &["⚠️  Port change detected (0 → 9104) but cannot be applied."],
        Duration::from_secs(2),
    );
    exp.proc.wait_line(
        &["Please restart the service: sudo systemctl restart edge-metrics-exporter"],
        Duration::from_secs(2),
    );
    // Still serving on the old ports.
    assert_eq!(exp.scrape().status, 200);
    assert_eq!(exp.api("GET", "/config", &[], None).json()["port"], 9103);
}

#[test]
fn bearer_token_guards_everything_but_health() {
    let setup = Setup::new(&orin_corpus(), BASE);
    let exp = setup.start_with_env(&[("EDGE_METRICS_API_TOKEN", "s3cret")]);
    assert_eq!(exp.api("GET", "/health", &[], None).status, 200);
    for (method, path) in [
        ("GET", "/config"),
        ("GET", "/metrics/list"),
        ("POST", "/reload"),
    ] {
        let r = exp.api(method, path, &[], None);
        assert_eq!(r.status, 401, "{method} {path}");
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"));
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        let r = exp.api(method, path, &[("Authorization", "Bearer wrong")], None);
        assert_eq!(r.status, 401, "{method} {path}");
        let r = exp.api(method, path, &[("Authorization", "Bearer s3cret")], None);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    }
    let r = exp.post_json("/metrics/enable", r#"{"jetson_ram_total_mb": true}"#);
    assert_eq!(r.status, 401);
    assert!(!on_disk(&setup).metrics["jetson_ram_total_mb"]);
    let r = exp.api(
        "POST",
        "/metrics/enable",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer s3cret"),
        ],
        Some(r#"{"jetson_ram_total_mb": true}"#),
    );
    assert_eq!(r.status, 200);
}
