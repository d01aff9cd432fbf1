//! Shelly collector: wall-plug AC power from shelly-bridge.
//!
//! [`ShellyCollector::start`] spawns a poller that, right after every collection cycle (so once
//! per interval), asks the bridge `GET {server_url}/metrics/{device_id}` (or
//! `GET {server_url}/metrics` when no device is configured) and keeps the latest answer.
//! [`Collector::collect`] hands out those values while they are fresh (three intervals); when
//! the bridge is down or answers an error, it reports why and shows nothing, never the last
//! good values. The poller logs once per change of state (working → failing, one failure →
//! another, failing → working), not every poll.
//!
//! Values are named exactly as the bridge's JSON keys: `power_total_watts`,
//! `power_voltage_volts`, `power_current_amps` and the extras (`power_frequency_hertz`,
//! `power_factor`, `power_energy_watt_hours_total`, ...; see `docs/SHELLY.md`). Whatever sits
//! at `shelly.server_url` is not trusted: an answer over [`MAX_BODY_BYTES`] fails the poll, the
//! bridge's `error` text is shown escaped and cut, and a key that is not a metric name is
//! dropped by [`CollectorSet::collect`](super::CollectorSet::collect) like any collector's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::{CollectError, Collector, Values};
use crate::client::{ClientError, HttpClient};
use crate::config::{error_chain, ShellyConfig};

const NAME: &str = "ShellyCollector";
const SOURCE: &str = "shelly-bridge";

/// The spec's three Shelly metrics, enabled on a fresh install (the spec's `GET /config`
/// example shows `power_total_watts: true`), and the plug's energy counter in joules (the
/// energy counterpart of `power_total_watts`, which every power source has); the extras
/// start disabled.
pub const DEFAULT_METRICS: [&str; 4] = [
    "power_total_watts",
    "power_voltage_volts",
    "power_current_amps",
    "power_energy_joules_total",
];

/// The plug's own energy totals in Wh (`aenergy.total`, `ret_aenergy.total`) and their
/// counterparts in joules, which every power source of the exporter has.
const JOULES: [(&str, &str); 2] = [
    ("power_energy_watt_hours_total", "power_energy_joules_total"),
    (
        "power_returned_energy_watt_hours_total",
        "power_returned_energy_joules_total",
    ),
];

/// Adds `power_energy_joules_total` (and the returned-energy counter) from the plug's Wh
/// totals: the plug counts itself, so nothing is integrated here; 1 Wh = 3600 J.
fn add_joules(values: &mut Values) {
    for (wh, joules) in JOULES {
        if let Some(total) = values.get(wh).copied().filter(|v| v.is_finite()) {
            values.insert(joules.to_string(), total * 3600.0);
        }
    }
}

/// Whether a Shelly metric is enabled on a fresh install: [`DEFAULT_METRICS`] only.
pub fn default_enabled(name: &str) -> bool {
    DEFAULT_METRICS.contains(&name)
}

/// `# HELP` text for a Shelly metric: the bridge's known keys by name, others generically.
pub fn help_text(name: &str) -> String {
    match name {
        "power_total_watts" => "Total AC power drawn at the wall plug (Shelly)".into(),
        "power_voltage_volts" => "AC voltage at the wall plug (Shelly)".into(),
        "power_current_amps" => "AC current drawn at the wall plug (Shelly)".into(),
        "power_frequency_hertz" => "AC frequency at the wall plug (Shelly)".into(),
        "power_factor" => "Power factor at the wall plug (Shelly)".into(),
        "power_apparent_voltamperes" => "Apparent power at the wall plug (Shelly)".into(),
        "power_energy_watt_hours_total" => {
            "Energy drawn through the wall plug in Wh (Shelly)".into()
        }
        "power_returned_energy_watt_hours_total" => {
            "Energy fed back through the wall plug in Wh (Shelly)".into()
        }
        "power_energy_joules_total" => {
            "Energy drawn through the wall plug in joules (the plug's own counter, Shelly)".into()
        }
        "power_returned_energy_joules_total" => {
            "Energy fed back through the wall plug in joules (the plug's own counter, Shelly)"
                .into()
        }
        "power_temperature_celsius" => "Temperature of the wall plug (Shelly)".into(),
        "power_switch_on" => "Whether the wall plug's relay is on (1) or off (0) (Shelly)".into(),
        n => format!("Wall-plug reading {n} (Shelly)"),
    }
}

