//! Config Server client against a real HTTP server on 127.0.0.1 (warp, ephemeral port):
//! fetch (ok, refused, slow, 404, 500, garbage, invalid config), push, and the background
//! sync's retry, coalescing and shutdown. Then what every request carries (the bearer token,
//! `User-Agent` and the `X-Edge-Metrics-*` headers) and what no push carries (the secrets),
//! recorded by a small server of this file; and `https://` against that server with a CA and
//! certificate the test makes, with and without `config_server.ca_file`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_metrics_exporter::config::{self, Config, ConfigServerSettings, DeviceType};
use edge_metrics_exporter::configserver::{spawn_sync, Backoff, Client, ConfigServerError};
use test_support::wait_for_async;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warp::Filter;

const ORIN: DeviceType = DeviceType::JetsonOrin;

/// A server task, aborted on drop.
struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_on<F, R>(listener: tokio::net::TcpListener, routes: F) -> Server
where
    F: Filter<Extract = (R,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
    R: warp::Reply,
{
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(warp::serve(routes).incoming(listener).run());
    Server { addr, task }
}

async fn serve<F, R>(routes: F) -> Server
where
    F: Filter<Extract = (R,), Error = warp::Rejection> + Clone + Send + Sync + 'static,
    R: warp::Reply,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(listener, routes).await
}

/// `GET /config/:id` answering `status` with `body`.
async fn get_server(status: u16, body: &'static str) -> Server {
    let route = warp::get()
        .and(warp::path!("config" / String))
        .map(move |_id: String| {
            warp::reply::with_status(body, warp::http::StatusCode::from_u16(status).unwrap())
        });
    serve(route).await
}

/// A port on which nothing listens (bound, then released).
async fn free_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

fn client(url: &str) -> Client {
    Client::new(url, Duration::from_secs(2)).unwrap()
}

fn xavier() -> Config {
    config::parse(
        "device_type: jetson_xavier\ninterval: 2\nshelly:\n  enabled: false\nmetrics:\n  jetson_temp_aux_celsius: true\nsite: lab\n",
        "test",
    )
    .unwrap()
}

#[tokio::test]
async fn fetch_ok_returns_the_validated_config() {
    let body = serde_json::to_string(&config::to_json(&xavier())).unwrap();
    let body: &'static str = Box::leak(body.into_boxed_str());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let route = warp::get()
        .and(warp::path!("api" / "config" / String))
        .map(move |id: String| {
            seen2.lock().unwrap().push(id);
            warp::reply::with_header(body, "content-type", "application/json")
        });
    let server = serve(route).await;
    let c = client(&format!("{}/api", server.url()));
    let cfg = c.fetch("orin 01", ORIN).await.unwrap();
    assert_eq!(cfg, xavier());
    assert_eq!(cfg.extra["site"], serde_yaml::Value::from("lab"));
    assert_eq!(*seen.lock().unwrap(), vec!["orin%2001".to_string()]);
}

#[tokio::test]
async fn fetch_from_a_server_that_is_down_is_a_connect_error() {
    let addr = free_port().await;
    let started = Instant::now();
    let err = client(&format!("http://{addr}"))
        .fetch("dev", ORIN)
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigServerError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("cannot reach the Config Server"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn fetch_from_a_slow_server_times_out_within_the_timeout() {
    let route = warp::path!("config" / String).and_then(|_id: String| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Ok::<_, warp::Rejection>("{}")
    });
    let server = serve(route).await;
    let timeout = Duration::from_millis(300);
    let c = Client::new(&server.url(), timeout).unwrap();
    let started = Instant::now();
    let err = c.fetch("dev", ORIN).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ConfigServerError::Timeout { .. }), "{err:?}");
    assert!(took >= timeout, "gave up early: {took:?}");
    assert!(took < timeout + Duration::from_millis(700), "took {took:?}");
    assert!(
        err.to_string().contains("did not answer within 0.3s"),
        "{err}"
    );
}

#[tokio::test]
async fn fetch_404_says_the_device_has_no_config() {
    let server = get_server(404, "no such device").await;
    let err = client(&server.url())
        .fetch("jetson-7", ORIN)
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigServerError::NotFound { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("Config Server has no config for device \"jetson-7\""),
        "{err}"
    );
}

