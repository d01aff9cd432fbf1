//! One task per plug connection: reads frames, sends requests, matches replies, pings.
//!
//! HTTP handlers reach a plug only through this task's mailbox (a [`Call`]); the task owns the
//! socket and the table of requests in flight. When the task ends, for whatever reason, the
//! table is dropped and every waiting caller learns "connection lost" (HTTP 502). A caller that
//! gave up (timeout, HTTP 504, or the HTTP client went away) closes its reply channel; the task
//! notices that at once and forgets the request, and a late answer is counted and dropped.
//!
//! A connection must say which device it is (any frame with `src`, else the answer to
//! `Shelly.GetDeviceInfo`) within the identify timeout, and that id must be on the allow-list
//! when there is one; otherwise it is closed with 1008 and counted.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use edge_metrics_common::limit::{ConnectionLimit, Throttle, WARN_PERIOD};
use edge_metrics_common::text::shown;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

use crate::config::BridgeConfig;
use crate::registry::{Call, CallError, Entry, Reading, Registry};
use crate::rpc::{self, Frame, Metering};
use crate::stats::{Refusal, Stats};

/// State shared by all connection tasks and the HTTP API.
#[derive(Debug)]
pub struct Shared {
    /// Settings.
    pub config: BridgeConfig,
    /// Connected plugs.
    pub registry: Registry,
    /// Own metrics.
    pub stats: Stats,
    /// The cap on open plug connections.
    pub ws_limit: ConnectionLimit,
    /// The cap on open HTTP API connections.
    pub http_limit: ConnectionLimit,
    /// One WARN a minute per refusal reason at most.
    refusal_log: [Throttle; 5],
}

impl Shared {
    /// Shared state for `config`, with nothing connected yet.
    pub fn new(config: BridgeConfig) -> Shared {
        Shared {
            ws_limit: ConnectionLimit::new("ws", config.max_plugs),
            http_limit: ConnectionLimit::new("http", config.max_http_connections),
            config,
            registry: Registry::default(),
            stats: Stats::default(),
            refusal_log: std::array::from_fn(|_| Throttle::new(WARN_PERIOD)),
        }
    }

    /// Counts a plug connection turned away and logs it at WARN, at most once a minute per
    /// reason (the rest at DEBUG). `what` says what was wrong; it never holds the token.
    pub fn refuse(&self, why: Refusal, remote: SocketAddr, what: &str) {
        self.stats.refused(why);
        match self.refusal_log[why.index()].hit() {
            Some(held_back) => tracing::warn!(
                %remote,
                reason = why.label(),
                refused_since_last_warning = held_back,
                "Turned a plug connection away: {what}. Further refusals for this reason within \
                 a minute are logged at DEBUG."
            ),
            None => {
                tracing::debug!(%remote, reason = why.label(), "Turned a plug connection away: {what}.")
            }
        }
    }

    /// The bridge's own metrics, both listeners' caps included.
    pub fn render_metrics(&self) -> String {
        self.stats.render(&[&self.ws_limit, &self.http_limit])
    }
}

/// How long an unidentified connection waits for a frame with `src` before asking
/// `Shelly.GetDeviceInfo` (sooner when the identify timeout is shorter).
const IDENTIFY_AFTER: Duration = Duration::from_secs(2);

type Reply = oneshot::Sender<Result<Reading, CallError>>;

enum Pending {
    /// A reading request; `None` metering means `Shelly.GetStatus` (component not yet known).
    Read {
        reply: Reply,
        metering: Option<Metering>,
        sent: Instant,
    },
    /// `Shelly.GetDeviceInfo` sent to learn who the plug is.
    Identify,
}

struct Conn {
    conn: u64,
    remote: SocketAddr,
    alias: Option<String>,
    device_id: Option<String>,
    metering: Option<Metering>,
    next_id: u64,
    pending: HashMap<u64, Pending>,
    last_seen: Instant,
    replaced: CancellationToken,
    warned_reject: bool,
    /// Its device id is not on the allow-list.
    not_allowed: bool,
}

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    Closed,
    Error(WsError),
    PingTimeout,
    Replaced,
    Shutdown,
    SendStalled,
    NotAllowed,
    NotIdentified,
}