#[derive(Debug, Default)]
struct State {
    /// The latest good reading and when it arrived.
    latest: Option<(Instant, Values)>,
    /// Why the latest poll failed (cleared by a good one).
    error: Option<String>,
}

/// Collector of the latest shelly-bridge reading; see the module docs.
#[derive(Debug, Clone)]
pub struct ShellyCollector {
    state: Arc<Mutex<State>>,
    stale_after: Duration,
    /// Asks the poller for the next reading; see [`Collector::collect`].
    kick: Arc<Notify>,
}

impl ShellyCollector {
    /// Spawns the poller (needs a Tokio runtime) and returns the collector reading from it.
    /// The poller stops when `shutdown` is cancelled or when every clone of the collector has
    /// been dropped (e.g. replaced after a reload).
    pub fn start(
        cfg: &ShellyConfig,
        interval: Duration,
        shutdown: CancellationToken,
    ) -> ShellyCollector {
        let interval = interval.max(Duration::from_millis(10));
        let state = Arc::new(Mutex::new(State::default()));
        let kick = Arc::new(Notify::new());
        let collector = ShellyCollector {
            state: state.clone(),
            stale_after: interval * 3,
            kick: kick.clone(),
        };
        let url = metrics_url(&cfg.server_url, cfg.device_id.as_deref());
        tracing::info!(
            server_url = %cfg.server_url,
            device_id = cfg.device_id.as_deref().unwrap_or("-"),
            "Shelly collector initialized."
        );
        tokio::spawn(poll(url, interval, state, kick, shutdown));
        collector
    }
}

impl Collector for ShellyCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Takes the latest reading and asks the poller for the next one, so the bridge is polled
    /// right after each collection cycle (one wake-up for both) and the value the next cycle
    /// shows is one interval old.
    fn collect(&self, out: &mut Values) -> Result<(), CollectError> {
        self.kick.notify_one();
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = &state.error {
            return Err(CollectError::Failed(e.clone()));
        }
        match &state.latest {
            None => Err(CollectError::NoReading {
                source_name: SOURCE,
            }),
            Some((at, _)) if at.elapsed() > self.stale_after => Err(CollectError::Stale {
                source_name: SOURCE,
                age_secs: at.elapsed().as_secs_f64(),
                limit_secs: self.stale_after.as_secs_f64(),
            }),
            Some((_, values)) => {
                let mut own = values.clone();
                add_joules(&mut own);
                out.append(&mut own);
                Ok(())
            }
        }
    }
}

/// `{server_url}/metrics[/{device_id}]`, or why the URL is unusable.
fn metrics_url(server_url: &str, device_id: Option<&str>) -> Result<Url, String> {
    let mut url = Url::parse(server_url.trim()).map_err(|e| {
        format!("shelly.server_url `{server_url}` is not a valid URL ({e}); use e.g. http://localhost:8766")
    })?;
    if url.scheme() != "http" {
        return Err(format!(
            "shelly.server_url `{server_url}` must be an http:// URL (shelly-bridge serves plain HTTP)"
        ));
    }
    {
        let mut segs = url.path_segments_mut().map_err(|()| {
            format!("shelly.server_url `{server_url}` cannot take a path; use e.g. http://localhost:8766")
        })?;
        segs.pop_if_empty().push("metrics");
        if let Some(id) = device_id.filter(|d| !d.is_empty()) {
            segs.push(id);
        }
    }
    Ok(url)
}

