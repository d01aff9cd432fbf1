//! The real binary on 127.0.0.1: the exporter's contract (404, PUT 201 then 200, the merged
//! GET), If-Match (428, 412), history and revert, tokens (401, 403), the start-up refusals
//! (exit 64, exit 1), `/health`, `/metrics`, the `healthcheck` subcommand, and `kill -9`
//! during a burst of PUTs on SQLite and on PostgreSQL: every acknowledged write is there
//! after a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use test_support::http;
use test_support::pg::Cluster;
use test_support::TempDir;

mod common;

use common::{assert_status, command, orin, Server, DEVICE_SECRET, OPERATOR, OPERATOR_SECRET};

#[test]
fn the_exporter_contract_404_put_201_then_200_and_the_merged_get() {
    let s = Server::sqlite(&[]);
    let r = s.get("/config/orin-01");
    assert_status(&r, 404, "unknown device");
    assert!(
        r.json()["error"].as_str().unwrap().contains("orin-01"),
        "{}",
        r.body
    );

    let r = s.put("/config/orin-01", &orin(json!({"gpu": true})), &[]);
    assert_status(&r, 201, "first push");
    let r = s.put(
        "/config/orin-01",
        &orin(json!({"gpu": true, "ram": true})),
        &[],
    );
    assert_status(&r, 200, "second push");
    assert_eq!(r.json()["changed"], true);

    // An operator sets a fleet default and one for Orins; the device's GET merges them.
    assert_status(
        &s.put(
            "/defaults",
            &json!({"interval": 5, "metrics": {"temp": true}}),
            &[],
        ),
        201,
        "fleet defaults",
    );
    assert_status(
        &s.put(
            "/defaults/jetson_orin",
            &json!({"metrics": {"power": true}}),
            &[],
        ),
        201,
        "orin defaults",
    );
    let r = s.get("/config/orin-01");
    assert_status(&r, 200, "merged");
    let etag = r.header("etag").expect("an ETag").to_string();
    assert!(etag.starts_with("\"v") && etag.ends_with('"'), "{etag}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let config = r.json();
    assert_eq!(config["device_type"], "jetson_orin");
    assert_eq!(config["interval"], 5);
    assert_eq!(
        config["metrics"],
        json!({"gpu": true, "ram": true, "temp": true, "power": true})
    );
    edge_metrics_config::from_json(config).expect("the exporter accepts the merged config");

    // A device id arrives percent-encoded as one segment, as the exporter's client sends it.
    assert_status(
        &s.put("/config/rack%201%2Forin", &orin(json!({})), &[]),
        201,
        "encoded id",
    );
    let list = s.get("/devices").json();
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["orin-01", "rack 1/orin"]);
}

#[test]
fn an_invalid_config_is_400_with_the_exporters_message_and_not_stored() {
    let s = Server::sqlite(&[]);
    let r = s.put(
        "/config/orin-01",
        &json!({"device_type": "jetson_orin", "interval": 0}),
        &[],
    );
    assert_status(&r, 400, "interval 0");
    let message = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("Config Server: interval must be at least 0.1, got 0"),
        "{message}"
    );
    assert_status(&s.get("/config/orin-01"), 404, "nothing stored");
    let r = s.request("PUT", "/config/orin-01", &[], "{not json");
    assert_status(&r, 400, "not JSON");
    assert!(r.json()["error"].as_str().unwrap().contains("not JSON"));
    let r = s.get("/defaults/jetson_tx2");
    assert_status(&r, 404, "unknown type");
    let r = s.get("/nowhere");
    assert_status(&r, 404, "unknown path");
    let r = s.request("POST", "/config/orin-01", &[], "");
    assert_status(&r, 405, "wrong method");
}