#[tokio::test]
async fn fetch_500_reports_status_and_body() {
    let server = get_server(500, "database\nis down").await;
    let err = client(&server.url()).fetch("dev", ORIN).await.unwrap_err();
    match &err {
        ConfigServerError::Status { status, body, .. } => {
            assert_eq!(*status, 500);
            assert_eq!(body, "database is down");
        }
        other => panic!("want Status, got {other:?}"),
    }
}

#[tokio::test]
async fn fetch_garbage_body_is_an_error() {
    let server = get_server(200, "<html>proxy login</html>").await;
    let err = client(&server.url()).fetch("dev", ORIN).await.unwrap_err();
    assert!(matches!(err, ConfigServerError::Garbage { .. }), "{err:?}");
    assert!(err.to_string().contains("<html>proxy login"), "{err}");
}

#[tokio::test]
async fn fetch_invalid_config_reports_every_problem() {
    let server = get_server(
        200,
        r#"{"device_type":"jetson_tx2","interval":0,"metrics":{"jetson_ram_used_mb":"yes"}}"#,
    )
    .await;
    let err = client(&server.url()).fetch("dev", ORIN).await.unwrap_err();
    assert!(matches!(err, ConfigServerError::Invalid { .. }), "{err:?}");
    let s = err.to_string();
    for want in [
        "Config Server: Unsupported device type: jetson_tx2; supported: jetson_orin, jetson_xavier, jetson_nano, jetson, raspberry_pi, lattepanda, orange_pi",
        "interval must be at least 0.1, got 0",
        "metrics.jetson_ram_used_mb must be true or false, got \"yes\"",
    ] {
        assert!(s.contains(want), "{want} not in {s}");
    }
}

type Puts = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// `PUT /config/:id` recording each JSON body; answers 204.
fn put_route(
    puts: Puts,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    warp::put()
        .and(warp::path!("config" / String))
        .and(warp::body::json())
        .map(move |id: String, body: serde_json::Value| {
            puts.lock().unwrap().push((id, body));
            warp::http::StatusCode::NO_CONTENT
        })
}

#[tokio::test]
async fn push_sends_the_full_config_without_either_token() {
    let puts: Puts = Arc::default();
    let server = serve(put_route(Arc::clone(&puts))).await;
    let mut cfg = xavier();
    cfg.api_token = Some("api-secret".into());
    cfg.config_server.token = Some("config-server-secret".into());
    cfg.config_server.ca_file = Some("/etc/edge-metrics/ca.pem".into());
    client(&server.url()).push("xavier-02", &cfg).await.unwrap();
    let got = puts.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "xavier-02");
    assert_eq!(got[0].1, config::to_json(&cfg));
    assert_eq!(got[0].1["interval"].to_string(), "2");
    assert!(got[0].1.get("api_token").is_none());
    assert_eq!(
        got[0].1["config_server"],
        serde_json::json!({"ca_file": "/etc/edge-metrics/ca.pem"})
    );
    let text = got[0].1.to_string();
    assert!(!text.contains("secret"), "{text}");
    // What was pushed reads back as the same config (minus the secrets).
    let mut back = config::from_json(got[0].1.clone()).unwrap();
    assert_eq!(config::Secrets::of(&back), config::Secrets::default());
    config::Secrets::of(&cfg).fill(&mut back);
    assert_eq!(back, cfg);
}

#[tokio::test]
async fn push_rejected_by_server_is_a_status_error() {
    let route = warp::put()
        .map(|| warp::reply::with_status("read-only", warp::http::StatusCode::FORBIDDEN));
    let server = serve(route).await;
    let err = client(&server.url())
        .push("d", &xavier())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConfigServerError::Status { status: 403, .. }),
        "{err:?}"
    );
}

/// Waits (bounded) until `check` holds, without blocking the runtime the sync task runs on.
async fn wait_for(limit: Duration, what: &str, check: impl Fn() -> bool) {
    wait_for_async(limit, what, || std::future::ready(check().then_some(()))).await;
}