/// Why a poll failed: a coarse kind (what counts as a change of state for the log) and the
/// message shown by `/health`.
type PollError = (String, String);

/// Largest answer read from shelly-bridge. Its answers are a few hundred bytes; anything near
/// this is not the bridge, and reading it whole would cost memory every interval.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// How many characters of the bridge's own `error` text `/health` and the log show.
const SHOWN_BRIDGE_ERROR_CHARS: usize = 160;

/// A failed request or body read: a timeout, an answer over [`MAX_BODY_BYTES`], or `kind`
/// with `what` went wrong and why.
fn transport(url: &Url, e: &ClientError, kind: &str, what: &str) -> PollError {
    match e {
        ClientError::Timeout(_) => (
            "timeout".to_string(),
            format!("shelly-bridge at {url} did not answer in time"),
        ),
        ClientError::TooLarge(_) => (
            "too_large".to_string(),
            format!(
                "shelly-bridge at {url} answered with a body over {} KiB, which no shelly-bridge \
                 sends; check shelly.server_url",
                MAX_BODY_BYTES / 1024
            ),
        ),
        // What broke, without the client's own words for the kind of failure.
        e => {
            let why = std::error::Error::source(e).map_or_else(|| e.to_string(), error_chain);
            (
                kind.to_string(),
                format!("shelly-bridge at {url} {what}: {why}"),
            )
        }
    }
}

/// One poll: the readings, or what failed.
async fn fetch(client: &HttpClient, url: &Url) -> Result<Values, PollError> {
    let resp = client
        .get(url.as_str(), HeaderMap::new())
        .await
        .map_err(|e| transport(url, &e, "unreachable", "is unreachable"))?;
    let status = resp.status;
    let body = resp
        .body
        .read(MAX_BODY_BYTES)
        .await
        .map_err(|e| transport(url, &e, "read", "broke off its answer"))?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        (
            "not_json".to_string(),
            format!("shelly-bridge at {url} answered {status} with a body that is not JSON: {e}"),
        )
    })?;
    if !status.is_success() {
        let msg = body.get("error").and_then(Value::as_str).map_or_else(
            || "no error message".to_string(),
            |m| super::printable(m, SHOWN_BRIDGE_ERROR_CHARS),
        );
        let hint = match status.as_u16() {
            409 => "; set shelly.device_id in config.yaml to one of them",
            404 if !url.path().ends_with("/metrics") => {
                "; check shelly.device_id (the plug's alias or device id, see GET /devices on the bridge)"
            }
            _ => "",
        };
        return Err((
            format!("status_{}", status.as_u16()),
            format!("shelly-bridge answered {}: {msg}{hint}", status.as_u16()),
        ));
    }
    let metrics = body
        .get("metrics")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            (
                "no_metrics".to_string(),
                format!("shelly-bridge at {url} answered without a `metrics` object"),
            )
        })?;
    let values: Values = metrics
        .iter()
        .filter_map(|(k, v)| v.as_f64().map(|f| (k.clone(), f)))
        .collect();
    if !values.contains_key("power_total_watts") {
        return Err((
            "no_power".to_string(),
            format!("shelly-bridge at {url} answered without power_total_watts"),
        ));
    }
    Ok(values)
}