#[test]
fn operator_writes_need_a_current_if_match() {
    let s = Server::sqlite(&[]);
    let r = s.get("/defaults");
    assert_status(&r, 200, "absent defaults");
    assert_eq!((r.json(), r.header("etag")), (json!({}), Some("\"v0\"")));
    let r = s.put("/defaults", &json!({"interval": 2}), &[]);
    assert_status(&r, 201, "create");
    let v1 = r.header("etag").unwrap().to_string();
    let r = s.put("/defaults", &json!({"interval": 3}), &[]);
    assert_status(&r, 428, "no If-Match on an existing document");
    assert_eq!(r.header("etag"), Some(v1.as_str()));
    let r = s.put("/defaults", &json!({"interval": 3}), &[("If-Match", &v1)]);
    assert_status(&r, 200, "current If-Match");
    let v2 = r.header("etag").unwrap().to_string();
    assert_ne!(v1, v2);
    let r = s.put("/defaults", &json!({"interval": 4}), &[("If-Match", &v1)]);
    assert_status(&r, 412, "stale If-Match");
    assert!(
        r.json()["error"].as_str().unwrap().contains(&v2),
        "{}",
        r.body
    );
    let r = s.get("/defaults");
    assert_eq!(r.json(), json!({"interval": 3}));
    assert_eq!(r.header("etag"), Some(v2.as_str()));
    // A device push that names a stale merged version is refused too.
    s.put("/config/orin-01", &orin(json!({})), &[]);
    let tag = s.get("/config/orin-01").header("etag").unwrap().to_string();
    s.put("/defaults", &json!({"interval": 5}), &[("If-Match", &v2)]);
    let r = s.put("/config/orin-01", &orin(json!({})), &[("If-Match", &tag)]);
    assert_status(&r, 412, "stale push");
}

#[test]
fn history_shows_each_change_and_revert_restores_one() {
    let s = Server::sqlite(&[]);
    s.put("/config/orin-01", &orin(json!({"gpu": true})), &[]);
    let layer = s.get("/config/orin-01/layer");
    assert_status(&layer, 200, "layer");
    assert_eq!(
        layer.json(),
        json!({"device_type": "jetson_orin", "metrics": {"gpu": true}})
    );
    let v1 = layer.header("etag").unwrap().to_string();
    let r = s.put(
        "/config/orin-01/layer",
        &json!({"device_type": "jetson_orin", "metrics": {"gpu": false}}),
        &[("If-Match", &v1)],
    );
    assert_status(&r, 200, "operator layer write");
    let v2 = r.header("etag").unwrap().to_string();

    let r = s.get("/config/orin-01/history");
    assert_status(&r, 200, "history");
    let h = r.json();
    let entries = h["history"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["by"], "anonymous");
    assert_eq!(entries[0]["action"], "put");
    assert_eq!(
        entries[0]["changes"],
        json!([{"key": "metrics.gpu", "path": ["metrics", "gpu"], "before": true, "after": false}])
    );
    assert_eq!(entries[1]["by"], "device");
    assert_eq!(entries[1]["action"], "push");
    assert!(entries[0]["at"].as_str().unwrap().ends_with('Z'));
    let first = entries[1]["version"].as_i64().unwrap();

    let r = s.request(
        "POST",
        "/config/orin-01/revert",
        &[("Content-Type", "application/json")],
        &json!({"version": first}).to_string(),
    );
    assert_status(&r, 428, "revert without If-Match");
    let r = s.request(
        "POST",
        "/config/orin-01/revert",
        &[("If-Match", &v2)],
        &json!({"version": first}).to_string(),
    );
    assert_status(&r, 200, "revert");
    assert_eq!(r.json()["reverted_to"], first);
    assert_eq!(s.get("/config/orin-01").json()["metrics"]["gpu"], true);
    let h = s.get("/config/orin-01/history").json();
    assert_eq!(h["history"][0]["action"], "revert");
    assert_eq!(h["history"][0]["reverted_to"], first);
    let r = s.get("/config/orin-01/history?limit=1&before=99999");
    assert_eq!(r.json()["count"], 1);
    assert_status(&s.get("/config/orin-01/history?limit=x"), 400, "bad query");
    // The defaults have histories of their own.
    s.put("/defaults/jetson_nano", &json!({"interval": 2}), &[]);
    let h = s.get("/defaults/jetson_nano/history").json();
    assert_eq!(h["document"], "type:jetson_nano");
    assert_eq!(h["count"], 1);
    assert_eq!(s.get("/defaults/history").json()["count"], 0);
}

