//! Test harness: the real `shelly-bridge` binary on 127.0.0.1 with port 0, and test plugs that
//! are real WebSocket clients speaking corpus frames.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_shelly-bridge");

pub fn corpus(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/shelly")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn corpus_json(name: &str) -> Value {
    serde_json::from_str(&corpus(name)).unwrap()
}

/// A running bridge process; killed on drop, its log printed if the test failed.
pub struct Bridge {
    pub child: Child,
    pub ws: String,
    pub http: String,
    pub log: Arc<Mutex<Vec<String>>>,
    pub client: reqwest::Client,
}

fn addr_in(line: &str) -> Option<String> {
    let rest = &line[line.find("address=")? + 8..];
    Some(rest.split_whitespace().next()?.to_string())
}

impl Bridge {
    pub fn start(extra: &[&str]) -> Bridge {
        Self::start_with(
            BIN,
            &[
                "--bind",
                "127.0.0.1",
                "--ws-port",
                "0",
                "--http-port",
                "0",
                "--src",
                "test-bridge",
            ],
            extra,
        )
    }

    pub fn start_with(bin: &str, base: &[&str], extra: &[&str]) -> Bridge {
        let mut child = Command::new(bin)
            .args(base)
            .args(extra)
            .env("RUST_LOG", "info,shelly_bridge=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shelly-bridge");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("Listening for plug WebSocket")
                    || line.contains("Serving the HTTP API")
                {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut ws = None;
        let mut http = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ws.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!(
                    "bridge did not report its addresses: {:?}",
                    log.lock().unwrap()
                )
            });
            if line.contains("WebSocket") {
                ws = addr_in(&line);
            } else {
                http = addr_in(&line);
            }
        }
        Bridge {
            child,
            ws: format!("ws://{}", ws.unwrap()),
            http: format!("http://{}", http.unwrap()),
            log,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, v)
    }

    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.http))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until `/devices` lists exactly `names` (sorted).
    pub async fn wait_devices(&self, names: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, v) = self.get("/devices").await;
            let got: Vec<String> = v["devices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            if got == names {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "devices {got:?}, wanted {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Value of a sample in `/bridge/metrics`.
    pub async fn own_metric(&self, sample: &str) -> f64 {
        let text = self.text("/bridge/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{sample} missing in {text}"))
            .parse()
            .unwrap()
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- bridge log ---");
            for l in self.log.lock().unwrap().iter() {
                eprintln!("{l}");
            }
        }
    }
}

/// A test plug: a real WebSocket client. Requests it receives are handed to the test, which
/// decides what to send back.
pub struct Plug {
    pub id: String,
    out: mpsc::UnboundedSender<Message>,
    pub requests: mpsc::UnboundedReceiver<Value>,
    pub closed: mpsc::UnboundedReceiver<Option<u16>>,
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
            reader,
            writer,
        };
        if let Some(params) = full_status {
            plug.send_json(&serde_json::json!({"src": id, "dst": "ws", "method": "NotifyFullStatus", "params": params}));
        }
        plug
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
