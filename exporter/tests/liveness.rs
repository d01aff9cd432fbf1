//! The collection cycle keeps running whatever the management API is asked: a `/reload` that
//! waits 30 s for a slow Config Server, and a 10 s burst of concurrent `POST /metrics/enable`
//! requests (each saved with an fsync). Throughout, every scrape shows a reading no older than
//! the staleness limit (three intervals), and the reading's timestamp keeps advancing.
//!
//! Both tests fail on an owner that handles a command before the next reading, or that waits
//! for the Config Server inside its loop.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{orin_corpus, wait_for, Exporter, FakeHttp, Reply, Setup};
use test_support::prom;

const INTERVAL_SECS: f64 = 1.0;
const STALE_AFTER_SECS: f64 = 3.0 * INTERVAL_SECS;

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// What the scrapes saw while the API was busy.
#[derive(Debug, Default)]
struct Watch {
    scrapes: usize,
    /// Distinct reading timestamps seen.
    advances: usize,
    /// The oldest reading any scrape presented, in seconds.
    worst_age: f64,
}

/// Scrapes every quarter interval until `done` (at most `limit`), checking each scrape: the
/// device collector is up and its reading is younger than the staleness limit.
fn watch_readings(exp: &Exporter, done: &AtomicBool, limit: Duration) -> Watch {
    let mut seen = Watch::default();
    let mut last_ts = 0.0;
    let deadline = Instant::now() + limit;
    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
        let body = exp.scrape().body;
        let ts = prom::sample(
            &body,
            "edge_metrics_exporter_last_reading_timestamp_seconds",
        )
        .expect("a last-reading timestamp in every scrape");
        let up = prom::series(
            &body,
            "edge_metrics_exporter_collector_up{collector=\"JetsonOrinCollector\"}",
        );
        let age = now_secs() - ts;
        assert_eq!(
            up,
            Some(1.0),
            "the device collector went down (reading {age:.1} s old)"
        );
        assert!(
            age < STALE_AFTER_SECS,
            "a scrape presented a reading {age:.2} s old as current"
        );
        assert!(
            prom::sample(&body, "jetson_ram_used_mb").is_some(),
            "the values vanished"
        );
        seen.scrapes += 1;
        seen.worst_age = seen.worst_age.max(age);
        if ts > last_ts {
            seen.advances += 1;
            last_ts = ts;
        }
        std::thread::sleep(Duration::from_secs_f64(INTERVAL_SECS / 4.0));
    }
    seen
}