#[test]
fn tokens_refuse_strangers_and_keep_devices_to_their_own_routes() {
    let s = Server::sqlite(&[
        ("CONFIG_SERVER_OPERATOR_TOKEN", OPERATOR),
        ("CONFIG_SERVER_DEVICE_TOKEN", DEVICE_SECRET),
    ]);
    let op = format!("Bearer {OPERATOR_SECRET}");
    let dev = format!("Bearer {DEVICE_SECRET}");
    let r = s.get("/config/orin-01");
    assert_status(&r, 401, "no token");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    let r = s.request(
        "GET",
        "/config/orin-01",
        &[("Authorization", "Bearer nope")],
        "",
    );
    assert_status(&r, 401, "a wrong token");
    let r = s.put(
        "/config/orin-01",
        &orin(json!({})),
        &[("Authorization", &dev)],
    );
    assert_status(&r, 201, "the device token pushes");
    let r = s.request("GET", "/config/orin-01", &[("Authorization", &dev)], "");
    assert_status(&r, 200, "the device token fetches");
    for path in [
        "/defaults",
        "/devices",
        "/config/orin-01/history",
        "/config/orin-01/layer",
    ] {
        let r = s.request("GET", path, &[("Authorization", &dev)], "");
        assert_status(&r, 403, path);
        let r = s.request("GET", path, &[], "");
        assert_status(&r, 401, path);
        let r = s.request("GET", path, &[("Authorization", &op)], "");
        assert_status(&r, 200, path);
    }
    // The operator's name is who the history records.
    let r = s.put(
        "/defaults",
        &json!({"interval": 2}),
        &[("Authorization", &op)],
    );
    assert_status(&r, 201, "operator write");
    let h = s.request("GET", "/defaults/history", &[("Authorization", &op)], "");
    assert_eq!(h.json()["history"][0]["by"], "alice");
    // A device's own token: that device only, and the fleet token stops working for it.
    let r = s.request(
        "POST",
        "/devices/orin-01/token",
        &[("Authorization", &op)],
        "",
    );
    assert_status(&r, 201, "make a device token");
    let own = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = s.request("GET", "/config/orin-01", &[("Authorization", &own)], "");
    assert_status(&r, 200, "own token");
    let r = s.request("GET", "/config/orin-01", &[("Authorization", &dev)], "");
    assert_status(&r, 403, "fleet token for a device with its own");
    let r = s.request("GET", "/config/orin-02", &[("Authorization", &own)], "");
    assert_status(&r, 401, "own token for another device");
    let r = s.request("GET", "/devices", &[("Authorization", &own)], "");
    assert_status(&r, 401, "own token on an operator route");
    // /health and /metrics stay open for probes and Prometheus.
    assert_status(&s.get("/health"), 200, "health");
    assert_status(&s.get("/metrics"), 200, "metrics");
}