fn with_interval(secs: f64) -> Arc<Config> {
    Arc::new(Config {
        interval: secs,
        ..edge_metrics_exporter::collector::fresh_config(
            edge_metrics_exporter::device::DeviceKind::JetsonOrin,
        )
    })
}

/// A client for a loopback address nothing listens on yet (the test binds it later), retrying
/// after `initial_ms` and at most every `max_ms`.
async fn client_to_nobody(initial_ms: u64, max_ms: u64) -> (SocketAddr, Client) {
    let addr = free_port().await;
    let c = Client::new(&format!("http://{addr}"), Duration::from_millis(500))
        .unwrap()
        .with_backoff(Backoff {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
        });
    (addr, c)
}

#[tokio::test]
async fn sync_retries_until_the_server_comes_back_and_sends_only_the_newest() {
    let (addr, c) = client_to_nobody(50, 200).await;
    let stats = c.stats();
    let (tx, rx) = watch::channel(with_interval(1.0));
    let shutdown = CancellationToken::new();
    let task = spawn_sync(c, "orin-01".into(), rx, shutdown.clone());

    // Two changes while the server is down: both attempts fail, the newest is kept. (That
    // the initial value is not pushed is `sync_pushes_changes_not_the_initial_value`.)
    tx.send(with_interval(2.0)).unwrap();
    wait_for(Duration::from_secs(3), "a failed push", || {
        stats.pushes_failed() >= 1
    })
    .await;
    tx.send(with_interval(3.0)).unwrap();
    wait_for(Duration::from_secs(3), "another failed push", || {
        stats.pushes_failed() >= 2
    })
    .await;
    assert!(stats.pending());
    assert_eq!(stats.pushes_ok(), 0);

    // The server comes back on the same port.
    let puts: Puts = Arc::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _server = serve_on(listener, put_route(Arc::clone(&puts))).await;
    wait_for(Duration::from_secs(3), "the push after recovery", || {
        stats.pushes_ok() == 1
    })
    .await;
    assert!(!stats.pending());
    {
        let got = puts.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, "orin-01");
        assert_eq!(got[0].1["interval"], serde_json::json!(3));
    }

    // The next change goes out promptly (backoff was reset by the success).
    tx.send(with_interval(0.5)).unwrap();
    wait_for(Duration::from_secs(3), "the next push", || {
        stats.pushes_ok() == 2
    })
    .await;
    assert_eq!(
        puts.lock().unwrap()[1].1["interval"],
        serde_json::json!(0.5)
    );

    // No change, no push: the next change is the next push the server sees (a push without
    // a change would come in between).
    tx.send(with_interval(0.25)).unwrap();
    wait_for(
        Duration::from_secs(3),
        "the push of the marker change",
        || stats.pushes_ok() == 3,
    )
    .await;
    let intervals: Vec<serde_json::Value> = puts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["interval"].clone())
        .collect();
    assert_eq!(
        intervals,
        [
            serde_json::json!(3),
            serde_json::json!(0.5),
            serde_json::json!(0.25)
        ]
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("sync task ends on shutdown")
        .unwrap();
}

#[tokio::test]
async fn sync_pushes_changes_not_the_initial_value() {
    // The initial value is not a change: the first push the server sees is the first change.
    let puts: Puts = Arc::default();
    let server = serve(put_route(Arc::clone(&puts))).await;
    let c = client(&server.url());
    let stats = c.stats();
    let (tx, rx) = watch::channel(with_interval(1.0));
    let shutdown = CancellationToken::new();
    let task = spawn_sync(c, "orin-01".into(), rx, shutdown.clone());
    tx.send(with_interval(2.0)).unwrap();
    wait_for(Duration::from_secs(3), "the push of the change", || {
        stats.pushes_ok() == 1
    })
    .await;
    {
        let got = puts.lock().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1["interval"], serde_json::json!(2));
    }
    assert_eq!(stats.pushes_failed(), 0);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("sync task ends on shutdown")
        .unwrap();
}

