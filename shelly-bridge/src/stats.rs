//! The bridge's own metrics, served in Prometheus text format on `GET /bridge/metrics`.
//!
//! Plain atomics: a scrape reads them without locks and a frame costs one increment. The
//! connection caps of the two listeners keep their own counts ([`ConnectionLimit`]); they are
//! rendered from there.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edge_metrics_common::limit::ConnectionLimit;

/// Outcome of one reading request, the label of `shelly_bridge_rpc_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The plug answered with a usable reading.
    Ok,
    /// No answer within the timeout (HTTP 504).
    Timeout,
    /// The connection closed while waiting (HTTP 502).
    ConnectionLost,
    /// The plug answered with an RPC error frame (HTTP 500).
    RpcError,
    /// The plug answered something unusable (HTTP 500).
    BadReply,
    /// No such device connected (HTTP 404).
    NotFound,
    /// Several plugs and no device named (HTTP 409).
    Ambiguous,
    /// Too many requests already waiting for that plug (HTTP 503).
    Overloaded,
    /// The HTTP caller went away before the answer; its place was freed at once.
    Abandoned,
}

impl Outcome {
    const ALL: [Outcome; 9] = [
        Outcome::Ok,
        Outcome::Timeout,
        Outcome::ConnectionLost,
        Outcome::RpcError,
        Outcome::BadReply,
        Outcome::NotFound,
        Outcome::Ambiguous,
        Outcome::Overloaded,
        Outcome::Abandoned,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::ConnectionLost => "connection_lost",
            Outcome::RpcError => "rpc_error",
            Outcome::BadReply => "bad_reply",
            Outcome::NotFound => "not_found",
            Outcome::Ambiguous => "ambiguous",
            Outcome::Overloaded => "overloaded",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// Reasons a frame from a plug was rejected.
pub const REJECT_REASONS: [&str; 6] = [
    "not_json",
    "not_object",
    "unknown_shape",
    "binary",
    "too_large",
    "no_src",
];

/// Why a plug connection was turned away before it was registered, the label of
/// `shelly_bridge_ws_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The upgrade lacked the right `?token=` (HTTP 401).
    Token,
    /// The device id is not on the allow-list (closed with 1008).
    AllowList,
    /// No frame named the device within the identify timeout (closed with 1008).
    IdentifyTimeout,
    /// The TLS handshake failed or took too long.
    Tls,
    /// The WebSocket upgrade failed or took too long.
    Handshake,
}

impl Refusal {
    /// Every reason, in the order [`Refusal::index`] numbers them.
    pub const ALL: [Refusal; 5] = [
        Refusal::Token,
        Refusal::AllowList,
        Refusal::IdentifyTimeout,
        Refusal::Tls,
        Refusal::Handshake,
    ];

    /// Its place in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Token => "token",
            Refusal::AllowList => "allow_list",
            Refusal::IdentifyTimeout => "identify_timeout",
            Refusal::Tls => "tls",
            Refusal::Handshake => "handshake",
        }
    }
}

/// A metric family drawn from the listeners' caps: name, help, type, value of one cap.
type LimitFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ConnectionLimit) -> String,
);

/// Upper bounds (seconds) of the RPC latency histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counters and gauges of one bridge.
#[derive(Debug, Default)]
pub struct Stats {
    connected: AtomicU64,
    connections: AtomicU64,
    ping_timeouts: AtomicU64,
    late_replies: AtomicU64,
    outcomes: [AtomicU64; 9],
    rejected: [AtomicU64; 6],
    refusals: [AtomicU64; 5],
    pending: AtomicU64,
    buckets: [AtomicU64; 12],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

impl Stats {
    /// A plug was identified (its connection is registered).
    pub fn plug_registered(&self) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A registered plug's connection ended.
    pub fn plug_unregistered(&self) {
        self.connected.fetch_sub(1, Ordering::Relaxed);
    }

