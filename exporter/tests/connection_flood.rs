//! Connection floods on both servers with the real binary, `max_connections: 16`.
//!
//! A scraper holds one keep-alive connection to each server, made before the flood, and asks
//! `GET /metrics` and `GET /health` on them every 50 ms throughout. Then 500 idle TCP
//! connections go to each server in turn (in batches of 100, each once the server has caught
//! up with the one before) and stay open on the client side. What is asserted:
//!
//! 1. Exactly the first 15 flood connections of each server get a place (16 minus the
//!    scraper's), and the other 485 are closed by the server without a byte sent: each one
//!    reads end-of-stream (or a reset) on the client, seen within 5 s of its batch's last
//!    connect (the figure printed is the real one, about one 20 ms poll).
//! 2. While those places are held, 100 more connections to each server, each sending a
//!    complete request, are closed unanswered, every one within 2 s of its connect (the
//!    printed median and maximum are well under a millisecond on loopback).
//! 3. The self-metrics count every refusal exactly: `connections_refused_total{server}` is
//!    585 for both servers, `open_connections{server}` 16 and `max_connections{server}` 16;
//!    `process_open_fds` with the places full is at most the 30 held sockets (plus 8) above
//!    its value before the flood, so a refused connection leaves nothing behind. The log says
//!    `Connection limit reached` at WARN once per server, not once per refusal.
//! 4. From the flood's start to the end of 5., every scrape on the kept connection answers 200
//!    with the device collector up and a reading younger than the staleness limit (three
//!    intervals), and every `/health` answers 200 `healthy`; at least 10 of each, at least
//!    3 distinct readings, the last scrape within 1 s of the end.
//! 5. The held idle connections are closed by the server once the header-read timeout has
//!    passed (no sooner than 10 s after they were opened, and within 15 s); then a new
//!    connection's `GET /metrics` (with a fresh reading) and `GET /health` are served within
//!    1 s, retried every 20 ms if refused (the printed count of retries is 0 so far).
//!
//! So a scraper that opens a new connection per scrape is refused for as long as idle
//! connections fill the places (at most 10 s each, while nobody refills them); one on a kept
//! connection is not affected.

mod common;

use std::io::{self, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{orin_corpus, wait_for, Exporter, Response, Setup};
use test_support::http::read_response;
use test_support::prom;

const CAP: usize = 16;
const FLOOD: usize = 500;
const PROBES: usize = 100;
/// Flood connections opened before waiting for the server to catch up (under the backlog).
const BATCH: usize = 100;
const INTERVAL_SECS: f64 = 1.0;
const STALE_AFTER_SECS: f64 = 3.0 * INTERVAL_SECS;
/// The serve loop's header-read timeout (`edge_metrics_common::HEADER_READ_TIMEOUT`).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the kept-connection scraper asks (pacing, not synchronisation).
const SCRAPE_EVERY: Duration = Duration::from_millis(50);
const LAST_READING: &str = "edge_metrics_exporter_last_reading_timestamp_seconds";
const UP: &str = "edge_metrics_exporter_collector_up{collector=\"JetsonOrinCollector\"}";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

fn series(body: &str, family: &str, server: &str) -> Option<f64> {
    prom::series(body, &format!("{family}{{server=\"{server}\"}}"))
}

/// An HTTP/1.1 connection kept open across requests, as Prometheus keeps its scrape
/// connection.
struct KeepAlive {
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    fn open(addr: SocketAddr) -> io::Result<KeepAlive> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(KeepAlive {
            reader: BufReader::new(stream),
        })
    }

    /// `GET path` on this connection, and how long the answer took.
    fn get(&mut self, path: &str) -> io::Result<(Response, Duration)> {
        let started = Instant::now();
        let head = format!("GET {path} HTTP/1.1\r\nHost: flood\r\n\r\n");
        self.reader.get_mut().write_all(head.as_bytes())?;
        let response = read_response(&mut self.reader)?;
        Ok((response, started.elapsed()))
    }
}