#[tokio::test]
async fn sync_coalesces_a_burst_of_changes() {
    // The server answers slowly, so changes pile up behind the first push. `started` holds
    // the interval of each push as it arrives, `puts` each one answered.
    let puts: Puts = Arc::default();
    let started: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let (p2, s2) = (Arc::clone(&puts), Arc::clone(&started));
    let route = warp::put()
        .and(warp::path!("config" / String))
        .and(warp::body::json())
        .and_then(move |id: String, body: serde_json::Value| {
            let p = Arc::clone(&p2);
            s2.lock().unwrap().push(body["interval"].clone());
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                p.lock().unwrap().push((id, body));
                Ok::<_, warp::Rejection>(warp::http::StatusCode::OK)
            }
        });
    let server = serve(route).await;
    let c = client(&server.url());
    let stats = c.stats();
    let (tx, rx) = watch::channel(with_interval(1.0));
    let shutdown = CancellationToken::new();
    let task = spawn_sync(c, "d".into(), rx, shutdown.clone());
    tx.send(with_interval(2.0)).unwrap();
    wait_for(
        Duration::from_secs(5),
        "the first push at the server",
        || started.lock().unwrap().len() == 1,
    )
    .await;
    for i in 3..=10 {
        tx.send(with_interval(f64::from(i))).unwrap();
    }
    wait_for(Duration::from_secs(5), "two pushes", || {
        stats.pushes_ok() == 2
    })
    .await;
    let got: Vec<serde_json::Value> = puts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b["interval"].clone())
        .collect();
    assert_eq!(got, vec![serde_json::json!(2), serde_json::json!(10)]);
    assert_eq!(stats.pushes_failed(), 0);

    // Shutdown during a slow push returns promptly. The push of this change is also the
    // marker that nothing else went out after the burst: it is the third to arrive.
    tx.send(with_interval(11.0)).unwrap();
    wait_for(
        Duration::from_secs(5),
        "the third push at the server",
        || started.lock().unwrap().len() == 3,
    )
    .await;
    assert_eq!(
        *started.lock().unwrap(),
        [
            serde_json::json!(2),
            serde_json::json!(10),
            serde_json::json!(11)
        ]
    );
    let started = Instant::now();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("sync task ends on shutdown")
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn sync_ends_when_the_sender_is_dropped_after_delivering() {
    let puts: Puts = Arc::default();
    let server = serve(put_route(Arc::clone(&puts))).await;
    let (tx, rx) = watch::channel(with_interval(1.0));
    let task = spawn_sync(
        client(&server.url()),
        "d".into(),
        rx,
        CancellationToken::new(),
    );
    tx.send(with_interval(4.0)).unwrap();
    drop(tx);
    tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("sync task ends once the sender is gone")
        .unwrap();
    let got = puts.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1["interval"], serde_json::json!(4));
}

/// Collects formatted log lines (the test runtime is single-threaded, so a thread-local
/// default subscriber sees the sync task too).
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn sync_logs_a_failure_once_per_change_of_state() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (addr, c) = client_to_nobody(10, 20).await;
    let stats = c.stats();
    let (tx, rx) = watch::channel(with_interval(1.0));
    let shutdown = CancellationToken::new();
    let task = spawn_sync(c, "d".into(), rx, shutdown.clone());
    tx.send(with_interval(2.0)).unwrap();
    wait_for(Duration::from_secs(3), "five failures", || {
        stats.pushes_failed() >= 5
    })
    .await;

    let puts: Puts = Arc::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let _server = serve_on(listener, put_route(Arc::clone(&puts))).await;
    wait_for(Duration::from_secs(3), "recovery", || {
        stats.pushes_ok() == 1
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let warns: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warns.len(), 1, "{text}");
    assert!(warns[0].contains("Config Server push failed; retrying in the background."));
    assert!(
        warns[0].contains("cannot reach the Config Server"),
        "{}",
        warns[0]
    );
    let infos: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Config Server push succeeded again."))
        .collect();
    assert_eq!(infos.len(), 1, "{text}");
}