#[test]
fn devices_show_what_each_device_said_and_did() {
    let s = Server::sqlite(&[]);
    let seen = [
        ("X-Edge-Metrics-Version", "0.4.2"),
        ("X-Edge-Metrics-Device-Type", "jetson_nano"),
    ];
    s.put(
        "/config/nano-01",
        &json!({"device_type": "jetson_nano", "metrics": {"a": true, "b": false}}),
        &seen,
    );
    let r = s.request("GET", "/config/nano-01", &seen, "");
    let version = r.header("etag").unwrap().trim_matches('"')[1..]
        .parse::<i64>()
        .unwrap();
    // Without the headers (an older exporter) the request still counts.
    s.put("/config/orin-01", &orin(json!({})), &[]);
    let list = s.get("/devices").json();
    assert_eq!(list["count"], 2);
    assert_eq!(list["seen_window_seconds"], 300);
    let nano = &list["devices"][0];
    assert_eq!(nano["device"], "nano-01");
    assert_eq!(nano["device_type"], "jetson_nano");
    assert_eq!(nano["exporter_version"], "0.4.2");
    assert_eq!(nano["enabled_metrics"], 1);
    assert_eq!(nano["seen_recently"], true);
    assert_eq!(nano["fetched_version"], version);
    assert_eq!(nano["up_to_date"], true);
    assert_eq!(
        nano["layer"],
        json!({"device_type": "jetson_nano", "metrics": {"a": true}})
    );
    for key in ["last_fetch", "last_push", "last_seen", "first_seen"] {
        assert!(nano[key].as_str().unwrap().ends_with('Z'), "{key}: {nano}");
    }
    let orin = &list["devices"][1];
    assert_eq!(orin["device_type"], "jetson_orin");
    assert_eq!(orin["exporter_version"], Value::Null);
    assert_eq!(orin["last_fetch"], Value::Null);
    assert_eq!(orin["up_to_date"], false);
}

