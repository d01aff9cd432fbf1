//! Helpers the security and bounds tests share, on top of `common` (the bridge harness):
//! waiting on one of the bridge's own metrics, a listener's address, and a TCP flood that
//! sorts connections into refused-at-once and held.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use test_support::wait_for_async;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::common::Bridge;

/// Waits until the bridge's own `sample` reads `want`.
pub async fn wait_metric(b: &Bridge, sample: &str, want: f64) {
    wait_for_async(
        Duration::from_secs(10),
        &format!("{sample} = {want}"),
        || async move { (b.own_metric(sample).await == want).then_some(()) },
    )
    .await;
}

/// The socket address of `ws://HOST:PORT` or `http://HOST:PORT`.
pub fn addr_of(url: &str) -> SocketAddr {
    url.rsplit("//").next().unwrap().parse().unwrap()
}

/// What a flood of connections met.
pub struct Flood {
    /// Connections the server closed unasked within [`HELD_AFTER`].
    pub closed: usize,
    /// The longest a closed connection took to be closed, from its connect.
    pub slowest_close: Duration,
    /// Connections still open after [`HELD_AFTER`] (kept open until dropped).
    pub held: Vec<TcpStream>,
}

impl Flood {
    /// Prints what the flood met (`meanwhile`: what was served during it) and checks that
    /// fewer than `max` connections were let in and every other one was closed at once.
    pub fn check(&self, what: &str, max: usize, total: usize, meanwhile: &str) {
        eprintln!(
            "{what} flood: {} closed at once (slowest {:?}), {} held; {meanwhile}",
            self.closed,
            self.slowest_close,
            self.held.len()
        );
        assert!(
            self.held.len() < max,
            "{} connections held",
            self.held.len()
        );
        assert_eq!(self.closed + self.held.len(), total);
        assert!(self.slowest_close < HELD_AFTER, "{:?}", self.slowest_close);
    }
}

/// A connection still open this long after its connect is taken as admitted.
pub const HELD_AFTER: Duration = Duration::from_secs(2);

/// Opens `total` TCP connections to `addr`, at most `parallel` at a time, sending nothing;
/// each is either closed by the server within [`HELD_AFTER`] or held open. Panics when a
/// connect fails or the server sends anything.
pub async fn flood(addr: SocketAddr, total: usize, parallel: usize) -> Flood {
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::with_capacity(total);
    for _ in 0..total {
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
                .await
                .expect("connect within 10 s")
                .expect("connect");
            let mut buf = [0u8; 64];
            match tokio::time::timeout(HELD_AFTER, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => Err(started.elapsed()),
                Ok(Ok(n)) => panic!(
                    "the server sent {:?} to a silent client",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(_) => Ok(s),
            }
        }));
    }
    let mut flood = Flood {
        closed: 0,
        slowest_close: Duration::ZERO,
        held: Vec::new(),
    };
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => flood.held.push(s),
            Err(took) => {
                flood.closed += 1;
                flood.slowest_close = flood.slowest_close.max(took);
            }
        }
    }
    flood
}