async fn poll(
    url: Result<Url, String>,
    interval: Duration,
    state: Arc<Mutex<State>>,
    kick: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut last_kind: Option<String> = None;
    let mut set = |r: Result<Values, PollError>| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let was_ok = s.latest.is_some() && s.error.is_none();
        match r {
            Ok(values) => {
                s.latest = Some((Instant::now(), values));
                s.error = None;
                if !was_ok {
                    tracing::info!("Shelly readings are arriving.");
                }
            }
            Err((kind, e)) => {
                s.latest = None;
                if last_kind.as_deref() != Some(kind.as_str()) {
                    tracing::warn!(error = %e, "Shelly readings unavailable.");
                }
                last_kind = Some(kind);
                s.error = Some(e);
                return;
            }
        }
        last_kind = None;
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            set(Err(("bad_url".to_string(), e)));
            return;
        }
    };
    // Shorter than the interval, so polls never pile up.
    let timeout = (interval * 9 / 10).min(Duration::from_secs(10));
    // Plain http: no TLS state is built for the bridge.
    let client = HttpClient::http(timeout);
    // Polls at once on start (the permit stored here), then whenever a cycle collected (see
    // `collect`); after three intervals without a cycle it polls anyway, which is also how a
    // poller whose collector was dropped notices and stops.
    kick.notify_one();
    loop {
        tokio::select! {
            () = kick.notified() => {}
            () = tokio::time::sleep(interval * 3) => {}
            () = shutdown.cancelled() => return,
        }
        // Every collector handle is gone (replaced by a reload): nobody reads this poller.
        if Arc::strong_count(&state) == 1 {
            tracing::debug!("Shelly poller stopped: its collector was dropped.");
            return;
        }
        let r = tokio::select! {
            r = fetch(&client, &url) => r,
            () = shutdown.cancelled() => return,
        };
        set(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use warp::Filter;

    /// What the fake bridge answers, and which paths it was asked.
    #[derive(Default)]
    struct Fake {
        status: u16,
        body: String,
        paths: Vec<String>,
    }

    /// A real HTTP server on 127.0.0.1 standing in for shelly-bridge.
    async fn fake_bridge(
        fake: Arc<Mutex<Fake>>,
        stop: CancellationToken,
    ) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let f = fake.clone();
        let route = warp::path::full().map(move |p: warp::path::FullPath| {
            let mut g = f.lock().unwrap();
            g.paths.push(p.as_str().to_string());
            warp::reply::with_status(
                g.body.clone(),
                warp::http::StatusCode::from_u16(g.status).unwrap(),
            )
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move { stop.cancelled().await })
                .run(),
        );
        (addr, task)
    }

    fn ok_body(watts: f64) -> String {
        serde_json::json!({
            "device_id": "shellyplugsg3-aabbccddeeff",
            "metrics": {"power_total_watts": watts, "power_voltage_volts": 230.1,
                        "power_current_amps": 0.2, "power_frequency_hertz": 50.0},
            "timestamp": 1.0
        })
        .to_string()
    }

    async fn wait_for(
        c: &ShellyCollector,
        want: impl Fn(&Result<Values, CollectError>) -> bool,
    ) -> Result<Values, CollectError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut v = Values::new();
            let r = c.collect(&mut v).map(|()| v);
            if want(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "still {r:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn cfg(addr: SocketAddr, device: Option<&str>) -> ShellyConfig {
        ShellyConfig {
            enabled: true,
            server_url: format!("http://{addr}/"),
            device_id: device.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn polls_the_named_device_and_exposes_the_bridge_keys() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: ok_body(45.3),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(
            &cfg(addr, Some("jetson-01")),
            Duration::from_millis(50),
            stop.clone(),
        );
        assert_eq!(c.name(), "ShellyCollector");
        let v = wait_for(&c, |r| r.is_ok()).await.unwrap();
        assert_eq!(v["power_total_watts"], 45.3);
        assert_eq!(v["power_voltage_volts"], 230.1);
        assert_eq!(v["power_current_amps"], 0.2);
        assert_eq!(v["power_frequency_hertz"], 50.0);
        assert_eq!(fake.lock().unwrap().paths[0], "/metrics/jetson-01");
        // Fresh values follow the bridge.
        fake.lock().unwrap().body = ok_body(12.5);
        wait_for(&c, |r| {
            r.as_ref().is_ok_and(|v| v["power_total_watts"] == 12.5)
        })
        .await
        .unwrap();
        stop.cancel();
    }

    #[tokio::test]
    async fn without_device_id_it_asks_plain_metrics() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: ok_body(1.0),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(50), stop.clone());
        wait_for(&c, |r| r.is_ok()).await.unwrap();
        assert!(fake.lock().unwrap().paths.iter().all(|p| p == "/metrics"));
        stop.cancel();
    }

    #[tokio::test]
    async fn an_error_answer_hides_the_last_values_and_recovery_shows_new_ones() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: ok_body(45.3),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(
            &cfg(addr, Some("x")),
            Duration::from_millis(50),
            stop.clone(),
        );
        wait_for(&c, |r| r.is_ok()).await.unwrap();
        {
            let mut f = fake.lock().unwrap();
            f.status = 504;
            f.body =
                r#"{"error":"RPC request timeout: device x did not answer within 5.0s"}"#.into();
        }
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        let CollectError::Failed(msg) = e else {
            panic!("{e:?}")
        };
        assert!(
            msg.contains("504") && msg.contains("RPC request timeout"),
            "{msg}"
        );
        assert!(!msg.contains("shelly.device_id"), "{msg}");
        let mut out = Values::new();
        assert!(c.collect(&mut out).is_err());
        assert!(out.is_empty(), "no stale values: {out:?}");
        {
            let mut f = fake.lock().unwrap();
            f.status = 200;
            f.body = ok_body(7.0);
        }
        let v = wait_for(&c, |r| r.is_ok()).await.unwrap();
        assert_eq!(v["power_total_watts"], 7.0);
        stop.cancel();
    }

    #[tokio::test]
    async fn a_bridge_that_goes_away_is_reported_not_frozen() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: ok_body(45.3),
            ..Default::default()
        }));
        let server_stop = CancellationToken::new();
        let (addr, srv) = fake_bridge(fake.clone(), server_stop.clone()).await;
        let stop = CancellationToken::new();
        let c = ShellyCollector::start(
            &cfg(addr, Some("x")),
            Duration::from_millis(50),
            stop.clone(),
        );
        wait_for(&c, |r| r.is_ok()).await.unwrap();
        server_stop.cancel();
        srv.await.unwrap();
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("shelly-bridge"), "{e}");
        stop.cancel();
    }

    #[tokio::test]
    async fn values_go_stale_when_polling_stops() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: ok_body(45.3),
            ..Default::default()
        }));
        let srv_stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), srv_stop.clone()).await;
        let stop = CancellationToken::new();
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(30), stop.clone());
        wait_for(&c, |r| r.is_ok()).await.unwrap();
        stop.cancel();
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Stale { .. }))).await;
        assert!(e.is_err());
        srv_stop.cancel();
    }

    #[tokio::test]
    async fn unusable_answers_and_urls_are_errors() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: r#"{"metrics":{"power_voltage_volts":230}}"#.into(),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(50), stop.clone());
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("power_total_watts"), "{e}");

        let bad = ShellyConfig {
            enabled: true,
            server_url: "localhost:8766".into(),
            device_id: None,
        };
        let c = ShellyCollector::start(&bad, Duration::from_millis(50), stop.clone());
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("shelly.server_url"), "{e}");
        stop.cancel();
    }

    #[tokio::test]
    async fn conflict_and_unknown_device_answers_say_what_to_configure() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 409,
            body: r#"{"error":"2 Shelly devices are connected","devices":["a","b"]}"#.into(),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(50), stop.clone());
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("409") && e.to_string().contains("set shelly.device_id"),
            "{e}"
        );
        {
            let mut f = fake.lock().unwrap();
            f.status = 404;
            f.body = r#"{"error":"No Shelly device 'x' connected; connected: a, b"}"#.into();
        }
        let c = ShellyCollector::start(
            &cfg(addr, Some("x")),
            Duration::from_millis(50),
            stop.clone(),
        );
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("check shelly.device_id"), "{e}");
        stop.cancel();
    }

    #[tokio::test]
    async fn dropping_the_collector_stops_its_poller() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: ok_body(1.0),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(20), stop.clone());
        wait_for(&c, |r| r.is_ok()).await.unwrap();
        // The poller holds the shared state while it runs: its last reference going away is
        // the event that shows it ended, rather than a quiet spell at the fake bridge.
        let state = Arc::downgrade(&c.state);
        drop(c);
        let deadline = Instant::now() + Duration::from_secs(5);
        while state.strong_count() > 0 {
            assert!(Instant::now() < deadline, "poller still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn an_oversized_answer_fails_the_poll_whether_announced_or_streamed() {
        // Announced: a Content-Length over the cap is refused before the body is read.
        let fake = Arc::new(Mutex::new(Fake {
            status: 200,
            body: format!(
                "{{\"metrics\": {{\"power_total_watts\": 1}}, \"pad\": \"{}\"}}",
                "x".repeat(MAX_BODY_BYTES)
            ),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(50), stop.clone());
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("body over 256 KiB")
                && e.to_string().contains("shelly.server_url"),
            "{e}"
        );

        // Streamed: chunks without a length, never ending on their own; the reader stops at
        // the cap. The server writes at most 4 MiB, so the test ends whatever happens.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut sock, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = [0u8; 1024];
                    let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut head).await;
                    let _ = sock
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .await;
                    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
                    for _ in 0..256 {
                        if sock.write_all(chunk.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(200), stop.clone());
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("body over 256 KiB"), "{e}");
        server.abort();
        stop.cancel();
    }

    #[tokio::test]
    async fn the_bridges_error_text_is_escaped_and_cut() {
        let fake = Arc::new(Mutex::new(Fake {
            status: 502,
            body: serde_json::json!({"error": format!("gone\nINFO fake log line {}", "y".repeat(500))})
                .to_string(),
            ..Default::default()
        }));
        let stop = CancellationToken::new();
        let (addr, _srv) = fake_bridge(fake.clone(), stop.clone()).await;
        let c = ShellyCollector::start(&cfg(addr, None), Duration::from_millis(50), stop.clone());
        let e = wait_for(&c, |r| matches!(r, Err(CollectError::Failed(_))))
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
        assert!(
            e.contains("gone\\nINFO fake log line") && e.contains('…'),
            "{e}"
        );
        assert!(e.len() < 400, "{e}");
        stop.cancel();
    }

    #[test]
    fn url_building() {
        assert_eq!(
            metrics_url("http://localhost:8766", Some("jetson-01"))
                .unwrap()
                .as_str(),
            "http://localhost:8766/metrics/jetson-01"
        );
        assert_eq!(
            metrics_url("http://h:1/bridge/", None).unwrap().as_str(),
            "http://h:1/bridge/metrics"
        );
        assert!(metrics_url("https://h", None)
            .unwrap_err()
            .contains("http://"));
    }

    #[test]
    fn spec_metrics_are_enabled_by_default_and_extras_are_not() {
        for n in [
            "power_total_watts",
            "power_voltage_volts",
            "power_current_amps",
            "power_energy_joules_total",
        ] {
            assert!(default_enabled(n), "{n}");
        }
        assert!(!default_enabled("power_frequency_hertz"));
        assert!(!default_enabled("power_returned_energy_joules_total"));
    }

    #[test]
    fn the_plugs_watt_hour_totals_are_also_given_in_joules() {
        let mut v = Values::from([
            ("power_total_watts".to_string(), 45.3),
            ("power_energy_watt_hours_total".to_string(), 15761.124),
            ("power_returned_energy_watt_hours_total".to_string(), 0.5),
        ]);
        add_joules(&mut v);
        assert!((v["power_energy_joules_total"] - 15761.124 * 3600.0).abs() < 1e-6);
        assert_eq!(v["power_returned_energy_joules_total"], 1800.0);
        // A plug that reports no total gets no counter.
        let mut v = Values::from([("power_total_watts".to_string(), 1.0)]);
        add_joules(&mut v);
        assert_eq!(v.len(), 1);
        assert!(!default_enabled("jetson_temp_cpu_celsius"));
    }
}