/// `GET /devices` pages: `limit`, the `next`/`prev` cursors and the `Link` header that carry
/// the filters along, the total on every page, and a 400 that names what is wrong.
#[test]
fn devices_are_listed_a_page_at_a_time() {
    let s = Server::sqlite(&[]);
    for i in 1..=5 {
        let t = if i % 2 == 1 {
            "jetson_orin"
        } else {
            "jetson_nano"
        };
        let r = s.put(
            &format!("/config/dev-{i}"),
            &json!({ "device_type": t }),
            &[("X-Edge-Metrics-Device-Type", t)],
        );
        assert_status(&r, 201, "a push");
    }
    let names = |v: &Value| -> Vec<String> {
        v["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["device"].as_str().unwrap().to_string())
            .collect()
    };
    // Without a query: everything up to the default page size, as before, and no next.
    let all = s.get("/devices");
    assert_status(&all, 200, "the first page");
    let all = all.json();
    assert_eq!(
        (all["count"].as_u64(), all["total"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(
        (all["next"].clone(), all["prev"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(all["limit"], 100);

    let r = s.get("/devices?limit=2");
    let p1 = r.json();
    assert_eq!(names(&p1), ["dev-1", "dev-2"]);
    assert_eq!(
        (p1["count"].as_u64(), p1["total"].as_u64()),
        (Some(2), Some(5))
    );
    let next = p1["next"].as_str().expect("a next cursor").to_string();
    assert_eq!(
        r.header("link"),
        Some(format!("</devices?limit=2&after={next}>; rel=\"next\"").as_str())
    );
    let r = s.get(&format!("/devices?limit=2&after={next}"));
    let p2 = r.json();
    assert_eq!(names(&p2), ["dev-3", "dev-4"]);
    let link = r.header("link").expect("a Link header").to_string();
    assert!(
        link.contains("rel=\"next\"") && link.contains("rel=\"prev\""),
        "{link}"
    );
    // Following the Link header's next as it is gives the last page.
    let next_path = link
        .split(", ")
        .find(|l| l.ends_with("rel=\"next\""))
        .and_then(|l| l.split(['<', '>']).nth(1))
        .unwrap()
        .to_string();
    let p3 = s.get(&next_path).json();
    assert_eq!(names(&p3), ["dev-5"]);
    assert_eq!(p3["next"], Value::Null);
    let back = s
        .get(&format!(
            "/devices?limit=2&before={}",
            p3["prev"].as_str().unwrap()
        ))
        .json();
    assert_eq!(names(&back), ["dev-3", "dev-4"]);

    // Filters: the total is the filter's, and the links keep the filter.
    let r = s.get("/devices?device_type=jetson_orin&limit=1");
    let o = r.json();
    assert_eq!(names(&o), ["dev-1"]);
    assert_eq!(o["total"], 3);
    assert!(
        r.header("link")
            .unwrap()
            .starts_with("</devices?limit=1&device_type=jetson_orin&after="),
        "{:?}",
        r.header("link")
    );
    let recent = s.get("/devices?seen=recent").json();
    assert_eq!(recent["total"], 5);
    let quiet = s.get("/devices?seen=quiet").json();
    assert_eq!(
        (quiet["total"].as_u64(), quiet["count"].as_u64()),
        (Some(0), Some(0))
    );

    for (query, says) in [
        ("limit=0", "limit must be a whole number from 1 to 1000"),
        ("limit=5000", "from 1 to 1000"),
        ("after=zz", "is not one this server made"),
        ("device_type=tx2", "device_type must be one of"),
        ("seen=yesterday", "seen must be recent or quiet"),
        ("page=2", "unknown query parameter"),
    ] {
        let r = s.get(&format!("/devices?{query}"));
        assert_status(&r, 400, query);
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(error.contains(says), "{query}: {error}");
    }
}

#[test]
fn health_metrics_and_the_healthcheck_subcommand() {
    let s = Server::sqlite(&[]);
    let r = s.get("/health");
    assert_status(&r, 200, "health");
    assert_eq!(r.json()["status"], "healthy");
    assert_eq!(r.json()["database"], "sqlite");
    s.get("/config/nobody");
    s.put("/config/orin-01", &orin(json!({})), &[]);
    let m = s.get("/metrics");
    assert_status(&m, 200, "metrics");
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(
        m.sample(
            "edge_metrics_config_server_requests_total{route=\"GET /config/{device}\",code=\"404\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        m.sample(
            "edge_metrics_config_server_requests_total{route=\"PUT /config/{device}\",code=\"201\"}"
        ),
        Some(1.0)
    );
    // Both devices asked within the last 5 minutes (the 404 counts: it was seen).
    assert_eq!(
        m.sample("edge_metrics_config_server_devices_seen"),
        Some(2.0)
    );
    assert_eq!(
        m.sample("edge_metrics_config_server_storage_errors_total"),
        Some(0.0)
    );
    for family in ["requests_total", "devices_seen", "storage_errors_total"] {
        assert!(
            m.body
                .contains(&format!("# TYPE edge_metrics_config_server_{family} ")),
            "{family}"
        );
    }
    let out = test_support::run_to_end(
        &mut command(&["healthcheck", "--listen", &s.addr.to_string()], &[]),
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{out:?}");
    s.daemon.kill();
    let out = test_support::run_to_end(
        &mut command(&["healthcheck", "--listen", &s.addr.to_string()], &[]),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn start_up_refusals_say_what_to_do() {
    let run = |args: &[&str], env: &[(&str, &str)]| {
        test_support::run_to_end(&mut command(args, env), Duration::from_secs(30))
    };
    let out = run(&["--listen", "0.0.0.0:0"], &[]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("CONFIG_SERVER_OPERATOR_TOKEN") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    let out = run(&["--database", "mysql://u:secret@h/db"], &[]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sqlite://") && !stderr.contains("secret"),
        "{stderr}"
    );
    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            "sqlite:///nonexistent-dir/config.db",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the database sqlite:///nonexistent-dir/config.db"),
        "{stderr}"
    );
    // Nothing listens on port 1: the PostgreSQL URL is named, its password is not.
    let out = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database",
            "postgres://u:secret@127.0.0.1:1/db",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the database postgres://u:***@127.0.0.1:1/db")
            && !stderr.contains("secret"),
        "{stderr}"
    );
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("CONFIG_SERVER_DATABASE"));
    let out = run(&["--version"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("edge-metrics-config-server "));
    let out = run(&["--bogus"], &[]);
    assert_eq!(out.status.code(), Some(64));
}

/// PUTs from several clients until killed; then every acknowledged one must be there.
fn kill_9_during_a_burst_of_puts(database: &str, dir: Option<TempDir>) {
    const CLIENTS: usize = 4;
    const MAX_PER_CLIENT: usize = 5000;
    const ACKED_BEFORE_KILL: usize = 150;
    let server = Server::start_on(database, &[], dir);
    let addr = server.addr;
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let acked = Arc::clone(&acked);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for i in 0..MAX_PER_CLIENT {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let device = format!("burst-{c}-{i}");
                    // Never 1, the exporter's default, which a device layer does not store.
                    let interval = (c * MAX_PER_CLIENT + i) as u64 % 3599 + 2;
                    let body = json!({"device_type": "jetson_orin", "interval": interval});
                    let r = http::request(
                        addr,
                        "PUT",
                        &format!("/config/{device}"),
                        &[("Content-Type", "application/json")],
                        body.to_string().as_bytes(),
                    );
                    match r {
                        Ok(r) if r.status == 201 => {
                            acked.lock().unwrap().push((device, interval));
                        }
                        Ok(r) => panic!("PUT {device}: {} {}", r.status, r.body),
                        // The server is gone: the kill happened.
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    test_support::wait_for(Duration::from_secs(60), "acknowledged PUTs", || {
        (acked.lock().unwrap().len() >= ACKED_BEFORE_KILL).then_some(())
    });
    server.daemon.signal("KILL");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client thread");
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    eprintln!("{} PUTs were acknowledged before kill -9", acked.len());
    assert!(acked.len() >= ACKED_BEFORE_KILL);
    let Server {
        daemon,
        database,
        dir,
        ..
    } = server;
    drop(daemon);
    // The database opens (migrations find their table) and holds every acknowledged write.
    let again = Server::start_on(&database, &[], dir);
    let mut missing = Vec::new();
    for (device, interval) in &acked {
        let r = again.get(&format!("/config/{device}"));
        if r.status != 200 || r.json()["interval"] != json!(interval) {
            missing.push(format!("{device}: {} {}", r.status, r.body));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert_status(&again.get("/health"), 200, "health after the kill");
    if let Some(path) = database.strip_prefix("sqlite://") {
        again.daemon.kill();
        let conn = rusqlite::Connection::open(path).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }
}

#[test]
fn kill_9_during_a_burst_of_puts_loses_no_acknowledged_write_on_sqlite() {
    let dir = TempDir::new("config-server-kill");
    let db = format!("sqlite://{}", dir.join("config.db").display());
    kill_9_during_a_burst_of_puts(&db, Some(dir));
}

#[test]
fn kill_9_during_a_burst_of_puts_loses_no_acknowledged_write_on_postgres() {
    let Some(pg) = Cluster::shared() else { return };
    kill_9_during_a_burst_of_puts(&pg.database("kill_9_burst"), None);
}

#[test]
fn the_contract_holds_on_postgres_too() {
    let Some(pg) = Cluster::shared() else { return };
    let s = Server::start_on(&pg.database("contract"), &[], None);
    assert_status(&s.get("/config/orin-01"), 404, "unknown device");
    assert_status(
        &s.put("/config/orin-01", &orin(json!({"gpu": true})), &[]),
        201,
        "push",
    );
    assert_status(
        &s.put("/config/orin-01", &orin(json!({})), &[]),
        200,
        "push again",
    );
    let r = s.put("/defaults", &json!({"metrics": {"ram": true}}), &[]);
    assert_status(&r, 201, "defaults");
    let stale = r.header("etag").unwrap().to_string();
    s.put(
        "/defaults",
        &json!({"metrics": {"ram": true, "x": true}}),
        &[("If-Match", &stale)],
    );
    assert_status(
        &s.put("/defaults", &json!({}), &[("If-Match", &stale)]),
        412,
        "stale If-Match",
    );
    let config = s.get("/config/orin-01").json();
    assert_eq!(config["metrics"], json!({"ram": true, "x": true}));
    let r = s.get("/health");
    assert_eq!(r.json()["database"], "postgres");
}