    /// Plugs currently registered.
    pub fn connected(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// A connection was dropped for silence (no pong or frame).
    pub fn ping_timeout(&self) {
        self.ping_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// A reply arrived for a request whose caller had already given up.
    pub fn late_reply(&self) {
        self.late_replies.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejected frame; `reason` is one of [`REJECT_REASONS`].
    pub fn rejected(&self, reason: &str) {
        if let Some(i) = REJECT_REASONS.iter().position(|r| *r == reason) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many frames were rejected for `reason`.
    pub fn rejected_count(&self, reason: &str) -> u64 {
        REJECT_REASONS
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.rejected[i].load(Ordering::Relaxed))
    }

    /// Counts a plug connection turned away before registration.
    pub fn refused(&self, why: Refusal) {
        self.refusals[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A reading request starts waiting for a plug.
    pub fn pending_inc(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// A reading request stopped waiting (answered, failed or abandoned).
    pub fn pending_dec(&self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts one request outcome; `elapsed` feeds the latency histogram when the plug
    /// answered (ok, rpc error, bad reply).
    pub fn outcome(&self, outcome: Outcome, elapsed: Option<Duration>) {
        let i = Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .expect("invariant: ALL lists every outcome");
        self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        if let Some(d) = elapsed {
            let secs = d.as_secs_f64();
            for (b, bound) in self.buckets.iter().zip(BUCKETS) {
                if secs <= bound {
                    b.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.latency_count.fetch_add(1, Ordering::Relaxed);
            self.latency_sum_micros
                .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// Renders everything in Prometheus text format 0.0.4, with the counts of the listeners'
    /// connection caps in `limits`.
    pub fn render(&self, limits: &[&ConnectionLimit]) -> String {
        let mut s = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            s,
            "# HELP shelly_bridge_connected_plugs Plugs connected and identified now.\n\
             # TYPE shelly_bridge_connected_plugs gauge\n\
             shelly_bridge_connected_plugs {}",
            load(&self.connected)
        );
        let _ = writeln!(
            s,
            "# HELP shelly_bridge_plug_connections_total Plug connections identified since start.\n\
             # TYPE shelly_bridge_plug_connections_total counter\n\
             shelly_bridge_plug_connections_total {}",
            load(&self.connections)
        );
        let _ = writeln!(
            s,
            "# HELP shelly_bridge_ping_timeouts_total Connections dropped because the plug stayed silent.\n\
             # TYPE shelly_bridge_ping_timeouts_total counter\n\
             shelly_bridge_ping_timeouts_total {}",
            load(&self.ping_timeouts)
        );
        let _ = writeln!(
            s,
            "# HELP shelly_bridge_late_replies_total Replies that arrived after their request timed out.\n\
             # TYPE shelly_bridge_late_replies_total counter\n\
             shelly_bridge_late_replies_total {}",
            load(&self.late_replies)
        );
        s.push_str(
            "# HELP shelly_bridge_rpc_requests_total Reading requests by outcome.\n\
             # TYPE shelly_bridge_rpc_requests_total counter\n",
        );
        for (o, a) in Outcome::ALL.iter().zip(&self.outcomes) {
            let _ = writeln!(
                s,
                "shelly_bridge_rpc_requests_total{{outcome=\"{}\"}} {}",
                o.label(),
                load(a)
            );
        }
        s.push_str(
            "# HELP shelly_bridge_frames_rejected_total Frames from plugs that were dropped, by reason.\n\
             # TYPE shelly_bridge_frames_rejected_total counter\n",
        );
        for (r, a) in REJECT_REASONS.iter().zip(&self.rejected) {
            let _ = writeln!(
                s,
                "shelly_bridge_frames_rejected_total{{reason=\"{r}\"}} {}",
                load(a)
            );
        }
        s.push_str(
            "# HELP shelly_bridge_ws_rejected_total Plug connections turned away before registration, by reason.\n\
             # TYPE shelly_bridge_ws_rejected_total counter\n",
        );
        for (r, a) in Refusal::ALL.iter().zip(&self.refusals) {
            let _ = writeln!(
                s,
                "shelly_bridge_ws_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                load(a)
            );
        }
        let _ = writeln!(
            s,
            "# HELP shelly_bridge_pending_requests Reading requests waiting for a plug now.\n\
             # TYPE shelly_bridge_pending_requests gauge\n\
             shelly_bridge_pending_requests {}",
            load(&self.pending)
        );
        let families: [LimitFamily; 3] = [
            (
                "shelly_bridge_connections_refused_total",
                "Connections closed at once because their listener was at its cap.",
                "counter",
                |l| l.refused().to_string(),
            ),
            (
                "shelly_bridge_open_connections",
                "Connections open now, by listener.",
                "gauge",
                |l| l.open().to_string(),
            ),
            (
                "shelly_bridge_max_connections",
                "The cap on open connections, by listener.",
                "gauge",
                |l| l.max().to_string(),
            ),
        ];
        for (name, help, kind, value) in families {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for l in limits {
                let _ = writeln!(s, "{name}{{listener=\"{}\"}} {}", l.listener(), value(l));
            }
        }
        s.push_str(
            "# HELP shelly_bridge_rpc_duration_seconds Time from sending a request to the plug's answer.\n\
             # TYPE shelly_bridge_rpc_duration_seconds histogram\n",
        );
        for (b, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                s,
                "shelly_bridge_rpc_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(b)
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            s,
            "shelly_bridge_rpc_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n\
             shelly_bridge_rpc_duration_seconds_sum {}\n\
             shelly_bridge_rpc_duration_seconds_count {count}",
            load(&self.latency_sum_micros) as f64 / 1e6
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_match() {
        let st = Stats::default();
        st.outcome(Outcome::Ok, Some(Duration::from_micros(300)));
        st.outcome(Outcome::Ok, Some(Duration::from_millis(20)));
        st.outcome(Outcome::Timeout, None);
        st.rejected("binary");
        st.refused(Refusal::Token);
        st.pending_inc();
        let limit = ConnectionLimit::new("ws", 3);
        let text = st.render(&[&limit]);
        assert!(text.contains("shelly_bridge_rpc_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("shelly_bridge_rpc_duration_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("shelly_bridge_rpc_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("shelly_bridge_rpc_duration_seconds_count 2\n"));
        assert!(text.contains("shelly_bridge_rpc_requests_total{outcome=\"timeout\"} 1\n"));
        assert!(text.contains("shelly_bridge_frames_rejected_total{reason=\"binary\"} 1\n"));
        assert_eq!(st.rejected_count("binary"), 1);
        assert!(text.contains("shelly_bridge_ws_rejected_total{reason=\"token\"} 1\n"));
        assert!(text.contains("shelly_bridge_ws_rejected_total{reason=\"allow_list\"} 0\n"));
        assert!(text.contains("shelly_bridge_pending_requests 1\n"));
        assert!(text.contains("shelly_bridge_connections_refused_total{listener=\"ws\"} 0\n"));
        assert!(text.contains("shelly_bridge_max_connections{listener=\"ws\"} 3\n"));
        assert!(text.contains("shelly_bridge_rpc_requests_total{outcome=\"overloaded\"} 0\n"));
    }

    #[test]
    fn refusals_are_numbered_as_listed() {
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{}", r.label());
        }
    }
}