/// What the kept-connection scraper saw.
#[derive(Debug, Default)]
struct Seen {
    /// Per scrape: when (since the test began), how long `/metrics` took, reading timestamp.
    scrapes: Vec<(Duration, Duration, f64)>,
    /// Per `/health`: when, how long.
    health: Vec<(Duration, Duration)>,
    /// The latest `/metrics` body.
    body: String,
    /// The first thing that went wrong; the scraper stops there.
    failure: Option<String>,
}

struct Scraper {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scraper {
    /// Opens the two kept connections (before anything else connects) and scrapes on them
    /// until stopped, for at most a minute.
    fn start(exp: &Exporter, t0: Instant) -> Scraper {
        let (metrics, api) = (exp.metrics, exp.api);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                if let Err(failure) = scrape_until(metrics, api, &seen, &stop, t0) {
                    lock(&seen).failure = Some(failure);
                }
            })
        };
        Scraper {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// What it saw so far; panics with the scraper's failure, if there was one.
    fn seen(&self) -> MutexGuard<'_, Seen> {
        let seen = lock(&self.seen);
        if let Some(failure) = &seen.failure {
            panic!("the kept-connection scraper failed: {failure}");
        }
        seen
    }

    /// Waits until a scrape's body satisfies `check`.
    fn wait_body<T>(&self, what: &str, mut check: impl FnMut(&str) -> Option<T>) -> T {
        wait_for(Duration::from_secs(10), what, || check(&self.seen().body))
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the scraper thread does not panic");
        }
        let seen = std::mem::take(&mut *self.seen());
        seen
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn lock(seen: &Mutex<Seen>) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(PoisonError::into_inner)
}

fn scrape_until(
    metrics: SocketAddr,
    api: SocketAddr,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
    t0: Instant,
) -> Result<(), String> {
    let mut m = KeepAlive::open(metrics).map_err(|e| format!("connect to /metrics: {e}"))?;
    let mut a = KeepAlive::open(api).map_err(|e| format!("connect to /health: {e}"))?;
    let mut read_once = false;
    let deadline = t0 + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let (r, took) = m
            .get("/metrics")
            .map_err(|e| format!("GET /metrics on the kept connection: {e}"))?;
        if r.status != 200 {
            return Err(format!("GET /metrics answered {}: {}", r.status, r.body));
        }
        let ts = prom::sample(&r.body, LAST_READING);
        match ts {
            Some(ts) => {
                let age = now_secs() - ts;
                if age >= STALE_AFTER_SECS || r.sample(UP) != Some(1.0) {
                    return Err(format!(
                        "a scrape presented a reading {age:.2} s old (collector_up {:?})",
                        r.sample(UP)
                    ));
                }
                read_once = true;
                let mut s = lock(seen);
                s.scrapes.push((t0.elapsed(), took, ts));
                s.body = r.body;
            }
            None if read_once => return Err("the reading vanished from /metrics".into()),
            None => {}
        }
        let (h, took) = a
            .get("/health")
            .map_err(|e| format!("GET /health on the kept connection: {e}"))?;
        if h.status != 200 || (read_once && h.json()["status"] != "healthy") {
            return Err(format!("GET /health answered {}: {}", h.status, h.body));
        }
        lock(seen).health.push((t0.elapsed(), took));
        std::thread::sleep(SCRAPE_EVERY);
    }
    Ok(())
}

