//! Every bound of the bridge, hit for real: connection floods on both listeners (refused at
//! once while a plug and a client keep being served), the cap on requests waiting for one plug
//! (503 at once; a request whose client leaves frees its place at once), and the identify
//! timeout. The real binary on 127.0.0.1; waits are on metrics, log lines and connection
//! results, each bounded.

mod common;
mod hardening;

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hardening::{addr_of, flood, wait_metric};

const PLUG: &str = "shellyplugsg3-8cbfea99a7f8";
const FLOOD: usize = 3000;

/// Reads `path` through the bridge from a blocking thread until `stop`, at most 100,000
/// times; returns how many answers there were and the slowest. Panics on any non-200.
fn keep_reading(
    http: std::net::SocketAddr,
    path: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Duration)> {
    tokio::task::spawn_blocking(move || {
        let (mut n, mut slowest) = (0, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) && n < 100_000 {
            let t = Instant::now();
            let r = test_support::http::get(http, path).unwrap();
            assert_eq!(r.status, 200, "{path} during the flood: {}", r.text());
            slowest = slowest.max(t.elapsed());
            n += 1;
        }
        (n, slowest)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_the_plug_listener_is_refused_at_once_while_a_plug_and_a_client_are_served() {
    let max = 20;
    let b = Bridge::start(&["--max-plugs", &max.to_string()]);
    let ws = addr_of(&b.ws);
    let _plug = test_support::daemon::plug(ws, "p", &[], None);
    b.wait_devices(&["p"]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let reader = keep_reading(addr_of(&b.http), "/metrics/p", stop.clone());
    let f = flood(ws, FLOOD, 64).await;
    stop.store(true, Ordering::Relaxed);
    let (reads, slowest_read) = reader.await.unwrap();
    // The plug holds one place; the flood gets the others and nothing more.
    f.check(
        "plug listener",
        max,
        FLOOD,
        &format!("{reads} readings meanwhile, slowest {slowest_read:?}"),
    );
    assert_eq!(
        b.own_metric("shelly_bridge_connections_refused_total{listener=\"ws\"}")
            .await,
        f.closed as f64
    );
    assert_eq!(
        b.own_metric("shelly_bridge_open_connections{listener=\"ws\"}")
            .await,
        (f.held.len() + 1) as f64
    );
    assert!(reads > 0, "no reading during the flood");
    assert!(slowest_read < Duration::from_secs(5), "{slowest_read:?}");
    b.proc().wait_line(
        &["Connection limit reached", "listener=\"ws\""],
        Duration::from_secs(10),
    );

    // The flood goes; its places come back, and the plug was never dropped.
    drop(f.held);
    wait_metric(&b, "shelly_bridge_open_connections{listener=\"ws\"}", 1.0).await;
    b.wait_devices(&["p"]).await;
    assert_eq!(
        b.own_metric("shelly_bridge_plug_connections_total").await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_on_the_http_api_is_refused_at_once_while_a_keep_alive_client_is_served() {
    let max = 8;
    let b = Bridge::start(&["--max-http-connections", &max.to_string()]);
    let http = addr_of(&b.http);
    let _plug = test_support::daemon::plug(addr_of(&b.ws), "p", &[], None);
    b.wait_devices(&["p"]).await;

    // A scraper on one keep-alive connection, opened before the flood: it keeps its place.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = b.http.clone();
    assert_eq!(
        client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (client, stop, base) = (client.clone(), stop.clone(), base.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 100_000 {
                let r = client
                    .get(format!("{base}/metrics/p"))
                    .send()
                    .await
                    .expect("the scraper is served during the flood");
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                n += 1;
            }
            n
        })
    };
    let f = flood(http, FLOOD, 64).await;
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.await.unwrap();
    f.check("HTTP", max, FLOOD, &format!("{scrapes} scrapes meanwhile"));
    assert!(scrapes > 0, "no scrape during the flood");
    // Read on the scraper's own connection: a new one could not get in yet.
    let metrics = client
        .get(format!("{base}/bridge/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = test_support::prom::series(
        &metrics,
        "shelly_bridge_connections_refused_total{listener=\"http\"}",
    );
    assert_eq!(refused, Some(f.closed as f64), "{metrics}");

    drop(f.held);
    drop(client);
    wait_metric(&b, "shelly_bridge_open_connections{listener=\"http\"}", 1.0).await;
    let (status, _) = b.get("/health").await;
    assert_eq!(status, 200);
}

/// Sends `GET path` on a new connection and leaves it waiting for the answer.
fn send_and_wait(http: std::net::SocketAddr, path: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(http).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    s
}

#[tokio::test]
async fn requests_over_the_per_plug_cap_get_503_at_once_and_an_abandoned_one_frees_its_place() {
    // An RPC timeout and a ping interval far longer than the test: neither can free a place.
    let b = Bridge::start(&[
        "--max-pending-requests",
        "2",
        "--rpc-timeout",
        "120",
        "--ping-interval",
        "120",
    ]);
    let mut plug = b.plug("/p", PLUG).await;
    b.wait_devices(&["p"]).await;
    let http = addr_of(&b.http);

    let waiting = vec![
        send_and_wait(http, "/metrics/p"),
        send_and_wait(http, "/metrics/p"),
    ];
    let first = plug.next_request().await;
    let _second = plug.next_request().await;
    assert_eq!(b.own_metric("shelly_bridge_pending_requests").await, 2.0);

    // A third caller is told at once, with the JSON error the API always gives.
    let t = Instant::now();
    let r = b.spawn_request("/metrics/p").await.unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(r.header("retry-after"), Some("1"));
    let body = r.json();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("--max-pending-requests"),
        "{body}"
    );
    assert_eq!(
        b.own_metric("shelly_bridge_rpc_requests_total{outcome=\"overloaded\"}")
            .await,
        1.0
    );

    // The two callers go away: their places are free, and the plug's task forgets them, now.
    let left = Instant::now();
    drop(waiting);
    wait_metric(&b, "shelly_bridge_pending_requests", 0.0).await;
    wait_metric(
        &b,
        "shelly_bridge_rpc_requests_total{outcome=\"abandoned\"}",
        2.0,
    )
    .await;
    b.proc().wait_log(
        Duration::from_secs(10),
        "two abandoned requests forgotten",
        |log| {
            (log.matches("Forgot a request whose caller went away.")
                .count()
                == 2)
                .then_some(())
        },
    );
    assert!(
        left.elapsed() < Duration::from_secs(10),
        "{:?}",
        left.elapsed()
    );

    // A late answer to one of them is counted and dropped; new requests get through.
    plug.reply_raw(&first, &corpus("switch-getstatus-result-plus-1pm.json"));
    wait_metric(&b, "shelly_bridge_late_replies_total", 1.0).await;
    let calls = [b.spawn_get("/metrics/p"), b.spawn_get("/metrics/p")];
    for _ in 0..2 {
        let req = plug.next_request().await;
        plug.reply_raw(&req, &corpus("switch-getstatus-result-plus-1pm.json"));
    }
    for call in calls {
        let (status, v) = call.await.unwrap();
        assert_eq!(status, 200, "{v}");
    }
}

#[tokio::test]
async fn a_connection_that_never_identifies_is_closed_after_the_identify_timeout() {
    let b = Bridge::start(&["--identify-timeout", "1"]);
    let _live = b.plug("/live", PLUG).await;
    b.wait_devices(&["live"]).await;

    let connected = Instant::now();
    let mut silent = Plug::connect(&b.ws, "/silent", "never-says", None).await;
    // Asked who it is (after half the timeout), it never answers.
    let ask = silent.next_request().await;
    assert_eq!(ask["method"], "Shelly.GetDeviceInfo");
    let code = tokio::time::timeout(Duration::from_secs(10), silent.closed.recv())
        .await
        .expect("closed within 10 s")
        .unwrap();
    assert_eq!(code, Some(1008));
    assert!(
        connected.elapsed() >= Duration::from_millis(900),
        "closed before the timeout: {:?}",
        connected.elapsed()
    );
    assert_eq!(
        b.own_metric("shelly_bridge_ws_rejected_total{reason=\"identify_timeout\"}")
            .await,
        1.0
    );
    b.wait_devices(&["live"]).await;
}