#[tokio::test]
async fn fetch_refuses_an_oversized_body() {
    let big: &'static str = Box::leak(" ".repeat(2 * 1024 * 1024).into_boxed_str());
    let server = get_server(200, big).await;
    let err = client(&server.url()).fetch("dev", ORIN).await.unwrap_err();
    assert!(matches!(err, ConfigServerError::Garbage { .. }), "{err:?}");
    assert!(
        err.to_string().contains("larger than 1048576 bytes"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Headers, the token, and https://
// ---------------------------------------------------------------------------------------------

/// A request as [`Recorder`] read it: method, path, headers (lower-cased names) and body.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A small HTTP/1.1 server on 127.0.0.1, plain or TLS, that records every request with its
/// headers and answers `GET` with `get_body` (200) and `PUT` with 204. One request per
/// connection; TLS handshakes that fail are counted.
struct Recorder {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    handshake_failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    async fn start(get_body: String, tls: Option<Arc<rustls::ServerConfig>>) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let (s, f) = (Arc::clone(&seen), Arc::clone(&handshake_failures));
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (s, f, body, acceptor) = (
                    Arc::clone(&s),
                    Arc::clone(&f),
                    get_body.clone(),
                    acceptor.clone(),
                );
                tokio::spawn(async move {
                    match acceptor {
                        None => answer(tcp, &s, &body).await,
                        Some(acceptor) => match acceptor.accept(tcp).await {
                            Ok(stream) => answer(stream, &s, &body).await,
                            Err(_) => {
                                f.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        Recorder {
            addr,
            seen,
            handshake_failures,
            task,
        }
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request from `stream`, records it and answers it.
async fn answer<S>(stream: S, seen: &Mutex<Vec<Seen>>, get_body: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await.unwrap_or(0) == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).await.is_err() {
        return;
    }
    seen.lock().unwrap().push(Seen {
        method: method.clone(),
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = if method == "PUT" {
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_string()
    } else {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{get_body}",
            get_body.len()
        )
    };
    let mut stream = reader.into_inner();
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn settings(url: &str, token: Option<&str>, ca_file: Option<&Path>) -> ConfigServerSettings {
    ConfigServerSettings {
        url: url.to_string(),
        timeout: Duration::from_secs(3),
        token: token.map(str::to_string),
        ca_file: ca_file.map(Path::to_path_buf),
    }
}

fn xavier_json() -> String {
    config::to_json(&xavier()).to_string()
}

/// A device on `device_type: auto` reports the type it resolved to, in pushes (the
/// background task's clone of the client included) as in fetches, while the pushed body keeps
/// its `auto`; before anything is resolved, `auto` is not sent at all.
#[tokio::test]
async fn a_device_on_auto_reports_its_resolved_type() {
    use edge_metrics_exporter::device::DeviceKind;
    let server = Recorder::start(xavier_json(), None).await;
    let c = client(&server.url("http"));
    let mut cfg = xavier();
    cfg.device_type = DeviceType::Auto;
    c.push("orin-01", &cfg).await.unwrap();
    let unresolved = server.seen().pop().unwrap();
    assert_eq!(
        unresolved.header("x-edge-metrics-device-type"),
        None,
        "{unresolved:?}"
    );

    // Resolved: the background push reports it, through its own clone of the client.
    c.set_device_kind(DeviceKind::JetsonOrin);
    let (tx, rx) = watch::channel(Arc::new(cfg.clone()));
    let shutdown = CancellationToken::new();
    let task = spawn_sync(c.clone(), "orin-01".into(), rx, shutdown.clone());
    let mut changed = cfg.clone();
    changed
        .metrics
        .insert("jetson_gpu_usage_percent".into(), true);
    tx.send_replace(Arc::new(changed));
    let pushed = wait_for_async(Duration::from_secs(10), "the background push", || async {
        server
            .seen()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .nth(1)
    })
    .await;
    assert_eq!(
        pushed.header("x-edge-metrics-device-type"),
        Some("jetson_orin"),
        "{pushed:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&pushed.body).unwrap();
    assert_eq!(
        body["device_type"], "auto",
        "the setting is pushed as it is"
    );
    shutdown.cancel();
    task.await.unwrap();
    c.fetch("orin-01", DeviceType::Auto).await.unwrap();
    let fetch = server.seen().pop().unwrap();
    assert_eq!(fetch.header("x-edge-metrics-device-type"), None);
}

/// Every GET and PUT carries the bearer token, the exporter's name and version, and the
/// device type; the push body never carries a secret.
#[tokio::test]
async fn every_request_carries_the_token_the_version_and_the_device_type() {
    let server = Recorder::start(xavier_json(), None).await;
    let c =
        Client::from_settings(&settings(&server.url("http"), Some("fleet-t0ken"), None)).unwrap();
    let fetched = c.fetch("orin-01", DeviceType::JetsonNano).await.unwrap();
    assert_eq!(fetched, xavier());
    let mut cfg = xavier();
    cfg.config_server.token = Some("fleet-t0ken".into());
    cfg.api_token = Some("api-t0ken".into());
    c.push("orin-01", &cfg).await.unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let version = env!("CARGO_PKG_VERSION");
    for (request, method, device_type) in [
        (&seen[0], "GET", "jetson_nano"),
        (&seen[1], "PUT", "jetson_xavier"),
    ] {
        assert_eq!(request.method, method);
        assert_eq!(request.path, "/config/orin-01");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer fleet-t0ken"),
            "{request:?}"
        );
        assert_eq!(
            request.header("user-agent"),
            Some(format!("edge-metrics-exporter/{version}").as_str())
        );
        assert_eq!(request.header("x-edge-metrics-version"), Some(version));
        assert_eq!(
            request.header("x-edge-metrics-device-type"),
            Some(device_type),
            "{request:?}"
        );
    }
    assert_eq!(seen[0].header("accept"), Some("application/json"));
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert!(!seen[1].body.contains("t0ken"), "{}", seen[1].body);
    let pushed: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(pushed, config::to_json(&cfg));

    // Without a token there is no Authorization header; the others stay.
    let c = client(&server.url("http"));
    c.fetch("orin-01", ORIN).await.unwrap();
    let last = server.seen().pop().unwrap();
    assert_eq!(last.header("authorization"), None);
    assert_eq!(
        last.header("x-edge-metrics-device-type"),
        Some("jetson_orin")
    );
}

#[tokio::test]
async fn a_refused_token_and_a_redirect_say_what_to_do() {
    let route = warp::path!("config" / String).map(|_id: String| {
        warp::reply::with_status("bad token", warp::http::StatusCode::UNAUTHORIZED)
    });
    let server = serve(route).await;
    let err = client(&server.url()).fetch("d", ORIN).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Config Server answered HTTP 401 for {}/config/d: bad token (check \
             config_server.token or CONFIG_SERVER_TOKEN)",
            server.url()
        )
    );
    // A redirect is not followed: the token goes to the configured server only.
    let route = warp::path!("config" / String).map(|_id: String| {
        warp::reply::with_header(
            warp::reply::with_status("", warp::http::StatusCode::PERMANENT_REDIRECT),
            "location",
            "https://elsewhere.example/config/d",
        )
    });
    let server = serve(route).await;
    let err = client(&server.url()).fetch("d", ORIN).await.unwrap_err();
    assert!(
        matches!(err, ConfigServerError::Status { status: 308, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(
            "(a redirect to https://elsewhere.example/config/d; redirects are not followed: \
             set config_server.url to the address that answers)"
        ),
        "{err}"
    );
}

/// A CA, a server certificate for `names` signed by it, and the CA as a PEM file. A name that
/// parses as an IP address goes into the certificate as one.
struct Pki {
    server: Arc<rustls::ServerConfig>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn make_pki(names: &[&str]) -> Pki {
    let pki = test_support::pki::make("edge-metrics config server test CA", names);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("config-server-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.key_der.into());
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![pki.cert_der.into()], key)
    .unwrap();
    Pki {
        server: Arc::new(server),
        ca_file,
        _dir: dir,
    }
}

#[tokio::test]
async fn https_works_with_the_ca_file_and_fails_clearly_without_it() {
    let pki = make_pki(&["localhost", "127.0.0.1"]);
    let server = Recorder::start(xavier_json(), Some(Arc::clone(&pki.server))).await;

    // With the CA file: fetch and push over TLS, headers and all.
    let c = Client::from_settings(&settings(
        &server.url("https"),
        Some("tls-t0ken"),
        Some(&pki.ca_file),
    ))
    .unwrap();
    assert_eq!(c.fetch("orin-01", ORIN).await.unwrap(), xavier());
    c.push("orin-01", &xavier()).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].header("authorization"), Some("Bearer tls-t0ken"));
    assert_eq!(seen[1].method, "PUT");
    // The certificate names localhost too.
    let by_name = format!("https://localhost:{}", server.addr.port());
    let c = Client::from_settings(&settings(&by_name, None, Some(&pki.ca_file))).unwrap();
    c.fetch("orin-01", ORIN).await.unwrap();

    // Without it: the built-in roots do not know the test's CA.
    let c = client(&server.url("https"));
    let err = c.fetch("orin-01", ORIN).await.unwrap_err();
    assert!(matches!(err, ConfigServerError::Tls { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "TLS with the Config Server at {}/config/orin-01 failed: invalid peer certificate: \
             UnknownIssuer (the server's certificate is not signed by a CA this exporter trusts: \
             set config_server.ca_file to the PEM file of the CA that signed it)",
            server.url("https")
        )
    );
    let err = c.push("orin-01", &xavier()).await.unwrap_err();
    assert!(matches!(err, ConfigServerError::Tls { .. }), "{err:?}");
    assert_eq!(server.seen().len(), 3, "no request got through untrusted");
    wait_for(Duration::from_secs(3), "two failed handshakes", || {
        server.handshake_failures.load(Ordering::SeqCst) >= 2
    })
    .await;

    // A certificate for another name is refused even with its CA trusted.
    let elsewhere = make_pki(&["config.example"]);
    let other = Recorder::start(xavier_json(), Some(Arc::clone(&elsewhere.server))).await;
    let c = Client::from_settings(&settings(
        &other.url("https"),
        None,
        Some(&elsewhere.ca_file),
    ))
    .unwrap();
    let err = c.fetch("d", ORIN).await.unwrap_err();
    assert!(matches!(err, ConfigServerError::Tls { .. }), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains(
            "invalid peer certificate: certificate not valid for name \"127.0.0.1\"; \
             certificate is only valid for DnsName(\"config.example\")"
        ),
        "{err}"
    );
    assert!(
        err.contains("use a name it holds in config_server.url"),
        "{err}"
    );
    assert!(other.seen().is_empty());

    // https:// to a plain http server (one that answers garbage with 400): a handshake
    // failure that says so.
    let plain = get_server(200, "{}").await;
    let err = client(&plain.url().replace("http://", "https://"))
        .fetch("d", ORIN)
        .await
        .unwrap_err();
    assert!(matches!(err, ConfigServerError::Tls { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("a plain http server needs an http:// URL"),
        "{err}"
    );
}

#[tokio::test]
async fn a_ca_file_that_cannot_be_used_is_refused_when_the_client_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let fix = "(set config_server.ca_file to a PEM file with the certificate of the CA that \
               signed the Config Server's certificate, or remove it)";
    let build = |path: &Path| {
        Client::from_settings(&settings("https://cfg.example", None, Some(path))).unwrap_err()
    };
    let missing = dir.path().join("missing.pem");
    let err = build(&missing);
    assert!(matches!(err, ConfigServerError::CaFile { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "Config Server CA file {} cannot be read: No such file or directory (os error 2) \
             {fix}",
            missing.display()
        )
    );
    // A key, or any text without a certificate.
    let key = dir.path().join("key.pem");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    assert_eq!(
        build(&key).to_string(),
        format!(
            "Config Server CA file {} holds no certificate (a PEM file with -----BEGIN \
             CERTIFICATE----- blocks is expected) {fix}",
            key.display()
        )
    );
    // Broken PEM, and PEM whose content is no certificate.
    let broken = dir.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let err = build(&broken).to_string();
    assert!(err.contains("is not a valid PEM file"), "{err}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = build(&garbage).to_string();
    assert!(
        err.contains("has a certificate that is not usable (number 1 of 1)"),
        "{err}"
    );
    // A CA file is read whatever the scheme, so a mistake shows before https:// is used.
    let err =
        Client::from_settings(&settings("http://cfg.example", None, Some(&missing))).unwrap_err();
    assert!(matches!(err, ConfigServerError::CaFile { .. }), "{err:?}");
}