/// Whether the server has closed `stream`, a non-blocking socket: end of stream or a reset is
/// closed, nothing to read yet is open. A flood connection must never receive a byte.
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("a flood connection that sent nothing received data"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(e) if is_reset(&e) => true,
        Err(e) => panic!("reading a flood connection: {e}"),
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// The flood connections to one server that got a place, each with when it was opened.
struct Held {
    conns: Vec<(TcpStream, Instant)>,
    /// Opening all [`FLOOD`] connections took this long, waits for the server included.
    flood_time: Duration,
    /// The longest a batch took from its last connect until each of its refused connections
    /// was seen closed (polled every 20 ms).
    settled: Duration,
}

/// Opens [`FLOOD`] idle connections to `addr`, where `free` places are left, and checks that
/// exactly the first `free` stay open and every later one is closed.
///
/// They go in batches of [`BATCH`], each opened only once the server has closed every refused
/// connection of the one before: the client opens connections faster than any accept loop
/// takes them, and a burst over the listen backlog (128) would have the kernel drop SYNs and
/// the client retry after a second, which measures the kernel, not the cap. The refused
/// sockets are dropped at the end (the test needs [`FLOOD`] descriptors, not twice that).
fn flood(addr: SocketAddr, free: usize, server: &str) -> Held {
    let started = Instant::now();
    let mut conns: Vec<(TcpStream, Instant)> = Vec::with_capacity(FLOOD);
    let mut settled = Duration::ZERO;
    while conns.len() < FLOOD {
        for _ in 0..BATCH.min(FLOOD - conns.len()) {
            let i = conns.len();
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{server}: flood connection {i} not accepted: {e}"));
            stream.set_nonblocking(true).unwrap();
            conns.push((stream, Instant::now()));
        }
        let last = Instant::now();
        let refused = conns.len().saturating_sub(free);
        wait_for(
            Duration::from_secs(5),
            &format!(
                "{refused} of {} flood connections to {server} closed",
                conns.len()
            ),
            || (conns.iter().filter(|(s, _)| closed(s)).count() >= refused).then_some(()),
        );
        settled = settled.max(last.elapsed());
    }
    let flood_time = started.elapsed();
    let open: Vec<usize> = (0..FLOOD).filter(|i| !closed(&conns[*i].0)).collect();
    assert_eq!(
        open,
        (0..free).collect::<Vec<_>>(),
        "{server}: exactly the first {free} flood connections keep a place"
    );
    conns.truncate(free);
    Held {
        conns,
        flood_time,
        settled,
    }
}

/// [`PROBES`] new connections to a full server, each sending `GET path`: every one must be
/// closed unanswered within 2 s. Returns how long each took from connect to closed.
fn probe_refusals(addr: SocketAddr, path: &str, server: &str) -> Vec<Duration> {
    (0..PROBES)
        .map(|i| {
            let started = Instant::now();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{server}: probe {i} not even accepted: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let head = format!("GET {path} HTTP/1.1\r\nHost: flood\r\nConnection: close\r\n\r\n");
            // The server may already have closed it; the read below tells.
            let _ = s.write_all(head.as_bytes());
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if is_reset(&e) => {}
                Ok(n) => panic!(
                    "{server}: probe {i} was answered although the cap was full: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(e) => panic!("{server}: probe {i} was not closed within 2 s: {e}"),
            }
            started.elapsed()
        })
        .collect()
}

/// Blocks until the server closes each held connection; returns, per connection, how long
/// after it was opened that happened.
fn wait_closed_by_server(held: Held, server: &str) -> Vec<Duration> {
    let limit = HEADER_READ_TIMEOUT + Duration::from_secs(5);
    held.conns
        .into_iter()
        .map(|(stream, opened)| {
            stream.set_nonblocking(false).unwrap();
            let left = limit.saturating_sub(opened.elapsed());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut byte = [0u8; 1];
            match (&stream).read(&mut byte) {
                Ok(0) => {}
                Err(e) if is_reset(&e) => {}
                Ok(_) => panic!("{server}: an idle connection received data"),
                Err(e) => panic!(
                    "{server}: an idle connection was still open {:?} after it was opened: {e}",
                    opened.elapsed()
                ),
            }
            opened.elapsed()
        })
        .collect()
}

/// A new connection's `GET path`, retried every 20 ms until it is answered (at most 1 s);
/// returns the answer, the refused attempts and the time it took.
fn served_on_a_new_connection(addr: SocketAddr, path: &str) -> (Response, usize, Duration) {
    let started = Instant::now();
    let mut refused = 0;
    let response = wait_for(
        Duration::from_secs(1),
        &format!("a new connection's GET {path} answered"),
        || match test_support::http::get(addr, path) {
            Ok(r) => Some(r),
            Err(_) => {
                refused += 1;
                None
            }
        },
    );
    (response, refused, started.elapsed())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, max) in milliseconds.
fn spread(mut ds: Vec<Duration>) -> (f64, f64) {
    ds.sort();
    let median = ds.get(ds.len() / 2).copied().unwrap_or_default();
    let max = ds.last().copied().unwrap_or_default();
    (millis(median), millis(max))
}

#[test]
fn floods_on_both_servers_are_refused_at_once_while_a_scraper_is_served() {
    let setup = Setup::new(&orin_corpus(), &format!("max_connections: {CAP}\n"));
    let exp = setup.start();
    let t0 = Instant::now();
    // The scraper's two connections are the first either server sees, and stay open.
    let scraper = Scraper::start(&exp, t0);
    let before = scraper.wait_body("a first reading on the kept connection", |body| {
        prom::sample(body, LAST_READING).map(|_| body.to_string())
    });
    let fds_before = prom::sample(&before, "process_open_fds").expect("process_open_fds");
    assert_eq!(
        series(&before, "edge_metrics_exporter_max_connections", "metrics"),
        Some(CAP as f64)
    );

    // 1. The floods: exactly the free places are taken, every other connection is closed.
    let flood_start = t0.elapsed();
    let held_metrics = flood(exp.metrics, CAP - 1, "metrics");
    let held_api = flood(exp.api, CAP - 1, "management");
    let flood_metrics = (held_metrics.flood_time, held_metrics.settled);
    let flood_api = (held_api.flood_time, held_api.settled);

    // 2. Full servers refuse real requests on new connections at once.
    let probe_metrics = probe_refusals(exp.metrics, "/metrics", "metrics");
    let probe_api = probe_refusals(exp.api, "/health", "management");

    // 3. Counted exactly, nothing left behind, one log line per server.
    let refused = (FLOOD - (CAP - 1) + PROBES) as f64;
    let full = scraper.wait_body("the refusals counted for both servers", |body| {
        let family = "edge_metrics_exporter_connections_refused_total";
        let counted = ["metrics", "management"].map(|s| series(body, family, s));
        (counted == [Some(refused); 2]).then(|| body.to_string())
    });
    for server in ["metrics", "management"] {
        let open = series(&full, "edge_metrics_exporter_open_connections", server);
        assert_eq!(open, Some(CAP as f64), "{server}: open connections");
        let max = series(&full, "edge_metrics_exporter_max_connections", server);
        assert_eq!(max, Some(CAP as f64), "{server}: cap");
        let line = exp.proc.wait_line(
            &[
                "Connection limit reached",
                &format!("listener=\"{server}\""),
            ],
            Duration::from_secs(5),
        );
        assert!(line.contains("WARN"), "{line}");
    }
    let log = exp.proc.log();
    assert_eq!(
        log.matches("Connection limit reached").count(),
        2,
        "one warning per server, not one per refusal"
    );
    let fds_full = prom::sample(&full, "process_open_fds").expect("process_open_fds");
    let held_sockets = 2.0 * (CAP - 1) as f64;
    assert!(
        fds_full <= fds_before + held_sockets + 8.0,
        "{fds_full} descriptors open with the places full, {fds_before} before the flood"
    );

    // 5. The idle connections lose their places after the header-read timeout, and a new
    // connection is served as soon as they have.
    let closed_metrics = wait_closed_by_server(held_metrics, "metrics");
    let closed_api = wait_closed_by_server(held_api, "management");
    for after in closed_metrics.iter().chain(&closed_api) {
        // The server's clock starts at its accept, a moment before the test's returns, and
        // its timer has a millisecond's grain.
        assert!(
            *after + Duration::from_millis(50) >= HEADER_READ_TIMEOUT,
            "an idle connection lost its place after only {after:?}"
        );
    }
    let (scrape, retries_metrics, recovery_metrics) =
        served_on_a_new_connection(exp.metrics, "/metrics");
    assert_eq!(scrape.status, 200, "{}", scrape.body);
    let age = now_secs() - scrape.sample(LAST_READING).expect("a reading");
    assert!(age < STALE_AFTER_SECS, "a reading {age:.2} s old");
    let (health, retries_api, recovery_api) = served_on_a_new_connection(exp.api, "/health");
    assert_eq!(health.status, 200, "{}", health.body);
    let flood_end = t0.elapsed();

    // 4. The kept-connection scraper was served all along.
    let seen = scraper.finish();
    let during = |at: &Duration| *at >= flood_start && *at <= flood_end;
    let scrapes: Vec<_> = seen.scrapes.iter().filter(|s| during(&s.0)).collect();
    let health_during: Vec<_> = seen.health.iter().filter(|h| during(&h.0)).collect();
    let mut stamps: Vec<u64> = scrapes.iter().map(|s| s.2.to_bits()).collect();
    stamps.dedup();
    assert!(
        scrapes.len() >= 10 && health_during.len() >= 10,
        "{} scrapes and {} health checks in {:?}",
        scrapes.len(),
        health_during.len(),
        flood_end - flood_start
    );
    assert!(
        stamps.len() >= 3,
        "the reading advanced only {} times",
        stamps.len()
    );
    let last_scrape = scrapes.last().map(|s| s.0).unwrap_or_default();
    assert!(
        last_scrape + Duration::from_secs(1) >= flood_end,
        "the scrapes stopped at {last_scrape:?}, the flood ended at {flood_end:?}"
    );

    let (scrape_median, scrape_max) = spread(scrapes.iter().map(|s| s.1).collect());
    let (health_median, health_max) = spread(health_during.iter().map(|h| h.1).collect());
    let (probe_m_median, probe_m_max) = spread(probe_metrics);
    let (probe_a_median, probe_a_max) = spread(probe_api);
    let idle = closed_metrics.iter().chain(&closed_api);
    let idle_min = idle.clone().min().copied().unwrap_or_default();
    let idle_max = idle.max().copied().unwrap_or_default();
    let refused_flood = FLOOD - (CAP - 1);
    println!(
        "flood figures (max_connections {CAP}, {FLOOD} idle connections per server):\n\
         - metrics: {FLOOD} connects in {:.0} ms, {refused_flood} closed by the server, each \
         batch of {BATCH} seen closed within {:.0} ms of its last connect (20 ms polls)\n\
         - management: {FLOOD} connects in {:.0} ms, {refused_flood} closed, each batch within \
         {:.0} ms\n\
         - {PROBES} requests on new connections to a full server, connect to closed: metrics \
         median {probe_m_median:.2} ms, max {probe_m_max:.2} ms; management median \
         {probe_a_median:.2} ms, max {probe_a_max:.2} ms\n\
         - refusals counted: {refused} per server; process_open_fds {fds_before} before, \
         {fds_full} with the places full\n\
         - kept-connection scraper over the {:.1} s of flood and hold: {} scrapes, /metrics \
         median {scrape_median:.2} ms, max {scrape_max:.2} ms; {} /health, median \
         {health_median:.2} ms, max {health_max:.2} ms; {} distinct readings\n\
         - idle connections closed by the server {:.2} s to {:.2} s after they were opened\n\
         - then new connections served: /metrics after {retries_metrics} refused attempts in \
         {:.1} ms, /health after {retries_api} in {:.1} ms",
        millis(flood_metrics.0),
        millis(flood_metrics.1),
        millis(flood_api.0),
        millis(flood_api.1),
        (flood_end - flood_start).as_secs_f64(),
        scrapes.len(),
        health_during.len(),
        stamps.len(),
        idle_min.as_secs_f64(),
        idle_max.as_secs_f64(),
        millis(recovery_metrics),
        millis(recovery_api),
    );
}