/// A request with a long read timeout (the reply to a slow reload), returning the status.
fn slow_request(addr: SocketAddr, method: &str, path: &str, wait: Duration) -> u16 {
    let mut stream = TcpStream::connect(addr).expect("connect to the management API");
    stream.set_read_timeout(Some(wait)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {text:?}"))
}

#[test]
fn a_reload_waiting_on_a_slow_config_server_does_not_stop_the_cycle() {
    // At start-up the server has no config for the device (404): the local file is used.
    let server = FakeHttp::start(|_| Reply::json(404, r#"{"error":"no config"}"#));
    let setup = Setup::new(&orin_corpus(), "");
    setup.write_config(&format!(
        "config_server:\n  url: {}\n  timeout: 45\nmetrics:\n  jetson_ram_used_mb: true\n",
        server.url()
    ));
    let exp = setup.start();
    exp.wait_sample("jetson_ram_used_mb", Duration::from_secs(15));
    // From now on the server answers after 30 s, with a config that renames the host.
    let delay = Duration::from_secs(30);
    let served = serde_json::json!({
        "device_type": "jetson_orin",
        "interval": 1,
        "port": 0,
        "reload_port": 0,
        "bind_address": "127.0.0.1",
        "reload_bind_address": "127.0.0.1",
        "hostname": "edge-02",
        "shelly": {"enabled": false},
        "tegrastats": {"path": setup.fake},
        "metrics": {"jetson_ram_used_mb": true},
    });
    server.set(test_support::fake_http::config_server(
        Reply::json(200, served.to_string()),
        delay,
    ));

    let done = Arc::new(AtomicBool::new(false));
    let api = exp.api;
    let asked = Instant::now();
    let reload = {
        let done = done.clone();
        std::thread::spawn(move || {
            let status = slow_request(api, "POST", "/reload", Duration::from_secs(60));
            done.store(true, Ordering::SeqCst);
            status
        })
    };
    let seen = watch_readings(&exp, &done, Duration::from_secs(60));
    let status = reload.join().expect("reload thread");
    let took = asked.elapsed();
    assert_eq!(status, 200, "the reload itself failed");
    assert!(
        took >= delay,
        "the reload answered before the server did ({took:?})"
    );
    // At 1 s per reading, 30 s of waiting shows well over 20 fresh readings.
    assert!(
        seen.advances >= 20,
        "the reading advanced only {} times in {took:?}: {seen:?}",
        seen.advances
    );
    eprintln!(
        "reload took {took:?}; {} scrapes, {} new readings, oldest reading shown {:.2} s",
        seen.scrapes, seen.advances, seen.worst_age
    );
    // The server's config is applied once it arrives.
    wait_for(
        Duration::from_secs(10),
        "the server's hostname label",
        || {
            exp.scrape()
                .body
                .contains("hostname=\"edge-02\"")
                .then_some(())
        },
    );
}

#[test]
fn a_burst_of_concurrent_enables_does_not_delay_readings() {
    let setup = Setup::new(&orin_corpus(), "metrics:\n  jetson_ram_used_mb: true\n");
    let exp = setup.start();
    exp.wait_sample("jetson_ram_used_mb", Duration::from_secs(15));
    // Names the exporter knows (discovered), to switch on and off.
    let listed = exp.api("GET", "/metrics/list", &[], None).json();
    let names: Vec<String> = listed["metrics"]
        .as_object()
        .expect("metrics map")
        .keys()
        .filter(|n| *n != "jetson_ram_used_mb")
        .take(8)
        .cloned()
        .collect();
    assert_eq!(names.len(), 8, "{listed}");

    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let burst = Duration::from_secs(10);
    let clients: Vec<_> = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let (done, answered) = (done.clone(), answered.clone());
            let api = exp.api;
            std::thread::spawn(move || {
                let mut on = i % 2 == 0;
                while !done.load(Ordering::SeqCst) {
                    let body = format!("{{\"{name}\": {on}}}");
                    let response = test_support::http::post_json(api, "/metrics/enable", &body)
                        .expect("the management API answers");
                    assert_eq!(response.status, 200, "{}", response.body);
                    answered.fetch_add(1, Ordering::SeqCst);
                    on = !on;
                }
            })
        })
        .collect();
    let stop = {
        let done = done.clone();
        std::thread::spawn(move || {
            std::thread::sleep(burst);
            done.store(true, Ordering::SeqCst);
        })
    };
    let seen = watch_readings(&exp, &done, burst + Duration::from_secs(5));
    stop.join().unwrap();
    for client in clients {
        client.join().expect("enable client");
    }
    let enables = answered.load(Ordering::SeqCst);
    eprintln!(
        "{enables} enables answered in {burst:?}; {} scrapes, {} new readings, oldest reading shown {:.2} s",
        seen.scrapes, seen.advances, seen.worst_age
    );
    assert!(enables >= 50, "only {enables} enables were answered");
    assert!(
        seen.advances >= 7,
        "the reading advanced only {} times in {burst:?}: {seen:?}",
        seen.advances
    );
    // Every answered enable was saved: the file parses and holds the last state.
    let text = std::fs::read_to_string(&setup.config_path).unwrap();
    edge_metrics_exporter::config::parse(&text, "config.yaml").expect("config.yaml stays valid");
}
