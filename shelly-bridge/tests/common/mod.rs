//! Test harness: the real `shelly-bridge` binary on 127.0.0.1 with port 0, and test plugs that
//! are real WebSocket clients speaking corpus frames. Starting the binary, waiting and HTTP
//! come from `test-support`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use test_support::http::{self, Response};
use test_support::{wait_for_async, Daemon};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// A command for the bridge binary cargo built for these tests (through the cargo runner
/// when one is set).
pub fn command() -> Command {
    test_support::command(&test_support::bin!("shelly-bridge"))
}

/// Runs the bridge with `cmd`'s arguments to its end (at most 10 s) and returns its output.
pub fn run_to_end(cmd: &mut Command) -> std::process::Output {
    test_support::run_to_end(cmd, Duration::from_secs(10))
}

/// A Shelly frame of `testdata/shelly/`, as text.
pub fn corpus(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/shelly")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Shelly frame of `testdata/shelly/`, as JSON.
pub fn corpus_json(name: &str) -> Value {
    serde_json::from_str(&corpus(name)).unwrap()
}

/// A running bridge process; killed on drop, its log printed if the test failed.
pub struct Bridge {
    inner: test_support::Bridge,
    /// `ws://127.0.0.1:PORT`, where plugs dial.
    pub ws: String,
    /// `http://127.0.0.1:PORT`, the HTTP API.
    pub http: String,
}

impl Bridge {
    /// Starts the bridge on loopback, ports 0, RPC source `test-bridge`, plus `extra` flags,
    /// and waits for both addresses.
    pub fn start(extra: &[&str]) -> Bridge {
        let mut cmd = test_support::daemon_command(&test_support::bin!("shelly-bridge"));
        cmd.args(test_support::Bridge::args(extra))
            .args(["--src", "test-bridge"])
            .env("RUST_LOG", "info,shelly_bridge=debug");
        let inner = test_support::Bridge::start("bridge", cmd, None);
        Bridge {
            ws: format!("ws://{}", inner.ws),
            http: format!("http://{}", inner.http),
            inner,
        }
    }

    /// The process.
    pub fn proc(&self) -> &Daemon {
        &self.inner.proc
    }

    /// `GET path` on the HTTP API from a blocking thread, so that the test's plugs (tasks on
    /// this runtime) answer meanwhile.
    pub fn spawn_request(&self, path: &str) -> tokio::task::JoinHandle<Response> {
        let (addr, path) = (self.inner.http, path.to_string());
        tokio::task::spawn_blocking(move || {
            http::get(addr, &path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
        })
    }

    /// [`Bridge::spawn_request`], answering status and JSON body.
    pub fn spawn_get(&self, path: &str) -> tokio::task::JoinHandle<(u16, Value)> {
        let request = self.spawn_request(path);
        tokio::spawn(async move {
            let r = request.await.expect("the request thread ends");
            (r.status, r.json())
        })
    }

    /// `GET path`: status, and the body as JSON (as a JSON string when it is not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .spawn_request(path)
            .await
            .expect("the request thread ends");
        let v = serde_json::from_str(&r.body).unwrap_or(Value::String(r.body));
        (r.status, v)
    }

    /// `GET path`: the body.
    pub async fn text(&self, path: &str) -> String {
        self.spawn_request(path)
            .await
            .expect("the request thread ends")
            .body
    }

    /// Waits until `/devices` lists exactly `names` (sorted).
    pub async fn wait_devices(&self, names: &[&str]) {
        wait_for_async(
            Duration::from_secs(10),
            &format!("devices {names:?}"),
            || async move {
                let (_, v) = self.get("/devices").await;
                let got: Vec<String> = v["devices"]
                    .as_array()?
                    .iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect();
                (got == names).then_some(())
            },
        )
        .await;
    }

    /// Value of a sample in `/bridge/metrics`.
    pub async fn own_metric(&self, sample: &str) -> f64 {
        let text = self.text("/bridge/metrics").await;
        test_support::prom::series(&text, sample)
            .unwrap_or_else(|| panic!("{sample} missing in {text}"))
    }

    /// A test plug with one metered switch ([`plug_full_status`]) dialling `path` as `id`.
    pub async fn plug(&self, path: &str, id: &str) -> Plug {
        Plug::connect(&self.ws, path, id, Some(plug_full_status())).await
    }

    /// Whether the bridge has logged `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.proc().log().contains(needle)
    }
}

/// A test plug: a real WebSocket client. Requests it receives are handed to the test, which
/// decides what to send back.
pub struct Plug {
    pub id: String,
    out: mpsc::UnboundedSender<Message>,
    pub requests: mpsc::UnboundedReceiver<Value>,
    pub closed: mpsc::UnboundedReceiver<Option<u16>>,
    pings: Arc<AtomicUsize>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Plug {
    /// Connects to `bridge` at `path` and sends `full_status` as NotifyFullStatus params under
    /// `id` (skipped when `None`).
    pub async fn connect(ws_base: &str, path: &str, id: &str, full_status: Option<Value>) -> Plug {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}{path}"))
            .await
            .unwrap();
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (req_tx, requests) = mpsc::unbounded_channel();
        let (closed_tx, closed) = mpsc::unbounded_channel();
        let pings = Arc::new(AtomicUsize::new(0));
        let pinged = Arc::clone(&pings);
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let reader = tokio::spawn(async move {
            while let Some(m) = stream.next().await {
                match m {
                    Ok(Message::Text(t)) => {
                        let _ = req_tx.send(serde_json::from_str(t.as_str()).unwrap());
                    }
                    Ok(Message::Close(f)) => {
                        let _ = closed_tx.send(f.map(|f| u16::from(f.code)));
                        return;
                    }
                    // tungstenite queues the pong itself; the count lets a test wait on pings.
                    Ok(Message::Ping(_)) => {
                        pinged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = closed_tx.send(None);
        });
        let plug = Plug {
            id: id.to_string(),
            out,
            requests,
            closed,
            pings,
            reader,
            writer,
        };
        if let Some(params) = full_status {
            plug.send_json(&serde_json::json!({"src": id, "dst": "ws", "method": "NotifyFullStatus", "params": params}));
        }
        plug
    }

    /// How many pings the bridge has sent this plug.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::Relaxed)
    }

    pub fn send_text(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::Text(text.into().into()));
    }

    pub fn send_json(&self, v: &Value) {
        self.send_text(v.to_string());
    }

    pub fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Message::Binary(bytes.into()));
    }

    pub async fn next_request(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("no request within 10 s")
            .expect("connection ended")
    }

    /// Answers `req` with a result given as raw JSON text (kept byte for byte, loose numbers
    /// included).
    pub fn reply_raw(&self, req: &Value, result_json: &str) {
        self.send_text(format!(
            r#"{{"id":{},"src":"{}","dst":{},"result":{}}}"#,
            req["id"], self.id, req["src"], result_json
        ));
    }

    pub fn reply_error(&self, req: &Value, code: i64, message: &str) {
        self.send_json(&serde_json::json!({"id": req["id"], "src": self.id, "dst": req["src"], "error": {"code": code, "message": message}}));
    }

    /// Stops reading (so no pongs) but keeps the socket open: a plug pulled from the wall.
    pub fn go_silent(&self) {
        self.reader.abort();
    }

    /// Drops the TCP connection without a close frame.
    pub fn kill(self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// A full status with one metered switch (the real Plus 1PM capture).
pub fn plug_full_status() -> Value {
    corpus_json("notify-full-status-outbound-ws-plus-1pm.json")["params"].clone()
}