/// The id of a reading request whose caller has gone away (its reply channel closed), as
/// soon as there is one; pending while every caller still waits. Polls each entry's
/// `closed()`, so a departing caller wakes the task at once. At most the per-plug cap of
/// entries are waiting.
fn abandoned(pending: &mut HashMap<u64, Pending>) -> impl Future<Output = u64> + '_ {
    std::future::poll_fn(move |cx| {
        for (id, p) in pending.iter_mut() {
            if let Pending::Read { reply, .. } = p {
                if reply.poll_closed(cx).is_ready() {
                    return Poll::Ready(*id);
                }
            }
        }
        Poll::Pending
    })
}

impl Conn {
    /// Counts a rejected frame; the first one per connection is a warning, the rest are
    /// DEBUG so that a misbehaving plug cannot flood the log.
    fn reject(&mut self, shared: &Shared, reason: &'static str, bytes: usize) {
        shared.stats.rejected(reason);
        let device_id = self.device_id.as_deref().unwrap_or("-");
        if self.warned_reject {
            tracing::debug!(remote = %self.remote, device_id, reason, bytes, "Rejected a frame from a plug.");
        } else {
            self.warned_reject = true;
            tracing::warn!(
                remote = %self.remote,
                device_id,
                reason,
                bytes,
                "Rejected a frame from a plug; further rejections on this connection are logged at DEBUG."
            );
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn identify(&mut self, src: &str, shared: &Shared, calls: &mpsc::Sender<Call>) {
        if self.device_id.is_some() || self.not_allowed {
            return;
        }
        if !shared.config.allows(src) {
            self.not_allowed = true;
            shared.refuse(
                Refusal::AllowList,
                self.remote,
                &format!(
                    "device {} is not on the allow-list (--allow-device)",
                    shown(src, 64)
                ),
            );
            return;
        }
        self.device_id = Some(src.to_string());
        let replaced = shared.registry.register(
            src,
            Entry {
                conn: self.conn,
                alias: self.alias.clone(),
                calls: calls.clone(),
                replaced: self.replaced.clone(),
                remote: self.remote,
                waiting: Default::default(),
            },
        );
        shared.stats.plug_registered();
        tracing::info!(
            device_id = %src,
            alias = self.alias.as_deref().unwrap_or("-"),
            remote = %self.remote,
            replaced,
            "Plug connected."
        );
    }

    /// Handles one text frame. Returns the rejection reason, if rejected.
    fn on_text(
        &mut self,
        text: &str,
        shared: &Shared,
        calls: &mpsc::Sender<Call>,
    ) -> Option<&'static str> {
        if text.len() > shared.config.max_frame_bytes {
            return Some("too_large");
        }
        let frame = match rpc::parse_frame(text) {
            Ok(f) => f,
            Err(e) => {
                // A broken reply that still names one of our ids fails that request at once
                // (HTTP 500) instead of leaving it to time out.
                if let (rpc::FrameError::NotJson(detail), Some(id)) = (&e, rpc::leading_id(text)) {
                    if let Some(Pending::Read {
                        reply, metering, ..
                    }) = self.pending.remove(&id)
                    {
                        let method = metering.map_or("Shelly.GetStatus", |m| m.method());
                        let _ = reply.send(Err(CallError::BadReply {
                            device_id: self.device_id.clone().unwrap_or_default(),
                            method: method.to_string(),
                            detail: format!("the reply is not valid JSON ({detail})"),
                        }));
                    }
                }
                return Some(e.reason());
            }
        };
        match frame.src() {
            Some(src) => self.identify(src, shared, calls),
            None if self.device_id.is_none() => return Some("no_src"),
            None => {}
        }
        if self.not_allowed {
            return None;
        }
        match frame {
            Frame::Notification { method, params, .. } => {
                if method == "NotifyFullStatus" {
                    self.metering = rpc::choose_metering(&params);
                    tracing::debug!(
                        device_id = self.device_id.as_deref().unwrap_or("-"),
                        component = self.metering.map(|m| m.key()).unwrap_or_default(),
                        "Full status received."
                    );
                }
            }
            Frame::Request { method, .. } => {
                tracing::debug!(%method, "Ignored a request from the plug.");
            }
            Frame::Response { id, outcome, .. } => self.on_response(id, outcome, shared),
        }
        None
    }

    fn on_response(
        &mut self,
        id: Option<u64>,
        outcome: Result<Value, rpc::RpcErrorObject>,
        shared: &Shared,
    ) {
        let Some(pending) = id.and_then(|id| self.pending.remove(&id)) else {
            tracing::debug!(?id, "Dropped a reply that matches no request in flight.");
            shared.stats.late_reply();
            return;
        };
        let device_id = self.device_id.clone().unwrap_or_default();
        match pending {
            Pending::Identify => {}
            Pending::Read {
                reply,
                metering,
                sent,
            } => {
                let rtt = sent.elapsed();
                if reply.is_closed() {
                    tracing::debug!(device_id = %device_id, ?id, "Dropped a late reply.");
                    shared.stats.late_reply();
                    return;
                }
                let method = metering
                    .map_or("Shelly.GetStatus", |m| m.method())
                    .to_string();
                let result = match outcome {
                    Err(e) => Err(CallError::Rpc {
                        device_id,
                        method,
                        code: e.code,
                        message: e.message,
                    }),
                    Ok(value) => self.reading_from(metering, value, device_id, method, rtt),
                };
                // The caller may have given up meanwhile: then there is nobody to tell.
                let _ = reply.send(result);
            }
        }
    }

    fn reading_from(
        &mut self,
        metering: Option<Metering>,
        value: Value,
        device_id: String,
        method: String,
        rtt: Duration,
    ) -> Result<Reading, CallError> {
        let bad = |detail: String| CallError::BadReply {
            device_id: device_id.clone(),
            method: method.clone(),
            detail,
        };
        let (m, status) = match metering {
            Some(m) => (m, value),
            None => {
                // Full status asked because no NotifyFullStatus named the component.
                let Some(m) = rpc::choose_metering(&value) else {
                    return Err(bad(
                        "the status has no switch, pm1, em, em1 or cover component, so this \
                         device has no power reading"
                            .into(),
                    ));
                };
                self.metering = Some(m);
                let status = value.get(m.key()).cloned().unwrap_or(Value::Null);
                (m, status)
            }
        };
        let metrics = rpc::readings(m, &status).map_err(|e| bad(e.to_string()))?;
        Ok(Reading {
            device_id: device_id.clone(),
            alias: self.alias.clone(),
            component: m.key(),
            metrics,
            rtt,
        })
    }
}

/// Runs one accepted plug connection until it closes, goes silent, is replaced or the bridge
/// shuts down.
pub async fn run_connection<S>(
    mut ws: WebSocketStream<S>,
    conn: u64,
    remote: SocketAddr,
    alias: Option<String>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Small mailbox: callers wait their turn instead of piling up memory.
    let (calls_tx, mut calls_rx) = mpsc::channel::<Call>(8);
    let mut c = Conn {
        conn,
        remote,
        alias,
        device_id: None,
        metering: None,
        next_id: 1,
        pending: HashMap::new(),
        last_seen: Instant::now(),
        replaced: CancellationToken::new(),
        warned_reject: false,
        not_allowed: false,
    };
    let cfg = &shared.config;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + cfg.ping_interval,
        cfg.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let identify = tokio::time::sleep(IDENTIFY_AFTER.min(cfg.identify_timeout / 2));
    tokio::pin!(identify);
    let mut identify_armed = true;
    let identify_deadline = tokio::time::sleep(cfg.identify_timeout);
    tokio::pin!(identify_deadline);
    let replaced = c.replaced.clone();
    let send_limit = cfg.rpc_timeout.max(Duration::from_secs(1));

    let end = loop {
        tokio::select! {
            frame = ws.next() => {
                let msg = match frame {
                    None => break End::Closed,
                    Some(Err(e)) => {
                        if matches!(e, WsError::Capacity(_)) {
                            shared.stats.rejected("too_large");
                        }
                        break End::Error(e);
                    }
                    Some(Ok(m)) => m,
                };
                c.last_seen = Instant::now();
                match msg {
                    Message::Text(t) => {
                        if let Some(reason) = c.on_text(t.as_str(), &shared, &calls_tx) {
                            c.reject(&shared, reason, t.len());
                        }
                        if c.not_allowed {
                            break End::NotAllowed;
                        }
                    }
                    Message::Binary(b) => c.reject(&shared, "binary", b.len()),
                    Message::Close(_) => break End::Closed,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                }
            }
            Some(call) = calls_rx.recv() => {
                if call.reply.is_closed() {
                    tracing::debug!(device_id = c.device_id.as_deref().unwrap_or("-"), "Skipped a request whose caller went away while it queued.");
                    continue;
                }
                let id = c.take_id();
                let (method, params) = match c.metering {
                    Some(m) => (m.method(), Some(json!({"id": m.id()}))),
                    None => ("Shelly.GetStatus", None),
                };
                let frame = rpc::request_frame(id, &cfg.src, method, params);
                c.pending.insert(id, Pending::Read { reply: call.reply, metering: c.metering, sent: Instant::now() });
                match tokio::time::timeout(send_limit, ws.send(Message::Text(frame.into()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break End::Error(e),
                    Err(_) => break End::SendStalled,
                }
            }
            id = abandoned(&mut c.pending) => {
                // The caller gave up or went away: forget the request now; a late answer is
                // counted and dropped.
                c.pending.remove(&id);
                tracing::debug!(device_id = c.device_id.as_deref().unwrap_or("-"), id, "Forgot a request whose caller went away.");
            }
            _ = ping.tick() => {
                if c.last_seen.elapsed() >= cfg.ping_interval * 2 {
                    shared.stats.ping_timeout();
                    break End::PingTimeout;
                }
                match tokio::time::timeout(send_limit, ws.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break End::Error(e),
                    Err(_) => break End::SendStalled,
                }
            }
            () = &mut identify, if identify_armed => {
                identify_armed = false;
                if c.device_id.is_none() {
                    let id = c.take_id();
                    c.pending.insert(id, Pending::Identify);
                    let frame = rpc::request_frame(id, &cfg.src, "Shelly.GetDeviceInfo", None);
                    if let Err(e) = ws.send(Message::Text(frame.into())).await {
                        break End::Error(e);
                    }
                }
            }
            () = &mut identify_deadline, if c.device_id.is_none() => {
                shared.refuse(
                    Refusal::IdentifyTimeout,
                    c.remote,
                    &format!(
                        "no frame named the device within {:.1} s (--identify-timeout)",
                        cfg.identify_timeout.as_secs_f64()
                    ),
                );
                break End::NotIdentified;
            }
            () = replaced.cancelled() => break End::Replaced,
            () = shutdown.cancelled() => break End::Shutdown,
        }
    };

    let (code, reason) = match &end {
        End::Replaced => (CloseCode::Policy, "replaced by a newer connection"),
        End::Shutdown => (CloseCode::Away, "bridge shutting down"),
        End::PingTimeout | End::SendStalled => (CloseCode::Away, "no answer to ping"),
        End::NotAllowed => (CloseCode::Policy, "device not allowed"),
        End::NotIdentified => (CloseCode::Policy, "device not identified"),
        _ => (CloseCode::Normal, ""),
    };
    if !matches!(end, End::Closed | End::Error(_)) {
        let close = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(close)).await;
    }
    let in_flight = c.pending.len();
    drop(c.pending);
    if let Some(id) = &c.device_id {
        if shared.registry.unregister(id, c.conn) || c.replaced.is_cancelled() {
            shared.stats.plug_unregistered();
        }
        match &end {
            End::Error(e) => {
                tracing::info!(device_id = %id, error = %e, in_flight, "Plug disconnected.")
            }
            other => {
                tracing::info!(device_id = %id, reason = ?other, in_flight, "Plug disconnected.")
            }
        }
    } else {
        tracing::debug!(remote = %remote, reason = ?end, "Unidentified connection ended.");
    }
}
