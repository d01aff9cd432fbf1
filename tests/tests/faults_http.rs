//! Hostile HTTP clients against every HTTP server of the pair: the exporter's /metrics port,
//! its management API and the bridge's API. Slow clients that open connections and send
//! nothing (or half a request), oversized headers, URLs and bodies. Expected outcomes are in
//! docs/RELIABILITY.md ("HTTP servers"); each test asserts exactly that.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use e2e::proof::{
    alive, closed_within, corpus, exporter_config, rss_kib, start_bridge, start_exporter,
};
use test_support::http::{get, read_response, request, Response};
use test_support::{Bridge, Exporter, TempDir};

/// The three servers, each with a cheap path that answers 200.
struct Servers {
    _tmp: TempDir,
    _bridge: Bridge,
    _exporter: Exporter,
    list: Vec<(&'static str, SocketAddr, &'static str)>,
    exporter_pid: u32,
    bridge_pid: u32,
}

fn servers(label: &str) -> Servers {
    let tmp = TempDir::new(label);
    let bridge = start_bridge(tmp.path(), "bridge", &[]);
    let cfg = exporter_config(
        tmp.path(),
        &format!("replay: {}", corpus("orin-agx-jp6.log").display()),
        "shelly:\n  enabled: false\n",
    );
    let exporter = start_exporter(&cfg, tmp.path());
    let list = vec![
        ("exporter /metrics", exporter.metrics, "/metrics"),
        ("exporter management", exporter.api, "/health"),
        ("bridge", bridge.http, "/health"),
    ];
    Servers {
        exporter_pid: exporter.proc.pid(),
        bridge_pid: bridge.proc.pid(),
        _tmp: tmp,
        _bridge: bridge,
        _exporter: exporter,
        list,
    }
}

/// Opens `n` connections that stall: a third send nothing, a third half a request line, a
/// third a request without the blank line that ends its head.
fn stall(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("connect");
            match i % 3 {
                0 => {}
                1 => s.write_all(b"GET /hea").unwrap(),
                _ => s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap(),
            }
            s
        })
        .collect()
}

#[test]
fn slow_clients_do_not_stop_the_servers_answering_others() {
    let s = servers("slow-others");
    for (name, addr, path) in &s.list {
        let stalled = stall(*addr, 150);
        let t = Instant::now();
        for _ in 0..20 {
            let r = get(*addr, path).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.status, 200, "{name}: {}", r.text());
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{name}: 20 requests took {:?} beside 150 stalled connections",
            t.elapsed()
        );
        drop(stalled);
    }
    assert!(alive(s.exporter_pid) && alive(s.bridge_pid));
}

/// Every stalled connection to the named servers is closed by the server within 20 s.
fn assert_stalled_connections_dropped(s: &Servers, names: &[&str]) {
    let mut all: Vec<(&str, Vec<TcpStream>)> = s
        .list
        .iter()
        .filter(|(name, _, _)| names.contains(name))
        .map(|(name, addr, _)| (*name, stall(*addr, 6)))
        .collect();
    let t = Instant::now();
    let limit = Duration::from_secs(20);
    for (name, conns) in &mut all {
        for (i, c) in conns.iter_mut().enumerate() {
            let left = limit.saturating_sub(t.elapsed());
            assert!(
                closed_within(c, left),
                "{name}: stalled connection {i} still open after {:?}",
                t.elapsed()
            );
        }
    }
    eprintln!(
        "stalled connections to {names:?} dropped within {:?}",
        t.elapsed()
    );
}

#[test]
fn the_exporter_drops_slow_clients_after_its_header_timeout() {
    let s = servers("slow-exporter");
    assert_stalled_connections_dropped(&s, &["exporter /metrics", "exporter management"]);
}

#[test]
fn the_bridge_drops_slow_clients_after_a_timeout() {
    let s = servers("slow-bridge");
    assert_stalled_connections_dropped(&s, &["bridge"]);
}

#[test]
fn oversized_headers_urls_and_bodies_get_4xx_and_harm_nothing() {
    let s = servers("oversized");
    for (name, addr, path) in &s.list {
        // One 1 MiB header; 200 headers; a 100 KiB URL. Each: a 4xx answer or a closed
        // connection, never a 5xx, never a hang.
        let big_value = "v".repeat(1024 * 1024);
        let many: Vec<(String, String)> = (0..200)
            .map(|i| (format!("X-Pad-{i}"), "x".repeat(10)))
            .collect();
        let many_refs: Vec<(&str, &str)> =
            many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let long_url = format!("{path}?{}", "q".repeat(100 * 1024));
        let cases: Vec<(&str, Result<Response, std::io::Error>)> = vec![
            (
                "1 MiB header",
                request(*addr, "GET", path, &[("X-Big", &big_value)], b""),
            ),
            ("200 headers", request(*addr, "GET", path, &many_refs, b"")),
            ("100 KiB URL", request(*addr, "GET", &long_url, &[], b"")),
        ];
        for (case, result) in cases {
            match result {
                Ok(r) => assert!(
                    (400..500).contains(&r.status),
                    "{name}, {case}: answered {} (want 4xx)",
                    r.status
                ),
                Err(e) => assert!(
                    !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{name}, {case}: the server hung: {e}"
                ),
            }
        }
        let r = get(*addr, path).unwrap();
        assert_eq!(
            r.status, 200,
            "{name} still answers after oversized requests"
        );
    }

    // Bodies: the management API caps them at 64 KiB (413, without reading the rest); a
    // Content-Length far beyond what is sent is refused at once, not waited for.
    let api = s.list[1].1;
    // 8 MiB sent for real: 413, or the connection closed before the rest is read (the
    // client then sees a broken pipe or a reset); never a 2xx/5xx, never a hang.
    let body = vec![b' '; 8 * 1024 * 1024];
    let json = [("Content-Type", "application/json")];
    match request(api, "POST", "/metrics/enable", &json, &body) {
        Ok(r) => assert_eq!(r.status, 413, "{}", r.text()),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "8 MiB body: {e}"
        ),
    }
    let mut c = TcpStream::connect(api).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(
        b"POST /metrics/enable HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 10000000000\r\n\r\n{",
    )
    .unwrap();
    let t = Instant::now();
    let r = read_response(&mut std::io::BufReader::new(c.try_clone().unwrap()))
        .expect("an answer without waiting for 10 GB");
    assert_eq!(r.status, 413);
    assert!(t.elapsed() < Duration::from_secs(2));
    // The bridge and the /metrics port take no bodies: a body on GET is ignored or refused.
    for (name, addr, path) in [&s.list[0], &s.list[2]] {
        let r = request(*addr, "GET", path, &[], &vec![b'x'; 1024 * 1024]);
        if let Ok(r) = r {
            assert!(
                r.status < 500,
                "{name}: GET with a 1 MiB body answered {}",
                r.status
            );
        }
        assert_eq!(get(*addr, path).unwrap().status, 200);
    }
    let mut buf = [0u8; 1];
    let _ = c.read(&mut buf);
    for (pid, what) in [(s.exporter_pid, "exporter"), (s.bridge_pid, "bridge")] {
        assert!(alive(pid), "the {what} died");
        let rss = rss_kib(pid);
        assert!(
            rss < 64 * 1024,
            "{what} RSS {rss} KiB after oversized requests"
        );
    }
}
