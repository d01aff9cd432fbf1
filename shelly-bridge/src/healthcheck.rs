//! `shelly-bridge healthcheck`: GET our own `/health` on loopback; exit 0 on 200. For a
//! container health check in an image without a shell or curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::config::BridgeConfig;

/// Asks `GET /health` on the HTTP port of `config` (on 127.0.0.1 unless bound to one specific
/// address). Returns the status line's code, or an error saying what failed.
pub fn check(config: &BridgeConfig) -> Result<u16, String> {
    let mut addr = config.http_addr;
    if addr.ip().is_unspecified() {
        addr = SocketAddr::new(
            if addr.is_ipv6() {
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            } else {
                IpAddr::from(Ipv4Addr::LOCALHOST)
            },
            addr.port(),
        );
    }
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr} did not answer HTTP: {line:?}"))
}
