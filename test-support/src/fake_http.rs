//! A loopback HTTP server that stands in for one the daemons call (a shelly-bridge for the
//! exporter's Shelly collector, a Config Server): it answers every request from a handler the
//! test can swap while the daemon runs, and records what it was sent. One thread accepts; each
//! connection gets its own thread, so a handler that takes its time (a slow server) delays
//! only its own answer. Dropping it stops it: afterwards nothing listens on its port.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A request as the fake server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    /// Header (lower-cased name, value) pairs in order.
    pub headers: Vec<(String, String)>,
    /// The body (by Content-Length), as text.
    pub body: String,
}

/// What the fake server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// The body.
    pub body: String,
}

impl Reply {
    /// `status` with a JSON (or JSON-labelled) `body`.
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json".to_string(),
            body: body.into(),
        }
    }
}

/// Answers as a Config Server does: a `PUT` (a pushed configuration) is accepted with
/// `200 {}`; any other request gets `get`, after `delay` (zero, or a slow server's wait).
pub fn config_server(
    get: Reply,
    delay: Duration,
) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |request| {
        if request.method == "PUT" {
            return Reply::json(200, "{}");
        }
        std::thread::sleep(delay);
        get.clone()
    }
}

/// How the fake server answers a request.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running fake server on 127.0.0.1 (port 0).
pub struct FakeHttp {
    /// Its address.
    pub addr: SocketAddr,
    handler: Arc<Mutex<Handler>>,
    seen: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHttp {
    /// Starts it, answering with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s, st) = (handler.clone(), seen.clone(), stop.clone());
        // Ends when `stop` is set: Drop sets it, then connects once to wake the accept.
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let current = h.lock().unwrap_or_else(PoisonError::into_inner).clone();
                let seen = s.clone();
                std::thread::spawn(move || answer(stream, &current, &seen));
            }
        });
        FakeHttp {
            addr,
            handler,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers later requests with `handler` instead.
    pub fn set(&self, handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(handler);
    }

    /// Every request read so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept; if the connect fails the listener is gone already.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request from `stream`, records it, and writes the handler's reply.
fn answer(mut stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<Request>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let Some(request) = read_request(&mut BufReader::new(clone)) else {
        return;
    };
    seen.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request.clone());
    let reply = handler(&request);
    let _ = write!(
        stream,
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
}

fn read_request(r: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    r.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = r.read_exact(&mut body);
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    #[test]
    fn answers_records_swaps_and_stops() {
        let server = FakeHttp::start(|r| Reply::json(200, format!("{{\"path\": {:?}}}", r.path)));
        let r = http::get(server.addr, "/config/edge-01").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["path"], "/config/edge-01");
        assert_eq!(r.header("content-type"), Some("application/json"));

        server.set(|_| Reply::json(500, "{}"));
        let r = http::request(server.addr, "PUT", "/config/x", &[], b"{\"a\":1}").unwrap();
        assert_eq!(r.status, 500);
        let seen = server.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (seen[1].method.as_str(), seen[1].body.as_str()),
            ("PUT", "{\"a\":1}")
        );

        let addr = server.addr;
        drop(server);
        assert!(http::get(addr, "/").is_err(), "nothing listens after drop");
    }
}
